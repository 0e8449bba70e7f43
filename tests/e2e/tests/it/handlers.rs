//! The Lambda handlers on hand-written event fixtures (`tests/fixtures/`), exactly as each
//! function's `main` calls them, over the embedded store and the simulator (no AWS needed):
//! partial batch failures, stale and poisoned messages, the last receive, the schedule.

use crate::helpers::{d, every_company, sim_config, KEY};
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Context, LambdaEvent};
use pendo_sim::{RunningSim, Simulator};
use pendo_sync::clock::FixedClock;
use pendo_sync::domain::mapping::MappingInput;
use pendo_sync::domain::*;
use pendo_sync::lambda::{handle_fetch_batch, handle_resync_batch, handle_schedule, BatchConfig};
use pendo_sync::queue::embedded::{EmbeddedQueue, QueueSettings};
use pendo_sync::queue::messages::{QueueMessage, ResyncMessage, MESSAGE_VERSION};
use pendo_sync::store::embedded::EmbeddedStore;
use pendo_sync::store::prelude::*;
use pendo_sync::{App, Ports};
use std::sync::Arc;
use std::time::Duration;

const FETCH_BATCH: &str = include_str!("../../../fixtures/sqs-fetch-batch.json");
const SCHEDULE: &str = include_str!("../../../fixtures/eventbridge-schedule.json");
const UNREACHABLE_ID: &str = "5f2d7c1e-0002-4c55-9a4e-unreachable02";
const CONFIG: BatchConfig = BatchConfig {
    max_receives: 3,
    concurrency: 4,
    reserve: Duration::from_secs(30),
    min_record: Duration::from_secs(60),
};

struct Fixture {
    app: App,
    store: Arc<EmbeddedStore>,
    queue: EmbeddedQueue,
    _sim: Simulator,
    _running: RunningSim,
}

/// The most popular feature of app -323232 (as `Stack::feature`).
fn top_feature(sim: &Simulator) -> String {
    let mut f: Vec<_> = sim
        .subscription()
        .features
        .iter()
        .filter(|f| f.app_id == -323232)
        .collect();
    f.sort_by(|a, b| b.popularity.total_cmp(&a.popularity).then(a.id.cmp(&b.id)));
    f[0].id.clone()
}

/// A port nothing listens on.
async fn closed_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// The fixture's world: `acme-cs` on app.pendo.io (the simulator) at generation 3, and
/// `globex-cs` on app.eu.pendo.io, which answers nowhere (every fetch fails, retryably). Both
/// have the mapping `m-clicks` the fixture's bodies name.
async fn fixture() -> Fixture {
    let config = sim_config();
    let now = config.now;
    let sim = Simulator::new(config);
    let running = sim.spawn("127.0.0.1:0").await.unwrap();
    let closed = format!("http://127.0.0.1:{}", closed_port().await);
    let store = Arc::new(EmbeddedStore::in_memory().unwrap());
    let queue = EmbeddedQueue::new(&store, QueueSettings::with(5, Duration::from_millis(1)));
    let app = App::new(
        Ports::builder()
            .store(store.clone())
            .queue(Arc::new(queue.clone()))
            .pendo_with(&running.base_url(), |c| {
                c.endpoints
                    .per_domain
                    .insert(PendoDomain::Eu.host(), closed);
            })
            .clock(Arc::new(FixedClock::new(now)))
            .build(),
    );
    let acme = TenantId::parse("acme-cs").unwrap();
    app.connect(&acme, KEY, "app.pendo.io").await.unwrap();
    let mut i = app.integration(&acme).await.unwrap();
    i.generation = 3;
    store.put_integration(&i).await.unwrap();
    let globex = TenantId::parse("globex-cs").unwrap();
    let mut g = Integration::new(globex.clone());
    g.connection = Some(Connection {
        domain: PendoDomain::Eu,
        key: IntegrationKey::parse(KEY).unwrap(),
    });
    g.status = ConnectionStatus::Active;
    store.put_integration(&g).await.unwrap();
    let companies = every_company(&sim);
    let feature = top_feature(&sim);
    for t in [&acme, &globex] {
        store
            .upsert_objects(t, Target::Company, &companies)
            .await
            .unwrap();
        let i = app.integration(t).await.unwrap();
        let input = MappingInput {
            source: MappingKind::Feature {
                feature_id: feature.clone(),
                minutes_metric: None,
            },
            target: Target::Company,
            metric_name: "Clicks".into(),
            passive: false,
            multi_app: false,
            auto_create_users: false,
            segment_id: None,
            enabled: true,
        };
        // What `App::create_mapping` does, with the fixed id the fixture names.
        let m = input
            .validate(&i, MappingId::parse("m-clicks").unwrap(), &[], now)
            .unwrap();
        store
            .reset_mapping_state(t, &m.id, i.generation)
            .await
            .unwrap();
        store.put_mapping(&m).await.unwrap();
    }
    Fixture {
        app,
        store,
        queue,
        _sim: sim,
        _running: running,
    }
}

fn event(json: &str) -> LambdaEvent<SqsEvent> {
    LambdaEvent::new(serde_json::from_str(json).unwrap(), Context::default())
}

fn failed_ids(r: &aws_lambda_events::event::sqs::SqsBatchResponse) -> Vec<String> {
    r.batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

#[tokio::test]
async fn fetch_reports_only_the_failing_message_and_acknowledges_stale_and_poisoned_ones() {
    // Arrange
    let f = fixture().await;
    let acme = TenantId::parse("acme-cs").unwrap();
    let m = MappingId::parse("m-clicks").unwrap();
    // Act
    let r = handle_fetch_batch(&f.app, CONFIG, event(FETCH_BATCH))
        .await
        .unwrap();
    // Assert: only the unreachable tenant's message goes back to the queue; the stale one
    // (generation 2, the tenant is at 3) and the undecodable one are acknowledged.
    assert_eq!(failed_ids(&r), vec![UNREACHABLE_ID.to_string()]);
    let rows = f.store.export(Some(&acme)).await.unwrap();
    assert!(!rows.is_empty(), "the good chunk wrote values");
    assert!(rows
        .iter()
        .all(|r| r.day >= d("2026-10-29") && r.day <= d("2026-11-04")));
    let st = f.store.get_mapping_state(&acme, &m).await.unwrap().unwrap();
    assert_eq!(st.last_synced_day, Some(d("2026-11-04")));
    assert_eq!(st.generation, 3);
}

#[tokio::test]
async fn the_last_receive_of_a_failing_message_is_acknowledged_and_shown_on_the_mapping() {
    let f = fixture().await;
    let globex = TenantId::parse("globex-cs").unwrap();
    let m = MappingId::parse("m-clicks").unwrap();
    let mut ev = event(FETCH_BATCH);
    for rec in &mut ev.payload.records {
        rec.attributes.insert(
            "ApproximateReceiveCount".into(),
            CONFIG.max_receives.to_string(),
        );
    }
    let r = handle_fetch_batch(&f.app, CONFIG, ev).await.unwrap();
    assert!(failed_ids(&r).is_empty(), "{:?}", failed_ids(&r));
    let st = f
        .store
        .get_mapping_state(&globex, &m)
        .await
        .unwrap()
        .unwrap();
    assert!(st.last_error.is_some());
    assert_eq!(st.last_synced_day, None);
}

/// Each function takes only its own kinds of message: the fixture's fetch messages given to the
/// resync function, and a Re-sync all message given to the fetch function, are reported for
/// redelivery (on their last receive too, so the queue keeps them as dead letters) with no
/// Pendo call, write or message; the undecodable one is acknowledged as before.
#[tokio::test]
async fn each_function_takes_only_its_own_kinds_of_message() {
    let f = fixture().await;
    let acme = TenantId::parse("acme-cs").unwrap();
    let mut ev = event(FETCH_BATCH);
    let decodable: Vec<String> = ev
        .payload
        .records
        .iter()
        .filter(|r| QueueMessage::decode(r.body.as_deref().unwrap_or("")).is_ok())
        .map(|r| r.message_id.clone().unwrap())
        .collect();
    assert_eq!(decodable.len(), 3);
    for rec in &mut ev.payload.records {
        rec.attributes.insert(
            "ApproximateReceiveCount".into(),
            CONFIG.max_receives.to_string(),
        );
    }
    let r = handle_resync_batch(&f.app, CONFIG, ev).await.unwrap();
    let mut failed = failed_ids(&r);
    failed.sort();
    let mut want = decodable.clone();
    want.sort();
    assert_eq!(failed, want);
    assert!(f.store.export(Some(&acme)).await.unwrap().is_empty());
    assert_eq!(f._sim.control().calls("/api/v1/aggregation"), 0);

    let resync = QueueMessage::Resync(ResyncMessage {
        v: MESSAGE_VERSION,
        tenant: acme.clone(),
        run_id: RunId::random(),
        generation: 3,
    });
    let body = serde_json::json!({"Records": [{
        "messageId": "resync-1", "receiptHandle": "h", "body": resync.encode(),
        "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
        "eventSource": "aws:sqs", "awsRegion": "us-east-1"
    }]});
    let r = handle_fetch_batch(&f.app, CONFIG, event(&body.to_string()))
        .await
        .unwrap();
    assert_eq!(failed_ids(&r), vec!["resync-1".to_string()]);
    assert_eq!(f.queue.sent(), 0);
    assert!(f.store.list_runs(&acme, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_same_batch_twice_leaves_the_same_state() {
    let f = fixture().await;
    let acme = TenantId::parse("acme-cs").unwrap();
    handle_fetch_batch(&f.app, CONFIG, event(FETCH_BATCH))
        .await
        .unwrap();
    let first = f.store.export(Some(&acme)).await.unwrap();
    let r = handle_fetch_batch(&f.app, CONFIG, event(FETCH_BATCH))
        .await
        .unwrap();
    assert_eq!(failed_ids(&r), vec![UNREACHABLE_ID.to_string()]);
    assert_eq!(f.store.export(Some(&acme)).await.unwrap(), first);
}

/// The messages kept on the queue, as one SQS event (and taken off the queue).
fn take_all(q: &EmbeddedQueue) -> LambdaEvent<SqsEvent> {
    let kept = q.messages().unwrap();
    let records: Vec<serde_json::Value> = kept
        .iter()
        .map(|k| {
            serde_json::json!({"messageId": k.id.to_string(), "body": k.body,
                "attributes": {"ApproximateReceiveCount": "1"}})
        })
        .collect();
    while let Some(d) = q.receive().unwrap() {
        q.ack(&d).unwrap();
    }
    LambdaEvent::new(
        serde_json::from_value(serde_json::json!({ "Records": records })).unwrap(),
        Context::default(),
    )
}

#[tokio::test]
async fn the_schedule_fans_out_one_planning_message_per_tenant_and_each_plans_once() {
    let f = fixture().await;
    let ev: EventBridgeEvent = serde_json::from_str(SCHEDULE).unwrap();
    let out = handle_schedule(&f.app, LambdaEvent::new(ev.clone(), Context::default()))
        .await
        .unwrap();
    assert_eq!(out.tenants, 2);
    let plans = take_all(&f.queue);
    let bodies: Vec<&str> = plans
        .payload
        .records
        .iter()
        .map(|r| r.body.as_deref().unwrap())
        .collect();
    assert_eq!(
        bodies,
        vec![
            r#"{"type":"plan","v":1,"tenant":"acme-cs","day":"2026-11-05"}"#,
            r#"{"type":"plan","v":1,"tenant":"globex-cs","day":"2026-11-05"}"#,
        ]
    );
    // The resync function plans each tenant: one daily run each, its chunks queued.
    let r = handle_resync_batch(&f.app, CONFIG, plans).await.unwrap();
    assert!(r.batch_item_failures.is_empty());
    let daily = RunId::daily(d("2026-11-05"));
    for t in ["acme-cs", "globex-cs"] {
        let run = f
            .store
            .get_run(&TenantId::parse(t).unwrap(), &daily)
            .await
            .unwrap()
            .unwrap();
        assert!(
            run.planned && run.queued && !run.chunks.is_empty(),
            "{run:?}"
        );
    }
    let queued = f.queue.len().unwrap();
    assert!(queued > 0, "fetch messages were queued");
    // EventBridge retries the event (or delivers it twice): the same messages, and no
    // second run, nothing queued again.
    handle_schedule(&f.app, LambdaEvent::new(ev, Context::default()))
        .await
        .unwrap();
    let again = take_all(&f.queue);
    assert_eq!(again.payload.records.len(), queued + 2);
    let plans_only = again
        .payload
        .records
        .into_iter()
        .filter(|r| r.body.as_deref().unwrap().contains(r#""type":"plan""#))
        .collect::<Vec<_>>();
    assert_eq!(plans_only.len(), 2);
    let mut event = take_all(&f.queue);
    event.payload.records = plans_only;
    let r = handle_resync_batch(&f.app, CONFIG, event).await.unwrap();
    assert!(r.batch_item_failures.is_empty());
    assert!(f.queue.is_empty().unwrap(), "nothing planned twice");
    for t in ["acme-cs", "globex-cs"] {
        let runs = f
            .store
            .list_runs(&TenantId::parse(t).unwrap(), 10)
            .await
            .unwrap();
        assert_eq!(runs.len(), 1, "{runs:?}");
    }
}
