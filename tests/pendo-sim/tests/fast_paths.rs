//! The fast paths: grouped event queries straight from event rows (same answer as the generic
//! engine), and the benchmark mode answering them with exactly N synthetic rows.

use std::collections::BTreeSet;

use pendo_sim::pipeline::{execute, execute_generic, plan_request, synthetic};
use pendo_sim::{SimConfig, Simulator};
use serde_json::{json, Value};

fn grouped(select: bool) -> Value {
    let mut pipeline = vec![
        json!({"source":{"featureEvents":{"featureId":"x","appId":"expandAppIds(\"*\")"},"timeSeries":{"period":"dayRange","first":"date(2026,11,10)","count":2}}}),
        json!({"group":{"group":["visitorId","accountId","appId","day"],"fields":[{"numEvents":{"sum":"numEvents"}},{"numMinutes":{"sum":"numMinutes"}}]}}),
    ];
    if select {
        pipeline.push(json!({"select":{"day":"day","appId":"appId","numEvents":"numEvents","company":"accountId","endUser":"visitorId"}}));
    }
    json!({"response":{"mimeType":"application/json"},"request":{"pipeline":pipeline}})
}

#[test]
fn grouped_event_queries_get_exactly_n_distinct_rows_of_the_grouped_shape() {
    let sim = Simulator::new(SimConfig::tiny());
    let sub = sim.subscription();
    let ctx = sim.eval_ctx();
    let plan = plan_request(&grouped(true), sub, &ctx).unwrap();
    let rows: Vec<Value> = synthetic::rows(&plan, sub, &ctx, 10).unwrap().collect();
    assert_eq!(rows.len(), 10);
    let keys: BTreeSet<&str> = rows[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["appId", "company", "day", "endUser", "numEvents"])
    );
    let distinct: BTreeSet<String> = rows
        .iter()
        .map(|r| format!("{}|{}|{}", r["endUser"], r["appId"], r["day"]))
        .collect();
    assert_eq!(distinct.len(), 10);
    for r in &rows {
        let n = r["numEvents"].as_u64().unwrap();
        assert!((1..=12).contains(&n), "{r}");
    }
    // Same seed, same rows.
    let again: Vec<Value> = synthetic::rows(&plan, sub, &ctx, 10).unwrap().collect();
    assert_eq!(rows, again);
}

#[test]
fn the_row_count_is_capped_by_the_distinct_groups() {
    let sim = Simulator::new(SimConfig::tiny());
    let sub = sim.subscription();
    let ctx = sim.eval_ctx();
    let plan = plan_request(&grouped(false), sub, &ctx).unwrap();
    let identified = sub.visitors.iter().filter(|v| !v.anonymous).count();
    let cap = identified * sub.apps.len() * 2;
    let rows: Vec<Value> = synthetic::rows(&plan, sub, &ctx, 1_000_000)
        .unwrap()
        .collect();
    assert_eq!(rows.len(), cap);
    assert_eq!(
        rows[0]["numMinutes"].as_u64().unwrap(),
        1 + rows[0]["numEvents"].as_u64().unwrap() / 3
    );
}

#[test]
fn other_queries_run_normally() {
    let sim = Simulator::new(SimConfig::tiny());
    let sub = sim.subscription();
    let ctx = sim.eval_ctx();
    let ungrouped = json!({"request":{"pipeline":[
        {"source":{"featureEvents":{"featureId":"x"},"timeSeries":{"period":"dayRange","first":"date(2026,11,10)","count":2}}},
        {"group":{"group":["day"],"fields":[{"numEvents":{"sum":"numEvents"}}]}}
    ]}});
    let plan = plan_request(&ungrouped, sub, &ctx).unwrap();
    assert!(synthetic::rows(&plan, sub, &ctx, 10).is_none());
    let visitors = json!({"request":{"pipeline":[{"source":{"visitors":null}}]}});
    let plan = plan_request(&visitors, sub, &ctx).unwrap();
    assert!(synthetic::rows(&plan, sub, &ctx, 10).is_none());
}

#[test]
fn grouped_event_queries_match_the_generic_engine() {
    let sim = Simulator::new(SimConfig::small());
    let sub = sim.subscription();
    let ctx = sim.eval_ctx();
    let segment = &sub.segments[0].id;
    let feature = &sub.features[0].id;
    let page = &sub.pages[0].id;
    let source = |kind: &str, id_param: &str, id: &str| json!({"source":{kind:{id_param:id,"appId":"expandAppIds(\"*\")"},"timeSeries":{"period":"dayRange","first":"now()","count":-30}}});
    let group = json!({"group":{"group":["visitorId","accountId","appId","day"],"fields":[{"numEvents":{"sum":"numEvents"}},{"numMinutes":{"sum":"numMinutes"}},{"rows":{"count":null}},{"first":{"min":"firstTime"}}]}});
    let cases = [
        json!([source("featureEvents", "featureId", feature), group.clone()]),
        json!([source("pageEvents", "pageId", page), {"segment":{"id":segment}}, group.clone(),
               {"bulkExpand":{"visitor":{"visitor":"visitorId"}}},
               {"select":{"day":"day","appId":"appId","n":"numEvents","company":"accountId","email":"visitor.metadata.agent.email"}}]),
        // The shared call of several mappings: the source without an id, a filter keeping
        // their ids (either side of `==`, a repeat), grouped by the id as well.
        json!([{"source":{"featureEvents":{"appId":"expandAppIds(\"*\")"},"timeSeries":{"period":"dayRange","first":"now()","count":-30}}},
               {"filter": format!("featureId == \"{}\" || \"{}\" == featureId || featureId == \"{}\"", feature, sub.features[1].id, feature)},
               {"group":{"group":["featureId","visitorId","accountId","appId","day"],"fields":[{"numEvents":{"sum":"numEvents"}},{"numMinutes":{"sum":"numMinutes"}}]}}]),
        json!([{"source":{"pageEvents":{"appId":"expandAppIds(\"*\")"},"timeSeries":{"period":"dayRange","first":"now()","count":-30}}},
               {"segment":{"id":segment}},
               {"filter": format!("pageId == \"{}\" || pageId == \"{}\"", page, sub.pages[2].id)},
               {"group":{"group":["pageId","visitorId","accountId","appId","day"],"fields":[{"numEvents":{"sum":"numEvents"}}]}}]),
        // A filter on another item than the source's keeps nothing.
        json!([source("featureEvents", "featureId", feature),
               {"filter": format!("featureId == \"{}\"", sub.features[1].id)}, group.clone()]),
        json!([{"source":{"events":null,"timeSeries":{"period":"dayRange","first":"now()","count":-7}}},
               {"group":{"group":["day","appId"],"fields":{"numEvents":{"sum":"numEvents"},"ips":{"count":"remoteIp"}}}},
               {"sort":["-numEvents"]}]),
    ];
    for (i, pipeline) in cases.iter().enumerate() {
        let body = json!({"request":{"pipeline":pipeline}});
        let plan = plan_request(&body, sub, &ctx).unwrap();
        assert!(
            pendo_sim::pipeline::events_group::rows(&plan, sub, &ctx).is_some(),
            "case {i} takes the fast path"
        );
        let fast: Vec<Value> = execute(&plan, sub, &ctx).collect();
        let generic: Vec<Value> = execute_generic(&plan, sub, &ctx).collect();
        assert!(
            fast.is_empty() == (i == 4),
            "case {i} has rows (but the filter on another item)"
        );
        assert_eq!(fast, generic, "case {i}");
    }
}

/// Small-preset subscriptions in several zones; each history crosses a DST change where the
/// zone has one (New York ends DST on 2026-11-01, Auckland starts it on 2026-09-27).
fn zoned_sims() -> Vec<Simulator> {
    let zones = [
        chrono_tz::America::New_York,
        chrono_tz::Pacific::Auckland,
        chrono_tz::Asia::Kolkata,
        chrono_tz::UTC,
    ];
    zones
        .into_iter()
        .enumerate()
        .map(|(i, tz)| {
            let mut c = SimConfig::small();
            c.timezone = tz;
            c.seed = 42 + i as u64;
            Simulator::new(c)
        })
        .collect()
}

#[test]
fn the_per_item_generator_gives_the_generic_walks_rows_for_every_item() {
    use pendo_sim::data::EventSource;
    for sim in zoned_sims() {
        let sub = sim.subscription();
        let all = sub.app_ids();
        let second = [all[1]];
        // Every app twice and out of order, as a request may list them.
        let repeated = [all[2], all[0], all[1], all[0]];
        let last = sub.last_date;
        let windows = [
            (
                sub.first_date - chrono::Duration::days(3),
                sub.first_date + chrono::Duration::days(9),
            ),
            (
                last - chrono::Duration::days(40),
                last + chrono::Duration::days(2),
            ),
        ];
        let kinds: Vec<(EventSource, Vec<&str>)> = vec![
            (
                EventSource::PageEvents,
                sub.pages.iter().map(|p| p.id.as_str()).collect(),
            ),
            (
                EventSource::FeatureEvents,
                sub.features.iter().map(|f| f.id.as_str()).collect(),
            ),
            (
                EventSource::TrackEvents,
                sub.track_types.iter().map(|t| t.id.as_str()).collect(),
            ),
        ];
        let mut rows_seen = 0;
        for (kind, ids) in &kinds {
            for id in ids.iter().copied().chain(["no-such-item"]) {
                for apps in [&all[..], &second[..], &repeated[..]] {
                    for (first, last) in windows {
                        let fast: Vec<_> =
                            sub.item_event_rows(*kind, apps, first, last, id).collect();
                        let generic: Vec<_> =
                            sub.event_rows(*kind, apps, first, last, Some(id)).collect();
                        assert_eq!(
                            fast, generic,
                            "{kind:?} {id} {apps:?} {first}..={last} in {}",
                            sub.timezone
                        );
                        rows_seen += fast.len();
                    }
                }
            }
        }
        assert!(
            rows_seen > 10_000,
            "{rows_seen} rows compared in {}",
            sub.timezone
        );
    }
}

#[test]
fn per_item_queries_match_the_generic_engine_over_features_pages_windows_and_zones() {
    for sim in zoned_sims() {
        let sub = sim.subscription();
        let ctx = sim.eval_ctx();
        let segment = &sub.segments[1].id;
        let popular = |mut v: Vec<(f64, &str)>| {
            v.sort_by(|a, b| b.0.total_cmp(&a.0));
            v.into_iter()
                .map(|(_, id)| id.to_string())
                .take(3)
                .collect::<Vec<_>>()
        };
        let mut items: Vec<(&str, &str, String)> = Vec::new();
        for id in popular(
            sub.features
                .iter()
                .map(|f| (f.popularity, f.id.as_str()))
                .collect(),
        ) {
            items.push(("featureEvents", "featureId", id));
        }
        for id in popular(
            sub.pages
                .iter()
                .map(|p| (p.popularity, p.id.as_str()))
                .collect(),
        ) {
            items.push(("pageEvents", "pageId", id));
        }
        // A feature of the mobile app and a page of the admin console.
        items.push((
            "featureEvents",
            "featureId",
            sub.features
                .iter()
                .find(|f| f.app_id == sub.apps[1].id)
                .unwrap()
                .id
                .clone(),
        ));
        items.push((
            "pageEvents",
            "pageId",
            sub.pages
                .iter()
                .find(|p| p.app_id == sub.apps[2].id)
                .unwrap()
                .id
                .clone(),
        ));
        let windows = [
            json!({"period":"dayRange","first":"now()","count":-30}),
            json!({"period":"dayRange","first":"date(2026,10,26)","count":14}),
            json!({"period":"weekRange","first":"now()","count":-3}),
            json!({"period":"dayRange","first":"dateAdd(now(),-200,\"days\")","count":90}),
        ];
        let group = json!({"group":{"group":["visitorId","accountId","appId","day"],"fields":[
            {"numEvents":{"sum":"numEvents"}},{"numMinutes":{"sum":"numMinutes"}},{"rows":{"count":null}},
            {"first":{"min":"firstTime"}},{"last":{"max":"lastTime"}},{"ips":{"count":"remoteIp"}},
            {"agent":{"first":"userAgent"}},{"servers":{"list":"server"}}]}});
        let mut cases = 0;
        for (source, param, id) in &items {
            for (w, ts) in windows.iter().enumerate() {
                let src = |apps: Value| json!({"source":{*source:{*param:id,"appId":apps},"timeSeries":ts}});
                let pipelines = [
                    json!([src(json!("expandAppIds(\"*\")")), group.clone()]),
                    json!([src(json!(null)), {"segment":{"id":segment}}, group.clone(),
                           {"bulkExpand":{"account":{"account":"accountId"}}},
                           {"select":{"day":"day","appId":"appId","n":"numEvents","company":"accountId","plan":"account.metadata.custom.plan","endUser":"visitorId"}}]),
                    json!([src(json!([sub.apps[2].id, sub.apps[1].id])),
                           {"group":{"group":["day","appId"],"fields":{"numEvents":{"sum":"numEvents"},"visitors":{"count":"visitorId"}}}},
                           {"sort":["-numEvents"]}]),
                ];
                for (p, pipeline) in pipelines.iter().enumerate() {
                    let body = json!({"request":{"pipeline":pipeline}});
                    let plan = plan_request(&body, sub, &ctx).unwrap();
                    assert!(
                        pendo_sim::pipeline::events_group::rows(&plan, sub, &ctx).is_some(),
                        "{source} window {w} pipeline {p} takes the fast path"
                    );
                    let fast: Vec<Value> = execute(&plan, sub, &ctx).collect();
                    let generic: Vec<Value> = execute_generic(&plan, sub, &ctx).collect();
                    assert_eq!(
                        fast, generic,
                        "{source} {id} window {w} pipeline {p} in {}",
                        sub.timezone
                    );
                    cases += usize::from(!fast.is_empty());
                }
            }
        }
        // Most combinations have rows (a segment or an app the item is not in may have none).
        assert!(cases >= 40, "{cases} non-empty cases in {}", sub.timezone);
    }
}
