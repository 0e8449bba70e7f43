//! Shared helpers for the integration tests.
#![allow(dead_code)]

use chrono::{NaiveDate, TimeZone, Utc};
use pendo_sim::{SimConfig, Simulator};
use serde_json::{json, Value};

pub const KEY: &str = "test-key";

pub fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

/// Tiny preset with now = 2026-11-05T12:00Z: history 2026-10-17 ..= 2026-11-05 (spans DST end).
pub fn tiny_nov5() -> SimConfig {
    let mut c = SimConfig::tiny();
    c.now = Utc.with_ymd_and_hms(2026, 11, 5, 12, 0, 0).unwrap();
    c
}

pub fn envelope(pipeline: Value) -> Value {
    json!({"response":{"mimeType":"application/json"},
           "request":{"name":"t","requestId":"t","pipeline":pipeline}})
}

/// reqwest is built without a TLS crypto library of its own (the workspace uses aws-lc-rs).
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder().build().unwrap()
}

pub async fn post_agg(base: &str, key: Option<&str>, body: &Value) -> reqwest::Response {
    let mut r = client()
        .post(format!("{base}/api/v1/aggregation"))
        .json(body);
    if let Some(k) = key {
        r = r.header("x-pendo-integration-key", k);
    }
    r.send().await.unwrap()
}

pub async fn spawn(config: SimConfig) -> (Simulator, pendo_sim::RunningSim) {
    let sim = Simulator::new(config);
    let running = sim.spawn("127.0.0.1:0").await.unwrap();
    (sim, running)
}
