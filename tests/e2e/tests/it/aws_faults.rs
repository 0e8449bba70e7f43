//! AWS's faults survived (issue 27): each row of the table injects one fault of DynamoDB or
//! SQS (`fault_proxy.rs`: what the real service answers) into the functions' calls through a
//! whole Re-sync all and a daily run, through the Lambda handlers, and asserts what must hold:
//! - every run finishes by itself, no chunk failed, none left pending;
//! - the export equals the fault-free one (the embedded stack's) exactly, values and activity;
//! - no message reaches the queues' `maxReceiveCount` (nothing dead-lettered that a retry
//!   would have saved);
//! - the counters are exact: each chunk's `attempts` equals the deliveries of its message, the
//!   runs' totals equal the fault-free runs';
//! - Pendo is called exactly as often as without faults: an AWS fault after a chunk's Pendo
//!   call never costs a second Pendo call (the SDK's retries and `sync::persist` finish the
//!   write inside the invocation);
//! - the fault was met (the test cannot pass with a rule that never fires).

use crate::aws_local::{aws_stack, comparable, configure, drain_through_handlers, Aws, AwsStack};
use crate::fault_proxy::{Fault, Pick, Rule, Service, BEYOND_SDK};
use crate::helpers::Stack;
use lambda_runtime::{Context, LambdaEvent};
use pendo_sync::domain::{ChunkStats, ChunkStatus, ExportRow, SyncRun};
use pendo_sync::lambda::handle_schedule;
use pendo_sync::queue::messages::QueueMessage;
use pendo_sync::store::prelude::*;
use std::collections::BTreeMap;
use std::time::Duration;

/// What a phase (a Re-sync all, a daily run) left and cost.
#[derive(Debug, PartialEq)]
struct Phase {
    export: Vec<ExportRow>,
    pendo: BTreeMap<String, u64>,
    totals: Vec<ChunkStats>,
}

/// The fault-free phases, on the embedded stack.
async fn reference() -> (Phase, Phase) {
    let local = Stack::start().await;
    configure(&local.app, &local.store, &local.tenant, &local.sim).await;
    local.sim.control().reset_requests();
    local.resync().await;
    let resync = local_phase(&local).await;
    local.sim.control().reset_requests();
    local.app.run_schedule().await.unwrap();
    local.drain().await;
    let daily = local_phase(&local).await;
    (resync, daily)
}

async fn local_phase(local: &Stack) -> Phase {
    Phase {
        export: comparable(&local.app, &local.tenant).await,
        pendo: local.sim.control().counters(),
        totals: totals(&local.store.list_runs(&local.tenant, 10).await.unwrap()),
    }
}

/// Each run's totals, oldest first.
fn totals(runs: &[SyncRun]) -> Vec<ChunkStats> {
    runs.iter().rev().map(SyncRun::totals).collect()
}

/// Runs the scenario on AWS with `rules` in force from the start; asserts what holds for every
/// fault and returns the faults met.
async fn survives(rules: Vec<Rule>) -> BTreeMap<(String, Fault), u32> {
    let (want_resync, want_daily) = reference().await;
    let aws = Aws::connect().await;
    let (s, queue) = aws_stack(&aws).await;
    configure(&s.app, s.store.as_ref(), &s.tenant, &s.sim).await;
    s.gate.set_faults(rules);
    s.sim.control().reset_requests();
    s.app.resync_all(&s.tenant).await.unwrap();
    let mut delivered = drain_through_handlers(&aws, &s, &queue).await;
    let resync = aws_phase(&s).await;
    s.sim.control().reset_requests();
    let ev =
        serde_json::from_str(include_str!("../../../fixtures/eventbridge-schedule.json")).unwrap();
    handle_schedule(&s.scheduler, LambdaEvent::new(ev, Context::default()))
        .await
        .unwrap();
    delivered.extend(drain_through_handlers(&aws, &s, &queue).await);
    let daily = aws_phase(&s).await;
    s.gate.set_faults(Vec::new());

    assert_runs_exact(&s, &delivered).await;
    assert_eq!(
        resync.export, want_resync.export,
        "the Re-sync all's export"
    );
    assert_eq!(daily.export, want_daily.export, "the daily run's export");
    assert_eq!(
        resync.pendo, want_resync.pendo,
        "Pendo calls of the Re-sync all"
    );
    assert_eq!(
        daily.pendo, want_daily.pendo,
        "Pendo calls of the daily run"
    );
    // `usersCreated` counts the users a chunk's delivery created itself: one whose creation
    // applied with its answer lost past the SDK's retries (or its attempt timed out past the
    // SDK's operation timeout) is counted as found when tried again; every other total is exact.
    let counted = |totals: Vec<ChunkStats>| -> Vec<ChunkStats> {
        totals
            .into_iter()
            .map(|t| ChunkStats {
                users_created: 0,
                ..t
            })
            .collect()
    };
    assert_eq!(
        counted(daily.totals),
        counted(want_daily.totals),
        "the runs' totals"
    );
    s.gate.assert_no_denials();
    s.gate.injected()
}

async fn aws_phase(s: &AwsStack) -> Phase {
    Phase {
        export: comparable(&s.app, &s.tenant).await,
        pendo: s.sim.control().counters(),
        totals: totals(&s.store.list_runs(&s.tenant, 10).await.unwrap()),
    }
}

/// Every run finished with every chunk done; each chunk's attempts are its message's
/// deliveries; no message was delivered as often as the queues' `maxReceiveCount` (5).
async fn assert_runs_exact(s: &AwsStack, delivered: &[String]) {
    let mut deliveries: BTreeMap<(String, usize), u32> = BTreeMap::new();
    let mut per_body: BTreeMap<&str, u32> = BTreeMap::new();
    for body in delivered {
        *per_body.entry(body).or_default() += 1;
        if let Ok(QueueMessage::Fetch(f)) = QueueMessage::decode(body) {
            *deliveries
                .entry((f.run_id.to_string(), f.chunk_index))
                .or_default() += 1;
        }
    }
    let most = per_body.values().max().copied().unwrap_or(0);
    assert!(most < 5, "a message was delivered {most} times");
    let runs = s.store.list_runs(&s.tenant, 10).await.unwrap();
    assert_eq!(runs.len(), 2, "the Re-sync all and the daily run");
    for run in &runs {
        assert!(run.is_finished(), "run {} is not finished: {run:?}", run.id);
        for (i, c) in run.chunks.iter().enumerate() {
            assert_eq!(
                c.status,
                ChunkStatus::Done,
                "chunk {i} of {}: {c:?}",
                run.id
            );
            let n = deliveries
                .get(&(run.id.to_string(), i))
                .copied()
                .unwrap_or(0);
            assert_eq!(c.attempts, n, "chunk {i} of {}: attempts", run.id);
            assert_eq!(c.retries + 1, n, "chunk {i} of {}: retries", run.id);
        }
    }
}

/// A rule on a DynamoDB operation picking `per_mille` of its calls.
fn dynamo(op: &'static str, fault: Fault, per_mille: u32) -> Rule {
    Rule::new(Service::DynamoDb, op, fault, Pick::PerMille(per_mille))
}

fn met(injected: &BTreeMap<(String, Fault), u32>, op: &str, fault: Fault) -> u32 {
    injected.get(&(op.to_string(), fault)).copied().unwrap_or(0)
}

// ---- the table: fault × operation → the scenario survives ----

/// Throttled writes of a chunk's values (a hot partition); the SDK's retry cures each.
#[tokio::test]
async fn throughput_exceeded_on_batch_writes() {
    let got = survives(vec![dynamo("BatchWriteItem", Fault::Throughput, 200)]).await;
    assert!(
        met(&got, "BatchWriteItem", Fault::Throughput) > 0,
        "{got:?}"
    );
}

/// Throttled writes that outlast the SDK's 6 attempts: the write is tried again inside the
/// invocation (`sync::persist`), not by the queue after another Pendo call.
#[tokio::test]
async fn throughput_exceeded_beyond_the_sdk_retries() {
    let got = survives(vec![
        dynamo("BatchWriteItem", Fault::Throughput, 50).attempts(BEYOND_SDK)
    ])
    .await;
    assert!(
        met(&got, "BatchWriteItem", Fault::Throughput) >= BEYOND_SDK,
        "{got:?}"
    );
}

/// Reads throttled (`ThrottlingException`), the account's limit (`RequestLimitExceeded`) on
/// single-item writes, 500 and 503 on transactions and reads.
#[tokio::test]
async fn throttling_limits_and_server_errors() {
    let got = survives(vec![
        dynamo("Query", Fault::Throttling, 150),
        dynamo("UpdateItem", Fault::RequestLimit, 150),
        dynamo("TransactWriteItems", Fault::Internal, 150),
        dynamo("GetItem", Fault::Unavailable, 150),
    ])
    .await;
    for (op, fault) in [
        ("Query", Fault::Throttling),
        ("UpdateItem", Fault::RequestLimit),
        ("TransactWriteItems", Fault::Internal),
        ("GetItem", Fault::Unavailable),
    ] {
        assert!(met(&got, op, fault) > 0, "{op} {fault:?}: {got:?}");
    }
}

/// Half of a batch write left in `UnprocessedItems`: re-sent until written.
#[tokio::test]
async fn unprocessed_items_of_batch_writes() {
    let got = survives(vec![dynamo("BatchWriteItem", Fault::Partial, 500)]).await;
    assert!(met(&got, "BatchWriteItem", Fault::Partial) > 0, "{got:?}");
}

/// Half of a batch read left in `UnprocessedKeys` — among them the run's progress (header and
/// mapping counters), which was once an error costing a redelivery.
#[tokio::test]
async fn unprocessed_keys_of_batch_reads() {
    let got = survives(vec![dynamo("BatchGetItem", Fault::Partial, 500)]).await;
    assert!(met(&got, "BatchGetItem", Fault::Partial) > 0, "{got:?}");
}

/// Transactions (a chunk's outcome, an end user's creation) cancelled by a conflict with
/// another writer: sent again, never taken for a failed condition.
#[tokio::test]
async fn transaction_conflicts() {
    let got = survives(vec![dynamo("TransactWriteItems", Fault::Conflict, 300)]).await;
    assert!(
        met(&got, "TransactWriteItems", Fault::Conflict) > 0,
        "{got:?}"
    );
}

/// Every single-item update applied and its answer lost (the SDK resends each once): a
/// chunk's lease (`begin_chunk`, once taken for a duplicate, leaving the chunk stuck), a run's
/// planning hold (the same), a retry's record, run flags, the cursor.
#[tokio::test]
async fn lost_answers_of_updates() {
    let got = survives(vec![dynamo("UpdateItem", Fault::LostAnswer, 1000)]).await;
    assert!(met(&got, "UpdateItem", Fault::LostAnswer) > 0, "{got:?}");
}

/// Every transaction (idempotent by its token), conditional put (manifests, the integration,
/// a run's creation) and batch write applied and its answer lost.
#[tokio::test]
async fn lost_answers_of_transactions_puts_and_batches() {
    let got = survives(vec![
        dynamo("TransactWriteItems", Fault::LostAnswer, 1000),
        dynamo("PutItem", Fault::LostAnswer, 1000),
        dynamo("BatchWriteItem", Fault::LostAnswer, 1000),
    ])
    .await;
    for op in ["TransactWriteItems", "PutItem", "BatchWriteItem"] {
        assert!(met(&got, op, Fault::LostAnswer) > 0, "{op}: {got:?}");
    }
}

/// SQS: sending the chunks of a run (and the deferred ones, and the daily plans) answered
/// 500, 503 or throttled.
#[tokio::test]
async fn sqs_server_errors_and_throttling() {
    let sqs = |op, fault| Rule::new(Service::Sqs, op, fault, Pick::PerMille(300));
    let got = survives(vec![
        sqs("SendMessageBatch", Fault::Internal),
        sqs("SendMessage", Fault::Throttling),
        sqs("SendMessageBatch", Fault::Unavailable),
    ])
    .await;
    assert!(
        met(&got, "SendMessageBatch", Fault::Internal) > 0,
        "{got:?}"
    );
}

/// A call that hangs past the SDK's attempt timeout (10 s), then applies late.
#[tokio::test]
async fn a_call_slower_than_the_attempt_timeout() {
    let got = survives(vec![Rule::new(
        Service::DynamoDb,
        "UpdateItem",
        Fault::Slow(Duration::from_secs(11)),
        Pick::First(1),
    )])
    .await;
    assert_eq!(
        met(&got, "UpdateItem", Fault::Slow(Duration::from_secs(11))),
        1
    );
}

/// An import from Pendo (pages of 40 rows on the resync queue) while the resync function's
/// DynamoDB calls are throttled beyond the SDK's retries (5 %), its transactions (end users'
/// creations) meet conflicts (10 %) and every put loses its answer after applying (each
/// page's hold and record, a versioned put: once a "conflict" that acknowledged the page as a
/// duplicate and left the import running forever). It finishes with the fault-free import's
/// directory, pages and counts, one Pendo call per page.
#[tokio::test]
async fn an_import_under_throttling_conflicts_and_lost_answers() {
    use crate::aws_imports::directory;
    use crate::iam_gate::Function;
    use pendo_sync::app::imports::ImportRequest;
    use pendo_sync::app::SettingsUpdate;
    use pendo_sync::domain::{FieldMappingsInput, ImportState};
    let request = ImportRequest {
        company_name_field: Some("metadata.agent.name".into()),
        page_rows: Some(40),
        ..ImportRequest::default()
    };
    let settings = SettingsUpdate {
        field_mappings: Some(FieldMappingsInput {
            email: Some("metadata.agent.email".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let local = Stack::start().await;
    local.settings(settings.clone()).await;
    let job = local
        .app
        .start_import(&local.tenant, &request)
        .await
        .unwrap();
    local.drain().await;
    let want_job = local.app.import(&local.tenant, &job.id).await.unwrap();
    let want = directory(&local.store, &local.tenant).await;

    let aws = Aws::connect().await;
    let (s, queue) = aws_stack(&aws).await;
    s.app.update_settings(&s.tenant, &settings).await.unwrap();
    let resync = |op, fault, per_mille| dynamo(op, fault, per_mille).only(&[Function::Resync]);
    s.gate.set_faults(vec![
        Rule::any(Service::DynamoDb, Fault::Throughput, Pick::PerMille(50))
            .attempts(BEYOND_SDK)
            .only(&[Function::Resync]),
        resync("TransactWriteItems", Fault::Conflict, 100),
        resync("PutItem", Fault::LostAnswer, 1000),
    ]);
    s.sim.control().reset_requests();
    let job = s.app.start_import(&s.tenant, &request).await.unwrap();
    drain_through_handlers(&aws, &s, &queue).await;
    let injected = s.gate.injected();
    s.gate.set_faults(Vec::new());
    let done = s.app.import(&s.tenant, &job.id).await.unwrap();
    assert_eq!(done.state, ImportState::Finished, "{done:?}");
    assert_eq!(
        (done.pages, &done.companies, &done.end_users),
        (want_job.pages, &want_job.companies, &want_job.end_users)
    );
    assert_eq!(
        s.sim.control().calls("/api/v1/aggregation"),
        u64::from(done.pages),
        "one Pendo call per page"
    );
    assert_eq!(directory(s.store.as_ref(), &s.tenant).await, want);
    for (op, fault) in [
        ("PutItem", Fault::LostAnswer),
        ("TransactWriteItems", Fault::Conflict),
    ] {
        assert!(
            met(&injected, op, fault) > 0,
            "{op} {fault:?}: {injected:?}"
        );
    }
    s.gate.assert_no_denials();
}

/// `make bench`'s figure of AWS faults (ignored by `make test`; run by `tests/bench/run.py`):
/// a Re-sync all of the medium preset (200 companies, 5,000 visitors; a Feature and a Page
/// on companies, 30 days) through the handlers,
/// fault-free and then on a new stack with 5 % of the workers' DynamoDB calls throttled
/// (`ProvisionedThroughputExceededException`, cured by the SDK's retry) and 2 % of batch
/// writes partial. Prints one line `BENCH_AWS_FAULTS {json}`: wall time and the workers' AWS
/// calls of each, the faults met. Both runs must end with the same export.
#[tokio::test]
#[ignore = "a benchmark: make bench"]
async fn bench_a_resync_all_under_aws_faults() {
    use crate::aws_local::aws_stack_with;
    let config = || {
        let mut c = pendo_sim::SimConfig::medium();
        c.now = crate::helpers::sim_config().now;
        c.keys = crate::helpers::sim_config().keys;
        c
    };
    let mut out = serde_json::Map::new();
    let mut exports = Vec::new();
    for (name, rules) in [
        ("fault_free", Vec::new()),
        (
            "faults",
            vec![
                Rule::any(Service::DynamoDb, Fault::Throughput, Pick::PerMille(50)),
                dynamo("BatchWriteItem", Fault::Partial, 20),
            ],
        ),
    ] {
        let set_up = std::time::Instant::now();
        let aws = Aws::connect().await;
        let (s, queue) = aws_stack_with(&aws, config()).await;
        configure_companies(&s).await;
        let set_up = set_up.elapsed().as_secs_f64();
        s.gate.set_faults(rules);
        let before = s.gate.calls().len();
        let started = std::time::Instant::now();
        s.app.resync_all(&s.tenant).await.unwrap();
        let deliveries = drain_through_handlers(&aws, &s, &queue).await.len();
        let wall = started.elapsed().as_secs_f64();
        let calls = s.gate.calls().len() - before;
        let injected: u32 = s.gate.injected().values().sum();
        s.gate.set_faults(Vec::new());
        let read = std::time::Instant::now();
        exports.push(comparable(&s.app, &s.tenant).await);
        let read = read.elapsed().as_secs_f64();
        out.insert(
            name.into(),
            serde_json::json!({"wall_s": wall, "aws_calls": calls, "deliveries": deliveries,
                "faults_met": injected, "set_up_s": set_up, "export_s": read}),
        );
    }
    assert_eq!(
        exports[0], exports[1],
        "the same export with and without faults"
    );
    println!("BENCH_AWS_FAULTS {}", serde_json::Value::Object(out));
}

/// The bench's tenant: 30 days, New York, every company, a Feature (with minutes) and a Page on
/// companies.
async fn configure_companies(s: &AwsStack) {
    use pendo_sync::app::SettingsUpdate;
    use pendo_sync::domain::{MappingInput, MappingKind, Target};
    let settings = SettingsUpdate {
        days_to_sync: Some(30),
        timezone: Some("America/New_York".into()),
        ..Default::default()
    };
    s.app.update_settings(&s.tenant, &settings).await.unwrap();
    let companies = crate::helpers::every_company(&s.sim);
    s.store
        .upsert_objects(&s.tenant, Target::Company, &companies)
        .await
        .unwrap();
    let sub = s.sim.subscription();
    let feature = sub.features.iter().find(|f| f.app_id == -323232).unwrap();
    let sources = [
        (
            MappingKind::Feature {
                feature_id: feature.id.clone(),
                minutes_metric: Some("Minutes".into()),
            },
            "Clicks",
        ),
        (
            MappingKind::Page {
                page_id: sub.pages[0].id.clone(),
                minutes_metric: None,
            },
            "Views",
        ),
    ];
    for (source, name) in sources {
        let input = MappingInput {
            source,
            target: Target::Company,
            metric_name: name.into(),
            passive: false,
            multi_app: false,
            auto_create_users: false,
            segment_id: None,
            enabled: true,
        };
        s.app.create_mapping(&s.tenant, &input).await.unwrap();
    }
}
