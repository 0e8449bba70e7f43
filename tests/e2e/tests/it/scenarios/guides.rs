//! Guide mappings (`guideEvents` of one guide): per object and local day, the times the guide
//! was seen and, optionally, its steps advanced, its dismissals and its completions (its last
//! step seen); multi-app names, a segment, end users created and never overwritten, and an
//! activity record of each day an end user saw it. Each value is checked against the raw
//! guide events of a pipeline run directly on the simulator and counted here; and the cost:
//! one Pendo call per mapping and day, the guides listed once per run.

use crate::helpers::*;
use pendo_sync::domain::{MappingKind, Target};
use pendo_sync::store::prelude::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

const AGG: &str = "/api/v1/aggregation";
const GUIDES: &str = "/api/v1/guide";

fn guide(
    id: &str,
    advanced: Option<&str>,
    dismissed: Option<&str>,
    completed: Option<&str>,
) -> MappingKind {
    MappingKind::Guide {
        guide_id: id.to_string(),
        advanced_metric: advanced.map(str::to_string),
        dismissed_metric: dismissed.map(str::to_string),
        completed_metric: completed.map(str::to_string),
    }
}

/// Counts raw guide events by (key, local day of `browserTime` in New York), for the rows
/// `keep` says (the type rule written here, apart from the product's).
fn count_by<K: Ord>(
    rows: &[Value],
    keep: impl Fn(&Value) -> bool,
    key: impl Fn(&Value) -> Option<K>,
) -> BTreeMap<(K, chrono::NaiveDate), f64> {
    let mut out = BTreeMap::new();
    for r in rows.iter().filter(|r| keep(r)) {
        let Some(k) = key(r) else { continue };
        let day = local_day(r["browserTime"].as_i64().unwrap(), NY);
        *out.entry((k, day)).or_insert(0.0) += 1.0;
    }
    out
}

fn of_type(t: &'static str) -> impl Fn(&Value) -> bool {
    move |r| r["type"] == t
}

#[tokio::test]
async fn guide_events_per_company_and_day_equal_the_raw_events_in_one_call_per_day() {
    let s = Stack::start().await;
    s.ny_days(7).await;
    let companies: BTreeSet<String> = s.add_companies(&[]).await.into_iter().collect();
    let apps = s.sim.subscription().app_ids();
    let (web, mobile) = (apps[0], apps[1]);
    s.app
        .upsert_app(&s.tenant, &mobile.to_string(), "Mobile")
        .await
        .unwrap();
    let seg = s.sim.subscription().segments[0].clone();
    s.app
        .upsert_segment(&s.tenant, &seg.id, &seg.name)
        .await
        .unwrap();
    let tour = s.guide(web, true);
    let tips = s.guide(mobile, false);
    let last = tour.steps.last().unwrap().clone();
    s.mapping(
        guide(
            &tour.id,
            Some("Tour steps"),
            Some("Tour dismissed"),
            Some("Tour completed"),
        ),
        Target::Company,
        "Tour seen",
        |_| {},
    )
    .await;
    s.mapping(
        guide(&tips.id, None, None, None),
        Target::Company,
        "Tips seen",
        |m| m.multi_app = true,
    )
    .await;
    s.mapping(
        guide(&tour.id, None, None, None),
        Target::Company,
        "Seg tour seen",
        |m| m.segment_id = Some(seg.id.clone()),
    )
    .await;
    let (from, to) = (d("2026-10-29"), d("2026-11-04"));
    let tour_rows = s.guide_rows(&tour.id, from, to);
    let tip_rows = s.guide_rows(&tips.id, from, to);
    assert!(tip_rows.iter().all(|r| r["appId"].as_i64() == Some(mobile)));
    let company = |r: &Value| {
        let a = r["accountId"].as_str()?.to_string();
        companies.contains(&a).then_some(a)
    };
    let mut want = BTreeMap::new();
    let mut put = |counts: BTreeMap<(String, chrono::NaiveDate), f64>, metric: &str, app: &str| {
        for ((o, day), v) in counts {
            want.insert((o, metric.to_string(), app.to_string(), day), v);
        }
    };
    put(
        count_by(&tour_rows, of_type("guideSeen"), company),
        "Tour seen",
        "",
    );
    put(
        count_by(&tour_rows, of_type("guideAdvanced"), company),
        "Tour steps",
        "",
    );
    put(
        count_by(&tour_rows, of_type("guideDismissed"), company),
        "Tour dismissed",
        "",
    );
    put(
        count_by(
            &tour_rows,
            |r| r["type"] == "guideSeen" && r["guideStepId"] == last.as_str(),
            company,
        ),
        "Tour completed",
        "",
    );
    put(
        count_by(&tip_rows, of_type("guideSeen"), company),
        "Mobile - Tips seen",
        &mobile.to_string(),
    );
    put(
        count_by(&tour_rows, of_type("guideSeen"), |r| {
            seg.visitors
                .contains(r["visitorId"].as_str()?)
                .then(|| company(r))?
        }),
        "Seg tour seen",
        "",
    );
    let metrics: BTreeSet<&str> = want.keys().map(|k| k.1.as_str()).collect();
    assert_eq!(metrics.len(), 6, "every metric has values: {metrics:?}");

    let c = s.sim.control();
    let (calls, lists) = (c.calls(AGG), c.calls(GUIDES));
    s.resync().await;
    assert_eq!(s.values().await, want);
    // One call per mapping and day; the guides are listed once, at the run's planning.
    assert_eq!(c.calls(AGG) - calls, 3 * 7);
    assert_eq!(c.calls(GUIDES) - lists, 1);
    let run = s.store.list_runs(&s.tenant, 1).await.unwrap().remove(0);
    assert_eq!(run.chunks.len(), 3 * 7);
}

#[tokio::test]
async fn a_guide_mapping_creates_the_end_users_it_meets_and_records_their_days_with_the_guide() {
    let s = Stack::start().await;
    s.ny_days(7).await;
    s.emails_and_auto_detect().await;
    let companies: BTreeSet<String> = s.add_companies(&[]).await.into_iter().collect();
    let tour = s.guide(s.sim.subscription().app_ids()[0], true);
    let rows = s.guide_rows(&tour.id, d("2026-10-29"), d("2026-11-04"));
    let pair = |r: &Value| {
        let v = r["visitorId"].as_str().filter(|v| !v.is_empty())?;
        let a = r["accountId"].as_str()?;
        companies
            .contains(a)
            .then(|| (v.to_string(), a.to_string()))
    };
    // Every (visitor, company) met, whatever its events; the sights per pair and day.
    let pairs: BTreeSet<(String, String)> = rows.iter().filter_map(pair).collect();
    let seen = count_by(&rows, of_type("guideSeen"), pair);
    assert!(pairs.len() >= 3, "{pairs:?}");
    let (v1, a1) = pairs.iter().next().unwrap().clone();
    let kept = s.add_user(&a1, Some(&v1), None, Some("Keep")).await;
    let m = s
        .mapping(
            guide(&tour.id, None, None, None),
            Target::EndUser,
            "Tour seen",
            |m| m.auto_create_users = true,
        )
        .await;
    s.resync().await;

    let by_pair = s.users_by_pair(&pairs, &kept).await;
    let want: BTreeMap<(String, String, String, chrono::NaiveDate), f64> = seen
        .iter()
        .map(|((pair, day), v)| {
            (
                (by_pair[pair].clone(), "Tour seen".into(), "".into(), *day),
                *v,
            )
        })
        .collect();
    assert_eq!(s.values().await, want);
    // An activity record per end user and day with the guide seen: its sights.
    let activity: BTreeMap<(String, chrono::NaiveDate), f64> = s
        .export()
        .await
        .into_iter()
        .filter(|r| r.record == "activity" && r.metric == m.id.as_str())
        .map(|r| ((r.object_id, r.day), r.value))
        .collect();
    let want_activity: BTreeMap<(String, chrono::NaiveDate), f64> = seen
        .iter()
        .map(|((pair, day), v)| ((by_pair[pair].clone(), *day), *v))
        .collect();
    assert_eq!(activity, want_activity);
    assert_eq!(s.users_created(&m.id).await as usize, pairs.len() - 1);
}
