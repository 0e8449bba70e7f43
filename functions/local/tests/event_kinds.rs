//! The usage signals beyond features and pages (issue 30), through `pendo-sync serve` and its
//! HTTP API as an operator drives them: each new kind's values, read back through the API,
//! equal a pipeline this test sends to the simulator itself and sums on its own.

mod common;

use chrono::{DateTime, NaiveDate};
use chrono_tz::America::New_York as NY;
use common::*;
use pendo_sim::Simulator;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Connected, New York days, `days` to sync, every account a company: through the API.
async fn configured(serve: &Serve, sim: &Simulator, days: u32) -> Vec<String> {
    let ok = |(s, body): (StatusCode, Value)| assert!(s.is_success(), "{s}: {body}");
    ok(serve
        .call(
            Method::PUT,
            "/v1/integration/connection",
            Some(json!({"key": KEY, "domain": "app.pendo.io"})),
        )
        .await);
    ok(serve
        .call(
            Method::PATCH,
            "/v1/integration/settings",
            Some(json!({"daysToSync": days, "timezone": "America/New_York"})),
        )
        .await);
    let companies: Vec<String> = sim
        .subscription()
        .accounts
        .iter()
        .map(|a| a.id.clone())
        .collect();
    let items: Vec<Value> = companies.iter().map(|c| json!({"externalId": c})).collect();
    ok(serve
        .call(
            Method::PUT,
            "/v1/directory/companies",
            Some(json!({ "items": items })),
        )
        .await);
    companies
}

/// A pipeline sent straight to the simulator (as `curl` would), its rows.
async fn direct(base_url: &str, pipeline: Value) -> Vec<Value> {
    let body =
        json!({"response": {"mimeType": "application/json"}, "request": {"pipeline": pipeline}});
    let r = reqwest::Client::new()
        .post(format!("{base_url}/api/v1/aggregation"))
        .header("x-pendo-integration-key", KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let v: Value = r.json().await.unwrap();
    v["results"].as_array().cloned().unwrap_or_default()
}

fn local_day(ms: i64) -> NaiveDate {
    DateTime::from_timestamp_millis(ms)
        .unwrap()
        .with_timezone(&NY)
        .date_naive()
}

fn midnight_ms(day: NaiveDate) -> i64 {
    use chrono::TimeZone;
    NY.from_local_datetime(&day.and_hms_opt(0, 0, 0).unwrap())
        .earliest()
        .unwrap()
        .timestamp_millis()
}

/// A mapping created through the API, synced with Sync now to the end; its synced range (the
/// `days` days to sync up to its last synced day).
async fn created_and_synced(
    serve: &Serve,
    body: Value,
    days: u32,
) -> (String, NaiveDate, NaiveDate) {
    let (s, m) = serve.call(Method::POST, "/v1/mappings", Some(body)).await;
    assert_eq!(s, StatusCode::CREATED, "{m}");
    let id = m["id"].as_str().unwrap().to_string();
    let run = serve.post(&format!("/v1/mappings/{id}/sync")).await;
    let run = serve.finished(run["runId"].as_str().unwrap()).await;
    assert_eq!(
        (run["chunksFailed"].as_u64(), &run["chunksDone"]),
        (Some(0), &run["chunksTotal"]),
        "{run:#}"
    );
    let state = serve.get(&format!("/v1/mappings/{id}")).await["state"].clone();
    let last = state["lastSyncedDay"]
        .as_str()
        .unwrap_or_else(|| panic!("{state:#}"));
    let last = NaiveDate::parse_from_str(last, "%Y-%m-%d").unwrap();
    (id, last - chrono::Duration::days(i64::from(days) - 1), last)
}

/// A company's series of `metric` over `from..=to`, as the API gives it: day → value.
async fn series(
    serve: &Serve,
    company: &str,
    metric: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> BTreeMap<NaiveDate, f64> {
    let q = format!("metric={metric}&from={from}&to={to}").replace(' ', "%20");
    let points = serve
        .get(&format!("/v1/objects/company/{company}/series?{q}"))
        .await;
    points
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert_eq!(p["app"], "", "{p}");
            (
                NaiveDate::parse_from_str(p["day"].as_str().unwrap(), "%Y-%m-%d").unwrap(),
                p["value"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// A Track event mapping (events and minutes of one track type per company and local day),
/// through `serve`: the track types are discovered through the API, the values read back
/// per company equal a direct `trackEvents` pipeline grouped here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_track_mapping_through_serve_equals_a_direct_pipeline() {
    let (sim, running) = simulator_now().await;
    let url = running.base_url();
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &url, &[]);
    let companies = configured(&serve, &sim, 10).await;
    let types = serve.get("/v1/discovery/track-types").await;
    let t = types
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "report_exported")
        .unwrap_or_else(|| panic!("{types:#}"))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, from, to) = created_and_synced(
        &serve,
        json!({"source": {"kind": "track", "trackTypeId": t, "minutesMetric": "Export minutes"},
            "target": "company", "metricName": "Exports"}),
        10,
    )
    .await;
    assert_eq!((to - from).num_days(), 9);
    let rows = direct(
        &url,
        json!([
            {"source": {"trackEvents": {"trackTypeId": t, "appId": "expandAppIds(\"*\")"},
                "timeSeries": {"period": "dayRange", "first": midnight_ms(from), "count": 10}}},
            {"group": {"group": ["accountId", "day"],
                "fields": [{"events": {"sum": "numEvents"}}, {"minutes": {"sum": "numMinutes"}}]}}
        ]),
    )
    .await;
    let mut want: BTreeMap<(String, &str), BTreeMap<NaiveDate, f64>> = BTreeMap::new();
    for r in &rows {
        // A row of no account (an anonymous visitor) has no company.
        let account = r["accountId"].as_str().filter(|a| !a.is_empty());
        let (Some(a), Some(ms)) = (account, r["day"].as_i64()) else {
            continue;
        };
        for (metric, field) in [("Exports", "events"), ("Export minutes", "minutes")] {
            let v = r[field].as_f64().unwrap();
            *want
                .entry((a.to_string(), metric))
                .or_default()
                .entry(local_day(ms))
                .or_insert(0.0) += v;
        }
    }
    let mut compared = 0;
    for c in &companies {
        for metric in ["Exports", "Export minutes"] {
            let got = series(&serve, c, metric, from, to).await;
            let expected = want.remove(&(c.clone(), metric)).unwrap_or_default();
            assert_eq!(got, expected, "{c} {metric}");
            compared += got.len();
        }
    }
    assert!(compared > 20, "{compared} values compared");
    assert!(want.is_empty(), "values of no company: {want:?}");
    // The closing note's table: one company, five days, beside the direct pipeline.
    let busiest = companies
        .iter()
        .max_by_key(|c| rows.iter().filter(|r| r["accountId"] == c.as_str()).count())
        .unwrap();
    let got = series(&serve, busiest, "Exports", from, to).await;
    for (day, v) in got.iter().rev().take(5) {
        let direct: f64 = rows
            .iter()
            .filter(|r| r["accountId"] == busiest.as_str())
            .filter(|r| r["day"].as_i64().map(local_day) == Some(*day))
            .map(|r| r["events"].as_f64().unwrap())
            .sum();
        eprintln!("track {busiest} {day}: Exports {v} (direct pipeline {direct})");
    }
    serve.kill();
}
