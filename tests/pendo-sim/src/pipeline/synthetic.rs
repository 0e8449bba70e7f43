//! Big synthetic responses for benchmarks. With [`crate::Control::synthetic_event_rows`] set
//! to `n`, an event query grouped by visitor, account, app and day answers exactly `n` grouped
//! rows (fewer only if visitors × apps × days has fewer combinations), generated one at a time
//! from the seed instead of walking raw events into a group held in memory. The rows have the
//! shape the group stage produces (`visitorId`, `accountId`, `appId`, `day` + the sums), in
//! key order, and every later stage (`bulkExpand`, `select`, …) runs on them as usual — so the
//! client sees a real response shape of any size at streaming speed.

use chrono::Datelike;
use serde_json::{Map, Value};

use super::group::AggKind;
use super::parse::{Plan, Stage};
use super::source::Source;
use super::{stages, Rows};
use crate::data::Subscription;
use crate::expr::{EvalCtx, Expr};
use crate::rng::mix;
use crate::timeutil::{add_days, day_start_ms};

const GROUP_KEYS: [&str; 4] = ["visitorId", "accountId", "appId", "day"];

/// The grouped rows of `plan`, synthesised, when the plan is a grouped event query; `None` for
/// any other plan (which then runs normally).
pub fn rows<'a>(
    plan: &'a Plan,
    sub: &'a Subscription,
    ctx: &'a EvalCtx,
    n: u64,
) -> Option<Rows<'a>> {
    let Source::Events { apps, window, .. } = &plan.source else {
        return None;
    };
    let at = plan
        .stages
        .iter()
        .position(|s| matches!(s, Stage::Group { .. }))?;
    // Only row filters on visitor/account may come before the group.
    if !plan.stages[..at]
        .iter()
        .all(|s| matches!(s, Stage::Segment(_)))
    {
        return None;
    }
    let Stage::Group { keys, aggs } = &plan.stages[at] else {
        return None;
    };
    let mut names: Vec<String> = keys.iter().map(|k| k.join(".")).collect();
    names.sort();
    let mut want: Vec<&str> = GROUP_KEYS.to_vec();
    want.sort_unstable();
    if names != want {
        return None;
    }
    // Each aggregator must be a sum of a numeric source field we can synthesise.
    let mut sums: Vec<(String, bool)> = Vec::new();
    for (path, agg) in aggs {
        let minutes = match (&agg.kind, &agg.arg) {
            (AggKind::Sum, Some(Expr::Path(p))) if p.join(".") == "numEvents" => false,
            (AggKind::Sum, Some(Expr::Path(p))) if p.join(".") == "numMinutes" => true,
            _ => return None,
        };
        sums.push((path.join("."), minutes));
    }
    let days: Vec<(i64, u64)> = {
        let mut out = Vec::new();
        let mut d = window.first_date;
        while d <= window.last_date {
            out.push((day_start_ms(ctx.tz, d), d.num_days_from_ce().max(0) as u64));
            d = add_days(d, 1);
        }
        out
    };
    let apps = apps.clone();
    let seed = sub.seed;
    let combos = sub
        .visitors
        .iter()
        .filter(|v| !v.anonymous)
        .flat_map(move |v| {
            let account = sub.account_id_of(v).unwrap_or("").to_string();
            let apps = apps.clone();
            let days = days.clone();
            apps.into_iter().flat_map(move |app| {
                let account = account.clone();
                days.clone().into_iter().map(move |(ms, key)| {
                    (
                        v.id.as_str(),
                        account.clone(),
                        app,
                        ms,
                        u64::from(v.index),
                        key,
                    )
                })
            })
        });
    let mut out: Rows<'a> = Box::new(combos.take(n as usize).map(
        move |(visitor, account, app, ms, vi, dk)| {
            let events = 1 + mix(&[seed, vi, app as u64, dk]) % 12;
            let mut m = Map::new();
            m.insert("visitorId".into(), Value::from(visitor));
            m.insert("accountId".into(), Value::from(account));
            m.insert("appId".into(), Value::from(app));
            m.insert("day".into(), Value::from(ms));
            for (name, minutes) in &sums {
                let v = if *minutes { 1 + events / 3 } else { events };
                m.insert(name.clone(), Value::from(v));
            }
            Value::Object(m)
        },
    ));
    for (i, stage) in plan.stages.iter().enumerate() {
        if i != at {
            out = stages::apply(out, stage, sub, ctx);
        }
    }
    Some(out)
}
