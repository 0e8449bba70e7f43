#![allow(clippy::expect_used, clippy::panic)]
//! Figure 1 of `make bench`: the hot path on one core. Rows of the grouped `featureEvents`
//! shape, exactly as the simulator serialises them (seed 42, the large preset's accounts and
//! visitors), are scanned out of the response bytes, parsed, resolved against a directory of
//! 50,000 end users and 2,000 companies and aggregated per object and day. The store is not
//! involved. Throughput is rows per second (criterion reports time per iteration; the driver
//! divides).

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use pendo_sync::domain::Window;
use pendo_sync::domain::{DirectoryObject, EndUser, Integration, MappingId, Target, TenantId};
use pendo_sync::pendo::pipelines::{event_request, EventSource};
use pendo_sync::pendo::rows::RowScanner;
use pendo_sync::store::{ChunkRecords, Text};
use pendo_sync::sync::identity::{Directory, IdentityRules};
use pendo_sync::sync::transform::{ChunkAccumulator, TransformSpec};
use std::hint::black_box;

/// Rows per iteration (a 7-day chunk of 3 apps × 14,286 visitors).
const ROWS: u64 = 300_000;
const USERS: usize = 50_000;
const COMPANIES: usize = 2_000;

struct Input {
    body: Vec<u8>,
    dir: Directory,
    spec: TransformSpec,
}

fn input() -> Input {
    let mut config = pendo_sim::SimConfig::large();
    config.visitors = 54_000; // some are anonymous or have no account; 50,000 others remain
    let sim = pendo_sim::Simulator::new(config);
    let sub = sim.subscription();
    let ctx = sim.eval_ctx();
    let tz = Some(sub.timezone);
    let last = sub.last_date;
    let window = Window {
        from: last - chrono::Days::new(6),
        to: last,
    };
    let integration = Integration::new(TenantId::parse("bench").expect("tenant"));
    let feature = &sub.features[0];
    let request = event_request(
        EventSource::Feature,
        &[feature.id.as_str()],
        window,
        tz,
        None,
        &integration.settings.field_mappings,
        "bench",
    );
    let plan = pendo_sim::pipeline::plan_request(&request, sub, &ctx).expect("plan");
    let rows = pendo_sim::pipeline::synthetic::rows(&plan, sub, &ctx, ROWS).expect("grouped query");
    let mut body = format!("{{\"startTime\":{},\"results\":[", plan.start_time).into_bytes();
    let mut n = 0;
    for (i, r) in rows.enumerate() {
        if i > 0 {
            body.push(b',');
        }
        serde_json::to_writer(&mut body, &r).expect("row");
        n += 1;
    }
    body.extend_from_slice(b"]}");
    assert_eq!(n, ROWS, "the synthetic response has every row");
    let companies: Vec<DirectoryObject> = sub
        .accounts
        .iter()
        .take(COMPANIES)
        .map(|a| DirectoryObject {
            external_id: a.id.clone(),
            name: Some(a.name.clone()),
            company_id: None,
        })
        .collect();
    let users: Vec<EndUser> = sub
        .visitors
        .iter()
        .filter(|v| !v.anonymous)
        .filter_map(|v| {
            let company = sub.account_id_of(v)?;
            Some(EndUser {
                id: format!("u-{}", v.id),
                company_id: company.to_string(),
                external_id: Some(v.id.clone()),
                email: v.email.clone(),
                name: v.first_name.clone(),
                surname: v.last_name.clone(),
            })
        })
        .take(USERS)
        .collect();
    assert_eq!((companies.len(), users.len()), (COMPANIES, USERS));
    let dir = Directory::new(companies, Vec::new(), Vec::new(), users);
    let spec = TransformSpec {
        mapping_id: MappingId::parse("bench-mapping").expect("mapping id"),
        target: Target::Company,
        metric: "Feature clicks".into(),
        minutes_metric: Some("Feature minutes".into()),
        multi_app: false,
        passive: false,
        auto_create: false,
        rules: IdentityRules {
            email_mapped: false,
            may_create: false,
        },
        tz,
        window,
        apps: integration.apps.clone(),
    };
    Input { body, dir, spec }
}

/// One chunk: bytes → rows → identities → per-object, per-day values (64 KiB network pieces).
fn transform(input: &Input) -> usize {
    let mut acc = ChunkAccumulator::new(input.spec.clone(), &input.dir);
    let mut scanner = RowScanner::new();
    for piece in input.body.chunks(64 * 1024) {
        scanner.feed_sink(piece, &mut acc).expect("rows");
    }
    assert_eq!(scanner.finish().expect("complete"), ROWS);
    // What a store reads: every value and activity record, built one at a time.
    let prepared = acc.prepare(Vec::new());
    let mut n = 0usize;
    prepared
        .for_each_value(Text::Unslotted, &mut |v, _| {
            n += v.object.id.len();
            Ok(())
        })
        .expect("values");
    prepared
        .for_each_activity(Text::Unslotted, &mut |a, _| {
            n += a.end_user_id.len();
            Ok(())
        })
        .expect("activities");
    n
}

fn scan_only(body: &[u8]) -> u64 {
    let mut scanner = RowScanner::new();
    let mut bytes = 0u64;
    for piece in body.chunks(64 * 1024) {
        scanner
            .feed(piece, |row| {
                bytes += row.len() as u64;
                Ok(())
            })
            .expect("rows");
    }
    scanner.finish().expect("complete") + bytes
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("transform");
    g.throughput(Throughput::Elements(ROWS));
    g.sample_size(10);
    // An iteration is long (a whole response or chunk): 10 equal samples, not criterion's
    // linear 1..10 ramp (55 iterations at least), to keep `make bench` within its budget.
    g.sampling_mode(SamplingMode::Flat);
    let mut input = input();
    g.bench_function("scan_only", |b| {
        b.iter(|| black_box(scan_only(&input.body)))
    });
    for (name, target) in [("company", Target::Company), ("end_user", Target::EndUser)] {
        input.spec.target = target;
        g.bench_function(name, |b| b.iter(|| black_box(transform(&input))));
    }
    g.finish();
}

criterion_group!(transform_benches, benches);
criterion_main!(transform_benches);
