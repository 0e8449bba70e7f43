//! Runs as a user reads them (issue 32, defect 4): a run that a newer Re-sync all replaced is
//! over at once, as superseded, in the run list, the run itself and the mapping's status —
//! never "running" forever nor "ok" for chunks that did nothing.

use super::*;

/// The run `id` as `GET /v1/runs/{id}` shows it.
async fn run(a: &Api, id: &str) -> Value {
    let (s, r) = a
        .call(ADMIN_A, Method::GET, &format!("/v1/runs/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    r
}

/// `(state, finished, chunksTotal, chunksDone, chunksSuperseded)` of a run's view.
fn progress(r: &Value) -> (&str, bool, u64, u64, u64) {
    (
        r["state"].as_str().unwrap(),
        r["finished"].as_bool().unwrap(),
        r["chunksTotal"].as_u64().unwrap(),
        r["chunksDone"].as_u64().unwrap(),
        r["chunksSuperseded"].as_u64().unwrap(),
    )
}

/// Tenant A connected for a week, every company in the directory, a Clicks mapping: its id.
pub(super) async fn tenant(a: &Api) -> String {
    a.connect_for_a_week(ADMIN_A).await;
    let sub = a.sim.subscription();
    let ids: Vec<&str> = sub.accounts.iter().map(|c| c.id.as_str()).collect();
    a.companies(&ids).await;
    a.clicks_mapping().await
}

async fn resync(a: &Api) -> String {
    let (s, r) = a.call(ADMIN_A, Method::POST, "/v1/resync", None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{r}");
    r["runId"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn two_resync_alls_back_to_back_end_the_first_as_superseded_at_once() {
    let a = &api().await;
    tenant(a).await;
    let first = resync(a).await;
    a.clock
        .set(a.clock.now_value() + chrono::Duration::seconds(1));
    let second = resync(a).await;
    // Before any worker ran: the first is over (its message will plan nothing), the second
    // waits for its planning.
    assert_eq!(
        progress(&run(a, &first).await),
        ("superseded", true, 0, 0, 0)
    );
    assert_eq!(
        progress(&run(a, &second).await),
        ("running", false, 0, 0, 0)
    );
    a.drain().await;
    assert_eq!(
        progress(&run(a, &first).await),
        ("superseded", true, 0, 0, 0)
    );
    // 7 days: one 7-day chunk.
    assert_eq!(
        progress(&run(a, &second).await),
        ("finished", true, 1, 1, 0)
    );
    let (_, runs) = a.call(ADMIN_A, Method::GET, "/v1/runs", None).await;
    let listed: Vec<(&str, &str)> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_str().unwrap(), r["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        listed,
        [
            (second.as_str(), "finished"),
            (first.as_str(), "superseded")
        ]
    );
}

#[tokio::test]
async fn a_resync_all_replacing_a_planned_one_supersedes_the_run_and_its_chunks() {
    let a = &api().await;
    let id = tenant(a).await;
    let first = resync(a).await;
    // Only the first Re-sync all's planning runs: its chunks are sent, none is fetched.
    let d = a.queue.receive().unwrap().unwrap();
    a.app.process_message(&d.body, false).await.unwrap();
    a.queue.ack(&d).unwrap();
    assert_eq!(progress(&run(a, &first).await), ("running", false, 1, 0, 0));
    let second = resync(a).await;
    // At once, before any worker ran: the run and the mapping's share of it.
    assert_eq!(
        progress(&run(a, &first).await),
        ("superseded", true, 1, 0, 0)
    );
    let (_, m) = a
        .call(ADMIN_A, Method::GET, &format!("/v1/mappings/{id}"), None)
        .await;
    assert_eq!(
        (
            m["state"]["lastRun"]["runId"].as_str(),
            m["state"]["lastRun"]["outcome"].as_str()
        ),
        (Some(first.as_str()), Some("superseded"))
    );
    a.drain().await;
    // Its chunks were acknowledged as superseded, not done: never "ok: 1 chunk".
    assert_eq!(
        progress(&run(a, &first).await),
        ("superseded", true, 1, 0, 1)
    );
    assert_eq!(
        progress(&run(a, &second).await),
        ("finished", true, 1, 1, 0)
    );
}
