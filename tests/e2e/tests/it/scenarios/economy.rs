//! What a run costs, counted: Pendo calls (the simulator's counters), queue messages (the
//! embedded queue's count) and the run's own counters. When nothing fails, each chunk calls
//! Pendo once and is queued once; each injected fault costs exactly one more call; the saved
//! report list is read once per run.

use super::reliability::{assert_same, export};
use crate::helpers::*;
use async_trait::async_trait;
use pendo_sim::{FaultKind, FaultRule};
use pendo_sync::domain::mapping::{FieldMetric, PesComponent};
use pendo_sync::domain::*;
use pendo_sync::queue::embedded::EmbeddedQueue;
use pendo_sync::queue::messages::{
    FetchMessage, ImportMessage, PlanMessage, PurgeMessage, ResyncMessage, RunMessage,
};
use pendo_sync::queue::{Queue, QueueError};
use pendo_sync::store::prelude::*;
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const AGG: &str = "/api/v1/aggregation";
const REPORTS: &str = "/api/v1/report";
const FEATURES: &str = "/api/v1/feature";
const PAGES: &str = "/api/v1/page";

fn fields(pairs: &[(&str, &str)]) -> Vec<FieldMetric> {
    pairs
        .iter()
        .map(|(f, m)| FieldMetric {
            field: (*f).into(),
            metric: (*m).into(),
        })
        .collect()
}

/// The demo's seven mappings: an end-user Feature mapping that auto-creates users (so the run
/// defers the other mappings' chunks until it is over), an end-user one that does not, company
/// Feature and Page mappings, a saved report, the guide's aggregation and PES.
async fn seven_mappings(s: &Stack, days: i64) {
    s.ny_days(days).await;
    s.emails_and_auto_detect().await;
    s.add_companies(&[]).await;
    let f = s.feature(-323232);
    let page = s
        .sim
        .subscription()
        .pages
        .iter()
        .find(|p| p.app_id == -323232)
        .unwrap()
        .id
        .clone();
    let feature = |id: &str| MappingKind::Feature {
        feature_id: id.into(),
        minutes_metric: None,
    };
    s.mapping(feature(&f), Target::EndUser, "User clicks", |m| {
        m.auto_create_users = true
    })
    .await;
    s.mapping(feature(&f), Target::EndUser, "Known user clicks", |_| {})
        .await;
    s.mapping(feature(&f), Target::Company, "Clicks", |_| {})
        .await;
    s.mapping(
        MappingKind::Page {
            page_id: page,
            minutes_metric: Some("Page minutes".into()),
        },
        Target::Company,
        "Page views",
        |_| {},
    )
    .await;
    s.mapping(
        MappingKind::Report {
            report_id: "rpt-account-30d".into(),
            columns: fields(&[("numEvents", "Events 30d")]),
        },
        Target::Company,
        "Events 30d",
        |_| {},
    )
    .await;
    let guide = json!([
        {"source": {"events": {"appId": "expandAppIds(\"*\")"},
            "timeSeries": {"first": "now()", "count": 1, "period": "dayRange"}}},
        {"group": {"group": ["accountId"], "fields": {"numEvents": {"sum": "numEvents"}}}},
        {"select": {"accountId": "accountId", "metric1": "numEvents"}}
    ]);
    s.mapping(
        MappingKind::Aggregation {
            pipeline: guide,
            fields: fields(&[("metric1", "Daily events")]),
        },
        Target::Company,
        "Daily events",
        |_| {},
    )
    .await;
    s.mapping(
        MappingKind::Pes {
            app_id: -323232,
            components: vec![PesComponent::Score],
        },
        Target::Company,
        "Engagement",
        |_| {},
    )
    .await;
}

async fn last_run(s: &Stack) -> SyncRun {
    s.store.list_runs(&s.tenant, 1).await.unwrap()[0].clone()
}

#[tokio::test]
async fn a_90_day_resync_of_seven_mappings_costs_one_call_and_one_message_per_call() {
    let s = Stack::start().await;
    seven_mappings(&s, 90).await;
    let c = s.sim.control();
    let (calls, lists, pushed) = (c.calls(AGG), c.calls(REPORTS), s.queue.sent());
    let objects = (c.calls(FEATURES), c.calls(PAGES));
    s.resync().await;
    let run = last_run(&s).await;
    // Four event mappings in 13 chunks of at most 7 days, three per-day ones in 90.
    assert_eq!(run.chunks.len(), 4 * 13 + 3 * 90);
    let chunks = run.chunks.len() as u64;
    assert!(run.chunks.iter().all(|c| c.status == ChunkStatus::Done));
    assert_eq!(
        run.chunks.iter().filter(|c| c.deferred).count(),
        3 * 13 + 3 * 90
    );
    // One aggregation call per chunk, but the deferred chunks of the two other mappings of
    // the creating mapping's feature share one call per window (`sync::share`).
    let calls_made = chunks - 13;
    assert_eq!(
        run.chunks.iter().filter(|c| c.share.is_some()).count(),
        2 * 13
    );
    assert_eq!(
        c.calls(AGG) - calls,
        calls_made,
        "one aggregation call per call"
    );
    assert_eq!(
        c.calls(REPORTS) - lists,
        1,
        "the report list is read once per run"
    );
    assert_eq!(
        (c.calls(FEATURES) - objects.0, c.calls(PAGES) - objects.1),
        (1, 1),
        "the lists of features and pages the mappings refer to are read once per run"
    );
    // The Re-sync all message, one message per call, and the purge of the generation it
    // replaced.
    assert_eq!(s.queue.sent() - pushed, calls_made + 2);
    assert!(run.chunks.iter().all(|c| (c.attempts, c.retries) == (1, 0)));
    assert_eq!(run.release, Release::Released);
    assert!(run.queued);
    assert!(
        run.totals().users_created > 0,
        "the first mapping created users"
    );
    // Every mapping's cursor reached the last complete day.
    let last = d("2026-11-04");
    for m in s.store.list_mappings(&s.tenant).await.unwrap() {
        let st = s.state(&m.id).await;
        assert_eq!(st.last_synced_day, Some(last), "{}", m.metric_name);
    }
    // The same messages delivered again (as SQS may): acknowledged without a call.
    let calls = c.calls(AGG);
    for (i, chunk) in run.chunks.iter().enumerate().take(20) {
        let m = pendo_sync::sync::waves::message_for(&run, i, chunk);
        s.queue
            .send_raw(&[pendo_sync::queue::messages::QueueMessage::Fetch(m).encode()])
            .unwrap();
    }
    s.drain().await;
    assert_eq!(c.calls(AGG), calls);
    let again = last_run(&s).await;
    assert_eq!(
        again
            .chunks
            .iter()
            .map(|c| u64::from(c.attempts))
            .sum::<u64>(),
        chunks + 20
    );
}

#[tokio::test]
async fn each_injected_fault_costs_exactly_one_more_call() {
    let clean = Stack::start().await;
    seven_mappings(&clean, 14).await;
    clean.resync().await;
    let want = export(&clean).await;

    let s = Stack::start().await;
    seven_mappings(&s, 14).await;
    let c = s.sim.control();
    for (kind, times) in [
        (FaultKind::Status429, 2),
        (FaultKind::Status429RetryAfter, 1),
        (FaultKind::Status503, 2),
        (FaultKind::DropMidBody, 1),
        (FaultKind::TruncateMidJson, 1),
    ] {
        c.add_fault(FaultRule::times(AGG, kind, times)).unwrap();
    }
    let calls = c.calls(AGG);
    s.resync().await;
    let run = last_run(&s).await;
    let chunks = run.chunks.len() as u64;
    assert_eq!(chunks, 4 * 2 + 3 * 14);
    // Two deferred Feature chunks share each window's call (two windows).
    assert_eq!(c.calls(AGG) - calls, chunks - 2 + 7);
    assert!(run.chunks.iter().all(|c| c.status == ChunkStatus::Done));
    assert_same(&export(&s).await, &want);
}

/// A queue whose second `send_fetch` fails (the first is the Re-sync all's fan-out, the second
/// the release of the deferred chunks), and each time the worker tries it again inside its
/// delivery (`sync::persist`): the worker that won the release is left as if it had crashed
/// between its claim and its send.
struct FailingRelease {
    inner: EmbeddedQueue,
    sends: AtomicU64,
}

#[async_trait]
impl Queue for FailingRelease {
    async fn send_fetch(&self, messages: &[FetchMessage]) -> Result<(), QueueError> {
        let send = self.sends.fetch_add(1, Ordering::Relaxed);
        if (1..=1 + u64::from(pendo_sync::sync::persist::ROUNDS)).contains(&send) {
            return Err(QueueError::unavailable("the queue dropped the connection"));
        }
        self.inner.send_fetch(messages).await
    }
    async fn send_resync(&self, message: &ResyncMessage) -> Result<(), QueueError> {
        self.inner.send_resync(message).await
    }

    async fn send_import(&self, message: &ImportMessage) -> Result<(), QueueError> {
        self.inner.send_import(message).await
    }

    async fn send_plans(&self, messages: &[PlanMessage]) -> Result<(), QueueError> {
        self.inner.send_plans(messages).await
    }

    async fn send_run(&self, message: &RunMessage) -> Result<(), QueueError> {
        self.inner.send_run(message).await
    }

    async fn send_purge(&self, message: &PurgeMessage) -> Result<(), QueueError> {
        self.inner.send_purge(message).await
    }
}

#[tokio::test]
async fn a_release_cut_between_its_claim_and_its_send_is_finished_by_the_redelivery() {
    let clean = Stack::start().await;
    seven_mappings(&clean, 7).await;
    clean.resync().await;
    let want = export(&clean).await;

    let s = Stack::build(
        sim_config(),
        StackOptions {
            wrap_queue: Some(Box::new(|q| {
                Arc::new(FailingRelease {
                    inner: q,
                    sends: AtomicU64::new(0),
                })
            })),
            ..Default::default()
        },
    )
    .await;
    seven_mappings(&s, 7).await;
    let c = s.sim.control();
    let calls = c.calls(AGG);
    s.resync().await;
    let run = last_run(&s).await;
    let chunks = run.chunks.len() as u64;
    assert_eq!(chunks, 4 + 3 * 7);
    assert!(run.chunks.iter().all(|c| c.status == ChunkStatus::Done));
    assert_eq!(run.release, Release::Released);
    // The chunk that won the release was delivered again (its message was not acknowledged)
    // and sent the deferred chunks; no chunk called Pendo twice (and two deferred Feature
    // chunks shared one call).
    assert_eq!(c.calls(AGG) - calls, chunks - 1);
    let attempts: u32 = run.chunks.iter().map(|c| c.attempts).sum();
    assert_eq!(u64::from(attempts), chunks + 1);
    assert_same(&export(&s).await, &want);
}
