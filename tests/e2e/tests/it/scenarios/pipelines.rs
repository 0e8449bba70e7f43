//! Per-day pipeline mappings (custom aggregations, reports, PES): exact values per local day,
//! computed independently by running the pipelines on the simulator directly, and the
//! validation refusals.

use crate::helpers::*;
use chrono::{Duration, NaiveDate, TimeZone};
use pendo_sync::app::AppError;
use pendo_sync::domain::mapping::PesComponent;
use pendo_sync::domain::mapping::{FieldMetric, MappingInput};
use pendo_sync::domain::{MappingKind, Target};
use pendo_sync::store::prelude::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Local noon of `day` in New York, computed here (not with the product's code).
fn ny_noon(day: NaiveDate) -> i64 {
    NY.from_local_datetime(&day.and_hms_opt(12, 0, 0).unwrap())
        .earliest()
        .unwrap()
        .timestamp_millis()
}

fn days(from: NaiveDate, to: NaiveDate) -> Vec<NaiveDate> {
    let mut out = vec![];
    let mut d = from;
    while d <= to {
        out.push(d);
        d += Duration::days(1);
    }
    out
}

/// Runs `stages` on the simulator with the source's timeSeries replaced by `ts`.
fn run(s: &Stack, stages: &Value, ts: Value) -> Vec<Value> {
    let mut p = stages.clone();
    p[0]["source"]["timeSeries"] = ts;
    s.sim
        .run_aggregation(&json!({"request": {"pipeline": p}}))
        .unwrap()
}

/// The setup guide's metric1/metric2 pipeline, on all events of all apps.
fn guide() -> Value {
    json!([
        {"source": {"events": {"appId": "expandAppIds(\"*\")"},
            "timeSeries": {"first": "now()", "count": 1, "period": "dayRange"}}},
        {"bulkExpand": {"account": {"account": "accountId"}}},
        {"group": {"group": ["visitorId"], "fields": {"numEvents": {"sum": "numEvents"},
            "numMinutes": {"sum": "numMinutes"}, "accountId": {"first": "accountId"}, "visitorId": {"first": "visitorId"},
            "appId": {"first": "appId"}}}},
        {"select": {"accountId": "accountId", "metric1": "numEvents", "metric2": "numMinutes",
            "appId": "appId", "visitorId": "visitorId"}}
    ])
}

fn fields(pairs: &[(&str, &str)]) -> Vec<FieldMetric> {
    pairs
        .iter()
        .map(|(f, m)| FieldMetric {
            field: (*f).into(),
            metric: (*m).into(),
        })
        .collect()
}

fn agg(pipeline: Value, f: &[(&str, &str)]) -> MappingKind {
    MappingKind::Aggregation {
        pipeline,
        fields: fields(f),
    }
}

fn num(v: &Value) -> f64 {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0.0)
}

#[tokio::test]
async fn the_guide_aggregation_feeds_companies_per_day() {
    let s = Stack::start().await;
    s.ny_days(7).await;
    let companies = s.add_companies(&[]).await;
    s.mapping(
        agg(
            json!({"request": {"pipeline": guide()}}),
            &[("metric1", "Daily events"), ("metric2", "Daily minutes")],
        ),
        Target::Company,
        "Guide",
        |_| {},
    )
    .await;
    s.resync().await;
    let mut want = BTreeMap::new();
    for day in days(d("2026-10-29"), d("2026-11-04")) {
        let rows = run(
            &s,
            &guide(),
            json!({"period": "dayRange", "first": ny_noon(day), "count": 1}),
        );
        for r in rows {
            let Some(a) = r["accountId"].as_str() else {
                continue;
            };
            if companies.iter().any(|c| c == a) {
                // Two fields: each metric is "{mapping name} - {field's metric}".
                for (col, metric) in [
                    ("metric1", "Guide - Daily events"),
                    ("metric2", "Guide - Daily minutes"),
                ] {
                    *want
                        .entry((a.to_string(), metric.to_string(), String::new(), day))
                        .or_insert(0.0) += num(&r[col]);
                }
            }
        }
    }
    assert!(want.len() > 20, "{}", want.len());
    assert_eq!(s.values().await, want);
}

#[tokio::test]
async fn an_aggregation_per_visitor_feeds_end_users_and_splits_per_app() {
    let s = Stack::start().await;
    s.ny_days(3).await;
    s.add_companies(&[]).await;
    let apps = s.sim.subscription().app_ids();
    s.app
        .upsert_app(&s.tenant, &apps[0].to_string(), "Web")
        .await
        .unwrap();
    s.app
        .upsert_app(&s.tenant, "unknown", "Other")
        .await
        .unwrap();
    // End users for the first identified visitors of the subscription.
    let sub = s.sim.subscription();
    let mut users = BTreeMap::new();
    for v in sub.visitors.iter().filter(|v| !v.anonymous).take(40) {
        let Some(a) = v.account else { continue };
        let acct = sub.accounts[a].id.clone();
        let u = s.add_user(&acct, Some(&v.id), None, None).await;
        users.insert(v.id.clone(), u.id);
    }
    let per_app = json!([
        {"source": {"events": {"appId": "expandAppIds(\"*\")"},
            "timeSeries": {"first": "now()", "count": -7, "period": "dayRange"}}},
        {"group": {"group": ["visitorId", "appId"], "fields": [
            {"accountId": {"first": "accountId"}}, {"n": {"sum": "numEvents"}},
            {"m": {"sum": "numMinutes"}}]}}
    ]);
    s.mapping(
        agg(per_app.clone(), &[("n", "Events"), ("m", "Minutes")]),
        Target::EndUser,
        "Usage",
        |m| m.multi_app = true,
    )
    .await;
    s.resync().await;
    let mut want = BTreeMap::new();
    for day in days(d("2026-11-02"), d("2026-11-04")) {
        let rows = run(
            &s,
            &per_app,
            json!({"period": "dayRange", "first": ny_noon(day), "count": 1}),
        );
        for r in rows {
            let Some(u) = r["visitorId"].as_str().and_then(|v| users.get(v)) else {
                continue;
            };
            let app = r["appId"].as_i64().unwrap();
            let (row, prefix) = if app == apps[0] {
                (app.to_string(), "Web - ")
            } else {
                ("unknown".to_string(), "Other - ")
            };
            for (col, metric) in [("n", "Usage - Events"), ("m", "Usage - Minutes")] {
                *want
                    .entry((u.clone(), format!("{prefix}{metric}"), row.clone(), day))
                    .or_insert(0.0) += num(&r[col]);
            }
        }
    }
    let got = s.values().await;
    assert!(got.keys().any(|k| k.2 == "unknown"), "no other-app values");
    assert!(got.keys().any(|k| k.2 == apps[0].to_string()));
    assert_eq!(got, want);
}

#[tokio::test]
async fn an_aggregation_creates_missing_end_users_of_known_companies_once() {
    let s = Stack::start().await;
    s.ny_days(3).await;
    s.settings(pendo_sync::app::SettingsUpdate {
        auto_detect_end_users: Some(true),
        ..Default::default()
    })
    .await;
    let sub = s.sim.subscription();
    let skipped = sub.accounts[0].id.clone();
    let companies = s.add_companies(&[skipped.as_str()]).await;
    let per_visitor = json!([
        {"source": {"events": {"appId": "expandAppIds(\"*\")"},
            "timeSeries": {"first": "now()", "count": -7, "period": "dayRange"}}},
        {"group": {"group": ["visitorId"], "fields": [
            {"accountId": {"first": "accountId"}}, {"n": {"sum": "numEvents"}}]}}
    ]);
    let m = s
        .mapping(
            agg(per_visitor.clone(), &[("n", "Events")]),
            Target::EndUser,
            "Events",
            |m| m.auto_create_users = true,
        )
        .await;
    s.resync().await;
    // Expected: one user per visitor seen on any of the three days whose account is in the
    // directory; its value per day is the day's sum.
    let mut want_users = BTreeMap::new();
    let mut want_values = BTreeMap::new();
    for day in days(d("2026-11-02"), d("2026-11-04")) {
        let rows = run(
            &s,
            &per_visitor,
            json!({"period": "dayRange", "first": ny_noon(day), "count": 1}),
        );
        for r in rows {
            let (Some(v), Some(a)) = (r["visitorId"].as_str(), r["accountId"].as_str()) else {
                continue;
            };
            if !companies.iter().any(|c| c == a) {
                continue;
            }
            want_users.insert(v.to_string(), a.to_string());
            *want_values.entry((v.to_string(), day)).or_insert(0.0) += num(&r["n"]);
        }
    }
    assert!(want_users.len() > 10, "{}", want_users.len());
    let users = s.store.list_end_users(&s.tenant).await.unwrap();
    let got_users: BTreeMap<String, String> = users
        .iter()
        .map(|u| (u.external_id.clone().unwrap(), u.company_id.clone()))
        .collect();
    assert_eq!(got_users, want_users);
    assert!(!got_users.values().any(|a| *a == skipped));
    let by_id: BTreeMap<&str, &str> = users
        .iter()
        .map(|u| (u.id.as_str(), u.external_id.as_deref().unwrap()))
        .collect();
    let got_values: BTreeMap<(String, NaiveDate), f64> = s
        .values()
        .await
        .into_iter()
        .map(|((id, _, _, day), v)| ((by_id[id.as_str()].to_string(), day), v))
        .collect();
    assert_eq!(got_values, want_values);
    // A second full sync finds them all: nobody is created twice.
    s.resync().await;
    let runs = s.store.list_runs(&s.tenant, 10).await.unwrap();
    let created: Vec<u64> = runs
        .iter()
        .map(|r| {
            r.chunks
                .iter()
                .filter(|c| c.mapping_id == m.id)
                .map(|c| c.stats.users_created)
                .sum()
        })
        .collect();
    let mut sorted = created.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, vec![0, want_users.len() as u64], "{created:?}");
    assert_eq!(
        s.store.list_end_users(&s.tenant).await.unwrap().len(),
        want_users.len()
    );
}

async fn refused(s: &Stack, source: MappingKind, target: Target) -> (String, String) {
    let input = MappingInput {
        source,
        target,
        metric_name: "X".into(),
        passive: false,
        multi_app: false,
        auto_create_users: false,
        segment_id: None,
        enabled: true,
    };
    match s.app.create_mapping(&s.tenant, &input).await {
        Err(AppError::Validation(e)) => (e.field, e.reason),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[tokio::test]
async fn aggregation_pipelines_are_refused_for_each_rule() {
    let s = Stack::start().await;
    let ok = [("metric1", "M1")];
    let f = |p: Value| agg(p, &ok);
    let (field, _) = refused(&s, f(json!("not a pipeline")), Target::Company).await;
    assert_eq!(field, "source.pipeline");
    let (field, _) = refused(&s, f(json!({"request": {}})), Target::Company).await;
    assert_eq!(field, "source.pipeline");
    let mut p = guide();
    p[0]["source"].as_object_mut().unwrap().remove("timeSeries");
    let (field, reason) = refused(&s, f(p), Target::Company).await;
    assert_eq!(field, "source.pipeline[0].source.timeSeries");
    assert!(reason.contains("timeSeries"), "{reason}");
    let mut p = guide();
    p[3]["select"].as_object_mut().unwrap().remove("accountId");
    let (field, reason) = refused(&s, f(p), Target::Company).await;
    assert_eq!(field, "source.pipeline[3].select");
    assert!(reason.contains("accountId"), "{reason}");
    let mut p = guide();
    p[3]["select"].as_object_mut().unwrap().remove("visitorId");
    let (field, reason) = refused(&s, f(p), Target::EndUser).await;
    assert_eq!(field, "source.pipeline[3].select");
    assert!(reason.contains("visitorId"), "{reason}");
    let (field, _) = refused(&s, agg(guide(), &[("nope", "M")]), Target::Company).await;
    assert_eq!(field, "source.fields[0].field");
    let (field, reason) = refused(&s, agg(guide(), &[("appId", "M")]), Target::Company).await;
    assert_eq!(field, "source.fields[0].field");
    assert!(reason.contains("numeric"), "{reason}");
    let (field, _) = refused(&s, agg(guide(), &[]), Target::Company).await;
    assert_eq!(field, "source.fields");
    let no_output = json!([{"source": {"events": null,
        "timeSeries": {"first": "now()", "count": 1, "period": "dayRange"}}}]);
    let (field, _) = refused(&s, f(no_output), Target::Company).await;
    assert_eq!(field, "source.pipeline");
}

/// Local midnight of `day` in New York.
fn ny_midnight(day: NaiveDate) -> i64 {
    NY.from_local_datetime(&day.and_hms_opt(0, 0, 0).unwrap())
        .earliest()
        .unwrap()
        .timestamp_millis()
}

/// A saved report's rows for the `n` local days ending on `day`, run with an absolute
/// `first`/`last` window (not the product's negative-count anchoring).
fn report_rows(s: &Stack, id: &str, n: i64, day: NaiveDate) -> Vec<Value> {
    let report = s
        .sim
        .subscription()
        .reports
        .iter()
        .find(|r| r["id"] == id)
        .unwrap()
        .clone();
    let ts = json!({"period": "dayRange",
        "first": ny_midnight(day - Duration::days(n - 1)),
        "last": ny_midnight(day + Duration::days(1))});
    run(s, &report["aggregation"]["pipeline"], ts)
}

fn report(id: &str, cols: &[(&str, &str)]) -> MappingKind {
    MappingKind::Report {
        report_id: id.into(),
        columns: fields(cols),
    }
}

#[tokio::test]
async fn a_30_day_account_report_gives_each_day_its_trailing_window() {
    let s = Stack::start().await;
    s.ny_days(3).await;
    let companies = s.add_companies(&[]).await;
    let cols = [("numEvents", "Events 30d"), ("numVisitors", "Visitors 30d")];
    s.mapping(
        report("rpt-account-30d", &cols),
        Target::Company,
        "Account",
        |_| {},
    )
    .await;
    s.resync().await;
    let mut want = BTreeMap::new();
    for day in days(d("2026-11-02"), d("2026-11-04")) {
        for r in report_rows(&s, "rpt-account-30d", 30, day) {
            let a = r["accountId"].as_str().unwrap().to_string();
            if !companies.contains(&a) {
                continue;
            }
            for (col, metric) in cols {
                want.insert(
                    (a.clone(), format!("Account - {metric}"), String::new(), day),
                    num(&r[col]),
                );
            }
        }
    }
    let got = s.values().await;
    assert!(want.len() > 30, "{}", want.len());
    assert_eq!(got, want);
    // The window really slides: some account's 30-day total differs between two days.
    let on = |c: &String, day: &str| {
        got.get(&(
            c.clone(),
            "Account - Events 30d".into(),
            String::new(),
            d(day),
        ))
        .copied()
    };
    assert!(companies
        .iter()
        .any(|c| on(c, "2026-11-02") != on(c, "2026-11-04")));
}

#[tokio::test]
async fn a_7_day_visitor_report_feeds_end_users_and_companies() {
    let s = Stack::start().await;
    s.ny_days(3).await;
    let companies = s.add_companies(&[]).await;
    let sub = s.sim.subscription();
    let mut users = BTreeMap::new();
    let mut account_of = BTreeMap::new();
    for v in sub.visitors.iter().filter(|v| !v.anonymous).take(60) {
        let Some(a) = v.account else { continue };
        let acct = sub.accounts[a].id.clone();
        let u = s.add_user(&acct, Some(&v.id), None, None).await;
        users.insert(v.id.clone(), u.id);
        account_of.insert(v.id.clone(), acct);
    }
    let cols = [("numEvents", "Events 7d"), ("daysActive", "Days active 7d")];
    s.mapping(
        report("rpt-visitor-7d", &cols),
        Target::EndUser,
        "Visitor",
        |_| {},
    )
    .await;
    s.mapping(
        // One column: stored under the mapping's name.
        report("rpt-visitor-7d", &[("numMinutes", "Minutes")]),
        Target::Company,
        "Minutes 7d",
        |_| {},
    )
    .await;
    s.resync().await;
    let mut want = BTreeMap::new();
    for day in days(d("2026-11-02"), d("2026-11-04")) {
        for r in report_rows(&s, "rpt-visitor-7d", 7, day) {
            let v = r["visitorId"].as_str().unwrap();
            if let Some(u) = users.get(v) {
                for (col, metric) in cols {
                    want.insert(
                        (u.clone(), format!("Visitor - {metric}"), String::new(), day),
                        num(&r[col]),
                    );
                }
            }
            // Companies: the visitor's account (from the simulator's data model).
            let acct = sub
                .visitor(v)
                .and_then(|x| x.account)
                .map(|a| sub.accounts[a].id.clone());
            if let Some(a) = acct.filter(|a| companies.contains(a)) {
                *want
                    .entry((a, "Minutes 7d".to_string(), String::new(), day))
                    .or_insert(0.0) += num(&r["numMinutes"]);
            }
        }
    }
    let got = s.values().await;
    assert!(got.keys().any(|k| k.1 == "Visitor - Events 7d"));
    assert!(got.keys().any(|k| k.1 == "Minutes 7d"));
    assert_eq!(got, want);
}

#[tokio::test]
async fn a_report_with_app_rows_splits_per_app_when_multi_app() {
    let s = Stack::start().await;
    s.ny_days(2).await;
    let companies = s.add_companies(&[]).await;
    let apps = s.sim.subscription().app_ids();
    s.app
        .upsert_app(&s.tenant, &apps[0].to_string(), "Web")
        .await
        .unwrap();
    s.app
        .upsert_app(&s.tenant, &apps[1].to_string(), "")
        .await
        .unwrap();
    s.app
        .upsert_app(&s.tenant, "unknown", "Other")
        .await
        .unwrap();
    s.mapping(
        report("rpt-account-apps-14d", &[("numEvents", "Events 14d")]),
        Target::Company,
        "Events 14d",
        |m| m.multi_app = true,
    )
    .await;
    s.resync().await;
    let mut want = BTreeMap::new();
    for day in days(d("2026-11-03"), d("2026-11-04")) {
        for r in report_rows(&s, "rpt-account-apps-14d", 14, day) {
            let a = r["accountId"].as_str().unwrap().to_string();
            if !companies.contains(&a) {
                continue;
            }
            let app = r["appId"].as_i64().unwrap();
            // Apps table: Web (prefixed), the second app with an empty prefix, the rest in
            // the permanent `unknown` row.
            let (row, metric) = if app == apps[0] {
                (app.to_string(), "Web - Events 14d".to_string())
            } else if app == apps[1] {
                (app.to_string(), "Events 14d".to_string())
            } else {
                ("unknown".to_string(), "Other - Events 14d".to_string())
            };
            *want.entry((a, metric, row, day)).or_insert(0.0) += num(&r["numEvents"]);
        }
    }
    let got = s.values().await;
    for row in [
        apps[0].to_string(),
        apps[1].to_string(),
        "unknown".to_string(),
    ] {
        assert!(
            got.keys().any(|k| k.2 == row),
            "no values for app row {row}"
        );
    }
    assert_eq!(got, want);
}

#[tokio::test]
async fn reports_are_refused_unless_compatible_with_numeric_columns() {
    let s = Stack::start().await;
    for (id, col, field) in [
        ("rpt-account-fixed", "numEvents", "source.reportId"),
        ("rpt-visitor-contacts", "visitorId", "source.reportId"),
        ("no-such-report", "numEvents", "source.reportId"),
        (
            "rpt-account-30d",
            "account_agent_name",
            "source.columns[0].field",
        ),
        ("rpt-account-30d", "nope", "source.columns[0].field"),
    ] {
        let (f, reason) = refused(&s, report(id, &[(col, "M")]), Target::Company).await;
        assert_eq!(f, field, "{id} {col}: {reason}");
    }
    let (f, _) = refused(&s, report("rpt-account-30d", &[]), Target::Company).await;
    assert_eq!(f, "source.columns");
    // An account-level report cannot resolve end users.
    let (f, reason) = refused(
        &s,
        report("rpt-account-30d", &[("numEvents", "M")]),
        Target::EndUser,
    )
    .await;
    assert_eq!(f, "source.reportId");
    assert!(reason.contains("visitorId"), "{reason}");
}

#[tokio::test]
async fn pes_components_per_day_over_a_trailing_30_day_window() {
    let s = Stack::start().await;
    s.ny_days(3).await;
    let companies = s.add_companies(&[]).await;
    let app = s.sim.subscription().app_ids()[0];
    s.mapping(
        MappingKind::Pes {
            app_id: app,
            components: vec![
                PesComponent::Score,
                PesComponent::Adoption,
                PesComponent::Stickiness,
                PesComponent::Growth,
            ],
        },
        Target::Company,
        "Engagement",
        |_| {},
    )
    .await;
    let single = s
        .mapping(
            MappingKind::Pes {
                app_id: app,
                components: vec![PesComponent::Stickiness],
            },
            Target::Company,
            "Stickiness only",
            |_| {},
        )
        .await;
    assert_eq!(single.metric_name, "Stickiness only");
    s.resync().await;
    let mut want = BTreeMap::new();
    for day in days(d("2026-11-02"), d("2026-11-04")) {
        let p = json!([{"pes": {"appId": app,
            "firstDay": ny_midnight(day - Duration::days(29)), "dayCount": 30}}]);
        let rows = s
            .sim
            .run_aggregation(&json!({"request": {"pipeline": p}}))
            .unwrap();
        for r in rows {
            let a = r["accountId"].as_str().unwrap().to_string();
            if !companies.contains(&a) || r["appId"].as_i64() != Some(app) {
                continue;
            }
            for (col, metric) in [
                ("pes", "Engagement - PES"),
                ("adoption", "Engagement - Adoption"),
                ("stickiness", "Engagement - Stickiness"),
                ("growth", "Engagement - Growth"),
                ("stickiness", "Stickiness only"),
            ] {
                want.insert(
                    (a.clone(), metric.to_string(), String::new(), day),
                    num(&r[col]),
                );
            }
        }
    }
    let got = s.values().await;
    assert!(want.len() > 20, "{}", want.len());
    assert!(got.values().any(|v| *v > 0.0));
    assert_eq!(got, want);
}

#[tokio::test]
async fn pes_is_refused_without_account_id_and_off_companies() {
    let s = Stack::start().await;
    let pes = || MappingKind::Pes {
        app_id: -323232,
        components: vec![PesComponent::Score],
    };
    let (f, reason) = refused(&s, pes(), Target::EndUser).await;
    assert_eq!(f, "target", "{reason}");
    let (f, _) = refused(
        &s,
        MappingKind::Pes {
            app_id: -323232,
            components: vec![],
        },
        Target::Company,
    )
    .await;
    assert_eq!(f, "source.components");
    s.settings(pendo_sync::app::SettingsUpdate {
        field_mappings: Some(pendo_sync::domain::FieldMappingsInput {
            company_id: Some("metadata.custom.assetid".into()),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await;
    let (f, reason) = refused(&s, pes(), Target::Company).await;
    assert_eq!(f, "source.kind");
    assert!(reason.contains("accountId"), "{reason}");
}
