//! Exact results of hand-computable pipelines on the tiny subscription, with expectations
//! computed independently from the raw event rows.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{d, envelope, tiny_nov5};
use pendo_sim::{EventSource, Simulator, DEFAULT_APP_ID};
use serde_json::{json, Value};

fn all_apps(sim: &Simulator) -> Vec<i64> {
    sim.subscription().app_ids()
}

#[test]
fn group_sum_by_day_across_dst() {
    let sim = Simulator::new(tiny_nov5());
    let rows = sim
        .run_aggregation(&envelope(json!([
            {"source":{"events":null,"timeSeries":{"period":"dayRange","first":"date(2026,10,30)","count":5}}},
            {"group":{"group":["day"],"fields":{"numEvents":{"sum":"numEvents"},"rows":{"count":null}}}}
        ])))
        .unwrap();
    let sub = sim.subscription();
    let mut expected: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
    for r in sub.event_rows(
        EventSource::Events,
        &[DEFAULT_APP_ID],
        d(2026, 10, 30),
        d(2026, 11, 3),
        None,
    ) {
        let e = expected.entry(r.day).or_default();
        e.0 += r.num_events;
        e.1 += 1;
    }
    let got: BTreeMap<i64, (u64, u64)> = rows
        .iter()
        .map(|r| {
            (
                r["day"].as_i64().unwrap(),
                (
                    r["numEvents"].as_u64().unwrap(),
                    r["rows"].as_u64().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(got, expected);
    // Local midnights: Nov 1 is still EDT (04:00Z), Nov 2 is EST (05:00Z).
    assert!(got.contains_key(&1_793_505_600_000));
    assert!(got.contains_key(&1_793_595_600_000));
    assert!(got
        .keys()
        .all(|k| *k >= 1_793_332_800_000 && *k <= 1_793_682_000_000));
}

#[test]
fn negative_count_is_yesterday_and_excludes_today() {
    let sim = Simulator::new(tiny_nov5());
    let body = envelope(json!([
        {"source":{"events":{"appId":"expandAppIds(\"*\")"},"timeSeries":{"period":"dayRange","first":"now()","count":-1}}},
        {"reduce":{"rows":{"count":null},"days":{"count":"day"},"numEvents":{"sum":"numEvents"}}}
    ]));
    let rows = sim.run_aggregation(&body).unwrap();
    let sub = sim.subscription();
    let apps = all_apps(&sim);
    let raw: Vec<_> = sub
        .event_rows(
            EventSource::Events,
            &apps,
            d(2026, 11, 4),
            d(2026, 11, 4),
            None,
        )
        .collect();
    let total: u64 = raw.iter().map(|r| r.num_events).sum();
    assert!(!raw.is_empty());
    assert_eq!(
        rows,
        vec![json!({"rows": raw.len(), "days": 1, "numEvents": total})]
    );
    // -3 days: Nov 2, 3, 4.
    let body = envelope(json!([
        {"source":{"events":{"appId":"expandAppIds(`*`)"},"timeSeries":{"period":"dayRange","first":"now()","count":-3}}},
        {"group":{"group":["day"]}}
    ]));
    let days: Vec<i64> = sim
        .run_aggregation(&body)
        .unwrap()
        .iter()
        .map(|r| r["day"].as_i64().unwrap())
        .collect();
    assert_eq!(
        days,
        vec![1_793_595_600_000, 1_793_682_000_000, 1_793_768_400_000]
    );
}

#[test]
fn arithmetic_first_and_fixed_last() {
    let sim = Simulator::new(tiny_nov5());
    let a = sim
        .run_aggregation(&json!([
            {"source":{"events":null,"timeSeries":{"period":"dayRange","first":"now() - 3 * 1000 * 60 * 60 * 24","count":2}}},
            {"group":{"group":["day"]}}
        ]))
        .unwrap();
    let b = sim
        .run_aggregation(&json!([
            {"source":{"events":null,"timeSeries":{"period":"dayRange","first":"date(\"2026-11-02\")","last":"dateAdd(date(2026,11,2), 2, \"days\")"}}},
            {"group":{"group":["day"]}}
        ]))
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(
        a,
        vec![
            json!({"day": 1_793_595_600_000i64}),
            json!({"day": 1_793_682_000_000i64})
        ]
    );
}

#[test]
fn segment_filtering_matches_account_plan() {
    let sim = Simulator::new(tiny_nov5());
    let sub = sim.subscription();
    let apps = all_apps(&sim);
    let rows = sim
        .run_aggregation(&envelope(json!([
            {"source":{"events":{"appId":apps},"timeSeries":{"period":"dayRange","first":"now()","count":-20}}},
            {"segment":{"id":"seg-enterprise"}},
            {"group":{"group":["visitorId"],"fields":[{"n":{"sum":"numEvents"}}]}}
        ])))
        .unwrap();
    let enterprise: BTreeSet<&str> = sub
        .accounts
        .iter()
        .filter(|a| a.plan == "enterprise")
        .map(|a| a.id.as_str())
        .collect();
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for r in sub.event_rows(
        EventSource::Events,
        &apps,
        d(2026, 10, 16),
        d(2026, 11, 4),
        None,
    ) {
        if r.account_id.is_some_and(|a| enterprise.contains(a)) {
            *expected.entry(r.visitor_id.to_string()).or_default() += r.num_events;
        }
    }
    let got: BTreeMap<String, u64> = rows
        .iter()
        .map(|r| {
            (
                r["visitorId"].as_str().unwrap().to_string(),
                r["n"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(got, expected);
    let err = sim
        .run_aggregation(&json!([{"source":{"accounts":null}},{"segment":{"id":"nope"}}]))
        .unwrap_err();
    assert!(err.to_string().contains("nope"));
}

#[test]
fn expand_app_ids_versus_default_app() {
    let sim = Simulator::new(tiny_nov5());
    let sub = sim.subscription();
    let count = |app_param: Value| {
        let src = if app_param.is_null() {
            json!(null)
        } else {
            json!({"appId": app_param})
        };
        let rows = sim
            .run_aggregation(&json!([
                {"source":{"featureEvents":src,"timeSeries":{"period":"dayRange","first":"now()","count":-20}}},
                {"count":null}
            ]))
            .unwrap();
        rows[0]["count"].as_u64().unwrap()
    };
    let raw = |apps: &[i64]| {
        sub.event_rows(
            EventSource::FeatureEvents,
            apps,
            d(2026, 10, 16),
            d(2026, 11, 4),
            None,
        )
        .count() as u64
    };
    let all = all_apps(&sim);
    assert_eq!(count(Value::Null), raw(&[DEFAULT_APP_ID]));
    assert_eq!(count(json!(-323232)), raw(&[DEFAULT_APP_ID]));
    assert_eq!(count(json!("expandAppIds(\"*\")")), raw(&all));
    assert_eq!(count(json!("expandAppIds(`*`)")), raw(&all));
    assert_eq!(count(json!(all.clone())), raw(&all));
    assert!(raw(&all) > raw(&[DEFAULT_APP_ID]));
}

#[test]
fn identified_and_anonymous() {
    let sim = Simulator::new(tiny_nov5());
    let sub = sim.subscription();
    let apps = all_apps(&sim);
    let visitors = |stage: Value| -> Vec<String> {
        sim.run_aggregation(&json!([
            {"source":{"events":{"appId":"expandAppIds(\"*\")"},"timeSeries":{"period":"dayRange","first":"now()","count":-20}}},
            stage,
            {"group":{"group":["visitorId"]}}
        ]))
        .unwrap()
        .iter()
        .map(|r| r["visitorId"].as_str().unwrap().to_string())
        .collect()
    };
    let raw: BTreeSet<String> = sub
        .event_rows(
            EventSource::Events,
            &apps,
            d(2026, 10, 16),
            d(2026, 11, 4),
            None,
        )
        .map(|r| r.visitor_id.to_string())
        .collect();
    let known: BTreeSet<String> = raw
        .iter()
        .filter(|v| !v.starts_with("_PENDO_T_"))
        .cloned()
        .collect();
    let anon: BTreeSet<String> = raw
        .iter()
        .filter(|v| v.starts_with("_PENDO_T_"))
        .cloned()
        .collect();
    assert!(!anon.is_empty());
    assert_eq!(
        visitors(json!({"identified":"visitorId"})),
        known.into_iter().collect::<Vec<_>>()
    );
    assert_eq!(
        visitors(json!({"identified":"!visitorId"})),
        anon.iter().cloned().collect::<Vec<_>>()
    );
    // identified accountId drops both empty and missing accountId rows (all anonymous).
    assert!(visitors(json!({"identified":"accountId"}))
        .iter()
        .all(|v| !v.starts_with("_PENDO_T_")));
    // Anonymous rows: one visitor has accountId "", the other no accountId at all.
    let acct: Vec<Value> = sim
        .run_aggregation(&json!([
            {"source":{"events":null,"timeSeries":{"period":"dayRange","first":"now()","count":-20}}},
            {"identified":"!visitorId"},
            {"group":{"group":["accountId"]}}
        ]))
        .unwrap();
    assert_eq!(
        acct,
        vec![json!({"accountId": null}), json!({"accountId": ""})]
    );
}

#[test]
fn keyset_paging_reproduces_full_result() {
    let sim = Simulator::new(tiny_nov5());
    let source = json!({"source":{"events":{"appId":"expandAppIds(\"*\")"},"timeSeries":{"period":"dayRange","first":"now()","count":-20}}});
    let group = json!({"group":{"group":["visitorId","appId","day"],"fields":[{"numEvents":{"sum":"numEvents"}},{"numMinutes":{"sum":"numMinutes"}}]}});
    let sort = json!({"sort":["visitorId","appId","day"]});
    let full = sim.run_aggregation(&json!([source, group, sort])).unwrap();
    assert!(full.len() > 40);
    let mut pages = Vec::new();
    let mut last: Option<Value> = None;
    loop {
        let mut p = vec![source.clone(), group.clone()];
        if let Some(l) = &last {
            let (v, a, dd) = (
                l["visitorId"].as_str().unwrap(),
                l["appId"].as_i64().unwrap(),
                l["day"].as_i64().unwrap(),
            );
            p.push(json!({"filter": format!(
                "visitorId > \"{v}\" || (visitorId == `{v}` && (appId > {a} || (appId == {a} && day > {dd})))")}));
        }
        p.push(sort.clone());
        p.push(json!({"limit": 7}));
        let page = sim.run_aggregation(&Value::Array(p)).unwrap();
        let n = page.len();
        last = page.last().cloned();
        pages.extend(page);
        if n < 7 {
            break;
        }
    }
    assert_eq!(pages, full);
    // Offset paging agrees too.
    let skip = sim
        .run_aggregation(&json!([source, group, sort, {"skip": 7}, {"limit": 7}]))
        .unwrap();
    assert_eq!(skip, full[7..14].to_vec());
}

#[test]
fn select_bulk_expand_and_eval() {
    let sim = Simulator::new(tiny_nov5());
    let sub = sim.subscription();
    let rows = sim
        .run_aggregation(&json!([
            {"source":{"visitors":{"identified":true}}},
            {"bulkExpand":{"visitor":{"visitor":"visitorId"}}},
            {"eval":{"upper":"toUpperCase(visitorId)","hasEmail":"!isNull(visitor.agent.email)"}},
            {"select":{"id":"visitorId","email":"visitor.agent.email","project":"visitor.custom.projectid",
                       "first":"visitor.auto.firstvisit","upper":"upper","hasEmail":"hasEmail","missing":"no.such.path"}},
            {"sort":["-id"]}
        ]))
        .unwrap();
    let known: Vec<_> = sub.visitors.iter().filter(|v| !v.anonymous).collect();
    assert_eq!(rows.len(), known.len());
    for (row, v) in rows.iter().zip(known.iter().rev()) {
        assert_eq!(row["id"], json!(v.id));
        assert_eq!(row["email"], json!(v.email));
        assert_eq!(row["hasEmail"], json!(v.email.is_some()));
        assert_eq!(row["project"], json!(v.project_id));
        assert_eq!(row["first"], json!(v.first_visit));
        assert_eq!(row["upper"], json!(v.id.to_uppercase()));
        assert_eq!(row["missing"], Value::Null);
        assert_eq!(row.as_object().unwrap().len(), 7);
    }
    assert!(known.iter().any(|v| v.email.is_none()));
}

#[test]
fn hour_range_sums_to_day() {
    let sim = Simulator::new(tiny_nov5());
    let day = sim
        .run_aggregation(&json!([
            {"source":{"events":null,"timeSeries":{"period":"dayRange","first":"date(2026,11,2)","count":1}}},
            {"reduce":{"n":{"sum":"numEvents"}}}
        ]))
        .unwrap();
    let hours = sim
        .run_aggregation(&json!([
            {"source":{"events":null,"timeSeries":{"period":"hourRange","first":"date(2026,11,2)","count":24}}},
            {"group":{"group":["hour"],"fields":{"n":{"sum":"numEvents"}}}},
            {"reduce":{"n":{"sum":"n"},"hours":{"count":"hour"}}}
        ]))
        .unwrap();
    assert_eq!(hours[0]["n"], day[0]["n"]);
    assert!(hours[0]["hours"].as_u64().unwrap() >= 1);
}

#[test]
fn unwind_merge_and_count() {
    let sim = Simulator::new(tiny_nov5());
    let rows = sim
        .run_aggregation(&json!([
            {"source":{"accounts":null}},
            {"merge":{"fields":["accountId"],"mappings":{"visitors":"visitors"},"pipeline":[
                {"source":{"visitors":{"identified":true}}},
                {"group":{"group":["metadata.auto.accountid"],"fields":{"visitors":{"list":"visitorId"}}}},
                {"eval":{"accountId":"metadata.auto.accountid"}}
            ]}},
            {"unwind":{"field":"visitors","index":"i"}},
            {"select":{"a":"accountId","v":"visitors","i":"i"}}
        ]))
        .unwrap();
    let sub = sim.subscription();
    let expected: Vec<Value> = sub
        .accounts
        .iter()
        .enumerate()
        .flat_map(|(ai, a)| {
            sub.visitors
                .iter()
                .filter(move |v| v.account == Some(ai))
                .enumerate()
                .map(move |(i, v)| json!({"a": a.id, "v": v.id, "i": i}))
        })
        .collect();
    assert_eq!(rows, expected);
    let c = sim
        .run_aggregation(&json!([{"source":{"visitors":null}},{"count":null}]))
        .unwrap();
    assert_eq!(c, vec![json!({"count": sub.visitors.len()})]);
}

#[test]
fn pes_matches_formulas() {
    let sim = Simulator::new(tiny_nov5());
    let sub = sim.subscription();
    let rows = sim
        .run_aggregation(&envelope(
            json!([{"pes":{"appId":-323232,"firstDay":"now()","dayCount":-7,"blacklist":"apply"}}]),
        ))
        .unwrap();
    assert!(!rows.is_empty());
    let core: BTreeSet<String> = sub
        .core_event_ids(DEFAULT_APP_ID)
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    let (w0, w1) = (d(2026, 10, 29), d(2026, 11, 4));
    for row in &rows {
        let acct = row["accountId"].as_str().unwrap();
        let mut per_visitor: BTreeMap<&str, (BTreeSet<chrono::NaiveDate>, BTreeSet<String>)> =
            BTreeMap::new();
        for src in [
            EventSource::Events,
            EventSource::PageEvents,
            EventSource::FeatureEvents,
            EventSource::TrackEvents,
        ] {
            for r in sub.event_rows(src, &[DEFAULT_APP_ID], w0, w1, None) {
                if r.account_id != Some(acct) {
                    continue;
                }
                let e = per_visitor.entry(r.visitor_id).or_default();
                e.0.insert(r.date);
                if let Some(id) = r.item_id.filter(|id| core.contains(*id)) {
                    e.1.insert(id.to_string());
                }
            }
        }
        let n = per_visitor.len() as f64;
        let adoption = 100.0
            * per_visitor
                .values()
                .map(|v| v.1.len() as f64 / core.len() as f64)
                .sum::<f64>()
            / n;
        let stick = 100.0
            * per_visitor
                .values()
                .map(|v| v.0.len() as f64 / 7.0)
                .sum::<f64>()
            / n;
        let r2 = |x: f64| (x * 100.0).round() / 100.0;
        assert_eq!(row["adoption"].as_f64().unwrap(), r2(adoption), "{row}");
        assert_eq!(row["stickiness"].as_f64().unwrap(), r2(stick), "{row}");
        let g = row["growth"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&g));
        let pes = row["pes"].as_f64().unwrap();
        assert!((pes - (adoption + stick + g) / 3.0).abs() < 0.02, "{row}");
    }
}
