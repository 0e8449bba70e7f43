#![allow(clippy::expect_used, clippy::panic)]
//! Figure 3 of `make bench`: embedded store writes. One iteration is one chunk's atomic
//! `replace_chunk` (one SQLite transaction, prepared statements) of 2,000 companies × 7 days
//! × 2 metrics = 28,000 values, into a file-backed store (WAL, synchronous = NORMAL, as the
//! local runner opens it); each iteration writes the next 7-day window, as a re-sync does.
//! Throughput is values per second. `embedded_replace_chunk_activities` does the same with a
//! chunk of 2,000 end users × 7 days = 14,000 activity records (records per second; not a
//! figure of `make bench`).

use chrono::NaiveDate;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use pendo_sync::domain::{
    Activity, Integration, MappingId, MetricValue, ObjectRef, Target, TenantId,
};
use pendo_sync::store::embedded::EmbeddedStore;
use pendo_sync::store::Store;
use pendo_sync::sync::plan::Window;

const COMPANIES: usize = 2_000;
const DAYS: u64 = 7;
const METRICS: [&str; 2] = ["Feature clicks", "Feature minutes"];
const VALUES: u64 = COMPANIES as u64 * DAYS * METRICS.len() as u64;

fn chunk(from: NaiveDate) -> Vec<MetricValue> {
    let mut out = Vec::with_capacity(VALUES as usize);
    for c in 0..COMPANIES {
        for d in 0..DAYS {
            for (m, metric) in METRICS.iter().enumerate() {
                out.push(MetricValue {
                    object: ObjectRef {
                        kind: Target::Company,
                        id: format!("account-{c:05}"),
                    },
                    metric: (*metric).to_string(),
                    app: String::new(),
                    day: from + chrono::Days::new(d),
                    value: ((c as u64 * 7 + d * 3 + m as u64) % 50) as f64,
                });
            }
        }
    }
    out
}

const END_USERS: usize = 2_000;
const ACTIVITIES: u64 = END_USERS as u64 * DAYS;

fn activities(from: NaiveDate, mapping: &MappingId) -> Vec<Activity> {
    let mut out = Vec::with_capacity(ACTIVITIES as usize);
    for u in 0..END_USERS {
        for d in 0..DAYS {
            out.push(Activity {
                end_user_id: format!("user-{u:05}"),
                company_id: format!("account-{:05}", u / 10),
                mapping_id: mapping.clone(),
                label: METRICS[0].to_string(),
                day: from + chrono::Days::new(d),
                events: ((u as u64 + d) % 20) as f64,
                minutes: ((u as u64 * 3 + d) % 30) as f64,
                passive: u % 2 == 0,
            });
        }
    }
    out
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = EmbeddedStore::open_dir(dir.path()).expect("store");
    let t = TenantId::parse("bench").expect("tenant");
    let integration = Integration::new(t.clone());
    rt.block_on(store.put_integration(&integration))
        .expect("integration");
    let generation = integration.generation;
    let mapping = MappingId::parse("bench-mapping").expect("mapping");
    let start = NaiveDate::from_ymd_opt(2020, 1, 1).expect("date");
    // The value vectors are built outside the timed part: only the store write is measured.
    let template = chunk(start);
    let mut g = c.benchmark_group("store");
    g.throughput(Throughput::Elements(VALUES));
    g.sample_size(10);
    // An iteration is long (a whole response or chunk): 10 equal samples, not criterion's
    // linear 1..10 ramp (55 iterations at least), to keep `make bench` within its budget.
    g.sampling_mode(SamplingMode::Flat);
    let mut n: u64 = 0;
    g.bench_function("embedded_replace_chunk", |b| {
        b.iter_batched(
            || {
                n += 1;
                let shift = chrono::Days::new(n * DAYS);
                let values: Vec<MetricValue> = template
                    .iter()
                    .map(|v| MetricValue {
                        day: v.day + shift,
                        ..v.clone()
                    })
                    .collect();
                let window = Window {
                    from: start + shift,
                    to: start + shift + chrono::Days::new(DAYS - 1),
                };
                (values, window)
            },
            |(values, window)| {
                rt.block_on(store.replace_chunk(&t, generation, &mapping, window, &values, &[]))
                    .expect("replace chunk")
            },
            criterion::BatchSize::PerIteration,
        )
    });
    let activity_mapping = MappingId::parse("bench-activity").expect("mapping");
    let template = activities(start, &activity_mapping);
    g.throughput(Throughput::Elements(ACTIVITIES));
    let mut n: u64 = 0;
    g.bench_function("embedded_replace_chunk_activities", |b| {
        b.iter_batched(
            || {
                n += 1;
                let shift = chrono::Days::new(n * DAYS);
                let records: Vec<Activity> = template
                    .iter()
                    .map(|a| Activity {
                        day: a.day + shift,
                        ..a.clone()
                    })
                    .collect();
                let window = Window {
                    from: start + shift,
                    to: start + shift + chrono::Days::new(DAYS - 1),
                };
                (records, window)
            },
            |(records, window)| {
                rt.block_on(store.replace_chunk(
                    &t,
                    generation,
                    &activity_mapping,
                    window,
                    &[],
                    &records,
                ))
                .expect("replace chunk")
            },
            criterion::BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(store_benches, benches);
criterion_main!(store_benches);
