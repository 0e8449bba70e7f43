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
        assert!(!fast.is_empty(), "case {i} has rows");
        assert_eq!(fast, generic, "case {i}");
    }
}
