//! Shared event calls (`sync::share`): the Feature and Page chunks of one wave that read the
//! same source with the same segment over the same window are fetched by one Pendo call for
//! all their ids, and write exactly what one call per mapping writes. Pendo's rule this stands
//! for: `featureEvents` / `pageEvents` without an id read every page or feature, and a
//! `filter` stage keeps the ids asked for (pendo-api.md §3.1, §3.3).

use super::reliability::{assert_same, export};
use crate::helpers::*;
use chrono::Duration;
use pendo_sync::domain::*;
use pendo_sync::store::prelude::*;

const AGG: &str = "/api/v1/aggregation";

async fn stack(max_shared: usize) -> Stack {
    Stack::build(
        sim_config(),
        StackOptions {
            max_shared: Some(max_shared),
            ..Default::default()
        },
    )
    .await
}

/// Eight event mappings over 20 days: an end-user Feature mapping that creates users (so the
/// run defers the other seven), two more on its feature (company, and end users without
/// auto-create), one multi-app, two on a segment (one with a minutes metric), and two Page
/// mappings; one account is no company, so some rows go unmatched.
pub(crate) async fn eight_event_mappings(s: &Stack, days: i64) {
    s.ny_days(days).await;
    s.emails_and_auto_detect().await;
    let sub = s.sim.subscription();
    let skip = sub.accounts[0].id.clone();
    s.add_companies(&[skip.as_str()]).await;
    let features: Vec<String> = sub.features.iter().map(|f| f.id.clone()).collect();
    let pages: Vec<String> = sub.pages.iter().map(|p| p.id.clone()).collect();
    let segment = sub.segments[0].id.clone();
    s.app
        .upsert_segment(&s.tenant, &segment, &sub.segments[0].name)
        .await
        .unwrap();
    let feature = |i: usize, minutes: Option<&str>| MappingKind::Feature {
        feature_id: features[i].clone(),
        minutes_metric: minutes.map(Into::into),
    };
    let page = |i: usize, minutes: Option<&str>| MappingKind::Page {
        page_id: pages[i].clone(),
        minutes_metric: minutes.map(Into::into),
    };
    s.mapping(feature(0, None), Target::EndUser, "User clicks", |m| {
        m.auto_create_users = true
    })
    .await;
    s.mapping(feature(0, None), Target::Company, "Clicks", |_| {})
        .await;
    s.mapping(feature(0, None), Target::EndUser, "Known clicks", |_| {})
        .await;
    s.mapping(feature(1, None), Target::Company, "F1", |m| {
        m.multi_app = true
    })
    .await;
    s.mapping(feature(1, None), Target::Company, "F1 seg", |m| {
        m.segment_id = Some(segment.clone())
    })
    .await;
    s.mapping(
        feature(2, Some("F2 minutes")),
        Target::Company,
        "F2 seg",
        |m| m.segment_id = Some(segment.clone()),
    )
    .await;
    s.mapping(
        page(0, Some("Page minutes")),
        Target::Company,
        "Views",
        |_| {},
    )
    .await;
    s.mapping(page(1, None), Target::EndUser, "P1 views", |_| {})
        .await;
}

/// Every mapping's unmatched entries (by metric name): how many.
async fn unmatched(s: &Stack) -> std::collections::BTreeMap<String, usize> {
    let g = s
        .store
        .get_integration(&s.tenant)
        .await
        .unwrap()
        .unwrap()
        .generation;
    let mut out = std::collections::BTreeMap::new();
    for m in s.store.list_mappings(&s.tenant).await.unwrap() {
        let n = s
            .store
            .unmatched_of(&s.tenant, &m.id, g)
            .await
            .unwrap()
            .len();
        out.insert(m.metric_name, n);
    }
    out
}

async fn last_run(s: &Stack) -> SyncRun {
    s.store.list_runs(&s.tenant, 1).await.unwrap()[0].clone()
}

/// The Pendo calls and queue messages of `f`.
async fn cost<F: std::future::Future<Output = ()>>(s: &Stack, f: F) -> (u64, u64) {
    let c = s.sim.control();
    let (calls, sent) = (c.calls(AGG), s.queue.sent());
    f.await;
    (c.calls(AGG) - calls, s.queue.sent() - sent)
}

#[tokio::test]
async fn shared_calls_write_what_one_call_per_mapping_writes_in_fewer_calls() {
    let alone = stack(1).await;
    let shared = stack(50).await;
    for s in [&alone, &shared] {
        eight_event_mappings(s, 20).await;
    }
    // Re-sync all: 8 mappings × 3 chunks (7 + 7 + 6 days).
    let (calls_alone, sent_alone) = cost(&alone, alone.resync()).await;
    let (calls_shared, sent_shared) = cost(&shared, shared.resync()).await;
    // Messages: the Re-sync all's, one per call, the purge of the generation it replaced.
    assert_eq!((calls_alone, sent_alone), (24, 24 + 2));
    // Per window: the creating mapping alone (first wave); then one call for the four
    // Feature mappings without a segment (feature 0 three times, feature 1), one for the two
    // on the segment, one for the two Page mappings.
    assert_eq!((calls_shared, sent_shared), (3 * 4, 3 * 4 + 2));
    let want = export(&alone).await;
    assert!(want.iter().any(|r| r.record == "activity"));
    assert_same(&export(&shared).await, &want);
    let run = last_run(&shared).await;
    assert_eq!(run.chunks.len(), 24);
    assert!(run
        .chunks
        .iter()
        .all(|c| c.status == ChunkStatus::Done && (c.attempts, c.retries) == (1, 0)));
    assert_eq!(
        run.chunks.iter().filter(|c| c.share.is_some()).count(),
        3 * 7,
        "every deferred chunk shares its call"
    );
    assert_eq!(run.totals(), last_run(&alone).await.totals());
    // The rows no company took, per mapping (by metric name) and day, alike.
    assert!(unmatched(&alone).await.values().any(|n| *n > 0));
    assert_eq!(unmatched(&shared).await, unmatched(&alone).await);

    // A day later, the daily run: the look-back window (4 days) of every mapping, shared.
    for s in [&alone, &shared] {
        let later = s.now() + Duration::days(1);
        s.clock.set(later);
        s.sim.control().set_now(later);
    }
    assert_eq!(cost(&alone, alone.daily()).await, (8, 8 + 1));
    assert_eq!(cost(&shared, shared.daily()).await, (4, 4 + 1));
    assert_same(&export(&shared).await, &export(&alone).await);

    // The run's messages delivered again (as SQS may): each chunk is over, so not one call.
    let run = last_run(&shared).await;
    let again: Vec<_> = pendo_sync::sync::share::fold(
        &run,
        run.chunks
            .iter()
            .enumerate()
            .map(|(i, c)| pendo_sync::sync::waves::message_for(&run, i, c))
            .collect(),
    );
    assert_eq!(again.len(), 4);
    let (calls, _) = cost(&shared, async {
        for m in &again {
            shared
                .queue
                .send_raw(&[pendo_sync::queue::messages::QueueMessage::Fetch(m.clone()).encode()])
                .unwrap();
        }
        shared.drain().await;
    })
    .await;
    assert_eq!(calls, 0);
}

#[tokio::test]
async fn one_call_per_source_and_window_for_every_feature_and_page_and_at_most_the_cap() {
    for (cap, features_per_call) in [(50, 50), (20, 20)] {
        let s = stack(cap).await;
        s.ny_days(14).await;
        s.add_companies(&[]).await;
        let sub = s.sim.subscription();
        let nf = sub.features.len().min(50);
        let np = sub.pages.len().min(20);
        for f in &sub.features[..nf] {
            let kind = MappingKind::Feature {
                feature_id: f.id.clone(),
                minutes_metric: None,
            };
            s.mapping(kind, Target::Company, &format!("F {}", f.id), |_| {})
                .await;
        }
        for p in &sub.pages[..np] {
            let kind = MappingKind::Page {
                page_id: p.id.clone(),
                minutes_metric: None,
            };
            s.mapping(kind, Target::Company, &format!("P {}", p.id), |_| {})
                .await;
        }
        let (calls, sent) = cost(&s, s.resync()).await;
        // Two windows of 7 days; per window, the features in calls of at most the cap and the
        // pages in one.
        let per_window = nf.div_ceil(features_per_call) + np.div_ceil(features_per_call);
        assert_eq!(
            (calls, sent),
            (2 * per_window as u64, 2 * per_window as u64 + 2),
            "cap {cap}"
        );
        let run = last_run(&s).await;
        assert_eq!(run.chunks.len(), 2 * (nf + np));
        assert!(run.chunks.iter().all(|c| c.status == ChunkStatus::Done));
        assert!(run.totals().values_written > 0);
    }
}

/// Pendo's rule: an aggregation whose answer is too large fails with "Query exceeded memory
/// limit" (pendo-api.md, errors). Over one day (no window to halve) the shared calls split their sets
/// of mappings until each answer fits.
#[tokio::test]
async fn a_shared_call_over_the_memory_limit_splits_its_set_of_mappings() {
    let alone = stack(1).await;
    let shared = stack(50).await;
    for s in [&alone, &shared] {
        eight_event_mappings(s, 1).await;
    }
    alone.resync().await;
    let want = export(&alone).await;
    // The largest answer of one mapping's call: every call of one id fits; a call of several
    // ids that holds the largest does not.
    let largest = last_run(&alone)
        .await
        .chunks
        .iter()
        .map(|ch| ch.stats.rows_read)
        .max()
        .unwrap();
    let c = shared.sim.control();
    c.set_memory_limit_rows(Some(largest));
    let (calls, _) = cost(&shared, shared.resync()).await;
    // Four calls without the limit; refused calls and their halves on top.
    assert!(
        calls > 4,
        "the calls over the limit were split ({calls} calls)"
    );
    assert_same(&export(&shared).await, &want);
    let run = last_run(&shared).await;
    assert!(run.chunks.iter().all(|ch| ch.status == ChunkStatus::Done));
    assert_eq!(run.totals(), last_run(&alone).await.totals());
}
