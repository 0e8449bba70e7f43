//! Request limits per integration key and the latency model, as a client sees them.
//!
//! Pendo publishes no rate limit; third parties report 429s with `Retry-After` from a
//! leaky-bucket limit per subscription, and tap-pendo paces itself at 1 request per 2 s. The
//! simulator's limit (a token bucket plus an in-flight cap per key) and its numbers are
//! assumptions that let Pendo Sync's request budget be tested. Timings assert lower bounds only.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{client, envelope, post_agg, spawn, tiny_nov5, KEY};
use pendo_sim::{Latency, Limits, SimConfig, Simulator};
use serde_json::{json, Value};

const AGG: &str = "/api/v1/aggregation";

/// A cheap aggregation (yesterday's events, counted).
fn small_query() -> Value {
    envelope(json!([
        {"source":{"events":null,"timeSeries":{"period":"dayRange","first":"now()","count":-1}}},
        {"count":null}
    ]))
}

/// The grouped event query the synthetic-rows mode answers with exactly N rows.
fn grouped_query() -> Value {
    envelope(json!([
        {"source":{"events":{"appId":"expandAppIds(\"*\")"},
                   "timeSeries":{"period":"dayRange","first":"now()","count":-30}}},
        {"group":{"group":["visitorId","accountId","appId","day"],
                  "fields":[{"numEvents":{"sum":"numEvents"}}]}}
    ]))
}

async fn put(base: &str, path: &str, body: Value) -> reqwest::Response {
    client()
        .put(format!("{base}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn get_json(base: &str, path: &str) -> Value {
    client()
        .get(format!("{base}{path}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn verify(base: &str, key: &str) -> reqwest::Response {
    client()
        .get(format!("{base}/api/v1/token/verify"))
        .header("x-pendo-integration-key", key)
        .send()
        .await
        .unwrap()
}

/// The `Retry-After` of a 429: whole seconds, at least 1.
fn retry_after(r: &reqwest::Response) -> u64 {
    assert_eq!(r.status(), 429);
    let secs: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(secs >= 1);
    secs
}

/// Poll until `cond` holds (panics after 5 s, so a test never hangs).
async fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn in_flight_is<'a>(sim: &'a Simulator, key: &'static str, n: u32) -> impl Fn() -> bool + 'a {
    move || sim.control().in_flight(key) == n
}

/// Real Pendo: beyond its (unpublished) limit a subscription's calls get 429 with
/// `Retry-After`, and a call after that wait succeeds. Here: 2 requests/s, burst 2.
#[tokio::test]
async fn beyond_the_rate_calls_get_429_with_retry_after_then_succeed() {
    let (sim, running) = spawn(tiny_nov5()).await;
    let base = running.base_url();
    let r = put(&base, "/_sim/limits", json!({"requests_per_second": 2.0})).await;
    assert_eq!(r.status(), 200);
    let mut statuses = Vec::new();
    let mut wait = 0;
    for _ in 0..6 {
        let r = post_agg(&base, Some(KEY), &small_query()).await;
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            wait = retry_after(&r);
            assert_eq!(r.headers()["content-type"], "application/json");
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"], "Too Many Requests");
            assert_eq!(body["retryAfterSecs"], json!(wait));
        }
    }
    assert_eq!(&statuses[..2], &[200, 200], "the burst: {statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 429));
    let limited = statuses.iter().filter(|s| **s == 429).count() as u64;
    assert!(limited >= 1, "6 quick calls at 2/s: {statuses:?}");
    tokio::time::sleep(Duration::from_secs(wait)).await;
    assert_eq!(
        post_agg(&base, Some(KEY), &small_query()).await.status(),
        200
    );
    // A 429 of the limiter is not an aggregation call; it is counted per key apart.
    let ok = statuses.iter().filter(|s| **s == 200).count() as u64 + 1;
    assert_eq!(sim.control().calls(AGG), ok);
    assert_eq!(
        sim.control().rate_limited(),
        BTreeMap::from([(KEY.to_string(), limited)])
    );
    assert_eq!(
        get_json(&base, "/_sim/counters").await,
        json!({AGG: ok, "rateLimited": {KEY: limited}})
    );
    let log = sim.control().request_log();
    assert_eq!(log.len() as u64, ok + limited);
    assert!(log
        .iter()
        .all(|e| (e.status == 429) == (e.fault.as_deref() == Some("rateLimited"))));
    // Resetting the counters forgets the 429s too.
    client()
        .delete(format!("{base}/_sim/requests"))
        .send()
        .await
        .unwrap();
    assert_eq!(get_json(&base, "/_sim/counters").await, json!({}));
    running.shutdown().await;
}

/// Real Pendo: the limit belongs to a subscription (an integration key); one tenant's calls
/// never spend another's budget. Here 0.5 requests/s (burst 1, like tap-pendo's pace).
#[tokio::test]
async fn two_keys_have_independent_budgets() {
    let (sim, running) = spawn(tiny_nov5()).await;
    let base = running.base_url();
    sim.control().set_key("other", true);
    sim.control()
        .set_limits(Limits {
            requests_per_second: Some(0.5),
            max_in_flight: None,
        })
        .unwrap();
    assert_eq!(verify(&base, KEY).await.status(), 200);
    assert_eq!(retry_after(&verify(&base, KEY).await), 2);
    // The exhausted key does not slow the other one.
    assert_eq!(
        post_agg(&base, Some("other"), &small_query())
            .await
            .status(),
        200
    );
    retry_after(&verify(&base, "other").await);
    retry_after(&verify(&base, KEY).await);
    assert_eq!(
        get_json(&base, "/_sim/counters").await["rateLimited"],
        json!({KEY: 2, "other": 1})
    );
    // Unknown keys are not limited: they keep their 403.
    for _ in 0..3 {
        assert_eq!(verify(&base, "nope").await.status(), 403);
    }
    running.shutdown().await;
}

/// Real Pendo: slow aggregations of one subscription running at once are refused beyond a
/// concurrency cap (assumed; Pendo publishes none). Here at most 2 in flight per key.
#[tokio::test]
async fn a_call_beyond_the_in_flight_cap_gets_429() {
    let (sim, running) = spawn(tiny_nov5()).await;
    let base = running.base_url();
    let r = put(&base, "/_sim/limits", json!({"maxInFlight": 2})).await;
    assert_eq!(r.status(), 200);
    let r = put(&base, "/_sim/latency", json!({"latencyMs": 1000})).await;
    assert_eq!(r.status(), 200);
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let base = base.clone();
            tokio::spawn(async move { verify(&base, KEY).await.status().as_u16() })
        })
        .collect();
    wait_until("two calls in flight", in_flight_is(&sim, KEY, 2)).await;
    let r = verify(&base, KEY).await;
    assert_eq!(retry_after(&r), 1);
    let body: Value = r.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("concurrent"));
    for h in slow {
        assert_eq!(h.await.unwrap(), 200);
    }
    wait_until("the slots back", in_flight_is(&sim, KEY, 0)).await;
    put(&base, "/_sim/latency", json!({})).await;
    assert_eq!(verify(&base, KEY).await.status(), 200);
    assert_eq!(
        sim.control().rate_limited(),
        BTreeMap::from([(KEY.to_string(), 1)])
    );
    assert_eq!(sim.control().calls("/api/v1/token/verify"), 3);
    running.shutdown().await;
}

fn rows_of(body: &[u8]) -> usize {
    let v: Value = serde_json::from_slice(body).unwrap();
    v["results"].as_array().unwrap().len()
}

/// Real Pendo: a large aggregation keeps the subscription busy while its rows stream, and a
/// client that gives up frees it. A call is in flight until its body is sent or dropped.
#[tokio::test]
async fn a_streaming_body_holds_its_slot_until_sent_or_dropped() {
    let (sim, running) = spawn(SimConfig::small()).await;
    let base = running.base_url();
    sim.control().set_synthetic_event_rows(Some(5000));
    sim.control()
        .set_limits(Limits {
            requests_per_second: None,
            max_in_flight: Some(1),
        })
        .unwrap();
    let latency = |ms| Latency {
        latency_ms: 0,
        per_1000_rows_ms: ms,
    };
    sim.control().set_latency(latency(200)).unwrap();
    // Headers are in, 5,000 rows at 200 ms per 1,000 still to come: the slot is taken.
    let t0 = Instant::now();
    let r = post_agg(&base, Some(KEY), &grouped_query()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(sim.control().in_flight(KEY), 1);
    assert_eq!(retry_after(&verify(&base, KEY).await), 1);
    assert_eq!(rows_of(&r.bytes().await.unwrap()), 5000);
    assert!(t0.elapsed() >= Duration::from_millis(1000));
    wait_until("the slot back after the body", in_flight_is(&sim, KEY, 0)).await;
    // A body that would take 50 s: dropping it frees the slot.
    sim.control().set_latency(latency(10_000)).unwrap();
    let r = post_agg(&base, Some(KEY), &grouped_query()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(sim.control().in_flight(KEY), 1);
    drop(r);
    wait_until("the slot back after a drop", in_flight_is(&sim, KEY, 0)).await;
    sim.control().set_latency(Latency::default()).unwrap();
    assert_eq!(verify(&base, KEY).await.status(), 200);
    running.shutdown().await;
}

/// Real Pendo: a call's wall time is its query latency (seconds) plus the time to stream its
/// rows, not the client's CPU. Here 200 ms per call + 200 ms per 1,000 rows.
#[tokio::test]
async fn latency_delays_headers_and_paces_rows() {
    let (sim, running) = spawn(SimConfig::small()).await;
    let base = running.base_url();
    sim.control().set_synthetic_event_rows(Some(3000));
    let r = put(
        &base,
        "/_sim/latency",
        json!({"latencyMs": 200, "latencyPer1000RowsMs": 200}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let t0 = Instant::now();
    assert_eq!(verify(&base, KEY).await.status(), 200);
    assert!(t0.elapsed() >= Duration::from_millis(200));
    let t0 = Instant::now();
    let r = post_agg(&base, Some(KEY), &grouped_query()).await;
    assert_eq!(r.status(), 200);
    assert!(t0.elapsed() >= Duration::from_millis(200), "headers");
    assert_eq!(rows_of(&r.bytes().await.unwrap()), 3000);
    assert!(t0.elapsed() >= Duration::from_millis(200 + 600), "body");
    running.shutdown().await;
}

/// The control API: off by default, `PUT` replaces (absent or null = no limit / zero), `GET`
/// reads back, nonsense is a 400. Without limits nothing is refused.
#[tokio::test]
async fn limits_and_latency_control_api() {
    let (_sim, running) = spawn(tiny_nov5()).await;
    let base = running.base_url();
    let off = json!({"requestsPerSecond": null, "maxInFlight": null});
    assert_eq!(get_json(&base, "/_sim/limits").await, off);
    assert_eq!(
        get_json(&base, "/_sim/latency").await,
        json!({"latencyMs": 0, "latencyPer1000RowsMs": 0})
    );
    for _ in 0..20 {
        assert_eq!(verify(&base, KEY).await.status(), 200);
    }
    assert_eq!(
        get_json(&base, "/_sim/counters").await,
        json!({"/api/v1/token/verify": 20})
    );
    let set = json!({"requests_per_second": 2.5, "max_in_flight": 4});
    let r: Value = put(&base, "/_sim/limits", set).await.json().await.unwrap();
    let on = json!({"requestsPerSecond": 2.5, "maxInFlight": 4});
    assert_eq!(r, on);
    assert_eq!(get_json(&base, "/_sim/limits").await, on);
    let r = put(&base, "/_sim/limits", json!({"requestsPerSecond": null})).await;
    assert_eq!(r.json::<Value>().await.unwrap(), off);
    for bad in [
        json!({"requestsPerSecond": 0}),
        json!({"requestsPerSecond": -1.0}),
        json!({"maxInFlight": 0}),
        json!({"latencyMs": 5}),
    ] {
        let r = put(&base, "/_sim/limits", bad.clone()).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
    let r = put(&base, "/_sim/latency", json!({"latencyMs": 3_600_001})).await;
    assert_eq!(r.status(), 400);
    let r = put(
        &base,
        "/_sim/latency",
        json!({"latency_per_1000_rows_ms": 50}),
    )
    .await;
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"latencyMs": 0, "latencyPer1000RowsMs": 50})
    );
    running.shutdown().await;
}
