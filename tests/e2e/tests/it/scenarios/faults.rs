//! Pendo faults end to end: transient faults are retried to the same final state, a memory
//! limit splits the chunk, a revoked key disconnects the integration until reconnected.

use crate::helpers::*;
use pendo_sim::{FaultKind, FaultRule};
use pendo_sync::domain::{ConnectionStatus, MappingKind, Target};
use pendo_sync::store::prelude::*;

pub(super) async fn scenario(s: &Stack) {
    s.ny_days(21).await;
    s.add_companies(&[]).await;
    for (i, app) in s.sim.subscription().app_ids().into_iter().enumerate() {
        let f = s.feature(app);
        s.mapping(
            MappingKind::Feature {
                feature_id: f,
                minutes_metric: None,
            },
            Target::Company,
            &format!("Clicks {i}"),
            |m| m.multi_app = true,
        )
        .await;
    }
}

pub(super) fn every(kind: FaultKind, k: u64) -> FaultRule {
    FaultRule {
        every: Some(k),
        times: None,
        ..FaultRule::times("/api/v1/aggregation", kind, 0)
    }
}

#[tokio::test]
async fn transient_faults_are_retried_to_the_fault_free_state() {
    let clean = Stack::start().await;
    scenario(&clean).await;
    clean.resync().await;
    let want = clean.export().await;

    let s = Stack::start().await;
    scenario(&s).await;
    let c = s.sim.control();
    c.add_fault(FaultRule {
        retry_after_secs: Some(1),
        ..FaultRule::times("/api/v1/aggregation", FaultKind::Status429RetryAfter, 1)
    })
    .unwrap();
    c.add_fault(FaultRule::times(
        "/api/v1/aggregation",
        FaultKind::Status429,
        1,
    ))
    .unwrap();
    c.add_fault(every(FaultKind::TruncateMidJson, 2)).unwrap();
    c.add_fault(every(FaultKind::Status503, 3)).unwrap();
    c.add_fault(every(FaultKind::DropMidBody, 5)).unwrap();
    c.add_fault(every(FaultKind::Status500, 7)).unwrap();
    s.resync().await;
    let faulted = c.request_log().iter().filter(|r| r.fault.is_some()).count();
    assert!(faulted >= 6, "faults injected: {faulted}");
    assert_eq!(s.export().await, want);
}

#[tokio::test]
async fn a_memory_limit_splits_the_chunk_until_it_fits() {
    let clean = Stack::start().await;
    scenario(&clean).await;
    clean.resync().await;
    let want = clean.export().await;
    let largest_chunk = clean.store.list_runs(&clean.tenant, 1).await.unwrap()[0]
        .chunks
        .iter()
        .map(|c| c.stats.rows_read)
        .max()
        .unwrap();

    let s = Stack::start().await;
    scenario(&s).await;
    s.sim
        .control()
        .set_memory_limit_rows(Some(largest_chunk / 3));
    s.resync().await;
    let log = s.sim.control().request_log();
    assert!(
        log.iter().any(|r| r.status == 400),
        "the memory limit never fired"
    );
    assert_eq!(s.export().await, want);
}

/// The memory-limit answer with its connection cut ("Query exceede") or its body ended short
/// is retried, never taken as a refusal: the chunk is still split until it fits.
#[tokio::test]
async fn a_memory_limit_answer_cut_short_is_retried_and_still_splits_the_chunk() {
    let clean = Stack::start().await;
    scenario(&clean).await;
    clean.resync().await;
    let want = clean.export().await;
    let largest_chunk = clean.store.list_runs(&clean.tenant, 1).await.unwrap()[0]
        .chunks
        .iter()
        .map(|c| c.stats.rows_read)
        .max()
        .unwrap();

    let s = Stack::start().await;
    scenario(&s).await;
    let c = s.sim.control();
    c.set_memory_limit_rows(Some(largest_chunk / 3));
    c.add_fault(every(FaultKind::DropMidBody, 2)).unwrap();
    c.add_fault(every(FaultKind::TruncateMidJson, 3)).unwrap();
    s.resync().await;
    let cut = |kind: &str| {
        c.request_log()
            .iter()
            .filter(|r| r.status == 400 && r.fault.as_deref() == Some(kind))
            .count()
    };
    assert!(
        cut("dropMidBody") > 0 && cut("truncateMidJson") > 0,
        "memory-limit answers cut: {} dropped, {} truncated",
        cut("dropMidBody"),
        cut("truncateMidJson")
    );
    assert_eq!(s.export().await, want);
}

#[tokio::test]
async fn a_revoked_key_disconnects_and_reconnecting_catches_up() {
    let clean = Stack::start().await;
    scenario(&clean).await;
    clean.resync().await;
    let want = clean.export().await;

    let s = Stack::start().await;
    scenario(&s).await;
    s.sim.control().revoke_key(KEY);
    s.app.resync_all(&s.tenant).await.unwrap();
    pendo_sync::worker::drain(s.app.clone(), s.queue.clone(), 2, Default::default()).await;
    let i = s.app.integration(&s.tenant).await.unwrap();
    match &i.status {
        ConnectionStatus::Disconnected { message } => assert!(message.contains("403"), "{message}"),
        other => panic!("still {other:?}"),
    }
    assert!(s.export().await.is_empty(), "nothing half-written");
    // Each chunk stopped at once: one aggregation call per chunk, no retry storm.
    let calls = s.sim.control().calls("/api/v1/aggregation");
    let chunks = s.store.list_runs(&s.tenant, 1).await.unwrap()[0]
        .chunks
        .len() as u64;
    assert!(calls <= chunks, "{calls} calls for {chunks} chunks");

    s.sim.control().set_key("new-key-1234", true);
    let err = s
        .app
        .connect(&s.tenant, KEY, "app.pendo.io")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("refused"), "{err}");
    s.app
        .connect(&s.tenant, "new-key-1234", "app.pendo.io")
        .await
        .unwrap();
    s.resync().await;
    assert_eq!(s.export().await, want);
}
