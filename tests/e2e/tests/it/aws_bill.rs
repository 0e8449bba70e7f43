//! `make bench`'s figure 10 (issue 31): what one tenant costs on AWS, measured through the
//! handlers against moto. An ignored test (`make test` skips it; `tests/bench/run.py` runs it)
//! that prints one line `BENCH_AWS_BILL {json}`:
//!
//! - a tenant of the simulator's small preset (20 companies, the identified visitors with an
//!   account as end users) with `BENCH_BILL_MAPPINGS` mappings (default 5: Features on
//!   companies with a minutes metric, Pages on end users, alternating), `BENCH_BILL_DAYS` days
//!   to sync (default 90);
//! - a Re-sync all, planned by the configurator and drained through the resync and fetch
//!   handlers, then `BENCH_BILL_STEADY` days (default 3) of the daily schedule: the clock moves
//!   a day, the scheduler handler runs, the queues drain through the handlers;
//! - for each: DynamoDB write and read units and calls and the functions' SQS requests, read
//!   off the wire at the IAM gate (`bill.rs`), the event source's SQS requests (one receive
//!   and one delete per batch, as this test does them), Lambda invocations and their wall
//!   time per function, Pendo calls and rows; then the tables' storage, from a scan.
//!
//! The dollars are `run.py`'s (one price table); this test measures.

use crate::aws_local::{aws_stack_with, sqs_event, Aws, AwsStack};
use crate::bill::Bill;
use crate::iam_gate::Function;
use pendo_sync::lambda::{handle_fetch_batch, handle_resync_batch, handle_schedule, BatchConfig};
use pendo_sync::queue::sqs::SqsQueue;
use pendo_sync::store::prelude::*;
use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

fn env_num(name: &str, default: i64) -> i64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Lambda's side of a phase: invocations and wall seconds per function, the event source's
/// SQS requests.
#[derive(Debug, Default)]
struct Invocations {
    by_function: BTreeMap<&'static str, (u64, f64)>,
    event_source_sqs_requests: u64,
}

impl Invocations {
    fn add(&mut self, f: Function, wall: f64) {
        let e = self.by_function.entry(f.name()).or_default();
        e.0 += 1;
        e.1 += wall;
    }
}

/// Drains both queues through the handlers, as the event source mappings would (batches of
/// 5 and 10, the template's), timing each invocation.
async fn drain(aws: &Aws, s: &AwsStack, q: &SqsQueue, inv: &mut Invocations) {
    let config = BatchConfig::default();
    for _ in 0..2_000 {
        let mut idle = true;
        for (url, resync) in [(q.resync_url(), true), (q.fetch_url(), false)] {
            let msgs = aws.receive(url).await;
            inv.event_source_sqs_requests += 1;
            if msgs.is_empty() {
                continue;
            }
            idle = false;
            let started = Instant::now();
            let r = if resync {
                handle_resync_batch(&s.resync, config, sqs_event(&msgs)).await
            } else {
                handle_fetch_batch(&s.fetch, config, sqs_event(&msgs)).await
            }
            .unwrap();
            let f = if resync {
                Function::Resync
            } else {
                Function::Fetch
            };
            inv.add(f, started.elapsed().as_secs_f64());
            let failed: HashSet<String> = r
                .batch_item_failures
                .iter()
                .map(|f| f.item_identifier.clone())
                .collect();
            assert!(failed.is_empty(), "a chunk failed: {failed:?}");
            for m in &msgs {
                aws.delete(url, m).await;
            }
            // The event source deletes a batch's messages in one DeleteMessageBatch.
            inv.event_source_sqs_requests += 1;
        }
        if idle {
            return;
        }
    }
    panic!("the queues did not drain");
}

/// Every function's bill at the gate, together.
fn bills(s: &AwsStack) -> Bill {
    let mut all = Bill::default();
    for (f, b) in s.gate.bills() {
        if f != Function::Configurator {
            all.add(&b);
        }
    }
    all
}

/// Each function's directory read units so far.
fn directory_by_function(s: &AwsStack) -> BTreeMap<&'static str, f64> {
    s.gate
        .bills()
        .into_iter()
        .map(|(f, b)| (f.name(), b.directory_read_units))
        .collect()
}

/// The tables' storage as DynamoDB bills it: each item's size plus 100 bytes, and each index
/// entry again (both indexes project every attribute); and the largest item.
async fn storage(aws: &Aws, s: &AwsStack) -> serde_json::Value {
    use pendo_sync::store::dynamo::capacity::item_size;
    let mut out = serde_json::Map::new();
    let tables = &s.gate.tables;
    for (name, table, index) in [
        ("config", &tables.config, ("gpk", "gsk")),
        ("data", &tables.data, ("cpk", "csk")),
    ] {
        let (mut bytes, mut items, mut largest) = (0usize, 0u64, 0usize);
        let mut start = None;
        loop {
            let page = aws
                .dynamo
                .scan()
                .table_name(table)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .unwrap();
            for i in page.items() {
                let size = item_size(i);
                largest = largest.max(size);
                items += 1;
                bytes += size + 100;
                if i.contains_key(index.0) && i.contains_key(index.1) {
                    bytes += size + 100;
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        out.insert(
            name.into(),
            serde_json::json!({"items": items, "bytes": bytes, "largest_item_bytes": largest}),
        );
    }
    serde_json::Value::Object(out)
}

/// The simulator's aggregation calls so far.
fn pendo(s: &AwsStack) -> u64 {
    s.sim.control().calls("/api/v1/aggregation")
}

fn phase(
    bill: Bill,
    inv: Invocations,
    (calls, rows): (u64, u64),
    extra: serde_json::Value,
) -> serde_json::Value {
    let mut v = serde_json::json!({
        "write_units": bill.write_units,
        "read_units": bill.read_units,
        "directory_read_units": bill.directory_read_units,
        "write_units_by_kind": bill.write_units_by_kind,
        "read_units_by_kind": bill.read_units_by_kind,
        "dynamodb_calls": bill.dynamodb_calls,
        "functions_sqs_requests": bill.sqs_requests,
        "event_source_sqs_requests": inv.event_source_sqs_requests,
        "lambda": inv.by_function.iter().map(|(f, (n, wall))| {
            (f.to_string(), serde_json::json!({"invocations": n, "wall_s": wall}))
        }).collect::<serde_json::Map<_, _>>(),
        "pendo_calls": calls,
        "pendo_rows": rows,
        "calls_by_action": bill.by_action,
    });
    if let (Some(o), serde_json::Value::Object(e)) = (v.as_object_mut(), extra) {
        o.extend(e);
    }
    v
}

#[tokio::test]
#[ignore = "a benchmark: make bench"]
async fn bench_a_tenants_aws_bill() {
    use pendo_sync::app::SettingsUpdate;
    use pendo_sync::domain::{EndUserInput, MappingInput, MappingKind, Target};
    let mappings = env_num("BENCH_BILL_MAPPINGS", 5) as usize;
    let days = env_num("BENCH_BILL_DAYS", 90);
    let steady = env_num("BENCH_BILL_STEADY", 3);
    let base = crate::helpers::sim_config().now;
    let mut config = pendo_sim::SimConfig::small();
    config.keys = crate::helpers::sim_config().keys;
    // The simulator's history reaches the last steady day; the functions' clock starts
    // `steady` days before it.
    config.now = base + chrono::Duration::days(steady);
    let aws = Aws::connect().await;
    let (s, queue) = aws_stack_with(&aws, config).await;
    s.clock.set(base);
    let settings = SettingsUpdate {
        days_to_sync: Some(days),
        timezone: Some("America/New_York".into()),
        ..Default::default()
    };
    s.app.update_settings(&s.tenant, &settings).await.unwrap();
    let sub = s.sim.subscription();
    let companies = crate::helpers::every_company(&s.sim);
    s.store
        .upsert_objects(&s.tenant, Target::Company, &companies)
        .await
        .unwrap();
    let mut end_users = 0;
    for v in sub.visitors.iter().filter(|v| !v.anonymous) {
        let Some(account) = v.account.and_then(|a| sub.accounts.get(a)) else {
            continue;
        };
        let input = EndUserInput {
            company_id: account.id.clone(),
            external_id: Some(v.id.clone()),
            email: None,
            name: None,
            surname: None,
        };
        s.store.upsert_end_user(&s.tenant, &input).await.unwrap();
        end_users += 1;
    }
    let app_id = sub.apps[0].id;
    let features = sub.popular_features(app_id);
    let pages = sub.popular_pages(app_id);
    for i in 0..mappings {
        let (source, target) = if i % 2 == 0 {
            let source = MappingKind::Feature {
                feature_id: features[i / 2].clone(),
                minutes_metric: Some(format!("Minutes {i}")),
            };
            (source, Target::Company)
        } else {
            let source = MappingKind::Page {
                page_id: pages[i / 2].clone(),
                minutes_metric: None,
            };
            (source, Target::EndUser)
        };
        let input = MappingInput::new(source, target, &format!("Metric {i}"));
        s.app.create_mapping(&s.tenant, &input).await.unwrap();
    }

    // The Re-sync all.
    let (before, pendo_before) = (bills(&s), pendo(&s));
    let mut inv = Invocations::default();
    let run_id = s.app.resync_all(&s.tenant).await.unwrap();
    drain(&aws, &s, &queue, &mut inv).await;
    let run = s.app.run(&s.tenant, &run_id).await.unwrap();
    let totals = run.totals();
    let resync = phase(
        bills(&s).minus(&before),
        inv,
        (pendo(&s) - pendo_before, totals.rows_read),
        serde_json::json!({
            "chunks": run.chunks.len(),
            "values_written": totals.values_written,
            "activities_written": totals.activities_written,
        }),
    );
    let storage_after_resync = storage(&aws, &s).await;

    // Steady days of the daily schedule.
    let schedule: aws_lambda_events::event::eventbridge::EventBridgeEvent =
        serde_json::from_str(include_str!("../../../fixtures/eventbridge-schedule.json")).unwrap();
    let (before, pendo_before) = (bills(&s), pendo(&s));
    let mut inv = Invocations::default();
    let mut new_day_units = 0.0;
    let (mut values, mut activities, mut rows, mut chunks) = (0, 0, 0, 0);
    let directory_before = directory_by_function(&s);
    for k in 1..=steady {
        s.clock.set(base + chrono::Duration::days(k));
        let started = Instant::now();
        let event = lambda_runtime::LambdaEvent::new(schedule.clone(), Default::default());
        handle_schedule(&s.scheduler, event).await.unwrap();
        inv.add(Function::Scheduler, started.elapsed().as_secs_f64());
        drain(&aws, &s, &queue, &mut inv).await;
        let runs = s.app.runs(&s.tenant, 1).await.unwrap();
        let run = s.app.run(&s.tenant, &runs[0].id).await.unwrap();
        rows += run.totals().rows_read;
        chunks += run.chunks.len();
        let to = run.chunks.iter().map(|c| c.to).max().unwrap();
        // What the new day's values and activity cost alone: a value item 1 unit, an
        // activity record 2 (its item and its index entry); all are under 1 KB.
        let export = s.store.export(Some(&s.tenant)).await.unwrap();
        let new_day = export.iter().filter(|r| r.day == to);
        for r in new_day {
            if r.record == "value" {
                values += 1;
                new_day_units += 1.0;
            } else {
                activities += 1;
                new_day_units += 2.0;
            }
        }
    }
    let per_day = |x: f64| x / steady as f64;
    let mut steady_bill = bills(&s).minus(&before);
    steady_bill.write_units = per_day(steady_bill.write_units);
    steady_bill.read_units = per_day(steady_bill.read_units);
    for u in steady_bill
        .write_units_by_kind
        .values_mut()
        .chain(steady_bill.read_units_by_kind.values_mut())
    {
        *u = per_day(*u);
    }
    let steady_json = phase(
        steady_bill,
        inv,
        (pendo(&s) - pendo_before, rows),
        serde_json::json!({
            "days": steady,
            "chunks": chunks,
            "directory_read_units_by_function": directory_by_function(&s)
                .into_iter()
                .map(|(f, units)| (f, units - directory_before.get(f).copied().unwrap_or(0.0)))
                .collect::<BTreeMap<_, _>>(),
            "per_day": "write and read units (and by kind) are per day; counts are of all the days",
            "new_day_write_units": per_day(new_day_units),
            "new_day_values": values as f64 / steady as f64,
            "new_day_activities": activities as f64 / steady as f64,
        }),
    );
    let out = serde_json::json!({
        "preset": "small",
        "mappings": mappings,
        "days": days,
        "companies": companies.len(),
        "end_users": end_users,
        "resync_all": resync,
        "steady": steady_json,
        "storage_after_resync": storage_after_resync,
        "storage_after_steady": storage(&aws, &s).await,
    });
    s.gate.assert_no_denials();
    println!("BENCH_AWS_BILL {out}");
}
