//! The real `pendo-sync sync` process SIGKILLed while a chunk is in flight, then started again:
//! the embedded store converges to the state of a run that was never interrupted.

mod common;

use common::*;
use pendo_sim::{FaultKind, FaultRule};
use pendo_sync::domain::*;
use pendo_sync::store::embedded::EmbeddedStore;
use pendo_sync::store::prelude::*;
use std::time::{Duration, Instant};

const AGG: &str = "/api/v1/aggregation";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_killed_mid_chunk_converges_after_a_restart() {
    let (sim, running) = simulator_now().await;
    let url = running.base_url();

    let clean = tempfile::tempdir().unwrap();
    configure(clean.path(), &sim, &url).await;
    assert!(finish(sync(clean.path(), &url)).await);
    let want = export(clean.path()).await;
    assert!(!want.is_empty());

    let dir = tempfile::tempdir().unwrap();
    configure(dir.path(), &sim, &url).await;
    let c = sim.control();
    // Every 2nd aggregation call hangs: the process is killed while one is in flight, after
    // some chunks were written (the three mappings share a call per window: three calls).
    c.add_fault(FaultRule {
        every: Some(2),
        times: None,
        delay_ms: Some(30_000),
        ..FaultRule::times(AGG, FaultKind::Delay, 0)
    })
    .unwrap();
    let before = c.calls(AGG);
    let mut child = sync(dir.path(), &url);
    let until = Instant::now() + Duration::from_secs(30);
    while c.calls(AGG) < before + 2 {
        assert!(Instant::now() < until, "the slow call never came");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    child.kill().unwrap(); // SIGKILL: no cleanup of any kind
    child.wait().unwrap();

    let partial = export(dir.path()).await;
    assert!(partial.len() < want.len(), "the kill came too late");
    let runs = EmbeddedStore::open_dir(dir.path())
        .unwrap()
        .list_runs(&tenant(), 1)
        .await
        .unwrap();
    let pending = runs[0]
        .chunks
        .iter()
        .filter(|c| c.status == ChunkStatus::Pending)
        .count();
    assert!(pending > 0, "a chunk was in flight");
    eprintln!(
        "killed with {} of {} rows written and {pending} chunks pending; faults injected 1",
        partial.len(),
        want.len()
    );

    c.clear_faults();
    assert!(finish(sync(dir.path(), &url)).await);
    assert_eq!(export(dir.path()).await, want);
}

/// Copies the files of a store folder (its store closed).
fn copy_folder(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// `pendo-sync serve` SIGKILLed at each step of a Re-sync all and started again with no user
/// action: the run finishes by itself, the store equals that of a run never killed, and no
/// call is made twice but the one in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serve_killed_at_any_step_of_a_resync_all_resumes_it_when_started_again() {
    let (sim, running) = simulator_now().await;
    let url = running.base_url();
    let c = sim.control();

    // One configuration, copied into each folder: the same mapping ids everywhere.
    let template = tempfile::tempdir().unwrap();
    configure_with(template.path(), &sim, &url, true).await;
    let clean = tempfile::tempdir().unwrap();
    copy_folder(template.path(), &clean.path().join("data"));
    let before = c.calls(AGG);
    let serve = Serve::start(clean.path(), &url, &[]);
    let run_id = serve.post("/v1/resync").await["runId"]
        .as_str()
        .unwrap()
        .to_string();
    let run = serve.finished(&run_id).await;
    serve.kill();
    let want = export(&clean.path().join("data")).await;
    let chunks = run["chunksTotal"].as_u64().unwrap();
    let creating = run["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["deferred"] == false)
        .count() as u64;
    // One call per message: a chunk alone, or the chunks that share a call (`sync::share`).
    let calls = run["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .filter(|(i, c)| c["share"].as_u64().is_none_or(|lead| lead == *i as u64))
        .count() as u64;
    assert!(calls < chunks, "the company mappings share their calls");
    assert_eq!(c.calls(AGG) - before, calls, "one call per message");
    assert!(creating > 1 && creating < chunks, "{creating} of {chunks}");
    assert!(!want.is_empty());

    // (point, chunks over when it stalls, Pendo calls beyond one per message)
    let points = [
        ("resync-fan-out", 0, 0),
        ("chunk-fetched@2", 1, 1),
        ("chunk-written@2", 2, 0),
        ("release-claimed", creating, 0),
    ];
    for (point, over, extra) in points {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        copy_folder(template.path(), &data);
        let before = c.calls(AGG);
        let mut serve = Serve::start(dir.path(), &url, &[("PENDO_SYNC_STALL_AT", point)]);
        let run_id = serve.post("/v1/resync").await["runId"]
            .as_str()
            .unwrap()
            .to_string();
        let name = point.split('@').next().unwrap();
        serve.wait_for(|l| l.starts_with(&format!("stalled at {name}")));
        serve.kill();

        let mut again = Serve::start(dir.path(), &url, &[]);
        let left = chunks - over;
        let said = format!(
            "resuming run {run_id} (re-sync all of acme-cs): {left} of {chunks} chunks left"
        );
        let line = again.wait_for(|l| l.starts_with("resuming run"));
        assert_eq!(line, said, "{point}");
        let run = again.finished(&run_id).await;
        again.kill();
        assert_eq!(run["chunksDone"].as_u64(), Some(chunks), "{point}");
        assert_eq!(
            c.calls(AGG) - before,
            calls + extra,
            "{point}: Pendo calls of the killed and the resumed process"
        );
        assert_eq!(export(&data).await, want, "{point}");
        eprintln!(
            "killed at {point}: resumed with {left} of {chunks} chunks left, {} Pendo calls",
            calls + extra
        );
    }
}

/// `serve` SIGKILLed as a Re-sync all ends: with reads switched to its generation but the purge
/// of the old one not queued (`publish-switched`), and in that purge with the old generation
/// deleted but the purge not yet recorded (`purge-generations-deleted`). Then `pendo-sync sync`
/// (the daily planning queues a purge still pending; the purge message comes back): the reads
/// are those of a re-sync never killed, and no value of the old generation is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serve_killed_at_the_switch_or_in_the_purge_ends_in_the_new_generation() {
    let (sim, running) = simulator_now().await;
    let url = running.base_url();
    let template = tempfile::tempdir().unwrap();
    configure_with(template.path(), &sim, &url, true).await;
    // Generation 1, shown: the first sync.
    assert!(finish(sync(template.path(), &url)).await);
    let want = export(template.path()).await;
    assert!(!want.is_empty());
    for point in ["publish-switched", "purge-generations-deleted"] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        copy_folder(template.path(), &data);
        let mut serve = Serve::start(dir.path(), &url, &[("PENDO_SYNC_STALL_AT", point)]);
        serve.post("/v1/resync").await;
        serve.wait_for(|l| l.starts_with(&format!("stalled at {point}")));
        serve.kill();
        let store = EmbeddedStore::open_dir(&data).unwrap();
        let i = store.get_integration(&tenant()).await.unwrap().unwrap();
        assert_eq!(
            (i.generation, i.read_generation(), i.purge_pending),
            (2, 2, true),
            "{point}"
        );
        drop(store);
        assert_eq!(
            export(&data).await,
            want,
            "{point}: the new generation is shown"
        );

        assert!(finish(sync(&data, &url)).await, "{point}");
        let store = EmbeddedStore::open_dir(&data).unwrap();
        let i = store.get_integration(&tenant()).await.unwrap().unwrap();
        assert_eq!(
            (i.generation, i.read_generation(), i.purge_pending),
            (2, 2, false),
            "{point}"
        );
        assert_eq!(
            store
                .purge_generations(&tenant(), &Generations::single(2))
                .await
                .unwrap(),
            0,
            "{point}: a value of generation 1 is left"
        );
        drop(store);
        assert_eq!(export(&data).await, want, "{point}");
        eprintln!("killed at {point}: generation 2 shown, generation 1 purged after a restart");
    }
}

/// The same for one mapping's rebuild: `serve` SIGKILLed with the mapping's reads switched to its
/// rebuild's generation but the purge of its old values not queued, and in that purge. After
/// `pendo-sync sync`, the reads are those of a rebuild never killed, and none of the mapping's
/// old values is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serve_killed_at_a_rebuilds_switch_or_in_its_purge_ends_in_its_new_values() {
    let (sim, running) = simulator_now().await;
    let url = running.base_url();
    let template = tempfile::tempdir().unwrap();
    configure_with(template.path(), &sim, &url, true).await;
    assert!(finish(sync(template.path(), &url)).await);
    let want = export(template.path()).await;
    let store = EmbeddedStore::open_dir(template.path()).unwrap();
    let m = store.list_mappings(&tenant()).await.unwrap().remove(0);
    drop(store);
    for point in ["publish-switched", "purge-generations-deleted"] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        copy_folder(template.path(), &data);
        let mut serve = Serve::start(dir.path(), &url, &[("PENDO_SYNC_STALL_AT", point)]);
        serve.post(&format!("/v1/mappings/{}/rebuild", m.id)).await;
        serve.wait_for(|l| l.starts_with(&format!("stalled at {point}")));
        serve.kill();
        let store = EmbeddedStore::open_dir(&data).unwrap();
        let i = store.get_integration(&tenant()).await.unwrap().unwrap();
        let g = i.generations();
        assert_eq!(
            (g.writes(&m.id), g.shows(&m.id), i.purge_pending),
            (2, 2, true),
            "{point}"
        );
        drop(store);
        assert_eq!(export(&data).await, want, "{point}: the rebuild is shown");

        assert!(finish(sync(&data, &url)).await, "{point}");
        let store = EmbeddedStore::open_dir(&data).unwrap();
        let i = store.get_integration(&tenant()).await.unwrap().unwrap();
        assert!(!i.purge_pending, "{point}");
        assert_eq!(
            store
                .purge_generations(&tenant(), &i.generations())
                .await
                .unwrap(),
            0,
            "{point}: an old value of the mapping is left"
        );
        drop(store);
        assert_eq!(export(&data).await, want, "{point}");
        eprintln!(
            "killed at {point}: the rebuild shown, the mapping's old values purged after a restart"
        );
    }
}

/// `serve` SIGKILLed with a page of a directory import read from Pendo and nothing written,
/// then started again: the import finishes by itself, the directory equals an import never
/// killed, and only the page in flight is read twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serve_killed_during_a_directory_import_finishes_it_when_started_again() {
    let (sim, running) = simulator_now().await;
    let url = running.base_url();
    let c = sim.control();
    let template = tempfile::tempdir().unwrap();
    configure(template.path(), &sim, &url).await;
    let body = serde_json::json!({"companyNameField": "metadata.agent.name", "pageRows": 50});

    let clean = tempfile::tempdir().unwrap();
    copy_folder(template.path(), &clean.path().join("data"));
    let serve = Serve::start(clean.path(), &url, &[]);
    let before = c.calls(AGG);
    let id = serve.post_json("/v1/imports", &body).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let want = serve.finished_import(&id).await;
    serve.kill();
    let pages = want["pages"].as_u64().unwrap();
    assert_eq!(c.calls(AGG) - before, pages);
    assert!(pages > 3, "{want}");
    let want_users = directory(&clean.path().join("data")).await;

    let dir = tempfile::tempdir().unwrap();
    copy_folder(template.path(), &dir.path().join("data"));
    let mut serve = Serve::start(
        dir.path(),
        &url,
        &[("PENDO_SYNC_STALL_AT", "import-page-read@3")],
    );
    let before = c.calls(AGG);
    let id = serve.post_json("/v1/imports", &body).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    serve.wait_for(|l| l.starts_with("stalled at import-page-read"));
    serve.kill();
    let mut again = Serve::start(dir.path(), &url, &[]);
    let line = again.wait_for(|l| l.starts_with("resuming import"));
    assert_eq!(
        line,
        format!("resuming import {id} (directory of acme-cs): 2 pages done")
    );
    let done = again.finished_import(&id).await;
    again.kill();
    assert_eq!(
        (&done["companies"], &done["endUsers"], &done["pages"]),
        (&want["companies"], &want["endUsers"], &want["pages"])
    );
    assert_eq!(
        c.calls(AGG) - before,
        pages + 1,
        "the page in flight is read again"
    );
    assert_eq!(directory(&dir.path().join("data")).await, want_users);
}

async fn directory(data: &std::path::Path) -> (Vec<DirectoryObject>, Vec<EndUser>) {
    let store = EmbeddedStore::open_dir(data).unwrap();
    let mut companies = store
        .list_objects(&tenant(), Target::Company)
        .await
        .unwrap();
    companies.sort_by(|a, b| a.external_id.cmp(&b.external_id));
    let mut users = store.list_end_users(&tenant()).await.unwrap();
    users.sort_by(|a, b| a.id.cmp(&b.id));
    (companies, users)
}
