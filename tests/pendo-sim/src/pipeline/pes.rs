//! The `pes` stage: per-account Product Engagement Score over a day window.
//!
//! For each app and each account with at least one active visitor in the window W
//! (`dayRange`, `first = firstDay`, `count = dayCount`), over the account's identified
//! visitors (restricted to the segment when given):
//! - adoption = 100 × mean over active visitors of (distinct core events used in W / #core events)
//! - stickiness = 100 × mean over active visitors of (days active in W / days in W)
//!   (= average DAU / MAU with MAU = visitors active in W)
//! - growth = 100 × (new + recovered) / (new + recovered + dropped), 0 when all are 0, where
//!   new = active in W and never active before W; recovered = active in W, not active in the
//!   equally long window P just before W, but active before P; dropped = active in P, not in W
//! - pes = (adoption + stickiness + growth) / 3; all four rounded to 2 decimals.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::source::{parse_app_ids, Source};
use super::timeseries::{parse_window, Period};
use crate::data::{EventRow, EventSource, Subscription, Visitor};
use crate::expr::EvalCtx;
use crate::timeutil::{add_days, local_date};
use crate::value::num;

/// Parsed `pes` stage.
#[derive(Debug, Clone)]
pub struct PesSpec {
    /// Apps to score (one row per account × app).
    pub apps: Vec<i64>,
    /// First local date of W.
    pub first: chrono::NaiveDate,
    /// Last local date of W (inclusive).
    pub last: chrono::NaiveDate,
    /// Segment restriction (index into segments).
    pub segment: Option<usize>,
    /// Explicit core events (`config.adoption.events`), else the apps' `isCoreEvent` items.
    pub core_events: Option<Vec<(EventSource, String)>>,
}

/// Parse `{"pes": {...}}`; returns the source and `startTime`.
pub fn parse_pes(v: &Value, sub: &Subscription, ctx: &EvalCtx) -> Result<(Source, i64), String> {
    let o = v.as_object().ok_or("pes must be an object")?;
    let apps = parse_app_ids(o.get("appId"), ctx)?;
    let first = o.get("firstDay").cloned().unwrap_or(json!("now()"));
    let count = o.get("dayCount").cloned().unwrap_or(json!(-30));
    let w = parse_window(
        &json!({ "period": "dayRange", "first": first, "count": count }),
        ctx,
    )?;
    debug_assert_eq!(w.period, Period::Day);
    let segment = match o.get("segment") {
        None | Some(Value::Null) => None,
        Some(s) => {
            let id = s
                .get("id")
                .and_then(Value::as_str)
                .ok_or("pes.segment needs an id")?;
            Some(
                sub.segments
                    .iter()
                    .position(|x| x.id == id)
                    .ok_or(format!("unknown segment id {id:?}"))?,
            )
        }
    };
    let core_events = match o
        .get("config")
        .and_then(|c| c.get("adoption"))
        .and_then(|a| a.get("events"))
    {
        None | Some(Value::Null) => None,
        Some(Value::Array(evs)) => Some(
            evs.iter()
                .map(|e| {
                    let kind = match e.get("kind").and_then(Value::as_str) {
                        Some("page") => EventSource::PageEvents,
                        Some("feature") => EventSource::FeatureEvents,
                        Some("trackType" | "track") => EventSource::TrackEvents,
                        other => return Err(format!("pes core event kind {other:?} unsupported")),
                    };
                    let id = e
                        .get("id")
                        .and_then(Value::as_str)
                        .ok_or("core event needs id")?;
                    Ok((kind, id.to_string()))
                })
                .collect::<Result<Vec<_>, String>>()?,
        ),
        Some(_) => return Err("pes.config.adoption.events must be a list".into()),
    };
    let start = w.start_ms;
    Ok((
        Source::Pes(PesSpec {
            apps,
            first: w.first_date,
            last: w.last_date,
            segment,
            core_events,
        }),
        start,
    ))
}

fn app_active(sub: &Subscription, v: &Visitor, date: chrono::NaiveDate, app: i64) -> bool {
    let mut rows: Vec<EventRow> = Vec::new();
    sub.visitor_day_rows(v, date, EventSource::Events, &[app], None, &mut rows);
    !rows.is_empty()
}

fn active_in(
    sub: &Subscription,
    v: &Visitor,
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
    app: i64,
) -> bool {
    let mut d = from.max(sub.first_date);
    while d <= to {
        if app_active(sub, v, d, app) {
            return true;
        }
        d = add_days(d, 1);
    }
    false
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[derive(Default)]
struct AccountTally {
    active: u64,
    adoption_sum: f64,
    stickiness_sum: f64,
    new_or_recovered: u64,
    dropped: u64,
}

/// Compute PES rows (ordered by account id, then app order).
pub fn compute(spec: &PesSpec, sub: &Subscription, ctx: &EvalCtx) -> Vec<Value> {
    let today = local_date(ctx.tz, ctx.now_ms);
    let last = spec.last.min(today);
    let ndays = (spec.last - spec.first).num_days() + 1;
    if ndays <= 0 {
        return Vec::new();
    }
    let prior_first = add_days(spec.first, -ndays);
    let prior_last = add_days(spec.first, -1);
    let segment = spec.segment.map(|i| &sub.segments[i]);
    let mut out = Vec::new();
    let mut tallies: Vec<Vec<AccountTally>> = Vec::new();
    for &app in &spec.apps {
        let core: Vec<(EventSource, String)> = spec
            .core_events
            .clone()
            .unwrap_or_else(|| sub.core_event_ids(app));
        let core_ids: BTreeSet<&str> = core.iter().map(|(_, id)| id.as_str()).collect();
        let mut per_account: Vec<AccountTally> = sub
            .accounts
            .iter()
            .map(|_| AccountTally::default())
            .collect();
        for v in &sub.visitors {
            let Some(ai) = v.account else { continue };
            if v.anonymous || !v.apps.contains(&app) {
                continue;
            }
            if let Some(seg) = segment {
                if !sub.account_in_segment(seg, &sub.accounts[ai].id) {
                    continue;
                }
            }
            let mut days_active = 0u64;
            let mut used: BTreeSet<&str> = BTreeSet::new();
            let mut d = spec.first;
            while d <= last {
                if app_active(sub, v, d, app) {
                    days_active += 1;
                    for src in [
                        EventSource::PageEvents,
                        EventSource::FeatureEvents,
                        EventSource::TrackEvents,
                    ] {
                        let mut rows = Vec::new();
                        sub.visitor_day_rows(v, d, src, &[app], None, &mut rows);
                        for r in rows {
                            if let Some(id) = r.item_id.filter(|id| core_ids.contains(id)) {
                                used.insert(id);
                            }
                        }
                    }
                }
                d = add_days(d, 1);
            }
            let in_prior = active_in(sub, v, prior_first, prior_last, app);
            let t = &mut per_account[ai];
            if days_active == 0 {
                if in_prior {
                    t.dropped += 1;
                }
                continue;
            }
            t.active += 1;
            if !core_ids.is_empty() {
                t.adoption_sum += used.len() as f64 / core_ids.len() as f64;
            }
            t.stickiness_sum += days_active as f64 / ndays as f64;
            if !in_prior {
                // New (never active before W) or recovered (active before P): both count.
                t.new_or_recovered += 1;
            }
        }
        tallies.push(per_account);
    }
    for (ai, a) in sub.accounts.iter().enumerate() {
        for (k, &app) in spec.apps.iter().enumerate() {
            let t = &tallies[k][ai];
            if t.active == 0 {
                continue;
            }
            let adoption = 100.0 * t.adoption_sum / t.active as f64;
            let stickiness = 100.0 * t.stickiness_sum / t.active as f64;
            let denom = t.new_or_recovered + t.dropped;
            let growth = if denom == 0 {
                0.0
            } else {
                100.0 * t.new_or_recovered as f64 / denom as f64
            };
            let pes = (adoption + stickiness + growth) / 3.0;
            out.push(json!({
                "accountId": a.id, "appId": app,
                "adoption": num(round2(adoption)), "stickiness": num(round2(stickiness)),
                "growth": num(round2(growth)), "pes": num(round2(pes)),
            }));
        }
    }
    out
}
