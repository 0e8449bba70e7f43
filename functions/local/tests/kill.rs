//! The real `pendo-sync sync` process SIGKILLed while a chunk is in flight, then started again:
//! the embedded store converges to the state of a run that was never interrupted.

mod common;

use chrono::Utc;
use common::*;
use pendo_sim::{FaultKind, FaultRule, SimConfig, SimKey, Simulator};
use pendo_sync::domain::*;
use pendo_sync::store::embedded::EmbeddedStore;
use pendo_sync::store::Store;
use std::time::{Duration, Instant};

const AGG: &str = "/api/v1/aggregation";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_killed_mid_chunk_converges_after_a_restart() {
    let mut config = SimConfig::small();
    config.now = Utc::now();
    config.keys = vec![SimKey {
        key: KEY.into(),
        write_access: true,
    }];
    let sim = Simulator::new(config);
    let running = sim.spawn("127.0.0.1:0").await.unwrap();
    let url = running.base_url();

    let clean = tempfile::tempdir().unwrap();
    configure(clean.path(), &sim, &url).await;
    assert!(finish(sync(clean.path(), &url)).await);
    let want = export(clean.path()).await;
    assert!(!want.is_empty());

    let dir = tempfile::tempdir().unwrap();
    configure(dir.path(), &sim, &url).await;
    let c = sim.control();
    // Every 4th aggregation call hangs: the process is killed while one is in flight, after
    // some chunks were written.
    c.add_fault(FaultRule {
        every: Some(4),
        times: None,
        delay_ms: Some(30_000),
        ..FaultRule::times(AGG, FaultKind::Delay, 0)
    })
    .unwrap();
    let before = c.calls(AGG);
    let mut child = sync(dir.path(), &url);
    let until = Instant::now() + Duration::from_secs(30);
    while c.calls(AGG) < before + 4 {
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
