//! Poll mappings (`pollEvents` of one poll of a guide). An NPS poll: on companies, the NPS of
//! a trailing window per day over each visitor's latest response in it (no value without
//! one), with the responses counted; on end users, each one's latest rating of the day and the
//! response as an activity record. Another poll: its responses per day and the mean of its
//! numeric answers. Each value is checked against raw poll responses of a pipeline run
//! directly on the simulator, with the promoter/detractor rule written here; and the cost: one
//! Pendo call per mapping and day, the guides listed once per run.

use crate::helpers::*;
use chrono::{Duration, NaiveDate};
use pendo_sync::domain::{MappingKind, Target};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

const AGG: &str = "/api/v1/aggregation";
const GUIDES: &str = "/api/v1/guide";
const NPS_GUIDE: &str = "guide-nps-survey";
const NPS_POLL: &str = "poll-nps-rating";

fn poll(
    guide: &str,
    poll: &str,
    window: Option<u32>,
    responses: Option<&str>,
    mean: Option<&str>,
) -> MappingKind {
    MappingKind::Poll {
        guide_id: guide.into(),
        poll_id: poll.into(),
        window_days: window,
        responses_metric: responses.map(str::to_string),
        mean_metric: mean.map(str::to_string),
    }
}

/// Raw responses of a poll, local days `from..=to` in New York.
fn responses(s: &Stack, poll: &str, from: NaiveDate, to: NaiveDate) -> Vec<Value> {
    event_rows(&s.sim, ("pollEvents", "pollId", poll), from, to, NY, vec![])
}

/// Two decimals, as the product keeps an NPS and a mean.
fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn day_of(r: &Value) -> NaiveDate {
    local_day(r["browserTime"].as_i64().unwrap(), NY)
}

#[tokio::test]
async fn the_nps_of_each_day_counts_each_visitors_latest_response_in_the_trailing_window() {
    const WINDOW: i64 = 30;
    let s = Stack::start().await;
    s.ny_days(7).await;
    let companies: BTreeSet<String> = s.add_companies(&[]).await.into_iter().collect();
    s.mapping(
        poll(
            NPS_GUIDE,
            NPS_POLL,
            Some(WINDOW as u32),
            Some("NPS responses"),
            None,
        ),
        Target::Company,
        "NPS",
        |_| {},
    )
    .await;
    let (from, to) = (d("2026-10-29"), d("2026-11-04"));
    let rows = responses(&s, NPS_POLL, from - Duration::days(WINDOW - 1), to);
    // The rule, written here: per day, each visitor's latest response of the window; a
    // promoter answered 9 or 10, a detractor 0 to 6.
    let mut want = BTreeMap::new();
    let (mut twice, mut left) = (0, 0);
    let mut day = from;
    while day <= to {
        let first = day - Duration::days(WINDOW - 1);
        let mut latest: BTreeMap<&str, &Value> = BTreeMap::new();
        for r in rows.iter().filter(|r| (first..=day).contains(&day_of(r))) {
            let v = r["visitorId"].as_str().unwrap();
            match latest.get(v) {
                Some(k) => {
                    twice += 1;
                    if k["browserTime"].as_i64() <= r["browserTime"].as_i64() {
                        latest.insert(v, r);
                    }
                }
                None => {
                    latest.insert(v, r);
                }
            }
        }
        // A visitor whose only answer is the day before the window's first.
        left += rows
            .iter()
            .filter(|r| day_of(r) == first - Duration::days(1))
            .filter(|r| !latest.contains_key(r["visitorId"].as_str().unwrap()))
            .count();
        let mut per: BTreeMap<String, (f64, f64, f64)> = BTreeMap::new();
        for r in latest.values() {
            let Some(c) = r["accountId"].as_str().filter(|c| companies.contains(*c)) else {
                continue;
            };
            let rating = r["pollResponse"].as_f64().unwrap();
            let e = per.entry(c.to_string()).or_default();
            e.0 += f64::from(u8::from(rating >= 9.0));
            e.1 += f64::from(u8::from(rating <= 6.0));
            e.2 += 1.0;
        }
        for (c, (p, dt, n)) in per {
            let k = |m: &str| (c.clone(), m.to_string(), String::new(), day);
            want.insert(k("NPS"), round2(100.0 * (p - dt) / n));
            want.insert(k("NPS responses"), n);
        }
        day += Duration::days(1);
    }
    assert!(twice > 0, "a visitor answered twice in a window");
    assert!(left > 0, "a visitor's only answer left the window");
    assert!(want.len() > 20, "{want:?}");

    let c = s.sim.control();
    let (calls, lists) = (c.calls(AGG), c.calls(GUIDES));
    s.resync().await;
    assert_eq!(s.values().await, want);
    assert_eq!(c.calls(AGG) - calls, 7);
    assert_eq!(c.calls(GUIDES) - lists, 1);
}

#[tokio::test]
async fn ratings_on_end_users_and_another_polls_responses_and_mean_equal_the_raw_responses() {
    let s = Stack::start().await;
    s.ny_days(7).await;
    s.emails_and_auto_detect().await;
    let companies: BTreeSet<String> = s.add_companies(&[]).await.into_iter().collect();
    let (from, to) = (d("2026-10-29"), d("2026-11-04"));
    let nps = responses(&s, NPS_POLL, from, to);
    let scale = responses(&s, "poll-satisfaction", from, to);
    let pair = |r: &Value| {
        let v = r["visitorId"].as_str().filter(|v| !v.is_empty())?;
        let a = r["accountId"].as_str()?;
        companies
            .contains(a)
            .then(|| (v.to_string(), a.to_string()))
    };
    // Each respondent's latest rating of each day.
    let mut latest: BTreeMap<((String, String), NaiveDate), (i64, f64)> = BTreeMap::new();
    for r in &nps {
        let Some(p) = pair(r) else { continue };
        let t = r["browserTime"].as_i64().unwrap();
        let e = latest.entry((p, day_of(r))).or_insert((t, 0.0));
        if t >= e.0 {
            *e = (t, r["pollResponse"].as_f64().unwrap());
        }
    }
    assert!(latest.len() >= 3, "{latest:?}");
    let pairs: BTreeSet<(String, String)> = latest.keys().map(|(p, _)| p.clone()).collect();
    let (v1, a1) = pairs.iter().next().unwrap().clone();
    let kept = s.add_user(&a1, Some(&v1), None, Some("Keep")).await;
    let m = s
        .mapping(
            poll(NPS_GUIDE, NPS_POLL, None, None, None),
            Target::EndUser,
            "NPS rating",
            |m| m.auto_create_users = true,
        )
        .await;
    s.mapping(
        poll(
            "guide-satisfaction",
            "poll-satisfaction",
            None,
            None,
            Some("Satisfaction mean"),
        ),
        Target::Company,
        "Satisfaction answers",
        |_| {},
    )
    .await;
    let c = s.sim.control();
    let calls = c.calls(AGG);
    s.resync().await;
    assert_eq!(c.calls(AGG) - calls, 2 * 7);

    let by_pair = s.users_by_pair(&pairs, &kept).await;
    let mut want: BTreeMap<(String, String, String, NaiveDate), f64> = latest
        .iter()
        .map(|((p, day), (_, r))| {
            (
                (by_pair[p].clone(), "NPS rating".into(), "".into(), *day),
                *r,
            )
        })
        .collect();
    let mut per: BTreeMap<(String, NaiveDate), (f64, f64)> = BTreeMap::new();
    for r in &scale {
        let Some(a) = r["accountId"].as_str().filter(|a| companies.contains(*a)) else {
            continue;
        };
        let e = per.entry((a.to_string(), day_of(r))).or_default();
        e.0 += 1.0;
        e.1 += r["pollResponse"].as_f64().unwrap();
    }
    assert!(!per.is_empty());
    for ((a, day), (n, sum)) in per {
        want.insert(
            (a.clone(), "Satisfaction answers".into(), "".into(), day),
            n,
        );
        want.insert(
            (a, "Satisfaction mean".into(), "".into(), day),
            round2(sum / n),
        );
    }
    assert_eq!(s.values().await, want);
    // The response as an activity record of the day it was given.
    let activity: BTreeMap<(String, NaiveDate), f64> = s
        .export()
        .await
        .into_iter()
        .filter(|r| r.record == "activity" && r.metric == m.id.as_str())
        .map(|r| ((r.object_id, r.day), r.value))
        .collect();
    let want_activity: BTreeMap<(String, NaiveDate), f64> = latest
        .keys()
        .map(|(p, day)| ((by_pair[p].clone(), *day), 1.0))
        .collect();
    assert_eq!(activity, want_activity);
    assert_eq!(s.users_created(&m.id).await as usize, pairs.len() - 1);
}
