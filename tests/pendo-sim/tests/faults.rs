//! Each fault kind as a client sees it.

mod common;

use std::time::{Duration, Instant};

use common::{envelope, post_agg, spawn, tiny_nov5, KEY};
use serde_json::{json, Value};

fn body() -> Value {
    envelope(json!([
        {"source":{"events":{"appId":"expandAppIds(\"*\")"},"timeSeries":{"period":"dayRange","first":"now()","count":-7}}},
        {"group":{"group":["visitorId","day"],"fields":{"n":{"sum":"numEvents"}}}}
    ]))
}

async fn add_fault(base: &str, rule: Value) {
    let r = common::client()
        .post(format!("{base}/_sim/faults"))
        .json(&rule)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{rule}");
}

#[tokio::test]
async fn status_faults_then_recovery() {
    let (sim, running) = spawn(tiny_nov5()).await;
    let base = running.base_url();
    add_fault(
        &base,
        json!({"path":"/api/v1/aggregation","kind":"status429","times":1}),
    )
    .await;
    add_fault(&base, json!({"path":"/api/v1/aggregation","kind":"status429RetryAfter","retryAfterSecs":7,"times":1})).await;
    add_fault(&base, json!({"kind":"status500","times":1})).await;
    add_fault(&base, json!({"kind":"status502","times":1})).await;
    add_fault(&base, json!({"kind":"status503","times":1})).await;
    let r = post_agg(&base, Some(KEY), &body()).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_none());
    let r = post_agg(&base, Some(KEY), &body()).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers().get("retry-after").unwrap(), "7");
    for code in [500, 502, 503] {
        assert_eq!(post_agg(&base, Some(KEY), &body()).await.status(), code);
    }
    assert_eq!(post_agg(&base, Some(KEY), &body()).await.status(), 200);
    let log = sim.control().request_log();
    let faults: Vec<Option<String>> = log.iter().map(|e| e.fault.clone()).collect();
    assert_eq!(faults[0].as_deref(), Some("status429"));
    assert_eq!(faults[1].as_deref(), Some("status429RetryAfter"));
    assert_eq!(faults[5], None);
    assert_eq!(
        log.iter().map(|e| e.status).collect::<Vec<_>>(),
        vec![429, 429, 500, 502, 503, 200]
    );
    // every: K — deterministic every K-th call.
    let c = common::client();
    c.delete(format!("{base}/_sim/faults"))
        .send()
        .await
        .unwrap();
    add_fault(
        &base,
        json!({"path":"/api/v1/token","kind":"status503","every":2}),
    )
    .await;
    let mut codes = Vec::new();
    for _ in 0..4 {
        let r = c
            .get(format!("{base}/api/v1/token/verify"))
            .header("x-pendo-integration-key", KEY)
            .send()
            .await
            .unwrap();
        codes.push(r.status().as_u16());
    }
    assert_eq!(codes, vec![200, 503, 200, 503]);
    let bad = c
        .post(format!("{base}/_sim/faults"))
        .json(&json!({"kind":"explode"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    running.shutdown().await;
}

#[tokio::test]
async fn delay_fault() {
    let (_sim, running) = spawn(tiny_nov5()).await;
    let base = running.base_url();
    add_fault(&base, json!({"kind":"delay","delayMs":400,"times":1})).await;
    let t = Instant::now();
    let r = post_agg(&base, Some(KEY), &body()).await;
    assert_eq!(r.status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(400));
    let _: Value = r.json().await.unwrap();
    running.shutdown().await;
}

#[tokio::test]
async fn drop_mid_body_is_a_body_error() {
    let (_sim, running) = spawn(tiny_nov5()).await;
    let base = running.base_url();
    add_fault(
        &base,
        json!({"path":"/api/v1/aggregation","kind":"dropMidBody","times":1}),
    )
    .await;
    let r = post_agg(&base, Some(KEY), &body()).await;
    assert_eq!(r.status(), 200);
    let err = r.bytes().await.unwrap_err();
    assert!(
        err.is_body() || err.is_decode() || err.is_request(),
        "{err:?}"
    );
    // Next call is clean.
    let v: Value = post_agg(&base, Some(KEY), &body())
        .await
        .json()
        .await
        .unwrap();
    assert!(v["results"].as_array().unwrap().len() > 3);
    running.shutdown().await;
}

#[tokio::test]
async fn truncate_mid_json_is_invalid_json() {
    let (sim, running) = spawn(tiny_nov5()).await;
    let base = running.base_url();
    add_fault(&base, json!({"kind":"truncateMidJson","times":2})).await;
    let r = post_agg(&base, Some(KEY), &body()).await;
    assert_eq!(r.status(), 200);
    let bytes = r.bytes().await.unwrap();
    assert!(!bytes.is_empty());
    assert!(serde_json::from_slice::<Value>(&bytes).is_err());
    assert!(bytes.starts_with(b"{\"startTime\":"));
    let full = serde_json::to_vec(&json!({"startTime":0})).unwrap();
    assert!(!full.is_empty());
    // Also on small object endpoints.
    let r = common::client()
        .get(format!("{base}/api/v1/segment"))
        .header("x-pendo-integration-key", KEY)
        .send()
        .await
        .unwrap();
    let bytes = r.bytes().await.unwrap();
    assert!(serde_json::from_slice::<Value>(&bytes).is_err());
    assert_eq!(
        sim.control().request_log()[1].fault.as_deref(),
        Some("truncateMidJson")
    );
    running.shutdown().await;
}

#[tokio::test]
async fn memory_limit_400() {
    let (sim, running) = spawn(tiny_nov5()).await;
    let base = running.base_url();
    let n = sim.run_aggregation(&body()).unwrap().len() as u64;
    let c = common::client();
    c.post(format!("{base}/_sim/memory-limit"))
        .json(&json!({"rows": n - 1}))
        .send()
        .await
        .unwrap();
    let r = post_agg(&base, Some(KEY), &body()).await;
    assert_eq!(r.status(), 400);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Query exceeded memory limit"));
    c.post(format!("{base}/_sim/memory-limit"))
        .json(&json!({"rows": n}))
        .send()
        .await
        .unwrap();
    let v: Value = post_agg(&base, Some(KEY), &body())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["results"].as_array().unwrap().len() as u64, n);
    // A count probe under the limit still works while the limit is tight.
    c.post(format!("{base}/_sim/memory-limit"))
        .json(&json!({"rows": 1}))
        .send()
        .await
        .unwrap();
    let mut probe = body();
    probe["request"]["pipeline"]
        .as_array_mut()
        .unwrap()
        .push(json!({"count": null}));
    let v: Value = post_agg(&base, Some(KEY), &probe)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["results"], json!([{"count": n}]));
    c.post(format!("{base}/_sim/memory-limit"))
        .json(&json!({"rows": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(post_agg(&base, Some(KEY), &body()).await.status(), 200);
    running.shutdown().await;
}

/// Body faults land on error answers too (the key check's 403, a memory-limit 400), a status
/// fault answers any status with its message, and can carry a body fault and a delay itself.
#[tokio::test]
async fn faults_land_on_top_of_error_answers() {
    let (sim, running) = spawn(tiny_nov5()).await;
    let base = running.base_url();
    let c = common::client();
    // The key check's empty 403, its connection dropped.
    add_fault(&base, json!({"kind":"dropMidBody","times":1})).await;
    let r = post_agg(&base, Some("no-such-key"), &body()).await;
    assert_eq!(r.status(), 403);
    assert!(r.bytes().await.is_err());
    // A memory-limit 400, cut cleanly half-way.
    c.post(format!("{base}/_sim/memory-limit"))
        .json(&json!({"rows": 0}))
        .send()
        .await
        .unwrap();
    add_fault(&base, json!({"kind":"truncateMidJson","times":1})).await;
    let r = post_agg(&base, Some(KEY), &body()).await;
    assert_eq!(
        (r.status().as_u16(), r.text().await.unwrap()),
        (400, "Query exceede".to_string())
    );
    c.post(format!("{base}/_sim/memory-limit"))
        .json(&json!({"rows": null}))
        .send()
        .await
        .unwrap();
    // A status fault with its message; then with a dropped body after a delay.
    add_fault(
        &base,
        json!({"kind":"status","status":404,"message":"not found","times":1}),
    )
    .await;
    let r = post_agg(&base, Some(KEY), &body()).await;
    assert_eq!(
        (r.status().as_u16(), r.text().await.unwrap()),
        (404, "not found".to_string())
    );
    add_fault(
        &base,
        json!({"kind":"status503","body":"dropMidBody","delayMs":30,"times":1}),
    )
    .await;
    let t = Instant::now();
    let r = post_agg(&base, Some(KEY), &body()).await;
    assert_eq!(r.status(), 503);
    assert!(r.bytes().await.is_err());
    assert!(t.elapsed() >= Duration::from_millis(30));
    assert_eq!(post_agg(&base, Some(KEY), &body()).await.status(), 200);
    let log = sim.control().request_log();
    assert_eq!(
        log.iter()
            .map(|e| (e.status, e.fault.as_deref()))
            .collect::<Vec<_>>(),
        vec![
            (403, Some("dropMidBody")),
            (400, Some("truncateMidJson")),
            (404, Some("status")),
            (503, Some("status503")),
            (200, None)
        ]
    );
    // Inconsistent rules are refused.
    for rule in [
        json!({"kind":"status"}),
        json!({"kind":"status","status":200}),
        json!({"kind":"status500","status":404}),
        json!({"kind":"delay","message":"x"}),
        json!({"kind":"status500","body":"delay"}),
        json!({"kind":"delay","body":"dropMidBody"}),
    ] {
        let r = c
            .post(format!("{base}/_sim/faults"))
            .json(&rule)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{rule}");
    }
    running.shutdown().await;
}
