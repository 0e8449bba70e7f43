//! Track event mappings (`trackEvents` of one track type): the values of a Feature mapping's
//! rules — events (and minutes) per object and local day, multi-app names, a segment, end users
//! created and never overwritten — each against a pipeline run directly on the simulator and
//! summed here; and the shared event calls (one Pendo call per request key and window).

use crate::helpers::*;
use pendo_sync::domain::{MappingKind, Target};
use pendo_sync::store::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

const AGG: &str = "/api/v1/aggregation";

fn track(id: &str, minutes: Option<&str>) -> MappingKind {
    MappingKind::Track {
        track_type_id: id.to_string(),
        minutes_metric: minutes.map(str::to_string),
    }
}

#[tokio::test]
async fn track_events_per_company_and_day_equal_a_direct_pipeline_in_one_call_per_request() {
    let s = Stack::start().await;
    s.ny_days(7).await;
    let companies: BTreeSet<String> = s.add_companies(&[]).await.into_iter().collect();
    let apps = s.sim.subscription().app_ids();
    let web = apps[0];
    s.app
        .upsert_app(&s.tenant, &web.to_string(), "Web")
        .await
        .unwrap();
    let seg = s.sim.subscription().segments[0].clone();
    s.app
        .upsert_segment(&s.tenant, &seg.id, &seg.name)
        .await
        .unwrap();
    let (t0, t2) = (s.track_type(web), s.track_type(apps[1]));
    s.mapping(
        track(&t0, Some("Export minutes")),
        Target::Company,
        "Exports",
        |_| {},
    )
    .await;
    s.mapping(track(&t0, None), Target::Company, "Exports by app", |m| {
        m.multi_app = true
    })
    .await;
    s.mapping(track(&t0, None), Target::Company, "Seg exports", |m| {
        m.segment_id = Some(seg.id.clone())
    })
    .await;
    s.mapping(track(&t2, None), Target::Company, "Pushes opened", |_| {})
        .await;
    let (from, to) = (d("2026-10-29"), d("2026-11-04"));
    let rows0 = s.track_rows(&t0, from, to);
    let rows2 = s.track_rows(&t2, from, to);
    assert!(rows0.iter().all(|r| r["appId"].as_i64() == Some(web)));
    let company = |r: &serde_json::Value| {
        let a = r["accountId"].as_str()?.to_string();
        companies.contains(&a).then_some(a)
    };
    let mut want = BTreeMap::new();
    let mut put = |sums: BTreeMap<(String, chrono::NaiveDate), f64>, metric: &str, app: &str| {
        for ((o, day), v) in sums {
            want.insert((o, metric.to_string(), app.to_string(), day), v);
        }
    };
    put(sum_by(&rows0, NY, "numEvents", company), "Exports", "");
    put(
        sum_by(&rows0, NY, "numMinutes", company),
        "Export minutes",
        "",
    );
    put(
        sum_by(&rows0, NY, "numEvents", company),
        "Web - Exports by app",
        &web.to_string(),
    );
    put(
        sum_by(&rows0, NY, "numEvents", |r| {
            seg.visitors
                .contains(r["visitorId"].as_str()?)
                .then(|| company(r))?
        }),
        "Seg exports",
        "",
    );
    put(
        sum_by(&rows2, NY, "numEvents", company),
        "Pushes opened",
        "",
    );
    let metrics: BTreeSet<&str> = want.keys().map(|k| k.1.as_str()).collect();
    assert_eq!(metrics.len(), 5, "every metric has values: {metrics:?}");

    let c = s.sim.control();
    let (calls, lists) = (c.calls(AGG), c.calls("/api/v1/tracktype"));
    s.resync().await;
    assert_eq!(s.values().await, want);
    // The three mappings without a segment are one shared call (two track types); the segment
    // is a request of its own. The track types are listed once, at the run's planning.
    assert_eq!(c.calls(AGG) - calls, 2);
    assert_eq!(c.calls("/api/v1/tracktype") - lists, 1);
    let run = s.store.list_runs(&s.tenant, 1).await.unwrap().remove(0);
    assert_eq!(run.chunks.len(), 4);
    assert!(run.chunks.iter().all(|c| c.stats.rows_read > 0), "{run:?}");
}

#[tokio::test]
async fn a_track_mapping_creates_the_end_users_it_meets_and_never_overwrites_one() {
    let s = Stack::start().await;
    s.ny_days(7).await;
    s.emails_and_auto_detect().await;
    let companies: BTreeSet<String> = s.add_companies(&[]).await.into_iter().collect();
    let t0 = s.track_type(s.sim.subscription().app_ids()[0]);
    let rows = s.track_rows(&t0, d("2026-10-29"), d("2026-11-04"));
    // Per (visitor, company) of the rows whose company is in the directory.
    let sums = sum_by(&rows, NY, "numEvents", |r| {
        let v = r["visitorId"].as_str().filter(|v| !v.is_empty())?;
        let a = r["accountId"].as_str()?;
        companies
            .contains(a)
            .then(|| (v.to_string(), a.to_string()))
    });
    let pairs: BTreeSet<(String, String)> = sums.keys().map(|(k, _)| k.clone()).collect();
    assert!(pairs.len() >= 3, "{pairs:?}");
    let (v1, a1) = pairs.iter().next().unwrap().clone();
    let kept = s.add_user(&a1, Some(&v1), None, Some("Keep")).await;
    let m = s
        .mapping(track(&t0, None), Target::EndUser, "Exports", |m| {
            m.auto_create_users = true
        })
        .await;
    s.resync().await;

    let by_pair = s.users_by_pair(&pairs, &kept).await;
    let want: BTreeMap<(String, String, String, chrono::NaiveDate), f64> = sums
        .into_iter()
        .map(|((pair, day), v)| {
            (
                (by_pair[&pair].clone(), "Exports".into(), "".into(), day),
                v,
            )
        })
        .collect();
    assert_eq!(s.values().await, want);
    assert_eq!(s.users_created(&m.id).await as usize, pairs.len() - 1);
}
