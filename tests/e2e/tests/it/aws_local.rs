//! The AWS adapters against moto (DynamoDB and SQS over their real wire protocols, through the
//! real SDK): the store and queue contracts, DynamoDB-specific races and encodings, and a
//! Re-sync all through the Lambda handlers whose final export equals the embedded stack's.
//!
//! These tests need `AWS_ENDPOINT_URL` pointing at a local moto, or `AWS_ENDPOINT_URLS` at
//! several (`make test` starts two with `infra/local/aws-local.sh start`). Without it they FAIL,
//! saying so: a green run never means "skipped". Each test uses its own table and queue name
//! prefix, so they run in parallel on one server. Only loopback endpoints are accepted, with
//! static dummy credentials (no env lookup, no instance metadata). `IT_LOG` (a tracing filter,
//! e.g. `warn,pendo_sync=info`) prints the logs of the tests that use [`Aws`].

use crate::helpers::{every_company, sim_config, Stack, KEY};
use crate::iam_gate::{Function, IamGate};
use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use lambda_runtime::{Context, LambdaEvent};
use pendo_sim::{RunningSim, Simulator};
use pendo_sync::app::SettingsUpdate;
use pendo_sync::clock::FixedClock;
use pendo_sync::domain::*;
use pendo_sync::lambda::{handle_fetch_batch, handle_resync_batch, handle_schedule, BatchConfig};
use pendo_sync::queue::messages::QueueMessage;
use pendo_sync::queue::sqs::SqsQueue;
use pendo_sync::store::dynamo::{ensure_tables, keys, DynamoStore, DynamoTables};
use pendo_sync::store::prelude::*;
use pendo_sync::{App, Ports};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

/// The local endpoint a new test's stack talks to, or a failure that says how to run these
/// tests. `AWS_ENDPOINT_URL` names one moto server; `AWS_ENDPOINT_URLS` (comma-separated; `make
/// test` starts two) spreads the tests over several, one server per [`Aws::connect`] in turn:
/// moto serves its requests under one Python lock, so one server keeps one core busy while the
/// tests' second thread waits on it.
fn next_endpoint() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let many = std::env::var("AWS_ENDPOINT_URLS")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let list = many.or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
    let list = list.unwrap_or_default();
    let all: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    if all.is_empty() {
        panic!(
            "AWS_ENDPOINT_URL is not set: the AWS-local tests need moto. Run them through \
             `make test`, or start moto with `infra/local/aws-local.sh start` and set \
             AWS_ENDPOINT_URL=http://127.0.0.1:4566"
        );
    }
    let ep = all[NEXT.fetch_add(1, Ordering::Relaxed) % all.len()].to_string();
    let host = ep
        .trim_start_matches("http://")
        .split([':', '/'])
        .next()
        .unwrap_or("");
    assert!(
        ep.starts_with("http://") && ["127.0.0.1", "localhost"].contains(&host),
        "AWS_ENDPOINT_URL={ep}: these tests only talk to a local server on 127.0.0.1"
    );
    ep
}

pub(crate) struct Aws {
    pub(crate) dynamo: aws_sdk_dynamodb::Client,
    pub(crate) sqs: aws_sdk_sqs::Client,
    pub(crate) prefix: String,
    /// The moto server of this test (every client of the test talks to it, the gate too).
    pub(crate) endpoint: String,
}

impl Aws {
    pub(crate) async fn connect() -> Aws {
        if let Ok(filter) = std::env::var("IT_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
        let endpoint = next_endpoint();
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "static"))
            .load()
            .await;
        let id = uuid::Uuid::new_v4().simple().to_string();
        Aws {
            dynamo: aws_sdk_dynamodb::Client::new(&sdk),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            prefix: format!("it-{}", &id[..12]),
            endpoint,
        }
    }

    pub(crate) async fn store(&self) -> DynamoStore {
        let tables = DynamoTables::with_prefix(&self.prefix);
        ensure_tables(&self.dynamo, &tables)
            .await
            .unwrap_or_else(|e| panic!("creating the tables {tables:?} on moto: {e}"));
        DynamoStore::new(self.dynamo.clone(), tables)
    }

    pub(crate) async fn queue(&self) -> SqsQueue {
        let mut urls = Vec::new();
        for name in ["fetch", "resync"] {
            let out = self
                .sqs
                .create_queue()
                .queue_name(format!("{}-{name}", self.prefix))
                .send()
                .await
                .unwrap();
            urls.push(out.queue_url.unwrap());
        }
        SqsQueue::new(self.sqs.clone(), urls[0].clone(), urls[1].clone())
    }

    /// Up to 10 visible messages, with their receive counts.
    pub(crate) async fn receive(&self, url: &str) -> Vec<Message> {
        self.receive_up_to(url, 10).await
    }

    /// At most `n` messages (1 to 10) of a queue.
    pub(crate) async fn receive_up_to(&self, url: &str, n: i32) -> Vec<Message> {
        self.sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(n)
            .wait_time_seconds(0)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default()
    }

    /// Every body on both queues, deleting what it reads.
    pub(crate) async fn drain_bodies(&self, q: &SqsQueue) -> Vec<String> {
        let mut out = Vec::new();
        for url in [q.fetch_url(), q.resync_url()] {
            loop {
                let msgs = self.receive(url).await;
                if msgs.is_empty() {
                    break;
                }
                for m in msgs {
                    self.delete(url, &m).await;
                    out.push(m.body.unwrap_or_default());
                }
            }
        }
        out
    }

    pub(crate) async fn delete(&self, url: &str, m: &Message) {
        self.sqs
            .delete_message()
            .queue_url(url)
            .receipt_handle(m.receipt_handle.clone().unwrap())
            .send()
            .await
            .unwrap();
    }
}

/// Received messages as the SQS event Lambda would deliver.
pub(crate) fn sqs_event(msgs: &[Message]) -> LambdaEvent<SqsEvent> {
    let records: Vec<serde_json::Value> = msgs
        .iter()
        .map(|m| {
            let count = m
                .attributes
                .as_ref()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .cloned()
                .unwrap_or_else(|| "1".into());
            serde_json::json!({
                "messageId": m.message_id,
                "receiptHandle": m.receipt_handle,
                "body": m.body,
                "attributes": {"ApproximateReceiveCount": count},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    let ev: SqsEvent = serde_json::from_value(serde_json::json!({ "Records": records })).unwrap();
    LambdaEvent::new(ev, Context::default())
}

/// Feeds both queues to the handlers (as Lambda's event source would) until they are empty:
/// acknowledged messages are deleted, failed ones made visible again at once. Returns every
/// body delivered (a redelivered message once per delivery).
pub(crate) async fn drain_through_handlers(aws: &Aws, s: &AwsStack, q: &SqsQueue) -> Vec<String> {
    let mut handled = Vec::new();
    for _ in 0..500 {
        match drain_round(aws, s, q, 10).await {
            Some(bodies) => handled.extend(bodies),
            None => return handled,
        }
    }
    panic!("the queues did not drain");
}

/// One round of [`drain_through_handlers`]: a batch of at most `batch` messages of each queue
/// (resync, then fetch) through its handler; `None` when both were empty.
pub(crate) async fn drain_round(
    aws: &Aws,
    s: &AwsStack,
    q: &SqsQueue,
    batch: i32,
) -> Option<Vec<String>> {
    let config = BatchConfig {
        max_receives: 5,
        concurrency: 4,
        ..BatchConfig::default()
    };
    let mut handled = Vec::new();
    let mut idle = true;
    for (url, resync) in [(q.resync_url(), true), (q.fetch_url(), false)] {
        let msgs = aws.receive_up_to(url, batch).await;
        if msgs.is_empty() {
            continue;
        }
        idle = false;
        handled.extend(msgs.iter().map(|m| m.body.clone().unwrap_or_default()));
        let r = if resync {
            handle_resync_batch(&s.resync, config, sqs_event(&msgs)).await
        } else {
            handle_fetch_batch(&s.fetch, config, sqs_event(&msgs)).await
        }
        .unwrap();
        let failed: HashSet<String> = r
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        for m in &msgs {
            if failed.contains(m.message_id.as_deref().unwrap_or("")) {
                aws.sqs
                    .change_message_visibility()
                    .queue_url(url)
                    .receipt_handle(m.receipt_handle.clone().unwrap())
                    .visibility_timeout(0)
                    .send()
                    .await
                    .unwrap();
            } else {
                aws.delete(url, m).await;
            }
        }
    }
    (!idle).then_some(handled)
}

/// [`drain_through_handlers`] with every message delivered twice in one batch, the batch in
/// reverse order (SQS's at-least-once delivery, out of order), handled 4 at a time. Returns
/// the distinct fetch messages sent and the deliveries made.
pub(crate) async fn drain_twice_through_handlers(
    aws: &Aws,
    s: &AwsStack,
    q: &SqsQueue,
) -> (usize, usize) {
    // One record at a time: moto's DynamoDB checks a condition and writes in two steps with no
    // lock (its server is threaded), so two copies of a message taking one chunk at the same
    // instant could both win there, which DynamoDB's atomic conditional writes never let
    // happen. Twins racing for a chunk are covered on the embedded store, whose writes are
    // atomic (`reliability::every_message_twice_and_out_of_order_reaches_the_same_state`,
    // the store contract's chunk leases); here each copy comes after its twin.
    let config = BatchConfig {
        max_receives: 5,
        concurrency: 1,
        ..BatchConfig::default()
    };
    let (mut fetches, mut deliveries) = (HashSet::new(), 0);
    for _ in 0..200 {
        let mut idle = true;
        for (url, resync) in [(q.resync_url(), true), (q.fetch_url(), false)] {
            let msgs = aws.receive(url).await;
            if msgs.is_empty() {
                continue;
            }
            idle = false;
            if !resync {
                fetches.extend(msgs.iter().filter_map(|m| m.message_id.clone()));
            }
            let mut twice: Vec<Message> =
                msgs.iter().flat_map(|m| [m.clone(), m.clone()]).collect();
            twice.reverse();
            deliveries += twice.len();
            let r = if resync {
                handle_resync_batch(&s.resync, config, sqs_event(&twice)).await
            } else {
                handle_fetch_batch(&s.fetch, config, sqs_event(&twice)).await
            }
            .unwrap();
            assert!(
                r.batch_item_failures.is_empty(),
                "{:?}",
                r.batch_item_failures
            );
            for m in &msgs {
                aws.delete(url, m).await;
            }
        }
        if idle {
            return (fetches.len(), deliveries);
        }
    }
    panic!("the queues did not drain");
}

#[tokio::test]
async fn every_message_twice_through_sqs_dynamo_and_the_handlers_calls_pendo_once_per_chunk() {
    let aws = Aws::connect().await;
    let (s, queue) = aws_stack(&aws).await;
    configure(&s.app, s.store.as_ref(), &s.tenant, &s.sim).await;
    s.app
        .create_mapping(
            &s.tenant,
            &MappingInput {
                source: MappingKind::Report {
                    report_id: "rpt-account-30d".into(),
                    columns: vec![pendo_sync::domain::mapping::FieldMetric {
                        field: "numEvents".into(),
                        metric: "Events 30d".into(),
                    }],
                },
                target: Target::Company,
                metric_name: "Events 30d".into(),
                passive: false,
                multi_app: false,
                auto_create_users: false,
                segment_id: None,
                enabled: true,
            },
        )
        .await
        .unwrap();
    let c = s.sim.control();
    let (calls, lists) = (c.calls("/api/v1/aggregation"), c.calls("/api/v1/report"));
    s.app.resync_all(&s.tenant).await.unwrap();
    let (sent, deliveries) = drain_twice_through_handlers(&aws, &s, &queue).await;
    let run = s.store.list_runs(&s.tenant, 1).await.unwrap()[0].clone();
    // Two 7-day Feature mappings in one chunk each, the report in 7 one-day chunks; the
    // company mapping's and the report's wait for the end-user mapping's (it creates users).
    let chunks = run.chunks.len();
    assert_eq!(chunks, 1 + 1 + 7);
    assert_eq!(run.chunks.iter().filter(|c| c.deferred).count(), 8);
    assert!(
        run.chunks.iter().all(|c| c.status == ChunkStatus::Done),
        "{:?}",
        run.chunks
    );
    assert_eq!(
        c.calls("/api/v1/aggregation") - calls,
        chunks as u64,
        "one Pendo call per chunk"
    );
    assert_eq!(
        c.calls("/api/v1/report") - lists,
        1,
        "the report list read once per run"
    );
    assert_eq!(sent, chunks, "each chunk sent once");
    // The plan, the chunks, and the purge of the replaced generation that the switch queued:
    // once, or twice when the last chunk's duplicate came while the purge was pending (a
    // purge of nothing left is one manifest query).
    let purges = (deliveries - 2 * (chunks + 1)) / 2;
    assert!(
        (1..=2).contains(&purges) && deliveries % 2 == 0,
        "{deliveries} deliveries"
    );
    let i = s.app.integration(&s.tenant).await.unwrap();
    assert_eq!(
        (i.read_generation(), i.purge_pending),
        (i.generation, false)
    );
    assert!(
        run.chunks.iter().all(|c| (c.attempts, c.retries) == (2, 0)),
        "{:?}",
        run.chunks
    );
    assert_eq!(run.release, Release::Released);
    assert!(run.queued);
    // What recording the run's progress cost the fetch function on the config table: a
    // constant per delivery.
    let meter = s.fetch_store.write_meter();
    let per_chunk = meter.run_write_units as f64 / chunks as f64;
    eprintln!(
        "run bookkeeping on DynamoDB for {chunks} chunks, {deliveries} deliveries: {} calls, {} write units ({per_chunk:.2} per chunk), {} read units",
        meter.run_calls, meter.run_write_units, meter.run_read_units
    );
    assert!(meter.run_calls > 0);
    assert!(per_chunk <= 12.0, "{per_chunk} write units per chunk");
    s.gate.assert_no_denials();
}

/// The store contract on DynamoDB, one test per sentence, each on tables of its own.
mod store_contract {
    pendo_sync::store_contract_tests!(super::Aws::connect().await.store().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_queue_passes_the_queue_contract() {
    let aws = Aws::connect().await;
    let q = aws.queue().await;
    let handle = tokio::runtime::Handle::current();
    let (aws_ref, q_ref) = (&aws, &q);
    pendo_sync::queue::contract::sends_arrive_intact(&q, || {
        tokio::task::block_in_place(|| handle.block_on(aws_ref.drain_bodies(q_ref)))
    })
    .await;
}

#[tokio::test]
async fn concurrent_creations_of_one_end_user_leave_exactly_one() {
    let aws = Aws::connect().await;
    let store = Arc::new(aws.store().await);
    let t = TenantId::parse("race").unwrap();
    let input = EndUserInput {
        company_id: "acme".into(),
        external_id: Some("v#1".into()),
        email: Some("ann@acme.io".into()),
        name: None,
        surname: None,
    };
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (store, t, input) = (store.clone(), t.clone(), input.clone());
        tasks.spawn(async move { store.create_end_user_if_absent(&t, &input).await });
    }
    let mut created = 0;
    let mut ids = HashSet::new();
    while let Some(r) = tasks.join_next().await {
        let (u, c) = r.unwrap().unwrap();
        created += usize::from(c);
        ids.insert(u.id);
    }
    assert_eq!(created, 1);
    assert_eq!(ids.len(), 1);
    assert_eq!(store.list_end_users(&t).await.unwrap().len(), 1);
}

/// DynamoDB cannot raise the directory stamp in the same write as a directory item without a
/// transaction, so a write brackets its items with two raises; a writer that dies between them
/// (a Lambda timeout, a kill) must not let a reader cache a directory that misses its items:
/// readers read without caching until its lease passes, then the next reader clears it.
#[tokio::test]
async fn a_directory_write_that_died_half_way_stops_caching_until_its_lease_passes() {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    let aws = Aws::connect().await;
    let store = aws.store().await;
    let t = TenantId::parse("stamp").unwrap();
    assert_eq!(store.directory_stamp(&t).await.unwrap(), Some(0));
    let now = chrono::Utc::now().timestamp_millis();
    let dead_writer = |busy_until: i64| {
        aws.dynamo
            .put_item()
            .table_name(&store.tables().data)
            .item("pk", A::S(keys::users_pk(&t)))
            .item("sk", A::S("STAMP".into()))
            .item("stamp", A::N("7".into()))
            .item("writers", A::N("1".into()))
            .item("busy_until", A::N(busy_until.to_string()))
            .send()
    };
    dead_writer(now + 60_000).await.unwrap();
    assert_eq!(store.directory_stamp(&t).await.unwrap(), None, "under way");
    assert_eq!(store.directory_stamp(&t).await.unwrap(), None, "still");
    dead_writer(now - 1).await.unwrap();
    assert_eq!(
        store.directory_stamp(&t).await.unwrap(),
        None,
        "cleared now"
    );
    assert_eq!(store.directory_stamp(&t).await.unwrap(), Some(8));
    // A write after the clearing works as before: two raises, nothing left under way.
    let company = DirectoryObject {
        external_id: "acme".into(),
        name: None,
        company_id: None,
    };
    store
        .upsert_objects(&t, Target::Company, &[company])
        .await
        .unwrap();
    assert_eq!(store.directory_stamp(&t).await.unwrap(), Some(10));
}

#[tokio::test]
async fn ids_with_separators_and_batches_over_25_stay_apart_and_whole() {
    let aws = Aws::connect().await;
    let store = aws.store().await;
    let t = TenantId::parse("t#1").unwrap();
    let i = Integration::new(t.clone());
    store.put_integration(&i).await.unwrap();
    let m = MappingId::parse("m/#1").unwrap();
    let day0 = chrono::NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
    let v = |obj: &str, metric: &str, app: &str, n: i64, x: f64| MetricValue {
        object: ObjectRef {
            kind: Target::Company,
            id: obj.into(),
        },
        metric: metric.into(),
        app: app.into(),
        day: day0 + chrono::Duration::days(n),
        value: x,
    };
    // 3 x 20 days = 60 values: three BatchWriteItem calls of at most 25.
    let mut values = Vec::new();
    for n in 0..20 {
        values.push(v("a#b", "x", "", n, 1.0));
        values.push(v("a", "x#2026-11-01", "", n, 2.0));
        values.push(v("a", "x", "b#", n, 3.0));
    }
    let w = pendo_sync::domain::Window {
        from: day0,
        to: day0 + chrono::Duration::days(19),
    };
    store
        .replace_chunk(&t, 1, &m, w, &values, &[])
        .await
        .unwrap();
    // Each value item is billed 1 write unit (no index entry); each of the 20 days' manifests
    // is written twice (listing the items before they exist, then the final version), 1 unit
    // each; the manifests are read with one BatchGetItem (none exists yet).
    let meter = store.write_meter();
    assert_eq!(
        (
            meter.puts,
            meter.deletes,
            meter.billed_put_units,
            meter.batch_calls,
            meter.manifest_puts,
            meter.manifest_units,
            meter.read_calls,
            meter.items_read,
        ),
        (100, 0, 100, 3, 40, 40, 1, 0)
    );
    let to = day0 + chrono::Duration::days(30);
    let series = |obj: &str, metric: &str| {
        let o = ObjectRef {
            kind: Target::Company,
            id: obj.to_string(),
        };
        let (store, t, metric) = (&store, &t, metric.to_string());
        async move { store.read_series(t, &o, &metric, day0, to).await.unwrap() }
    };
    let ab = series("a#b", "x").await;
    assert_eq!(ab.len(), 20);
    assert!(ab.iter().all(|p| p.value == 1.0));
    let ax = series("a", "x").await;
    assert_eq!(ax.len(), 20);
    assert!(ax.iter().all(|p| p.value == 3.0 && p.app == "b#"));
    assert_eq!(series("a", "x#2026-11-01").await.len(), 20);
    assert_eq!(store.export(Some(&t)).await.unwrap().len(), 60);
    assert_eq!(store.delete_mapping_data(&t, &m, &[]).await.unwrap(), 60);
    // The 60 items and the 20 manifests.
    assert_eq!(store.write_meter().deletes, 80);
    assert!(store.export(Some(&t)).await.unwrap().is_empty());
}

/// What the store contract cannot see: manifests that take more than one item, and replaces of
/// one window racing each other, after which every item that exists is still listed (a last
/// replace with nothing leaves nothing).
/// Issue 31: a daily run re-fetches its look-back days; what did not change must cost reads of
/// the manifests, not writes, and a changed value rewrites its own object's items of the day
/// (DynamoDB bills every put, whether or not it changes the item). Concurrent replaces of the same keys with other
/// values must never leave a manifest that vouches for content an item does not hold: the
/// replace after the race, with one writer's values, finds every item holding them.
#[tokio::test]
async fn unchanged_days_cost_no_write_and_a_changed_value_rewrites_its_objects_items_alone() {
    let aws = Aws::connect().await;
    let store = aws.store().await;
    let t = TenantId::parse("unchanged").unwrap();
    let i = Integration::new(t.clone());
    store.put_integration(&i).await.unwrap();
    let g = i.generation;
    let m = MappingId::parse("m").unwrap();
    let d = |n: u32| chrono::NaiveDate::from_ymd_opt(2026, 11, n).unwrap();
    let w = pendo_sync::domain::Window {
        from: d(1),
        to: d(3),
    };
    let value = |c: u32, metric: &str, day: u32, value: f64| MetricValue {
        object: ObjectRef {
            kind: Target::Company,
            id: format!("c{c}"),
        },
        metric: metric.into(),
        app: String::new(),
        day: d(day),
        value,
    };
    let activity = |u: u32, day: u32, events: f64| Activity {
        end_user_id: format!("u{u}"),
        company_id: "c0".into(),
        mapping_id: m.clone(),
        label: "Clicks".into(),
        day: d(day),
        events,
        minutes: 0.0,
        passive: false,
    };
    let mut values: Vec<MetricValue> = (1..=3)
        .flat_map(|day| {
            (0..100).flat_map(move |c| {
                ["Clicks", "Minutes"].map(|metric| value(c, metric, day, f64::from(c + day)))
            })
        })
        .collect();
    let mut activities: Vec<Activity> = (1..=3)
        .flat_map(|day| (0..10).map(move |u| activity(u, day, f64::from(u))))
        .collect();
    let writes = |store: &DynamoStore| {
        let m = store.write_meter();
        (m.puts - m.manifest_puts, m.manifest_puts, m.deletes)
    };
    store
        .replace_chunk(&t, g, &m, w, &values, &activities)
        .await
        .unwrap();
    assert_eq!(writes(&store), (630, 6, 0), "each day's manifest twice");
    // The same chunk again (a look-back day re-fetched unchanged): reads only.
    store
        .replace_chunk(&t, g, &m, w, &values, &activities)
        .await
        .unwrap();
    assert_eq!(writes(&store), (630, 6, 0), "nothing written");
    // One value changed on day 2, one activity record on day 3, one value gone on day 1.
    values[200 + 7].value = 99.0;
    activities[20 + 4].events = 40.0;
    let gone = values.remove(5);
    store
        .replace_chunk(&t, g, &m, w, &values, &activities)
        .await
        .unwrap();
    assert_eq!(
        writes(&store),
        (634, 6 + 2 + 2 + 2, 1),
        "the changed objects' items put (c3's two values on day 2, c2's remaining value on \
         day 1, u4's record on day 3); each day's manifest before and after"
    );
    let rows = store.export(Some(&t)).await.unwrap();
    assert_eq!(rows.len(), 629);
    assert!(!rows
        .iter()
        .any(|r| r.object_id == gone.object.id && r.metric == gone.metric && r.day == gone.day));
    let changed = rows
        .iter()
        .find(|r| r.object_id == "c3" && r.metric == "Minutes" && r.day == d(2))
        .unwrap();
    assert_eq!(changed.value, 99.0);
    store
        .replace_chunk(&t, g, &m, w, &values, &activities)
        .await
        .unwrap();
    assert_eq!(writes(&store), (634, 12, 1), "nothing written again");

    // Three replaces of the same keys with other values at once, then one writer's values.
    let day1 = pendo_sync::domain::Window {
        from: d(1),
        to: d(1),
    };
    let with = |x: f64| -> Vec<MetricValue> { (0..50).map(|c| value(c, "Clicks", 1, x)).collect() };
    let (a, b, c) = (with(1.0), with(2.0), with(3.0));
    let (ra, rb, rc) = tokio::join!(
        store.replace_chunk(&t, g, &m, day1, &a, &[]),
        store.replace_chunk(&t, g, &m, day1, &b, &[]),
        store.replace_chunk(&t, g, &m, day1, &c, &[]),
    );
    ra.unwrap();
    rb.unwrap();
    rc.unwrap();
    for x in [1.0, 2.0, 3.0, 1.0] {
        store
            .replace_chunk(&t, g, &m, day1, &with(x), &[])
            .await
            .unwrap();
        let day1_values: Vec<f64> = values_only(&store.export(Some(&t)).await.unwrap())
            .into_iter()
            .filter(|r| r.day == d(1))
            .map(|r| r.value)
            .collect();
        assert_eq!(day1_values, vec![x; 50], "after the replace with {x}");
    }
}

#[tokio::test]
async fn manifests_list_every_item_through_large_chunks_and_racing_replaces() {
    let aws = Aws::connect().await;
    let store = aws.store().await;
    let t = TenantId::parse("manifests").unwrap();
    let i = Integration::new(t.clone());
    store.put_integration(&i).await.unwrap();
    let g = i.generation;
    let m = MappingId::parse("m").unwrap();
    let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
    let w = pendo_sync::domain::Window { from: day, to: day };
    let v = |id: String| MetricValue {
        object: ObjectRef {
            kind: Target::Company,
            id,
        },
        metric: "Clicks".into(),
        app: String::new(),
        day,
        value: 1.0,
    };
    // 2,400 companies whose ids share little: the manifest (about 375 KB) takes two items.
    let big: Vec<MetricValue> = (0..2400)
        .map(|c| v(format!("{c:05}-{}", "x".repeat(150))))
        .collect();
    store.replace_chunk(&t, g, &m, w, &big, &[]).await.unwrap();
    let meter = store.write_meter();
    assert_eq!(
        (meter.puts, meter.manifest_puts, meter.deletes),
        (2404, 4, 1),
        "head and part, twice; the first version's part dropped"
    );
    // Half of them again: the other half are leftovers, found through both items.
    store
        .replace_chunk(&t, g, &m, w, &big[..1200], &[])
        .await
        .unwrap();
    let rows = store.export(Some(&t)).await.unwrap();
    assert_eq!(rows.len(), 1200);
    assert_eq!(rows[0].object_id, big[0].object.id);
    assert_eq!(rows[1199].object_id, big[1199].object.id);

    // Three replaces of the window at once, with different items (values and activity).
    let set = |p: &str| {
        let values: Vec<MetricValue> = (0..40).map(|c| v(format!("{p}{c}"))).collect();
        let activity: Vec<Activity> = (0..10)
            .map(|u| Activity {
                end_user_id: format!("{p}-user-{u}"),
                company_id: format!("{p}0"),
                mapping_id: m.clone(),
                label: "Clicks".into(),
                day,
                events: 1.0,
                minutes: 0.0,
                passive: false,
            })
            .collect();
        (values, activity)
    };
    let (a, b, c) = (set("a"), set("b"), set("c"));
    let (ra, rb, rc) = tokio::join!(
        store.replace_chunk(&t, g, &m, w, &a.0, &a.1),
        store.replace_chunk(&t, g, &m, w, &b.0, &b.1),
        store.replace_chunk(&t, g, &m, w, &c.0, &c.1),
    );
    ra.unwrap();
    rb.unwrap();
    rc.unwrap();
    let rows = store.export(Some(&t)).await.unwrap();
    assert!(!rows.is_empty());
    assert!(
        rows.iter().all(|r| !r.object_id.ends_with('x')),
        "no leftover of the big chunk"
    );
    // Whatever mix the race left, a replace with nothing finds all of it.
    store.replace_chunk(&t, g, &m, w, &[], &[]).await.unwrap();
    assert!(store.export(Some(&t)).await.unwrap().is_empty());
    let (items, manifests) = data_generations(&aws, &t).await;
    assert!(items.is_empty(), "{items:?}");
    assert_eq!(
        manifests,
        vec![g],
        "one (empty) manifest head, no stray part"
    );
    assert_eq!(store.delete_mapping_data(&t, &m, &[]).await.unwrap(), 0);
    assert_eq!(data_generations(&aws, &t).await, (vec![], vec![]));
}

/// The scenario both stacks run: New York days, companies, user fields with auto-detect, a
/// company metric with minutes and an end-user metric that creates users (values + activity).
pub(crate) async fn configure(app: &App, store: &dyn Store, t: &TenantId, sim: &Simulator) {
    app.update_settings(
        t,
        &SettingsUpdate {
            days_to_sync: Some(7),
            timezone: Some("America/New_York".into()),
            field_mappings: Some(FieldMappingsInput {
                email: Some("metadata.agent.email".into()),
                name: Some("metadata.agent.firstname".into()),
                ..Default::default()
            }),
            auto_detect_end_users: Some(true),
        },
    )
    .await
    .unwrap();
    let companies = every_company(sim);
    store
        .upsert_objects(t, Target::Company, &companies)
        .await
        .unwrap();
    let mut features: Vec<_> = sim
        .subscription()
        .features
        .iter()
        .filter(|f| f.app_id == -323232)
        .collect();
    features.sort_by(|a, b| b.popularity.total_cmp(&a.popularity).then(a.id.cmp(&b.id)));
    let mapping = |feature: &str, target, name: &str, minutes: Option<&str>| MappingInput {
        source: MappingKind::Feature {
            feature_id: feature.to_string(),
            minutes_metric: minutes.map(Into::into),
        },
        target,
        metric_name: name.into(),
        passive: false,
        multi_app: false,
        auto_create_users: target == Target::EndUser,
        segment_id: None,
        enabled: true,
    };
    for input in [
        mapping(&features[0].id, Target::Company, "Clicks", Some("Minutes")),
        mapping(&features[1].id, Target::EndUser, "Feature uses", None),
    ] {
        app.create_mapping(t, &input).await.unwrap();
    }
}

/// The export with mapping ids (random per stack) replaced by their metric names.
pub(crate) async fn comparable(app: &App, t: &TenantId) -> Vec<ExportRow> {
    let names: BTreeMap<String, String> = app
        .mappings(t)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.id.to_string(), m.metric_name))
        .collect();
    let mut rows = app.export(Some(t)).await.unwrap();
    for r in &mut rows {
        if r.record.starts_with("activity") {
            r.metric = names.get(&r.metric).cloned().unwrap_or_default();
        }
    }
    rows.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    rows
}

/// An AWS stack as deployed: DynamoDB and SQS on moto behind the IAM gate, and one app per
/// function, each with that function's credentials (so each call is checked against its
/// function's policy from the template). `store` is the test's own view (moto's plain
/// credentials), for setup and assertions.
pub(crate) struct AwsStack {
    /// The configurator's app: what the API does (settings, mappings, Re-sync all, reads).
    pub(crate) app: App,
    pub(crate) fetch: App,
    /// The fetch function's store (its write meter).
    pub(crate) fetch_store: Arc<DynamoStore>,
    pub(crate) resync: App,
    pub(crate) scheduler: App,
    pub(crate) gate: IamGate,
    pub(crate) store: Arc<DynamoStore>,
    /// Every function's clock.
    pub(crate) clock: FixedClock,
    pub(crate) tenant: TenantId,
    pub(crate) sim: Simulator,
    _running: RunningSim,
}

pub(crate) async fn aws_stack(aws: &Aws) -> (AwsStack, SqsQueue) {
    aws_stack_with(aws, sim_config()).await
}

/// [`aws_stack`] on the simulator `config`.
pub(crate) async fn aws_stack_with(
    aws: &Aws,
    config: pendo_sim::SimConfig,
) -> (AwsStack, SqsQueue) {
    let now = config.now;
    let sim = Simulator::new(config);
    let running = sim.spawn("127.0.0.1:0").await.unwrap();
    let gate = IamGate::start(aws).await;
    let queue = SqsQueue::new(
        aws.sqs.clone(),
        gate.fetch_url.clone(),
        gate.resync_url.clone(),
    );
    let store = Arc::new(DynamoStore::new(aws.dynamo.clone(), gate.tables.clone()));
    let base_url = running.base_url();
    let clock = FixedClock::new(now);
    let app_of = |function: Function| {
        let gate = &gate;
        let base_url = base_url.clone();
        let clock = clock.clone();
        async move {
            let (store, queue) = gate.adapters(function).await;
            let app = App::new(
                Ports::builder()
                    .store(store.clone())
                    .queue(queue)
                    .pendo_at(&base_url)
                    .clock(Arc::new(clock))
                    .build(),
            );
            (app, store)
        }
    };
    let (app, _) = app_of(Function::Configurator).await;
    let (fetch, fetch_store) = app_of(Function::Fetch).await;
    let (resync, _) = app_of(Function::Resync).await;
    let (scheduler, _) = app_of(Function::Scheduler).await;
    let tenant = TenantId::parse("acme-cs").unwrap();
    app.connect(&tenant, KEY, "app.pendo.io").await.unwrap();
    let stack = AwsStack {
        app,
        fetch,
        fetch_store,
        resync,
        scheduler,
        gate,
        store,
        clock,
        tenant,
        sim,
        _running: running,
    };
    (stack, queue)
}

/// The `gen` of every value and activity item of the tenant, and of every manifest item
/// (a Scan: a test's look at the whole table, which the store itself never does).
pub(crate) async fn data_generations(aws: &Aws, t: &TenantId) -> (Vec<u64>, Vec<u64>) {
    let table = DynamoTables::with_prefix(&aws.prefix).data;
    let tenant = format!("T#{}#", keys::esc(t.as_str()));
    let manifests = keys::manifests_pk(t);
    let (mut items, mut listed) = (Vec::new(), Vec::new());
    let mut start = None;
    loop {
        let page = aws
            .dynamo
            .scan()
            .table_name(&table)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .unwrap();
        for item in page.items.unwrap_or_default() {
            let pk = item.get("pk").and_then(|v| v.as_s().ok()).unwrap();
            let Some(g) = item.get("gen").and_then(|v| v.as_n().ok()) else {
                continue;
            };
            if *pk == manifests {
                listed.push(g.parse().unwrap());
            } else if pk.starts_with(&tenant) {
                items.push(g.parse().unwrap());
            }
        }
        match page.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return (items, listed),
        }
    }
}

/// Only the metric values of an export.
fn values_only(rows: &[ExportRow]) -> Vec<ExportRow> {
    rows.iter()
        .filter(|r| r.record == "value")
        .cloned()
        .collect()
}

#[tokio::test]
async fn resync_all_through_dynamo_sqs_and_the_handlers_exports_what_the_embedded_stack_does() {
    // Arrange: the embedded stack (the reference) and the AWS stack (DynamoDB + SQS on moto,
    // messages fed to the Lambda handlers), configured alike.
    let local = Stack::start().await;
    configure(&local.app, &local.store, &local.tenant, &local.sim).await;
    let aws = Aws::connect().await;
    let (s, queue) = aws_stack(&aws).await;
    configure(&s.app, s.store.as_ref(), &s.tenant, &s.sim).await;
    // Act 1: a first Re-sync all. Its values are exact on both; its activity depends on which
    // chunk ran first (the company metric only records activity for users that already exist,
    // and the end-user metric creates them), so only values are compared here.
    local.resync().await;
    let started = Instant::now();
    s.app.resync_all(&s.tenant).await.unwrap();
    let first_bodies = drain_through_handlers(&aws, &s, &queue).await;
    let handled = first_bodies.len();
    let first = started.elapsed();
    let first_generation = s.app.integration(&s.tenant).await.unwrap().generation;
    let want = comparable(&local.app, &local.tenant).await;
    let got = comparable(&s.app, &s.tenant).await;
    assert!(!values_only(&want).is_empty());
    assert_eq!(values_only(&got), values_only(&want));
    // Act 2: a second Re-sync all (every user exists now): purges the first generation and
    // lands on exactly the embedded stack's export, values and activity.
    local.resync().await;
    let started = Instant::now();
    s.app.resync_all(&s.tenant).await.unwrap();
    drain_through_handlers(&aws, &s, &queue).await;
    let second = started.elapsed();
    let want = comparable(&local.app, &local.tenant).await;
    let got = comparable(&s.app, &s.tenant).await;
    assert!(
        want.iter().any(|r| r.record == "activity"),
        "the scenario writes activity"
    );
    assert_eq!(got.len(), want.len());
    assert_eq!(got, want);
    let users = s.store.list_end_users(&s.tenant).await.unwrap();
    let local_users = local.store.list_end_users(&local.tenant).await.unwrap();
    assert_eq!(users, local_users);
    // Each mapping's status as the API lists it (GET /v1/mappings): its run's progress.
    for m in s.app.mappings(&s.tenant).await.unwrap() {
        let status = s.app.mapping_status(&m).await.unwrap().unwrap();
        assert!(status.last_run.is_some(), "{status:?}");
    }

    // The purge: the data table holds nothing of an older generation any more, neither items
    // nor the manifests that listed them.
    let generation = s.app.integration(&s.tenant).await.unwrap().generation;
    assert!(generation > first_generation);
    let (gens, manifest_gens) = data_generations(&aws, &s.tenant).await;
    assert_eq!(gens.len(), got.len(), "one item per exported row");
    assert!(gens.iter().all(|g| *g == generation), "{gens:?}");
    assert!(!manifest_gens.is_empty());
    assert!(
        manifest_gens.iter().all(|g| *g == generation),
        "{manifest_gens:?}"
    );

    // A fetch message of the first re-sync delivered again now (SQS redelivers at least once)
    // is dropped by the generation check: acknowledged, nothing written.
    let stale = first_bodies
        .iter()
        .find(|b| {
            matches!(QueueMessage::decode(b), Ok(QueueMessage::Fetch(f)) if f.generation == first_generation)
        })
        .expect("the first re-sync fanned out fetch messages")
        .clone();
    aws.sqs
        .send_message()
        .queue_url(queue.fetch_url())
        .message_body(stale)
        .send()
        .await
        .unwrap();
    assert_eq!(drain_through_handlers(&aws, &s, &queue).await.len(), 1);
    assert_eq!(comparable(&s.app, &s.tenant).await, want);
    assert_eq!(data_generations(&aws, &s.tenant).await.0.len(), got.len());
    // The daily run (the scheduler function) re-fetches the look-back days: same values.
    let ev =
        serde_json::from_str(include_str!("../../../fixtures/eventbridge-schedule.json")).unwrap();
    let planned = handle_schedule(&s.scheduler, LambdaEvent::new(ev, Context::default()))
        .await
        .unwrap();
    assert_eq!(planned.tenants, 1);
    assert!(drain_through_handlers(&aws, &s, &queue).await.len() >= 2);
    assert_eq!(comparable(&s.app, &s.tenant).await, want);
    eprintln!(
        "re-sync on moto: {handled} messages, {} rows; first {first:?}, second {second:?}",
        want.len()
    );
    s.gate.assert_no_denials();
}
