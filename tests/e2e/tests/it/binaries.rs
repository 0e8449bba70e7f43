//! The four real function binaries, as Lambda runs them (`lambda_rt.rs`), each with its own
//! credentials behind the IAM gate (its policy from the template), on moto and the Pendo
//! simulator, fed the event shapes AWS sends: API Gateway HTTP API v2 events with JWT
//! authorizer claims for the configurator, SQS batches (with `ReportBatchItemFailures`
//! settled as the event source mapping does) for fetch and resync, an EventBridge scheduled
//! event for the scheduler. One operator's day: connect, directory, a Feature, a Page, an
//! end-user Feature with auto-create and a saved report, Re-sync all, then the daily run. Every
//! run finishes, nothing is dead-lettered, and the values equal the local runner's (the
//! embedded stack, same simulator and day).

use crate::aws_handlers::queue_with_dlq;
use crate::aws_local::Aws;
use crate::helpers::{sim_config, Stack, StackOptions, KEY};
use crate::iam_gate::{Function, IamGate};
use crate::lambda_rt::LambdaFn;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use pendo_sync::domain::*;
use pendo_sync::store::dynamo::DynamoStore;
use pendo_sync::store::prelude::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

const CONNECT: &str = include_str!("../../../fixtures/apigw-v2-jwt-admin-connect.json");
const SCHEDULE: &str = include_str!("../../../fixtures/eventbridge-schedule.json");
const TENANT: &str = "acme-cs";

/// The deployed functions of one test.
struct Deployed {
    configurator: LambdaFn,
    fetch: LambdaFn,
    resync: LambdaFn,
    scheduler: LambdaFn,
}

async fn deploy(gate: &IamGate, pendo: &str, logs: &std::path::Path) -> Deployed {
    let env = |f: Function| -> Vec<(String, String)> {
        let mut e: Vec<(String, String)> = [
            ("CONFIG_TABLE", gate.tables.config.clone()),
            ("DATA_TABLE", gate.tables.data.clone()),
            ("FETCH_QUEUE_URL", gate.fetch_url.clone()),
            ("RESYNC_QUEUE_URL", gate.resync_url.clone()),
            ("MAX_RECEIVES", "5".into()),
            ("PENDO_BASE_URL", pendo.into()),
            ("RUST_LOG", "info".into()),
            ("AWS_ENDPOINT_URL", gate.url().into()),
            ("AWS_ACCESS_KEY_ID", f.access_key()),
            ("AWS_SECRET_ACCESS_KEY", "secret".into()),
            ("AWS_SESSION_TOKEN", "session".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_DEFAULT_REGION", "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        match f {
            Function::Fetch => e.push(("FETCH_CONCURRENCY".into(), "1".into())),
            Function::Configurator => {
                e.push(("JWT_TENANT_CLAIM".into(), "tenant".into()));
                e.push(("JWT_ROLE_CLAIM".into(), "role".into()));
            }
            _ => {}
        }
        e
    };
    Deployed {
        configurator: LambdaFn::start("configurator", &env(Function::Configurator), logs).await,
        fetch: LambdaFn::start("fetch", &env(Function::Fetch), logs).await,
        resync: LambdaFn::start("resync", &env(Function::Resync), logs).await,
        scheduler: LambdaFn::start("scheduler", &env(Function::Scheduler), logs).await,
    }
}

/// An API Gateway HTTP API v2 event of an admin of the tenant (the JWT authorizer's claims).
fn api_event(method: &str, target: &str, body: Option<&Value>) -> Value {
    let mut e: Value = serde_json::from_str(CONNECT).unwrap();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    e["rawPath"] = path.into();
    e["rawQueryString"] = query.into();
    let params: serde_json::Map<String, Value> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    if !params.is_empty() {
        e["queryStringParameters"] = Value::Object(params);
    }
    e["requestContext"]["http"]["method"] = method.into();
    e["requestContext"]["http"]["path"] = path.into();
    e["pathParameters"]["proxy"] = path.trim_start_matches('/').into();
    let text = body.map(Value::to_string).unwrap_or_default();
    e["headers"]["content-length"] = text.len().to_string().into();
    e["body"] = if body.is_some() {
        text.into()
    } else {
        Value::Null
    };
    e
}

/// Calls the API through the configurator binary: (status, JSON body).
async fn api(d: &mut Deployed, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let r = d
        .configurator
        .call(
            &api_event(method, path, body.as_ref()),
            Duration::from_secs(29),
        )
        .await;
    let status = r["statusCode"].as_u64().unwrap() as u16;
    let body = r["body"].as_str().unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Lambda's SQS event source: receives batches from both queues and invokes the consumer,
/// deleting what the response acknowledges and making what it reports visible again, until
/// both queues are empty. Returns the deliveries made.
async fn event_source(aws: &Aws, gate: &IamGate, d: &mut Deployed) -> usize {
    let mut deliveries = 0;
    for _ in 0..400 {
        let mut idle = true;
        for (url, resync) in [(&gate.resync_url, true), (&gate.fetch_url, false)] {
            let msgs = aws
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(if resync { 10 } else { 5 })
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .unwrap()
                .messages
                .unwrap_or_default();
            if msgs.is_empty() {
                continue;
            }
            idle = false;
            deliveries += msgs.len();
            let records: Vec<Value> = msgs
                .iter()
                .map(|m| {
                    let attrs: BTreeMap<String, String> = m
                        .attributes
                        .clone()
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k.as_str().to_string(), v))
                        .collect();
                    json!({
                        "messageId": m.message_id, "receiptHandle": m.receipt_handle,
                        "body": m.body, "attributes": attrs, "messageAttributes": {},
                        "md5OfBody": m.md5_of_body, "eventSource": "aws:sqs",
                        "eventSourceARN": format!("arn:aws:sqs:us-east-1:123456789012:{}",
                            url.rsplit('/').next().unwrap()),
                        "awsRegion": "us-east-1"
                    })
                })
                .collect();
            let event = json!({ "Records": records });
            let consumer = if resync { &mut d.resync } else { &mut d.fetch };
            let r = consumer.call(&event, Duration::from_secs(120)).await;
            let failed: HashSet<&str> = r["batchItemFailures"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["itemIdentifier"].as_str().unwrap())
                .collect();
            for m in &msgs {
                let handle = m.receipt_handle.clone().unwrap();
                if failed.contains(m.message_id.as_deref().unwrap()) {
                    aws.sqs
                        .change_message_visibility()
                        .queue_url(url)
                        .receipt_handle(handle)
                        .visibility_timeout(0)
                        .send()
                        .await
                        .unwrap();
                } else {
                    aws.sqs
                        .delete_message()
                        .queue_url(url)
                        .receipt_handle(handle)
                        .send()
                        .await
                        .unwrap();
                }
            }
        }
        if idle {
            return deliveries;
        }
    }
    panic!("the queues did not drain");
}

/// The values of an export, with mapping ids (random per stack) out of the way.
fn values(rows: Vec<ExportRow>) -> Vec<ExportRow> {
    let mut v: Vec<ExportRow> = rows.into_iter().filter(|r| r.record == "value").collect();
    v.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_four_binaries_run_an_operators_day_as_lambda_runs_them() {
    // Today, as the binaries' clocks read it (the simulator's history ends today too).
    let mut config = sim_config();
    config.now = chrono::Utc::now();
    let local = Stack::build(config.clone(), StackOptions::default()).await;
    let sim = pendo_sim::Simulator::new(config);
    let running = sim.spawn("127.0.0.1:0").await.unwrap();
    let aws = Aws::connect().await;
    // The template's MaxReceiveCount.
    let (fetch_url, fetch_dlq) = queue_with_dlq(&aws, "fetch", 5).await;
    let (resync_url, resync_dlq) = queue_with_dlq(&aws, "resync", 5).await;
    let gate = IamGate::for_queues(&aws, &fetch_url, &resync_url).await;
    let logs = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/it-lambda")
        .join(&aws.prefix);
    let mut d = deploy(&gate, &running.base_url(), &logs).await;

    // The operator's setup, through the configurator binary.
    let (s, b) = api(
        &mut d,
        "PUT",
        "/v1/integration/connection",
        Some(json!({"key": KEY, "domain": "app.pendo.io"})),
    )
    .await;
    assert_eq!((s, b["status"].as_str()), (200, Some("active")), "{b}");
    let settings = json!({"daysToSync": 7, "autoDetectEndUsers": true,
        "fieldMappings": {"email": "metadata.agent.email"}});
    let (s, b) = api(&mut d, "PATCH", "/v1/integration/settings", Some(settings)).await;
    assert_eq!(s, 200, "{b}");
    let companies: Vec<Value> = sim
        .subscription()
        .accounts
        .iter()
        .map(|a| json!({"externalId": a.id}))
        .collect();
    let (s, b) = api(
        &mut d,
        "PUT",
        "/v1/directory/companies",
        Some(json!({ "items": companies })),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let feature = local.feature(-323232);
    let page = sim.subscription().pages[0].id.clone();
    let mappings = [
        json!({"source": {"kind": "feature", "featureId": feature}, "target": "company", "metricName": "Clicks"}),
        json!({"source": {"kind": "page", "pageId": page}, "target": "company", "metricName": "Views"}),
        json!({"source": {"kind": "feature", "featureId": feature}, "target": "endUser", "metricName": "Uses", "autoCreateUsers": true}),
        json!({"source": {"kind": "report", "reportId": "rpt-account-30d",
            "columns": [{"field": "numEvents", "metric": "Events 30d"}]}, "target": "company", "metricName": "Events 30d"}),
    ];
    for m in &mappings {
        let (s, b) = api(&mut d, "POST", "/v1/mappings", Some(m.clone())).await;
        assert_eq!(s, 201, "{m}: {b}");
    }

    // Re-sync all: queued by the API, planned by resync, fetched by fetch.
    let (s, b) = api(&mut d, "POST", "/v1/resync", None).await;
    assert!(s == 200 || s == 202, "{s} {b}");
    let resync_deliveries = event_source(&aws, &gate, &mut d).await;

    // The daily run: the EventBridge event to the scheduler, then the planning and the chunks.
    let schedule: Value = serde_json::from_str(SCHEDULE).unwrap();
    let out = d.scheduler.call(&schedule, Duration::from_secs(300)).await;
    assert_eq!(out["tenants"], 1, "{out}");
    let daily_deliveries = event_source(&aws, &gate, &mut d).await;

    // Every run finished, every chunk done; nothing dead-lettered; no call denied.
    let store = DynamoStore::new(aws.dynamo.clone(), gate.tables.clone());
    let t = TenantId::parse(TENANT).unwrap();
    let runs = store.list_runs(&t, 10).await.unwrap();
    assert_eq!(runs.len(), 2, "{runs:?}");
    for run in &runs {
        assert!(run.planned && run.queued, "{run:?}");
        assert!(
            run.chunks.iter().all(|c| c.status == ChunkStatus::Done),
            "{:?}",
            run.chunks
        );
    }
    for dlq in [&fetch_dlq, &resync_dlq] {
        let left = aws
            .sqs
            .receive_message()
            .queue_url(dlq)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        assert!(left.is_empty(), "dead letters: {left:?}");
    }
    gate.assert_no_denials();

    // The local runner, same simulator, same day, same configuration.
    local
        .settings(pendo_sync::app::SettingsUpdate {
            days_to_sync: Some(7),
            auto_detect_end_users: Some(true),
            field_mappings: Some(FieldMappingsInput {
                email: Some("metadata.agent.email".into()),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await;
    local.add_companies(&[]).await;
    for m in &mappings {
        let input = serde_json::from_value(m.clone()).unwrap();
        local
            .app
            .create_mapping(&local.tenant, &input)
            .await
            .unwrap();
    }
    local.resync().await;
    local.app.run_schedule().await.unwrap();
    local.drain().await;
    let want = values(local.app.export(Some(&local.tenant)).await.unwrap());
    let got = values(store.export(Some(&t)).await.unwrap());
    assert!(!want.is_empty());
    assert_eq!(got.len(), want.len());
    assert_eq!(got, want);
    eprintln!(
        "real binaries: Re-sync all {resync_deliveries} deliveries, daily run {daily_deliveries}; \
         {} values; logs in {}",
        got.len(),
        logs.display()
    );

    // The rest of the operator's day, so that every path of each function runs under its
    // policy: reads, an end user added by hand, Sync now, a rebuild, an import from Pendo, a
    // mapping deleted.
    let (s, listed) = api(&mut d, "GET", "/v1/mappings", None).await;
    assert_eq!(s, 200, "{listed}");
    let ids: BTreeMap<String, String> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["metricName"].as_str().unwrap().to_string(),
                m["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let company = &sim.subscription().accounts[0].id;
    let day = got[0].day;
    for path in [
        "/v1/runs".to_string(),
        "/v1/integration".to_string(),
        "/v1/directory/companies".to_string(),
        format!("/v1/objects/company/{company}/metrics"),
        format!("/v1/objects/company/{company}/series?metric=Clicks&from={day}&to={day}"),
        format!("/v1/objects/company/{company}/activity"),
        format!("/v1/objects/company/{company}/system"),
    ] {
        let (s, b) = api(&mut d, "GET", &path, None).await;
        assert_eq!(s, 200, "{path}: {b}");
    }
    let user = json!({"items": [{"externalId": "by-hand-1", "companyId": company,
        "email": "by.hand@example.com", "name": "By"}]});
    let (s, b) = api(&mut d, "PUT", "/v1/directory/end-users", Some(user)).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = api(&mut d, "GET", "/v1/directory/end-users", None).await;
    assert_eq!(s, 200, "{b}");
    for action in ["sync", "rebuild"] {
        let path = format!("/v1/mappings/{}/{action}", ids["Clicks"]);
        let (s, b) = api(&mut d, "POST", &path, None).await;
        assert!(s == 200 || s == 202, "{path}: {s} {b}");
        event_source(&aws, &gate, &mut d).await;
    }
    let (s, b) = api(&mut d, "POST", "/v1/imports", Some(json!({}))).await;
    assert!(s == 200 || s == 202, "{s} {b}");
    event_source(&aws, &gate, &mut d).await;
    let (s, b) = api(&mut d, "GET", "/v1/imports", None).await;
    assert_eq!((s, b[0]["state"].as_str()), (200, Some("finished")), "{b}");
    let path = format!("/v1/mappings/{}", ids["Views"]);
    let (s, b) = api(&mut d, "DELETE", &path, None).await;
    assert!(s == 200 || s == 204, "{s} {b}");
    let runs = store.list_runs(&t, 10).await.unwrap();
    assert_eq!(runs.len(), 4, "{runs:?}");
    assert!(runs
        .iter()
        .all(|r| r.chunks.iter().all(|c| c.status == ChunkStatus::Done)));
    gate.assert_no_denials();
}
