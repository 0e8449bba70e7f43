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
use crate::lambda_rt::{LambdaFn, Outcome};
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

/// The four functions deployed, each with the template's variables and its own credentials
/// behind the gate; `stalls`: functions whose containers stop at stall points
/// (`shared/src/stall.rs`), (function, `a,b,…`): its first container at `a`, the next at `b`, …
async fn deploy(
    gate: &IamGate,
    pendo: &str,
    logs: &std::path::Path,
    stalls: &[(Function, &str)],
    budget: bool,
) -> Deployed {
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
        if budget {
            // The subscription's request budget, shared through the config table by every
            // function (generous here: the budget is counted, not waited for). Off where AWS
            // faults are injected: its calls would be theirs too, and those tests count Pendo
            // calls against the local runner's, which has none.
            e.push(("PENDO_REQUESTS_PER_SECOND".into(), "50".into()));
        }
        if let Some((_, points)) = stalls.iter().find(|(g, _)| *g == f) {
            e.push(("PENDO_SYNC_STALL_AT".into(), points.to_string()));
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
            // A container killed mid-invocation fails the whole batch: its messages come back
            // when their visibility timeout ends (at once, here).
            let r = match consumer
                .invoke_or_killed(&event, Duration::from_secs(120))
                .await
            {
                Some(Outcome::Response(r)) => r,
                Some(Outcome::Error(e)) => panic!("{} answered an error: {e}", consumer.name),
                None => {
                    end_leases(aws, gate).await;
                    json!({"batchItemFailures": msgs.iter()
                        .map(|m| json!({"itemIdentifier": m.message_id})).collect::<Vec<_>>()})
                }
            };
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

/// What the time between a crash and its redelivery does: SQS redelivers a killed
/// container's batch after the queue's visibility timeout (90 minutes in the template), by when
/// the holds its deliveries took have ended (a chunk's lease, 15 minutes; a run's planning
/// hold, 30). The event source makes the messages visible at once, and this ends those holds
/// (the binaries' clocks cannot be moved): every chunk's `leasedUntil` and every run's
/// `planUntil` on the config table set in the past (a Scan: the test's own look).
async fn end_leases(aws: &Aws, gate: &IamGate) {
    let page = aws
        .dynamo
        .scan()
        .table_name(&gate.tables.config)
        .send()
        .await
        .unwrap();
    assert!(
        page.last_evaluated_key.is_none(),
        "one page of config items"
    );
    for item in page.items.unwrap_or_default() {
        for name in ["leasedUntil", "planUntil"] {
            let held = item
                .get(name)
                .and_then(|v| v.as_s().ok())
                .is_some_and(|v| !v.is_empty());
            if !held {
                continue;
            }
            aws.dynamo
                .update_item()
                .table_name(&gate.tables.config)
                .key("pk", item["pk"].clone())
                .key("sk", item["sk"].clone())
                .update_expression("SET #n = :past")
                .expression_attribute_names("#n", name)
                .expression_attribute_values(
                    ":past",
                    aws_sdk_dynamodb::types::AttributeValue::S(
                        "2000-01-01T00:00:00.000000Z".into(),
                    ),
                )
                .send()
                .await
                .unwrap();
        }
    }
}

/// The values of an export, with mapping ids (random per stack) out of the way.
fn values(rows: Vec<ExportRow>) -> Vec<ExportRow> {
    let mut v: Vec<ExportRow> = rows.into_iter().filter(|r| r.record == "value").collect();
    v.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_four_binaries_run_an_operators_day_as_lambda_runs_them() {
    // The functions share Pendo calls (their default); the local runner calls once per chunk:
    // the two company Feature mappings' chunks share a call on AWS only, and the values must
    // still be equal.
    let mut day = Day::start(&[], true, true).await;
    let feature = day.local.feature(-323232);
    let other = day
        .sim
        .subscription()
        .features
        .iter()
        .map(|f| f.id.clone())
        .find(|f| *f != feature)
        .unwrap();
    let page = day.sim.subscription().pages[0].id.clone();
    let track = day.local.track_type(-323232);
    day.set_up_with(&[
        json!({"source": {"kind": "feature", "featureId": feature}, "target": "company", "metricName": "Clicks"}),
        json!({"source": {"kind": "feature", "featureId": other}, "target": "company", "metricName": "Other clicks"}),
        json!({"source": {"kind": "page", "pageId": page}, "target": "company", "metricName": "Views"}),
        json!({"source": {"kind": "feature", "featureId": feature}, "target": "endUser", "metricName": "Uses", "autoCreateUsers": true}),
        json!({"source": {"kind": "report", "reportId": "rpt-account-30d",
            "columns": [{"field": "numEvents", "metric": "Events 30d"}]}, "target": "company", "metricName": "Events 30d"}),
        // The usage signals of issue 30: a track type, a guide, an NPS poll and a number-scale
        // poll.
        json!({"source": {"kind": "track", "trackTypeId": track}, "target": "company", "metricName": "Exports"}),
        json!({"source": {"kind": "guide", "guideId": "guide-welcome-tour", "completedMetric": "Tour completed"},
            "target": "endUser", "metricName": "Tour seen", "autoCreateUsers": true}),
        json!({"source": {"kind": "poll", "guideId": "guide-nps-survey", "pollId": "poll-nps-rating",
            "windowDays": 30, "responsesMetric": "NPS responses"}, "target": "company", "metricName": "NPS"}),
        json!({"source": {"kind": "poll", "guideId": "guide-satisfaction", "pollId": "poll-satisfaction",
            "meanMetric": "Satisfaction"}, "target": "company", "metricName": "Satisfaction answers"}),
    ])
    .await;
    // Re-sync all (queued by the API, planned by resync, fetched by fetch), then the daily run
    // (the EventBridge event to the scheduler, then the planning and the chunks).
    let resync_deliveries = day.resync().await;
    let daily_deliveries = day.daily().await;
    // Every run finished, every chunk done; nothing dead-lettered; no call denied; the values
    // equal the local runner's (same simulator, same day, same configuration).
    day.assert_as_local(2).await;
    let (aws, gate, store, t, sim) = (&day.aws, &day.gate, &day.store, &day.t, &day.sim);
    let d = &mut day.d;
    for run in store.list_runs(t, 10).await.unwrap() {
        assert!(run.planned && run.queued, "{run:?}");
        // The two company Feature mappings' chunks of each window shared a call (as stored
        // in DynamoDB's chunk items).
        let shared = run.chunks.iter().filter(|c| c.share.is_some()).count();
        assert_eq!(shared, 2, "{:?}", run.chunks);
    }
    let got = values(store.export(Some(t)).await.unwrap());
    eprintln!(
        "real binaries: Re-sync all {resync_deliveries} deliveries, daily run {daily_deliveries}; \
         {} values; logs in {}",
        got.len(),
        d.fetch.log.parent().unwrap().display()
    );

    // The rest of the operator's day, so that every path of each function runs under its
    // policy: reads, an end user added by hand, Sync now, a rebuild, an import from Pendo, a
    // mapping deleted.
    let (s, listed) = api(d, "GET", "/v1/mappings", None).await;
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
        let (s, b) = api(d, "GET", &path, None).await;
        assert_eq!(s, 200, "{path}: {b}");
    }
    let user = json!({"items": [{"externalId": "by-hand-1", "companyId": company,
        "email": "by.hand@example.com", "name": "By"}]});
    let (s, b) = api(d, "PUT", "/v1/directory/end-users", Some(user)).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = api(d, "GET", "/v1/directory/end-users", None).await;
    assert_eq!(s, 200, "{b}");
    for action in ["sync", "rebuild"] {
        let path = format!("/v1/mappings/{}/{action}", ids["Clicks"]);
        let (s, b) = api(d, "POST", &path, None).await;
        assert!(s == 200 || s == 202, "{path}: {s} {b}");
        event_source(aws, gate, d).await;
    }
    let (s, b) = api(d, "POST", "/v1/imports", Some(json!({}))).await;
    assert!(s == 200 || s == 202, "{s} {b}");
    event_source(aws, gate, d).await;
    let (s, b) = api(d, "GET", "/v1/imports", None).await;
    assert_eq!((s, b[0]["state"].as_str()), (200, Some("finished")), "{b}");
    let path = format!("/v1/mappings/{}", ids["Views"]);
    let (s, b) = api(d, "DELETE", &path, None).await;
    assert!(s == 200 || s == 204, "{s} {b}");
    let runs = store.list_runs(t, 10).await.unwrap();
    assert_eq!(runs.len(), 4, "{runs:?}");
    assert!(runs
        .iter()
        .all(|r| r.chunks.iter().all(|c| c.status == ChunkStatus::Done)));
    gate.assert_no_denials();
    // Every call of every function to Pendo took its token from the one budget item of the
    // subscription and settled it: two conditional writes per call, none lost.
    let calls: u64 = sim.control().counters().values().sum();
    let budgets = aws
        .dynamo
        .scan()
        .table_name(&gate.tables.config)
        .filter_expression("begins_with(pk, :b)")
        .expression_attribute_values(
            ":b",
            aws_sdk_dynamodb::types::AttributeValue::S("BUDGET#".into()),
        )
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    let versions: Vec<u64> = budgets
        .iter()
        .map(|i| i["version"].as_n().unwrap().parse().unwrap())
        .collect();
    assert_eq!(versions, vec![2 * calls], "{calls} Pendo calls");
}

/// What the fault and crash scenarios run on: the simulator at today (the binaries' clocks),
/// the local runner beside it, moto behind the IAM gate with the template's queues and their
/// dead-letter queues, and the four binaries deployed (some stalling: [`deploy`]).
struct Day {
    local: Stack,
    sim: pendo_sim::Simulator,
    _running: pendo_sim::RunningSim,
    aws: Aws,
    gate: IamGate,
    dlqs: [String; 2],
    d: Deployed,
    store: DynamoStore,
    t: TenantId,
}

impl Day {
    /// `budget`: the functions share a request budget; `local_alone`: the local runner makes
    /// one call per chunk (the functions share calls, `PENDO_SHARED_CALL_MAPPINGS` unset), so
    /// that its export is the per-mapping one the shared calls must equal.
    async fn start(stalls: &[(Function, &str)], budget: bool, local_alone: bool) -> Day {
        let mut config = sim_config();
        config.now = chrono::Utc::now();
        let options = StackOptions {
            max_shared: local_alone.then_some(1),
            ..Default::default()
        };
        let local = Stack::build(config.clone(), options).await;
        let sim = pendo_sim::Simulator::new(config);
        let running = sim.spawn("127.0.0.1:0").await.unwrap();
        let aws = Aws::connect().await;
        let (fetch_url, fetch_dlq) = queue_with_dlq(&aws, "fetch", 5).await;
        let (resync_url, resync_dlq) = queue_with_dlq(&aws, "resync", 5).await;
        let gate = IamGate::for_queues(&aws, &fetch_url, &resync_url).await;
        let logs = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/it-lambda")
            .join(&aws.prefix);
        let d = deploy(&gate, &running.base_url(), &logs, stalls, budget).await;
        let store = DynamoStore::new(aws.dynamo.clone(), gate.tables.clone());
        Day {
            local,
            sim,
            _running: running,
            aws,
            gate,
            dlqs: [fetch_dlq, resync_dlq],
            d,
            store,
            t: TenantId::parse(TENANT).unwrap(),
        }
    }

    /// The operator's setup through the configurator binary, and the same on the local runner:
    /// connection, settings, the companies, a company Feature, an end-user Feature that
    /// creates users (the company chunks wait for them: each run has a release) and a saved
    /// report.
    async fn set_up(&mut self) {
        let feature = self.local.feature(-323232);
        self.set_up_with(&[
            json!({"source": {"kind": "feature", "featureId": feature}, "target": "company", "metricName": "Clicks"}),
            json!({"source": {"kind": "feature", "featureId": feature}, "target": "endUser", "metricName": "Uses", "autoCreateUsers": true}),
            json!({"source": {"kind": "report", "reportId": "rpt-account-30d",
                "columns": [{"field": "numEvents", "metric": "Events 30d"}]}, "target": "company", "metricName": "Events 30d"}),
        ])
        .await;
    }

    /// [`Self::set_up`] with these mappings (as `POST /v1/mappings` takes them).
    async fn set_up_with(&mut self, mappings: &[Value]) {
        let d = &mut self.d;
        let (s, b) = api(
            d,
            "PUT",
            "/v1/integration/connection",
            Some(json!({"key": KEY, "domain": "app.pendo.io"})),
        )
        .await;
        assert_eq!(s, 200, "{b}");
        let settings = json!({"daysToSync": 7, "autoDetectEndUsers": true,
            "fieldMappings": {"email": "metadata.agent.email"}});
        let (s, b) = api(d, "PATCH", "/v1/integration/settings", Some(settings)).await;
        assert_eq!(s, 200, "{b}");
        let companies: Vec<Value> = self
            .sim
            .subscription()
            .accounts
            .iter()
            .map(|a| json!({"externalId": a.id}))
            .collect();
        let body = Some(json!({ "items": companies }));
        let (s, b) = api(d, "PUT", "/v1/directory/companies", body).await;
        assert_eq!(s, 200, "{b}");
        for m in mappings {
            let (s, b) = api(d, "POST", "/v1/mappings", Some(m.clone())).await;
            assert_eq!(s, 201, "{m}: {b}");
        }
        let local = &self.local;
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
        for m in mappings {
            let input = serde_json::from_value(m.clone()).unwrap();
            local
                .app
                .create_mapping(&local.tenant, &input)
                .await
                .unwrap();
        }
    }

    /// A Re-sync all through the API and the event source; the same on the local runner.
    async fn resync(&mut self) -> usize {
        let (s, b) = api(&mut self.d, "POST", "/v1/resync", None).await;
        assert!(s == 200 || s == 202, "{s} {b}");
        self.local.resync().await;
        event_source(&self.aws, &self.gate, &mut self.d).await
    }

    /// The daily run (the scheduler's event); the same on the local runner.
    async fn daily(&mut self) -> usize {
        let schedule: Value = serde_json::from_str(SCHEDULE).unwrap();
        let out = self
            .d
            .scheduler
            .call(&schedule, Duration::from_secs(300))
            .await;
        assert_eq!(out["tenants"], 1, "{out}");
        self.local.app.run_schedule().await.unwrap();
        self.local.drain().await;
        event_source(&self.aws, &self.gate, &mut self.d).await
    }

    /// Every run finished with every chunk done, nothing dead-lettered, no call denied, and
    /// the values, the activity and the end users equal the local runner's.
    async fn assert_as_local(&self, runs: usize) {
        let listed = self.store.list_runs(&self.t, 10).await.unwrap();
        assert_eq!(listed.len(), runs, "{listed:?}");
        for run in &listed {
            assert!(
                run.chunks.iter().all(|c| c.status == ChunkStatus::Done),
                "{:?}",
                run.chunks
            );
        }
        for dlq in &self.dlqs {
            let left = self
                .aws
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
        self.gate.assert_no_denials();
        let local = &self.local;
        let want = local.app.export(Some(&local.tenant)).await.unwrap();
        let got = self.store.export(Some(&self.t)).await.unwrap();
        assert!(!want.is_empty());
        assert_eq!(values(got.clone()), values(want.clone()));
        let activity = |rows: &[ExportRow]| rows.iter().filter(|r| r.record != "value").count();
        assert_eq!(activity(&got), activity(&want), "activity records");
        let people = |users: Vec<EndUser>| -> Vec<(String, Option<String>, Option<String>)> {
            let mut v: Vec<_> = users
                .into_iter()
                .map(|u| (u.company_id, u.external_id, u.email))
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            people(self.store.list_end_users(&self.t).await.unwrap()),
            people(local.store.list_end_users(&local.tenant).await.unwrap())
        );
    }
}

/// The scenario: the four real binaries through a Re-sync all, an end-user import and
/// a daily run while about 1 % of the workers' DynamoDB calls fail beyond the SDK's retries,
/// 5 % of batch writes are partial, 2 % of conditional and transactional writes lose their
/// answer after applying, 2 % of transactions meet a conflict and 2 % of SQS sends answer 500.
/// Every run and the import finish by themselves, nothing is dead-lettered, and the values, the
/// end users, the import's counts and the Pendo calls are the fault-free local runner's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_four_binaries_survive_aws_faults_through_a_resync_an_import_and_a_daily_run() {
    use crate::fault_proxy::{Fault, Pick, Rule, Service, BEYOND_SDK};
    let mut day = Day::start(&[], false, false).await;
    day.set_up().await;
    // The workers' calls meet AWS's faults from now on.
    let workers = [Function::Fetch, Function::Resync, Function::Scheduler];
    let dynamo = |op: &'static str, fault, per_mille| {
        Rule::new(Service::DynamoDb, op, fault, Pick::PerMille(per_mille)).only(&workers)
    };
    day.gate.set_faults(vec![
        Rule::any(Service::DynamoDb, Fault::Throughput, Pick::PerMille(10))
            .attempts(BEYOND_SDK)
            .only(&workers),
        dynamo("BatchWriteItem", Fault::Partial, 50),
        dynamo("UpdateItem", Fault::LostAnswer, 20),
        dynamo("PutItem", Fault::LostAnswer, 20),
        dynamo("TransactWriteItems", Fault::LostAnswer, 20),
        dynamo("TransactWriteItems", Fault::Conflict, 20),
        Rule::any(Service::Sqs, Fault::Internal, Pick::PerMille(20)).only(&workers),
    ]);
    day.sim.control().reset_requests();
    day.local.sim.control().reset_requests();
    let mut deliveries = day.resync().await;
    let import = json!({"companies": false, "endUsers": true, "pageRows": 20});
    let (s, b) = api(&mut day.d, "POST", "/v1/imports", Some(import.clone())).await;
    assert!(s == 200 || s == 202, "{s} {b}");
    deliveries += event_source(&day.aws, &day.gate, &mut day.d).await;
    let request = serde_json::from_value(import).unwrap();
    let t = day.local.tenant.clone();
    day.local.app.start_import(&t, &request).await.unwrap();
    day.local.drain().await;
    deliveries += day.daily().await;
    let local = &day.local;
    let injected = day.gate.injected();
    day.gate.set_faults(Vec::new());

    day.assert_as_local(2).await;
    let imports = day.store.list_imports(&day.t, 5).await.unwrap();
    let local_import = &local.store.list_imports(&local.tenant, 5).await.unwrap()[0];
    assert_eq!(imports[0].state, ImportState::Finished, "{imports:?}");
    assert_eq!(imports[0].end_users, local_import.end_users);
    assert_eq!(imports[0].pages, local_import.pages);
    // The chunks' aggregation calls are the local runner's exactly. A run's planning lists the
    // features and the reports once; a planning invocation that meets a fault beyond the SDK's
    // retries after its lists fails and is redelivered (SQS), and lists again: at most one
    // extra list per run planned here (the Re-sync all and the daily run) at these fault rates.
    let (aws_calls, local_calls) = (day.sim.control().counters(), local.sim.control().counters());
    let calls =
        |c: &std::collections::BTreeMap<String, u64>, path: &str| c.get(path).copied().unwrap_or(0);
    let paths: std::collections::BTreeSet<&String> =
        aws_calls.keys().chain(local_calls.keys()).collect();
    for path in paths {
        let (aws, local) = (calls(&aws_calls, path), calls(&local_calls, path));
        if path == "/api/v1/aggregation" {
            assert_eq!(aws, local, "Pendo aggregation calls");
        } else {
            assert!(
                (local..=local + 2).contains(&aws),
                "{path}: {aws} calls, the local runner's {local} (+ at most one per run planned)"
            );
        }
    }
    let met = |fault: Fault| -> u32 {
        injected
            .iter()
            .filter(|((_, f), _)| *f == fault)
            .map(|(_, n)| n)
            .sum()
    };
    for fault in [Fault::Throughput, Fault::Partial, Fault::LostAnswer] {
        assert!(met(fault) > 0, "{fault:?} never met: {injected:?}");
    }
    eprintln!("real binaries under AWS faults: {deliveries} deliveries; faults met: {injected:?}");
}

/// Lambda stops a container mid-invocation (its process killed, not an error returned) at each
/// point where the workers write: fetch during a chunk's replace (items written, manifests
/// not rewritten), between the replace and the outcome, and between claiming the release of
/// the deferred chunks and sending them; resync between planning a Re-sync all and sending
/// its chunks, and in the middle of the purge of the older generation. Each time the batch's
/// messages come back after their visibility timeout to a new container. Two Re-sync alls and
/// a daily run later, every run is done, nothing is dead-lettered, the older generation is
/// purged whole, and the values, activity and end users are the local runner's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_functions_killed_mid_invocation_at_each_write_resume_on_redelivery() {
    let fetch_points = ["replace-items-written", "chunk-replaced", "release-claimed"];
    let resync_points = ["resync-fan-out", "purge-items-deleted"];
    let (f, r) = (fetch_points.join(","), resync_points.join(","));
    let mut day = Day::start(
        &[(Function::Fetch, &f), (Function::Resync, &r)],
        false,
        false,
    )
    .await;
    day.set_up().await;
    day.resync().await;
    day.resync().await;
    day.daily().await;
    assert_eq!(day.d.fetch.killed_at, fetch_points);
    assert_eq!(day.d.resync.killed_at, resync_points);
    day.assert_as_local(3).await;
    let generation = day
        .store
        .get_integration(&day.t)
        .await
        .unwrap()
        .unwrap()
        .generation;
    let (items, manifests) = crate::aws_local::data_generations(&day.aws, &day.t).await;
    assert!(items.iter().all(|g| *g == generation), "{items:?}");
    assert!(manifests.iter().all(|g| *g == generation), "{manifests:?}");
}
