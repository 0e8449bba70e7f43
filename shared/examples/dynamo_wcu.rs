//! Figure 6 of `make bench`: DynamoDB write units per value on the daily path, against the
//! local server at `AWS_ENDPOINT_URL` (moto). One day of one Feature mapping for 2,000
//! companies (two metrics: events and minutes) is written with `replace_chunk` — exactly the
//! store call a daily fetch chunk makes — then the same day again (the next day's re-run of a
//! late chunk), then 1,000 end-user activity records. Prints one JSON line with the adapter's
//! meter: units billed by DynamoDB's rules for the items written, and the units the server
//! reported (moto reports a fixed 1.0 per call, so only the first is a cost), the part of them
//! spent on manifests, and the reads each replace made (GetItem/BatchGetItem on the data table);
//! then the read units of the directory a chunk reads (2,000 companies, 200 end users).
//! `dynamo_wcu --ensure-tables PREFIX` only creates the tables `PREFIX-config`/`PREFIX-data`.

use anyhow::Context;
use chrono::NaiveDate;
use pendo_sync::domain::Window;
use pendo_sync::domain::{
    Activity, ChunkOutcome, ChunkRecord, ChunkStatus, DirectoryObject, EndUserInput, Integration,
    MappingId, MetricValue, ObjectRef, RunId, RunKind, SyncRun, Target, TenantId,
};
use pendo_sync::store::dynamo::{ensure_tables, DynamoStore, DynamoTables};
use pendo_sync::store::prelude::*;

const COMPANIES: usize = 2_000;
const ACTIVITIES: usize = 1_000;
/// End users in the directory a chunk reads (each upsert is a few calls to the local server).
const DIRECTORY_USERS: usize = 200;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    anyhow::ensure!(
        std::env::var("AWS_ENDPOINT_URL").is_ok_and(|u| u.starts_with("http://127.0.0.1")),
        "set AWS_ENDPOINT_URL to the local server (http://127.0.0.1:PORT)"
    );
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    // `--ensure-tables PREFIX`: only create the tables (the cold-start runs need them).
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, prefix] = args.as_slice() {
        anyhow::ensure!(
            flag == "--ensure-tables",
            "usage: dynamo_wcu [--ensure-tables PREFIX]"
        );
        return Ok(ensure_tables(&client, &DynamoTables::with_prefix(prefix)).await?);
    }
    let prefix = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let tables = DynamoTables::with_prefix(&prefix);
    ensure_tables(&client, &tables).await?;
    // The directory on tables of its own: the local server copies a whole table for every
    // transaction (an end user's upsert is one), so it is seeded on small tables, end users
    // first.
    let dir_tables = DynamoTables::with_prefix(&format!("{prefix}-dir"));
    ensure_tables(&client, &dir_tables).await?;
    let dir_store = DynamoStore::new(client.clone(), dir_tables);
    let store = DynamoStore::new(client, tables);
    let t = TenantId::parse("bench")?;
    let integration = Integration::new(t.clone());
    store.put_integration(&integration).await?;
    let g = integration.generation;
    let m = MappingId::parse("bench-feature")?;
    let day = NaiveDate::from_ymd_opt(2026, 11, 19).context("date")?;
    let window = Window { from: day, to: day };
    let values: Vec<MetricValue> = (0..COMPANIES)
        .flat_map(|c| {
            ["Feature clicks", "Feature minutes"].map(|metric| MetricValue {
                object: ObjectRef {
                    kind: Target::Company,
                    id: format!("account-{c:05}"),
                },
                metric: metric.into(),
                app: String::new(),
                day,
                value: (c % 40) as f64 + 1.0,
            })
        })
        .collect();
    let before = store.write_meter();
    store.replace_chunk(&t, g, &m, window, &values, &[]).await?;
    let first = store.write_meter();
    // Every value changed (a look-back day that Pendo revised throughout): each item again.
    let changed: Vec<MetricValue> = values
        .iter()
        .map(|v| MetricValue {
            value: v.value + 1.0,
            ..v.clone()
        })
        .collect();
    store
        .replace_chunk(&t, g, &m, window, &changed, &[])
        .await?;
    let again = store.write_meter();
    // The same again (a look-back day re-fetched unchanged): no write.
    store
        .replace_chunk(&t, g, &m, window, &changed, &[])
        .await?;
    let unchanged = store.write_meter();
    let activities: Vec<Activity> = (0..ACTIVITIES)
        .map(|u| Activity {
            end_user_id: format!("user-{u:06}"),
            company_id: format!("account-{:05}", u % COMPANIES),
            mapping_id: m.clone(),
            label: "Feature clicks".into(),
            day,
            events: 3.0,
            minutes: 1.0,
            passive: false,
        })
        .collect();
    let m2 = MappingId::parse("bench-feature-users")?;
    store
        .replace_chunk(&t, g, &m2, window, &[], &activities)
        .await?;
    let last = store.write_meter();
    // A chunk's bookkeeping (its delivery, outcome and the run's counters) on a run of 10 and
    // on a run of 1,000 chunks: the same units whatever the run's size.
    let mut bookkeeping = Vec::new();
    for size in [10usize, 1_000] {
        let mut run = SyncRun::new(
            t.clone(),
            RunId::parse(&format!("bench-run-{size}"))?,
            RunKind::ResyncAll,
            g,
            chrono::Utc::now(),
        );
        run.planned = true;
        run.chunks = (0..size)
            .map(|_| ChunkRecord::pending(m.clone(), day, day))
            .collect();
        store.put_run(&run).await?;
        let before = store.write_meter();
        let now = chrono::Utc::now();
        for i in 0..10 {
            store
                .begin_chunk(
                    &t,
                    &run.id,
                    i,
                    &format!("d{i}"),
                    now,
                    now + chrono::Duration::minutes(15),
                )
                .await?;
            store
                .finish_chunk(
                    &t,
                    &run.id,
                    i,
                    &ChunkOutcome {
                        status: ChunkStatus::Done,
                        stats: Default::default(),
                        error: None,
                        at: now,
                    },
                )
                .await?;
        }
        let after = store.write_meter();
        bookkeeping.push(serde_json::json!({
            "run_chunks": size,
            "calls_per_chunk": (after.run_calls - before.run_calls) as f64 / 10.0,
            "write_units_per_chunk": (after.run_write_units - before.run_write_units) as f64 / 10.0,
            "read_units_per_chunk": (after.run_read_units - before.run_read_units) / 10.0,
        }));
    }
    // What a chunk reads of the directory when its stamp changed (otherwise it reads the stamp
    // alone): the companies and the end users, here 2,000 and DIRECTORY_USERS.
    let companies: Vec<DirectoryObject> = (0..COMPANIES)
        .map(|c| DirectoryObject {
            external_id: format!("account-{c:05}"),
            name: Some(format!("Account {c}")),
            company_id: None,
        })
        .collect();
    for u in 0..DIRECTORY_USERS {
        dir_store
            .upsert_end_user(
                &t,
                &EndUserInput {
                    company_id: format!("account-{:05}", u % COMPANIES),
                    external_id: Some(format!("visitor-{u:06}")),
                    email: Some(format!("user{u}@example.com")),
                    name: Some("Ann".into()),
                    surname: Some("Example".into()),
                },
            )
            .await?;
    }
    dir_store
        .upsert_objects(&t, Target::Company, &companies)
        .await?;
    let before_dir = dir_store.write_meter();
    let listed = dir_store.list_objects(&t, Target::Company).await?.len();
    let users = dir_store.list_end_users(&t).await?.len();
    let after_dir = dir_store.write_meter();
    anyhow::ensure!(
        (listed, users) == (COMPANIES, DIRECTORY_USERS),
        "the directory read {listed} companies and {users} end users"
    );
    let per = |units: f64, n: usize| units / n as f64;
    println!(
        "{}",
        serde_json::json!({
            "values": values.len(),
            "billed_units_first_write": first.billed_put_units - before.billed_put_units,
            "billed_units_per_value": per((first.billed_put_units - before.billed_put_units) as f64, values.len()),
            "billed_units_per_value_rewrite": per((again.billed_put_units - first.billed_put_units) as f64, values.len()),
            "deletes_on_rewrite": again.deletes - first.deletes,
            "billed_units_unchanged_rewrite": unchanged.billed_put_units - again.billed_put_units,
            "reported_units_first_write": first.reported_units - before.reported_units,
            "batch_calls_first_write": first.batch_calls - before.batch_calls,
            "manifest_units_first_write": first.manifest_units - before.manifest_units,
            "manifest_units_rewrite": again.manifest_units - first.manifest_units,
            "read_calls_per_chunk": again.read_calls - first.read_calls,
            "items_read_per_chunk": again.items_read - first.items_read,
            "read_units_per_chunk": again.read_units - first.read_units,
            "activities": activities.len(),
            "billed_units_per_activity": per((last.billed_put_units - again.billed_put_units) as f64, activities.len()),
            "manifest_units_activities": last.manifest_units - again.manifest_units,
            "run_bookkeeping": bookkeeping,
            "directory_companies": COMPANIES,
            "directory_end_users": DIRECTORY_USERS,
            "directory_read_pages": after_dir.query_pages - before_dir.query_pages,
            "directory_read_units": after_dir.query_units - before_dir.query_units,
        })
    );
    Ok(())
}
