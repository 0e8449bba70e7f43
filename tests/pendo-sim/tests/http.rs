//! HTTP surface: key checks, envelopes, object endpoints, reports, control API, determinism.

mod common;

use common::{envelope, post_agg, spawn, tiny_nov5, KEY};
use pendo_sim::{SimConfig, SimKey, Simulator};
use serde_json::{json, Value};

fn yesterday_usage() -> Value {
    envelope(json!([
        {"source":{"events":{"appId":"expandAppIds(\"*\")","blacklist":"apply"},
                   "timeSeries":{"period":"dayRange","first":"now()","count":-1}}},
        {"identified":"visitorId"},
        {"group":{"group":["appId","visitorId","accountId","day"],
                  "fields":[{"numEvents":{"sum":"numEvents"}},{"numMinutes":{"sum":"numMinutes"}}]}},
        {"sort":["visitorId","accountId","appId"]},
        {"limit":50000}
    ]))
}

#[tokio::test]
async fn key_checks_return_empty_403() {
    let mut cfg = tiny_nov5();
    cfg.keys.push(SimKey::read_only("ro-key"));
    let (sim, running) = spawn(cfg).await;
    let base = running.base_url();
    let c = common::client();
    for key in [None, Some("wrong")] {
        let mut r = c.get(format!("{base}/api/v1/page"));
        if let Some(k) = key {
            r = r.header("X-Pendo-Integration-Key", k);
        }
        let resp = r.send().await.unwrap();
        assert_eq!(resp.status(), 403);
        assert_eq!(resp.bytes().await.unwrap().len(), 0);
        let resp = post_agg(&base, key, &yesterday_usage()).await;
        assert_eq!(resp.status(), 403);
        assert_eq!(resp.bytes().await.unwrap().len(), 0);
    }
    // Read-only key: aggregation forbidden, other endpoints fine, verify says so.
    let resp = post_agg(&base, Some("ro-key"), &yesterday_usage()).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.bytes().await.unwrap().len(), 0);
    let v: Value = c
        .get(format!("{base}/api/v1/token/verify"))
        .header("x-pendo-integration-key", "ro-key")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v, json!({"valid": true, "writeAccess": false}));
    let v: Value = c
        .get(format!("{base}/api/v1/token/verify"))
        .header("X-PENDO-INTEGRATION-KEY", KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v, json!({"valid": true, "writeAccess": true}));
    // Keys via the control API: add, then revoke.
    let r = c
        .post(format!("{base}/_sim/keys"))
        .json(&json!({"key":"new","writeAccess":true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        post_agg(&base, Some("new"), &yesterday_usage())
            .await
            .status(),
        200
    );
    let r = c
        .delete(format!("{base}/_sim/keys/new"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        post_agg(&base, Some("new"), &yesterday_usage())
            .await
            .status(),
        403
    );
    assert_eq!(sim.control().calls("/api/v1/aggregation"), 5);
    running.shutdown().await;
}

#[tokio::test]
async fn aggregation_envelope_and_errors() {
    let (sim, running) = spawn(tiny_nov5()).await;
    let base = running.base_url();
    let resp = post_agg(&base, Some(KEY), &yesterday_usage()).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("content-length").is_none());
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["startTime"], json!(1_793_768_400_000i64)); // 2026-11-04 00:00 EST
    assert_eq!(
        v["results"],
        Value::Array(sim.run_aggregation(&yesterday_usage()).unwrap())
    );
    let c = common::client();
    let cases: Vec<(&str, &str)> = vec![
        ("{not json", "invalid JSON"),
        (r#"{"request":{}}"#, "pipeline"),
        (r#"{"request":{"pipeline":[]}}"#, "empty pipeline"),
        (
            r#"[{"source":{"visitors":null}},{"frobnicate":1}]"#,
            "frobnicate",
        ),
        (r#"[{"source":{"nosuch":null}}]"#, "nosuch"),
        (r#"[{"source":{"events":null}}]"#, "timeSeries"),
        (
            r#"[{"source":{"visitors":null}},{"filter":"a =="}]"#,
            "filter",
        ),
        (
            r#"[{"source":{"visitors":null}},{"group":{"group":["a"],"fields":{"x":{"median":"a"}}}}]"#,
            "median",
        ),
        (r#"[{"source":{"visitors":null}},{"limit":-1}]"#, "limit"),
        (
            r#"[{"source":{"visitors":null}},{"segment":{"id":"zzz"}}]"#,
            "zzz",
        ),
    ];
    for (body, needle) in cases {
        let r = c
            .post(format!("{base}/api/v1/aggregation"))
            .header("x-pendo-integration-key", KEY)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let text = r.text().await.unwrap();
        assert!(text.contains(needle), "{body} → {text}");
    }
    running.shutdown().await;
}

#[tokio::test]
async fn object_endpoints() {
    let (sim, running) = spawn(tiny_nov5()).await;
    let base = running.base_url();
    let c = common::client();
    let get = |path: &str| {
        c.get(format!("{base}{path}"))
            .header("x-pendo-integration-key", KEY)
            .send()
    };
    let sub = sim.subscription();
    let pages: Vec<Value> = get("/api/v1/page").await.unwrap().json().await.unwrap();
    assert_eq!(
        pages.len(),
        sub.pages.iter().filter(|p| p.app_id == -323232).count()
    );
    let all: Vec<Value> = get("/api/v1/page?expand=*")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all.len(), sub.pages.len());
    let feats: Vec<Value> = get("/api/v1/feature?expand=*")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(feats.len(), sub.features.len());
    assert!(feats.iter().any(|f| f["isCoreEvent"] == json!(true)));
    let segs: Vec<Value> = get("/api/v1/segment").await.unwrap().json().await.unwrap();
    assert_eq!(segs[0]["id"], json!("seg-enterprise"));
    let schema: Value = get("/api/v1/metadata/schema/visitor")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(schema["agent"]["email"]["Type"], json!("string"));
    assert_eq!(schema["auto"]["lastvisit"]["Type"], json!("time"));
    let schema: Value = get("/api/v1/metadata/schema/account")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(schema["custom"]["plan"]["DisplayName"], json!("Plan"));
    assert_eq!(
        get("/api/v1/metadata/schema/nope").await.unwrap().status(),
        404
    );
    assert_eq!(get("/api/v1/nothing").await.unwrap().status(), 404);
    running.shutdown().await;
}

#[tokio::test]
async fn reports_list_and_results() {
    let (sim, running) = spawn(tiny_nov5()).await;
    let base = running.base_url();
    let c = common::client();
    let get = |path: String| {
        c.get(format!("{base}{path}"))
            .header("x-pendo-integration-key", KEY)
            .send()
    };
    let reports: Vec<Value> = get("/api/v1/report".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reports.len(), 7);
    let levels: Vec<&str> = reports
        .iter()
        .map(|r| r["level"].as_str().unwrap())
        .collect();
    assert!(levels.contains(&"visitor") && levels.contains(&"account"));
    let kinds: Vec<&str> = reports
        .iter()
        .map(|r| {
            r["definition"]["dateRanges"]["primaryDateRange"]["type"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert!(kinds.contains(&"fixed") && kinds.contains(&"relative"));
    for r in &reports {
        let id = r["id"].as_str().unwrap();
        let rows: Vec<Value> = get(format!("/api/v1/report/{id}/results.json"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let expected = sim.run_aggregation(&r["aggregation"]["pipeline"]).unwrap();
        assert_eq!(rows, expected, "{id}");
        let fields: Vec<&str> = r["aggregation"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["field"].as_str().unwrap())
            .collect();
        for row in &rows {
            let mut keys: Vec<&str> = row
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            let mut want = fields.clone();
            keys.sort();
            want.sort();
            assert_eq!(keys, want, "{id}");
        }
    }
    // The 7-day visitor report, recomputed from raw rows.
    let rows: Vec<Value> = get("/api/v1/report/rpt-visitor-7d/results.json".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sub = sim.subscription();
    let apps = sub.app_ids();
    let mut expected =
        std::collections::BTreeMap::<String, (u64, std::collections::BTreeSet<i64>)>::new();
    for r in sub.event_rows(
        pendo_sim::EventSource::Events,
        &apps,
        common::d(2026, 10, 29),
        common::d(2026, 11, 4),
        None,
    ) {
        if r.visitor_id.starts_with("_PENDO_T_") {
            continue;
        }
        let e = expected.entry(r.visitor_id.to_string()).or_default();
        e.0 += r.num_events;
        e.1.insert(r.day);
    }
    assert_eq!(rows.len(), expected.len());
    for row in &rows {
        let (n, days) = &expected[row["visitorId"].as_str().unwrap()];
        assert_eq!(row["numEvents"].as_u64().unwrap(), *n);
        assert_eq!(row["daysActive"].as_u64().unwrap(), days.len() as u64);
        let v = sub.visitor(row["visitorId"].as_str().unwrap()).unwrap();
        assert_eq!(row["visitor_agent_email"], json!(v.email));
    }
    assert_eq!(
        get("/api/v1/report/nope/results.json".into())
            .await
            .unwrap()
            .status(),
        404
    );
    running.shutdown().await;
}

#[tokio::test]
async fn control_clock_log_and_counters() {
    let (_sim, running) = spawn(tiny_nov5()).await;
    let base = running.base_url();
    let c = common::client();
    let now: Value = c
        .get(format!("{base}/_sim/now"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(now["now"], json!("2026-11-05T12:00:00.000Z"));
    let r = c
        .post(format!("{base}/_sim/now"))
        .json(&json!({"now":"2026-11-03T12:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = post_agg(&base, Some(KEY), &yesterday_usage())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["startTime"], json!(1_793_595_600_000i64)); // 2026-11-02
    let bad = c
        .post(format!("{base}/_sim/now"))
        .json(&json!({"now":"yesterday"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    // Data stops at now's local date: a window into the future holds nothing after Nov 3.
    let fut = envelope(json!([
        {"source":{"events":null,"timeSeries":{"period":"dayRange","first":"now()","count":5}}},
        {"count":null}]));
    let v: Value = post_agg(&base, Some(KEY), &fut).await.json().await.unwrap();
    let today_only = envelope(json!([
        {"source":{"events":null,"timeSeries":{"period":"dayRange","first":"now()","count":1}}},
        {"count":null}]));
    let w: Value = post_agg(&base, Some(KEY), &today_only)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["results"], w["results"]);
    let log: Vec<Value> = c
        .get(format!("{base}/_sim/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log.len(), 3);
    assert_eq!(log[0]["path"], json!("/api/v1/aggregation"));
    assert_eq!(log[0]["status"], json!(200));
    assert_eq!(log[0]["bodyDigest"].as_str().unwrap().len(), 16);
    let counters: Value = c
        .get(format!("{base}/_sim/counters"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counters, json!({"/api/v1/aggregation": 3}));
    c.delete(format!("{base}/_sim/requests"))
        .send()
        .await
        .unwrap();
    let counters: Value = c
        .get(format!("{base}/_sim/counters"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counters, json!({}));
    running.shutdown().await;
}

#[tokio::test]
async fn same_config_same_bytes() {
    let a = spawn(SimConfig::small()).await;
    let b = spawn(SimConfig::small()).await;
    let bodies = [
        yesterday_usage(),
        envelope(json!([{"source":{"visitors":null}}])),
        envelope(
            json!([{"source":{"featureEvents":{"appId":"expandAppIds(\"*\")"},"timeSeries":{"period":"dayRange","first":"now()","count":-30}}}]),
        ),
        envelope(json!([{"pes":{"appId":-323232,"firstDay":"now()","dayCount":-30}}])),
    ];
    for body in &bodies {
        let x = post_agg(&a.1.base_url(), Some(KEY), body)
            .await
            .bytes()
            .await
            .unwrap();
        let y = post_agg(&b.1.base_url(), Some(KEY), body)
            .await
            .bytes()
            .await
            .unwrap();
        assert!(x.len() > 20);
        assert_eq!(x, y);
    }
    let c = common::client();
    for path in [
        "/api/v1/report",
        "/api/v1/feature?expand=*",
        "/api/v1/report/rpt-account-30d/results.json",
    ] {
        let x = c
            .get(format!("{}{path}", a.1.base_url()))
            .header("x-pendo-integration-key", KEY)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let y = c
            .get(format!("{}{path}", b.1.base_url()))
            .header("x-pendo-integration-key", KEY)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(x, y);
    }
    // A different seed gives different data.
    let mut cfg = SimConfig::small();
    cfg.seed = 7;
    let other = Simulator::new(cfg);
    assert_ne!(
        other.run_aggregation(&yesterday_usage()).unwrap(),
        a.0.run_aggregation(&yesterday_usage()).unwrap()
    );
    a.1.shutdown().await;
    b.1.shutdown().await;
}

/// Benchmarks only: with aggregation answers kept, the same request body gets the first answer
/// again without the pipeline running (the clock moved a day, so a fresh answer would differ),
/// and each call still counts; off, the answer follows the clock.
#[tokio::test]
async fn kept_aggregation_answers_are_given_again() {
    let (sim, running) = spawn(tiny_nov5()).await;
    let base = running.base_url();
    let body = |resp: reqwest::Response| async move { resp.bytes().await.unwrap() };
    let request = yesterday_usage();
    let ask = || post_agg(&base, Some(KEY), &request);
    sim.control().set_cache_aggregations(true);
    let first = body(ask().await).await;
    let now = sim.control().now();
    sim.control().set_now(now + chrono::Duration::days(1));
    let again = body(ask().await).await;
    assert_eq!(first, again);
    assert_eq!(sim.control().calls("/api/v1/aggregation"), 2);
    sim.control().set_cache_aggregations(false);
    let fresh = body(ask().await).await;
    assert_ne!(first, fresh, "the next day's usage, computed");
}
