//! Multi-app naming: one metric per apps-table row, `unknown` for unmapped apps, no prefix for
//! an empty one; and segments.

use crate::helpers::*;
use pendo_sync::domain::{MappingKind, Target};
use std::collections::BTreeMap;

#[tokio::test]
async fn multi_app_metrics_are_named_per_app_with_unknown_and_empty_prefixes() {
    let s = Stack::start().await;
    s.ny_days(7).await;
    let companies = s.add_companies(&[]).await;
    let apps = s.sim.subscription().app_ids();
    assert!(apps.len() >= 3);
    s.app
        .upsert_app(&s.tenant, &apps[0].to_string(), "Web")
        .await
        .unwrap();
    s.app
        .upsert_app(&s.tenant, &apps[1].to_string(), "")
        .await
        .unwrap();
    // apps[2] is not in the table: it goes to `unknown`.
    s.app
        .upsert_app(&s.tenant, "unknown", "Other Apps")
        .await
        .unwrap();
    // One mapping per app's most popular feature; its rows may still come from any app.
    let mut want = BTreeMap::new();
    let (from, to) = (d("2026-10-29"), d("2026-11-04"));
    for (i, app) in apps.iter().enumerate().take(3) {
        let f = s.feature(*app);
        s.mapping(
            MappingKind::Feature {
                feature_id: f.clone(),
                minutes_metric: None,
            },
            Target::Company,
            &format!("Clicks{i}"),
            |m| m.multi_app = true,
        )
        .await;
        let rows = s.feature_rows(&f, from, to, NY, vec![]);
        for ((key, day), v) in sum_by(&rows, NY, "numEvents", |r| {
            let a = r["accountId"].as_str()?.to_string();
            companies
                .contains(&a)
                .then(|| (a, r["appId"].as_i64().unwrap()))
        }) {
            let (acc, app_id) = key;
            let (row, metric) = match app_id {
                x if x == apps[0] => (x.to_string(), format!("Web - Clicks{i}")),
                x if x == apps[1] => (x.to_string(), format!("Clicks{i}")),
                _ => ("unknown".to_string(), format!("Other Apps - Clicks{i}")),
            };
            *want.entry((acc, metric, row, day)).or_insert(0.0) += v;
        }
    }
    s.resync().await;
    let got = s.values().await;
    assert_eq!(got, want);
    let names: std::collections::BTreeSet<&str> = got.keys().map(|k| k.1.as_str()).collect();
    assert!(names.contains("Web - Clicks0"), "{names:?}");
    assert!(names.contains("Clicks1"), "{names:?}");
    assert!(names.contains("Other Apps - Clicks2"), "{names:?}");
}

#[tokio::test]
async fn a_segment_limits_values_to_its_members() {
    let s = Stack::start().await;
    s.ny_days(7).await;
    let companies = s.add_companies(&[]).await;
    let seg = s.sim.subscription().segments[0].clone();
    s.app
        .upsert_segment(&s.tenant, &seg.id, &seg.name)
        .await
        .unwrap();
    let f = s.feature(-323232);
    s.mapping(
        MappingKind::Feature {
            feature_id: f.clone(),
            minutes_metric: None,
        },
        Target::Company,
        "Seg clicks",
        |m| m.segment_id = Some(seg.id.clone()),
    )
    .await;
    s.resync().await;
    // Expected from the raw rows, filtered by the segment's member visitors (not by its stage).
    let rows = s.feature_rows(&f, d("2026-10-29"), d("2026-11-04"), NY, vec![]);
    let want = sum_by(&rows, NY, "numEvents", |r| {
        let v = r["visitorId"].as_str()?;
        let a = r["accountId"].as_str()?.to_string();
        (seg.visitors.contains(v) && companies.contains(&a)).then_some(a)
    });
    let got: BTreeMap<_, _> = s
        .values()
        .await
        .into_iter()
        .map(|((o, _, _, day), v)| ((o, day), v))
        .collect();
    assert!(!want.is_empty());
    assert_eq!(got, want);
    let all = sum_by(&rows, NY, "numEvents", |r| {
        r["accountId"].as_str().map(str::to_string)
    });
    assert!(all.len() > want.len(), "the segment must exclude someone");
}
