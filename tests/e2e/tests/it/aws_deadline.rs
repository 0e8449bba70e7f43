//! No fetch invocation outlives its timeout with work unreported (Lambda's rule: at the
//! deadline the function is stopped, its batch's records all come back after the visibility
//! timeout and the error is never recorded). Here Pendo answers only after 60 s while the
//! invocation has 20 s left: the first record's call is cut off when the time for calls ends,
//! the chunk handed back (retryable, its lease released), and the records that the time left
//! cannot cover are reported untouched — all before the deadline.

use crate::aws_local::{aws_stack, sqs_event, Aws};
use crate::helpers::every_company;
use pendo_sim::{FaultKind, FaultRule};
use pendo_sync::app::SettingsUpdate;
use pendo_sync::domain::mapping::MappingInput;
use pendo_sync::domain::*;
use pendo_sync::lambda::{handle_fetch_batch, handle_resync_batch, BatchConfig};
use pendo_sync::store::prelude::*;
use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const AGG: &str = "/api/v1/aggregation";

/// A Lambda context whose deadline is `left` from now.
fn context(left: Duration) -> lambda_runtime::Context {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let mut ctx = lambda_runtime::Context::default();
    ctx.deadline = u64::try_from((now + left).as_millis()).unwrap();
    ctx
}

#[tokio::test]
async fn a_batch_hands_back_on_time_what_the_time_left_cannot_cover() {
    let aws = Aws::connect().await;
    let (s, queue) = aws_stack(&aws).await;
    let seven = SettingsUpdate {
        days_to_sync: Some(7),
        ..Default::default()
    };
    s.app.update_settings(&s.tenant, &seven).await.unwrap();
    let companies = every_company(&s.sim);
    s.store
        .upsert_objects(&s.tenant, Target::Company, &companies)
        .await
        .unwrap();
    // Three company mappings of three requests (a feature, a page, a feature on a segment):
    // one 7-day chunk each, none waiting for another, none sharing another's call.
    let sub = s.sim.subscription();
    let segment = &sub.segments[0];
    s.app
        .upsert_segment(&s.tenant, &segment.id, &segment.name)
        .await
        .unwrap();
    let feature = |i: usize| MappingKind::Feature {
        feature_id: sub.features[i].id.clone(),
        minutes_metric: None,
    };
    let page = MappingKind::Page {
        page_id: sub.pages[0].id.clone(),
        minutes_metric: None,
    };
    for (i, (source, seg)) in [
        (feature(0), None),
        (page, None),
        (feature(1), Some(segment)),
    ]
    .into_iter()
    .enumerate()
    {
        let mut input = MappingInput::new(source, Target::Company, &format!("Clicks {i}"));
        input.segment_id = seg.map(|s| s.id.clone());
        s.app.create_mapping(&s.tenant, &input).await.unwrap();
    }
    s.app.resync_all(&s.tenant).await.unwrap();
    let resync = aws.receive(queue.resync_url()).await;
    let r = handle_resync_batch(&s.resync, BatchConfig::default(), sqs_event(&resync))
        .await
        .unwrap();
    assert!(r.batch_item_failures.is_empty());
    let batch = aws.receive(queue.fetch_url()).await;
    assert_eq!(batch.len(), 3);

    // Pendo answers after 60 s; the invocation has 20 s left, calls end 10 s before it (what a
    // chunk keeps for its writes: generous here, where moto on a loaded 2-core machine may take
    // seconds a call), and a record needs at least 12 s to be started.
    let c = s.sim.control();
    c.add_fault(FaultRule {
        delay_ms: Some(60_000),
        ..FaultRule::times(AGG, FaultKind::Delay, 100)
    })
    .unwrap();
    let calls = c.calls(AGG);
    let config = BatchConfig {
        max_receives: 5,
        concurrency: 1,
        reserve: Duration::from_secs(10),
        min_record: Duration::from_secs(12),
    };
    let mut event = sqs_event(&batch);
    event.context = context(Duration::from_secs(20));
    let started = Instant::now();
    let r = handle_fetch_batch(&s.fetch, config, event).await.unwrap();
    let took = started.elapsed();

    // Every record reported, before the deadline; one Pendo call (cut off, no retry).
    assert!(took < Duration::from_secs(20), "{took:?}");
    assert!(took >= Duration::from_secs(10), "{took:?}");
    let reported: HashSet<String> = r
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    let all: HashSet<String> = batch.iter().filter_map(|m| m.message_id.clone()).collect();
    assert_eq!(reported, all);
    assert_eq!(c.calls(AGG) - calls, 1);
    let run = s.store.list_runs(&s.tenant, 1).await.unwrap()[0].clone();
    let mut attempts: Vec<(u32, u32)> =
        run.chunks.iter().map(|c| (c.attempts, c.retries)).collect();
    attempts.sort();
    assert_eq!(attempts, vec![(0, 0), (0, 0), (1, 1)], "{:?}", run.chunks);
    assert!(run.chunks.iter().all(|c| c.status == ChunkStatus::Pending));

    // Redelivered with time enough (and Pendo back to normal), every chunk is done: the
    // handed-back chunk's lease was released, nothing is stuck.
    c.clear_faults();
    let mut event = sqs_event(&batch);
    event.context = context(Duration::from_secs(120));
    let roomy = BatchConfig {
        reserve: Duration::from_secs(10),
        min_record: Duration::from_secs(20),
        ..config
    };
    let r = handle_fetch_batch(&s.fetch, roomy, event).await.unwrap();
    assert!(r.batch_item_failures.is_empty(), "{r:?}");
    let run = s.store.list_runs(&s.tenant, 1).await.unwrap()[0].clone();
    assert!(
        run.chunks.iter().all(|c| c.status == ChunkStatus::Done),
        "{:?}",
        run.chunks
    );
    assert_eq!(c.calls(AGG) - calls, 1 + 3);
    s.gate.assert_no_denials();
}
