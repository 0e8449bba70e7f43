//! A mapping's status: its last run (started, finished, outcome, rows read, values written,
//! users created, rows skipped and why, error) and its last successful run. A failed daily run
//! shows as the last run.

use super::*;
use pendo_sim::FaultRule;

#[tokio::test]
async fn a_failed_daily_run_shows_as_the_last_run_after_the_last_successful_one() {
    let a = &api().await;
    a.connect_for_a_week(ADMIN_A).await;
    // Every company but two: the rows of those two are skipped, as not in the directory.
    let sub = a.sim.subscription();
    let left: Vec<&str> = sub.accounts[..2].iter().map(|c| c.id.as_str()).collect();
    let companies: Vec<Value> = sub.accounts[2..]
        .iter()
        .map(|c| json!({"externalId": c.id}))
        .collect();
    a.call(
        ADMIN_A,
        Method::PUT,
        "/v1/directory/companies",
        Some(json!({ "items": companies })),
    )
    .await;
    let id = a.clicks_mapping().await;
    let first = a.sync_now(&id).await;

    // The rows Pendo answers the chunk with, from the same grouping run on the simulator.
    let group = json!({"group": {"group": ["visitorId", "accountId", "appId", "day"],
        "fields": [{"numEvents": {"sum": "numEvents"}}]}});
    let rows = feature_rows(
        &a.sim,
        &a.feature(),
        d("2026-10-29"),
        d("2026-11-04"),
        NY,
        vec![group],
    );
    let account = |r: &Value| r["accountId"].as_str().unwrap_or_default().to_string();
    let no_id = rows.iter().filter(|r| account(r).is_empty()).count() as u64;
    let unknown = rows
        .iter()
        .filter(|r| left.contains(&account(r).as_str()))
        .count() as u64;
    assert!(unknown > 0, "the two companies have clicks");
    let values = a
        .export()
        .await
        .iter()
        .filter(|r| r.record == "value")
        .count() as u64;
    let mapping = |id: String| async move {
        a.call(ADMIN_A, Method::GET, &format!("/v1/mappings/{id}"), None)
            .await
            .1
    };
    let st = mapping(id.clone()).await["state"].clone();
    let started = a.clock.now_value();
    let mut skipped = vec![];
    if no_id > 0 {
        skipped.push(json!({"reason": "noObjectId", "rows": no_id,
            "meaning": "no value in the target's id field"}));
    }
    skipped.push(json!({"reason": "notInDirectory", "rows": unknown,
        "meaning": "the company, asset or project is not in the directory"}));
    let ok = json!({
        "runId": first, "kind": {"type": "syncNow", "mappingId": id},
        "startedAt": started, "finishedAt": started, "outcome": "succeeded",
        "chunks": 1, "chunksDone": 1, "chunksFailed": 0,
        "rowsRead": rows.len(), "valuesWritten": values, "activitiesWritten": 0,
        "usersCreated": 0, "rowsSkipped": no_id + unknown, "skipped": skipped,
        "error": null,
    });
    assert_eq!(st["lastRun"], ok);
    assert_eq!(st["lastSuccessfulRun"], ok);
    assert_eq!(st["lastError"], Value::Null);
    // The mapping's share equals the run's own totals (another path through the store).
    let run = a
        .call(ADMIN_A, Method::GET, &format!("/v1/runs/{first}"), None)
        .await
        .1;
    assert_eq!(run["totals"]["rowsRead"], ok["rowsRead"]);
    assert_eq!(run["totals"]["valuesWritten"], ok["valuesWritten"]);
    assert_eq!(run["totals"]["rowsSkipped"], ok["rowsSkipped"]);

    // A day later the daily run meets a request Pendo refuses: it shows as the last run.
    a.clock
        .set(a.clock.now_value() + chrono::Duration::hours(12));
    a.sim
        .control()
        .add_fault(FaultRule::status(
            "/api/v1/aggregation",
            400,
            "bad query",
            None,
        ))
        .unwrap();
    a.app.run_schedule().await.unwrap();
    a.drain().await;
    let daily = [pendo_sync::domain::RunId::daily(a.clock.now_value().date_naive()).to_string()];
    let st = mapping(id.clone()).await["state"].clone();
    let now = a.clock.now_value();
    let error = "Pendo refused the request (HTTP 400): bad query";
    assert!(daily.contains(&st["lastRun"]["runId"].as_str().unwrap().to_string()));
    let failed = json!({
        "runId": st["lastRun"]["runId"], "kind": {"type": "daily"},
        "startedAt": now, "finishedAt": now, "outcome": "failed",
        "chunks": 1, "chunksDone": 0, "chunksFailed": 1,
        "rowsRead": 0, "valuesWritten": 0, "activitiesWritten": 0,
        "usersCreated": 0, "rowsSkipped": 0, "skipped": [], "error": error,
    });
    assert_eq!(st["lastRun"], failed);
    assert_eq!(st["lastSuccessfulRun"], ok, "the last success stays");
    assert_eq!(st["lastError"]["message"], error);
    assert_eq!(st["lastSyncedDay"], "2026-11-04", "the cursor stays");
    let listed = a.call(ADMIN_A, Method::GET, "/v1/mappings", None).await.1;
    assert_eq!(listed[0]["state"], st);
    // Another tenant's token reads none of it.
    let (s, _) = a
        .call(ADMIN_B, Method::GET, &format!("/v1/mappings/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}
