#![allow(clippy::expect_used, clippy::panic)]
//! Figure 3 of `make bench`: what a chunk does to the embedded store. The store (a file, WAL,
//! opened as the local runner opens it) first holds 90 days of four mappings: two Feature
//! mappings to 2,000 companies (an events and a minutes metric each) and two Page mappings to
//! 4,000 end users, every mapping with its activity records (4,000 end users a day). One
//! iteration is then one chunk's `replace_chunk_from`: one mapping's 7 days somewhere inside
//! those 90, whose values and activity records replace what the mapping wrote there (the
//! deletes find every record of the window), in one transaction, committed. Throughput is
//! records (values + activity records) per second.

use chrono::NaiveDate;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use pendo_sync::domain::Window;
use pendo_sync::domain::{
    Activity, Integration, MappingId, MetricValue, ObjectRef, Target, TenantId,
};
use pendo_sync::store::embedded::EmbeddedStore;
use pendo_sync::store::{prelude::*, RecordSlices};

const COMPANIES: usize = 2_000;
const END_USERS: usize = 4_000;
const DAYS: u64 = 90;
const CHUNK_DAYS: u64 = 7;

/// One of the store's mappings.
struct Shape {
    id: MappingId,
    target: Target,
    metrics: Vec<String>,
}

fn shapes() -> Vec<Shape> {
    (0..4)
        .map(|i| {
            let company = i % 2 == 0;
            let metric = format!("Bench metric {i}");
            Shape {
                id: MappingId::parse(&format!("bench-{i}")).expect("mapping id"),
                target: if company {
                    Target::Company
                } else {
                    Target::EndUser
                },
                metrics: if company {
                    vec![metric.clone(), format!("{metric} minutes")]
                } else {
                    vec![metric]
                },
            }
        })
        .collect()
}

fn user(u: usize) -> String {
    format!("user-{u:06}")
}

fn company(c: usize) -> String {
    format!("account-{c:05}")
}

/// The values and activity records of one chunk of `shape` from `from` (`salt` varies them).
fn chunk(shape: &Shape, from: NaiveDate, salt: u64) -> (Vec<MetricValue>, Vec<Activity>) {
    let objects = match shape.target {
        Target::Company => COMPANIES,
        _ => END_USERS,
    };
    let mut values = Vec::new();
    let mut activity = Vec::new();
    for d in 0..CHUNK_DAYS {
        let day = from + chrono::Days::new(d);
        for (m, metric) in shape.metrics.iter().enumerate() {
            for o in 0..objects {
                values.push(MetricValue {
                    object: ObjectRef {
                        kind: shape.target,
                        id: if shape.target == Target::Company {
                            company(o)
                        } else {
                            user(o)
                        },
                    },
                    metric: metric.clone(),
                    app: String::new(),
                    day,
                    value: ((o as u64 * 7 + d * 3 + m as u64 + salt) % 50) as f64,
                });
            }
        }
        for u in 0..END_USERS {
            activity.push(Activity {
                end_user_id: user(u),
                company_id: company(u % COMPANIES),
                mapping_id: shape.id.clone(),
                label: shape.metrics[0].clone(),
                day,
                events: ((u as u64 + d + salt) % 20) as f64,
                minutes: ((u as u64 * 3 + d) % 30) as f64,
                passive: false,
            });
        }
    }
    (values, activity)
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
    let start = NaiveDate::from_ymd_opt(2020, 1, 1).expect("date");
    let shapes = shapes();
    let window = |i: u64| Window {
        from: start + chrono::Days::new(i * CHUNK_DAYS),
        to: start + chrono::Days::new(i * CHUNK_DAYS + CHUNK_DAYS - 1),
    };
    // 90 days (13 chunks, the last one 6 days past the 90th) of every mapping.
    let chunks = DAYS.div_ceil(CHUNK_DAYS);
    for i in 0..chunks {
        for shape in &shapes {
            let (values, activities) = chunk(shape, window(i).from, 0);
            rt.block_on(store.replace_chunk(
                &t,
                generation,
                &shape.id,
                window(i),
                &values,
                &activities,
            ))
            .expect("setup chunk");
        }
    }
    let mut g = c.benchmark_group("store");
    g.sample_size(10);
    // An iteration is long (a whole chunk): 10 equal samples, not criterion's linear 1..10
    // ramp (55 iterations at least), to keep `make bench` within its budget.
    g.sampling_mode(SamplingMode::Flat);
    // The chunks replaced, in turn: every mapping, windows inside the 90 days.
    let mut n: u64 = 0;
    let records = |shape: &Shape| {
        let (v, a) = chunk(shape, start, 0);
        (v.len() + a.len()) as u64
    };
    // Company and end-user chunks alternate; the figure is their mean.
    let per_pair = records(&shapes[0]) + records(&shapes[1]);
    g.throughput(Throughput::Elements(per_pair));
    g.bench_function("embedded_replace_chunk", |b| {
        b.iter_batched(
            || {
                n += 1;
                let i = 1 + n % (chunks - 2);
                let salt = n;
                let pair = [0, 1].map(|k| {
                    let shape = &shapes[((n * 2 + k) % shapes.len() as u64) as usize];
                    (shape.id.clone(), chunk(shape, window(i).from, salt))
                });
                (window(i), pair)
            },
            |(window, pair)| {
                for (mapping, (values, activities)) in &pair {
                    let records = RecordSlices { values, activities };
                    rt.block_on(
                        store.replace_chunk_from(&t, generation, mapping, window, &records),
                    )
                    .expect("replace chunk");
                }
            },
            criterion::BatchSize::PerIteration,
        )
    });
    g.finish();
    println!("store/embedded_replace_chunk records per iteration: {per_pair}");
}

criterion_group!(store_benches, benches);
criterion_main!(store_benches);
