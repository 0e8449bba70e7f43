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

/// Every company's series of each metric, read through the API, equals `want`'s, and every
/// series `want` has belongs to a company; more than 20 values in all.
async fn assert_series(
    serve: &Serve,
    companies: &[String],
    metrics: &[&str],
    mut want: BTreeMap<(String, &str), BTreeMap<NaiveDate, f64>>,
    (from, to): (NaiveDate, NaiveDate),
) {
    let mut compared = 0;
    for c in companies {
        for metric in metrics {
            let got = series(serve, c, metric, from, to).await;
            let expected = want.remove(&(c.clone(), *metric)).unwrap_or_default();
            assert_eq!(got, expected, "{c} {metric}");
            compared += got.len();
        }
    }
    assert!(compared > 20, "{compared} values compared");
    assert!(want.is_empty(), "values of no company: {want:?}");
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
    assert_series(
        &serve,
        &companies,
        &["Exports", "Export minutes"],
        want,
        (from, to),
    )
    .await;
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

/// Two decimals, as the product keeps an NPS and a mean.
fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// A guide of the simulator, as `GET /api/v1/guide` gives it to `curl`.
async fn pendo_guide(base_url: &str, id: &str) -> Value {
    let list: Value = reqwest::Client::new()
        .get(format!("{base_url}/api/v1/guide?expand=*"))
        .header("x-pendo-integration-key", KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no guide {id} in {list:#}"))
}

/// A Guide mapping (seen, steps advanced, dismissals and completions of a guide of several
/// steps, per company and local day), through `serve`: the guide is discovered through the API,
/// the values read back per company equal the raw `guideEvents` of a direct pipeline counted
/// here by type (and the last step's sights as completions).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guide_mapping_through_serve_equals_the_raw_guide_events() {
    let (sim, running) = simulator_now().await;
    let url = running.base_url();
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &url, &[]);
    let companies = configured(&serve, &sim, 10).await;
    let guides = serve.get("/v1/discovery/guides").await;
    let tour = guides
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["steps"].as_u64() > Some(1) && g["polls"] == json!([]))
        .unwrap_or_else(|| panic!("{guides:#}"));
    let id = tour["id"].as_str().unwrap().to_string();
    let steps = pendo_guide(&url, &id).await["steps"].clone();
    let last = steps.as_array().unwrap().last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, from, to) = created_and_synced(
        &serve,
        json!({"source": {"kind": "guide", "guideId": id, "advancedMetric": "Tour steps",
                "dismissedMetric": "Tour dismissed", "completedMetric": "Tour completed"},
            "target": "company", "metricName": "Tour seen"}),
        10,
    )
    .await;
    let rows = direct(
        &url,
        json!([
            {"source": {"guideEvents": {"guideId": id, "appId": "expandAppIds(\"*\")"},
                "timeSeries": {"period": "dayRange", "first": midnight_ms(from), "count": 10}}}
        ]),
    )
    .await;
    let metrics = [
        "Tour seen",
        "Tour steps",
        "Tour dismissed",
        "Tour completed",
    ];
    let mut want: BTreeMap<(String, &str), BTreeMap<NaiveDate, f64>> = BTreeMap::new();
    for r in &rows {
        let account = r["accountId"].as_str().filter(|a| !a.is_empty());
        let (Some(a), Some(ms)) = (account, r["browserTime"].as_i64()) else {
            continue;
        };
        let counted: &[&str] = match (r["type"].as_str(), r["guideStepId"] == last.as_str()) {
            (Some("guideSeen"), true) => &["Tour seen", "Tour completed"],
            (Some("guideSeen"), false) => &["Tour seen"],
            (Some("guideAdvanced"), _) => &["Tour steps"],
            (Some("guideDismissed"), _) => &["Tour dismissed"],
            _ => &[],
        };
        for metric in counted {
            *want
                .entry((a.to_string(), metric))
                .or_default()
                .entry(local_day(ms))
                .or_insert(0.0) += 1.0;
        }
    }
    assert_series(&serve, &companies, &metrics, want, (from, to)).await;
    // The closing note's table: one company, five days, beside the raw events.
    let busiest = companies
        .iter()
        .max_by_key(|c| rows.iter().filter(|r| r["accountId"] == c.as_str()).count())
        .unwrap();
    let mut table: BTreeMap<NaiveDate, Vec<f64>> = BTreeMap::new();
    for metric in metrics {
        for (day, v) in series(&serve, busiest, metric, from, to).await {
            table.entry(day).or_insert_with(|| vec![0.0; 4]);
            let k = metrics.iter().position(|m| *m == metric).unwrap();
            table.get_mut(&day).unwrap()[k] = v;
        }
    }
    let last5 = (0..5).map(|k| to - chrono::Duration::days(k));
    let none = vec![0.0; 4];
    for (day, v) in last5.map(|d| (d, table.get(&d).unwrap_or(&none))) {
        let raw = |t: &str, last_only: bool| {
            rows.iter()
                .filter(|r| r["accountId"] == busiest.as_str() && r["type"] == t)
                .filter(|r| !last_only || r["guideStepId"] == last.as_str())
                .filter(|r| r["browserTime"].as_i64().map(local_day) == Some(day))
                .count()
        };
        eprintln!(
            "guide {busiest} {day}: seen {} advanced {} dismissed {} completed {} (raw events {} {} {} {})",
            v[0],
            v[1],
            v[2],
            v[3],
            raw("guideSeen", false),
            raw("guideAdvanced", false),
            raw("guideDismissed", false),
            raw("guideSeen", true)
        );
    }
    serve.kill();
}

/// Poll mappings through `serve`: the NPS of a 30-day trailing window per company and day
/// (with the responses it counted), and a number-scale poll's answers and mean per day; each
/// equal to the raw `pollEvents` of a direct pipeline, with the NPS rule written here: per day,
/// each visitor's latest response of the window; promoters 9–10, detractors 0–6.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_mappings_through_serve_equal_the_raw_poll_responses() {
    const WINDOW: i64 = 30;
    let (sim, running) = simulator_now().await;
    let url = running.base_url();
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &url, &[]);
    let companies = configured(&serve, &sim, 10).await;
    let guides = serve.get("/v1/discovery/guides").await;
    let poll_of = |kind: &str| {
        guides
            .as_array()
            .unwrap()
            .iter()
            .find_map(|g| {
                let p = g["polls"].as_array()?.iter().find(|p| p["type"] == kind)?;
                Some((g["id"].as_str()?.to_string(), p["id"].as_str()?.to_string()))
            })
            .unwrap_or_else(|| panic!("no {kind} poll in {guides:#}"))
    };
    let (nps_guide, nps_poll) = poll_of("NPSRating");
    let (scale_guide, scale_poll) = poll_of("NumberScale");
    let (_, from, to) = created_and_synced(
        &serve,
        json!({"source": {"kind": "poll", "guideId": nps_guide, "pollId": nps_poll,
                "windowDays": WINDOW, "responsesMetric": "NPS responses"},
            "target": "company", "metricName": "NPS"}),
        10,
    )
    .await;
    created_and_synced(
        &serve,
        json!({"source": {"kind": "poll", "guideId": scale_guide, "pollId": scale_poll,
                "meanMetric": "Satisfaction"},
            "target": "company", "metricName": "Satisfaction answers"}),
        10,
    )
    .await;
    let raw = |poll: &str, first: NaiveDate, days: i64| {
        direct(
            &url,
            json!([{"source": {"pollEvents": {"pollId": poll, "appId": "expandAppIds(\"*\")"},
                "timeSeries": {"period": "dayRange", "first": midnight_ms(first), "count": days}}}]),
        )
    };
    let nps = raw(
        &nps_poll,
        from - chrono::Duration::days(WINDOW - 1),
        10 + WINDOW - 1,
    )
    .await;
    let scale = raw(&scale_poll, from, 10).await;
    let day_of = |r: &Value| local_day(r["browserTime"].as_i64().unwrap());
    let mut want: BTreeMap<(String, &str), BTreeMap<NaiveDate, f64>> = BTreeMap::new();
    let (mut twice, mut left) = (0, 0);
    let mut day = from;
    while day <= to {
        let first = day - chrono::Duration::days(WINDOW - 1);
        let mut latest: BTreeMap<&str, &Value> = BTreeMap::new();
        for r in nps.iter().filter(|r| (first..=day).contains(&day_of(r))) {
            let v = r["visitorId"].as_str().unwrap();
            if let Some(k) = latest.get(v) {
                twice += 1;
                if k["browserTime"].as_i64() > r["browserTime"].as_i64() {
                    continue;
                }
            }
            latest.insert(v, r);
        }
        left += nps
            .iter()
            .filter(|r| day_of(r) == first - chrono::Duration::days(1))
            .filter(|r| !latest.contains_key(r["visitorId"].as_str().unwrap()))
            .count();
        let mut per: BTreeMap<&str, (f64, f64, f64)> = BTreeMap::new();
        for r in latest.values() {
            let Some(a) = r["accountId"].as_str().filter(|a| !a.is_empty()) else {
                continue;
            };
            let rating = r["pollResponse"].as_f64().unwrap();
            let e = per.entry(a).or_default();
            e.0 += f64::from(u8::from(rating >= 9.0));
            e.1 += f64::from(u8::from(rating <= 6.0));
            e.2 += 1.0;
        }
        for (a, (p, dt, n)) in per {
            let mut put = |metric, v| {
                want.entry((a.to_string(), metric))
                    .or_default()
                    .insert(day, v);
            };
            put("NPS", round2(100.0 * (p - dt) / n));
            put("NPS responses", n);
        }
        day += chrono::Duration::days(1);
    }
    assert!(twice > 0 && left > 0, "twice {twice}, left {left}");
    let mut sums: BTreeMap<(String, NaiveDate), (f64, f64)> = BTreeMap::new();
    for r in &scale {
        let Some(a) = r["accountId"].as_str().filter(|a| !a.is_empty()) else {
            continue;
        };
        let e = sums.entry((a.to_string(), day_of(r))).or_default();
        e.0 += 1.0;
        e.1 += r["pollResponse"].as_f64().unwrap();
    }
    for ((a, day), (n, sum)) in sums {
        want.entry((a.clone(), "Satisfaction answers"))
            .or_default()
            .insert(day, n);
        want.entry((a, "Satisfaction"))
            .or_default()
            .insert(day, round2(sum / n));
    }
    let metrics = [
        "NPS",
        "NPS responses",
        "Satisfaction answers",
        "Satisfaction",
    ];
    assert_series(&serve, &companies, &metrics, want, (from, to)).await;
    // The closing note's table: the company with the most NPS responses, five days.
    let busiest = companies
        .iter()
        .max_by_key(|c| nps.iter().filter(|r| r["accountId"] == c.as_str()).count())
        .unwrap();
    for metric in metrics {
        let got = series(&serve, busiest, metric, from, to).await;
        let days: Vec<String> = got
            .iter()
            .rev()
            .take(5)
            .map(|(d, v)| format!("{d} {v}"))
            .collect();
        eprintln!("poll {busiest} {metric}: {}", days.join(", "));
    }
    serve.kill();
}
