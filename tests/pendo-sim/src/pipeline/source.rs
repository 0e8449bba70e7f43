//! Row sources: event sources (lazy, windowed), raw guide and poll events (lazy, windowed) and
//! object snapshots (visitors, accounts, pages, features, track types, guides, apps).

use serde_json::Value;

use super::pes::PesSpec;
use super::timeseries::{parse_window, Period, Window};
use super::Rows;
use crate::data::{EventSource, GuideFilter, GuideSource, Subscription, DEFAULT_APP_ID};
use crate::expr::eval::eval;
use crate::expr::{parse, EvalCtx};
use crate::timeutil::local_date;

/// A parsed source.
#[derive(Debug, Clone)]
pub enum Source {
    /// `events`, `pageEvents`, `featureEvents`, `trackEvents`.
    Events {
        /// Which event source.
        kind: EventSource,
        /// App ids.
        apps: Vec<i64>,
        /// `pageId` / `featureId` / `trackTypeId` restriction.
        item: Option<String>,
        /// Time window.
        window: Window,
    },
    /// `guideEvents`, `pollEvents`: raw rows, one per guide event or poll response.
    GuideEvents {
        /// Which source.
        kind: GuideSource,
        /// App ids.
        apps: Vec<i64>,
        /// `guideId` restriction.
        guide: Option<String>,
        /// `guideStepId` restriction (`guideEvents`).
        step: Option<String>,
        /// `pollId` restriction (`pollEvents`).
        poll: Option<String>,
        /// Time window (rows by `browserTime`).
        window: Window,
    },
    /// `visitors` (optionally identified only).
    Visitors {
        /// Drop anonymous visitors.
        identified: bool,
    },
    /// `accounts`.
    Accounts,
    /// `pages` of apps.
    Pages(Vec<i64>),
    /// `features` of apps.
    Features(Vec<i64>),
    /// `trackTypes` of apps.
    TrackTypes(Vec<i64>),
    /// `guides` of apps.
    Guides(Vec<i64>),
    /// `apps`.
    Apps,
    /// The `pes` stage used as the pipeline's source.
    Pes(PesSpec),
}

/// Resolve an `appId` parameter: number, list, numeric string or `expandAppIds("*")`.
/// Absent/null ⇒ the default app only.
pub fn parse_app_ids(v: Option<&Value>, ctx: &EvalCtx) -> Result<Vec<i64>, String> {
    fn one(v: &Value) -> Result<i64, String> {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 1e18)
            .map(|f| f as i64)
            .or_else(|| v.as_i64())
            .ok_or(format!("appId entries must be integers, got {v}"))
    }
    let mut out = match v {
        None | Some(Value::Null) => vec![DEFAULT_APP_ID],
        Some(Value::Number(n)) => vec![n
            .as_i64()
            .ok_or(format!("appId must be an integer, got {n}"))?],
        Some(Value::Array(a)) => a.iter().map(one).collect::<Result<Vec<_>, _>>()?,
        Some(Value::String(s)) => {
            if let Ok(n) = s.trim().parse::<i64>() {
                vec![n]
            } else {
                let e = parse(s).map_err(|e| format!("appId: {e}"))?;
                match eval(&e, &Value::Null, ctx) {
                    Value::Array(a) => a.iter().map(one).collect::<Result<Vec<_>, _>>()?,
                    Value::Number(n) => vec![n.as_i64().ok_or("appId must be an integer")?],
                    other => return Err(format!("appId expression gave {other}")),
                }
            }
        }
        Some(other) => return Err(format!("unsupported appId {other}")),
    };
    out.dedup();
    Ok(out)
}

fn item_param(params: &Value, key: &str) -> Result<Option<String>, String> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("{key} must be a string, got {other}")),
    }
}

/// Parse `{"<name>": params, "timeSeries": …}`; returns the source and the `startTime`.
pub fn parse_source(v: &Value, ctx: &EvalCtx) -> Result<(Source, i64), String> {
    let o = v.as_object().ok_or("source must be an object")?;
    let names: Vec<&String> = o.keys().filter(|k| *k != "timeSeries").collect();
    let [name] = names.as_slice() else {
        return Err(format!(
            "source must name exactly one source, got {}",
            names.len()
        ));
    };
    let params = o.get(*name).cloned().unwrap_or(Value::Null);
    if !params.is_null() && !params.is_object() {
        return Err(format!("source {name} params must be an object or null"));
    }
    let apps = || parse_app_ids(params.get("appId"), ctx);
    let event = |kind: EventSource, item_key: Option<&str>| -> Result<(Source, i64), String> {
        let ts = o
            .get("timeSeries")
            .ok_or(format!("source {name} requires a timeSeries"))?;
        let window = parse_window(ts, ctx)?;
        let item = match item_key {
            Some(k) => item_param(&params, k)?,
            None => None,
        };
        let start = window.start_ms;
        Ok((
            Source::Events {
                kind,
                apps: apps()?,
                item,
                window,
            },
            start,
        ))
    };
    let guide_event = |kind: GuideSource| -> Result<(Source, i64), String> {
        let ts = o
            .get("timeSeries")
            .ok_or(format!("source {name} requires a timeSeries"))?;
        let window = parse_window(ts, ctx)?;
        let start = window.start_ms;
        let (step, poll) = match kind {
            GuideSource::GuideEvents => (item_param(&params, "guideStepId")?, None),
            GuideSource::PollEvents => (None, item_param(&params, "pollId")?),
        };
        Ok((
            Source::GuideEvents {
                kind,
                apps: apps()?,
                guide: item_param(&params, "guideId")?,
                step,
                poll,
                window,
            },
            start,
        ))
    };
    let snap = |s: Source| Ok((s, ctx.now_ms));
    match name.as_str() {
        "events" => event(EventSource::Events, None),
        "pageEvents" => event(EventSource::PageEvents, Some("pageId")),
        "featureEvents" => event(EventSource::FeatureEvents, Some("featureId")),
        "trackEvents" => event(EventSource::TrackEvents, Some("trackTypeId")),
        "guideEvents" => guide_event(GuideSource::GuideEvents),
        "pollEvents" => guide_event(GuideSource::PollEvents),
        "visitors" => snap(Source::Visitors {
            identified: params
                .get("identified")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        }),
        "accounts" => snap(Source::Accounts),
        "pages" => snap(Source::Pages(apps()?)),
        "features" => snap(Source::Features(apps()?)),
        "trackTypes" => snap(Source::TrackTypes(apps()?)),
        "guides" => snap(Source::Guides(apps()?)),
        "apps" => snap(Source::Apps),
        other => Err(format!("unknown or unsupported source {other:?}")),
    }
}

/// Lazily produce the rows of a source.
pub fn rows<'a>(source: &'a Source, sub: &'a Subscription, ctx: &'a EvalCtx) -> Rows<'a> {
    match source {
        Source::Events {
            kind,
            apps,
            item,
            window,
        } => {
            // No data after the local date of the simulator's current now.
            let today = local_date(ctx.tz, ctx.now_ms);
            let last = window.last_date.min(today);
            let hourly = window.period == Period::Hour;
            let (start, end) = (window.start_ms, window.end_ms);
            Box::new(
                sub.event_rows(*kind, apps, window.first_date, last, item.as_deref())
                    .filter(move |r| !hourly || (r.hour >= start && r.hour < end))
                    .map(move |r| r.to_json(hourly)),
            )
        }
        Source::GuideEvents {
            kind,
            apps,
            guide,
            step,
            poll,
            window,
        } => {
            // As event sources: no dates after the local date of the simulator's current now;
            // raw rows are also cut at now itself and at the window's bounds (hourRange).
            let today = local_date(ctx.tz, ctx.now_ms);
            let last = window.last_date.min(today);
            let (start, end, now) = (window.start_ms, window.end_ms, ctx.now_ms);
            let filter = GuideFilter {
                guide: guide.as_deref(),
                step: step.as_deref(),
                poll: poll.as_deref(),
            };
            Box::new(
                sub.guide_rows(*kind, apps, window.first_date, last, filter)
                    .filter(move |r| {
                        r.browser_time >= start && r.browser_time < end && r.browser_time <= now
                    })
                    .map(|r| r.to_json()),
            )
        }
        Source::Visitors { identified } => Box::new(
            sub.visitors
                .iter()
                .filter(move |v| !identified || !v.anonymous)
                .map(move |v| sub.visitor_json(v)),
        ),
        Source::Accounts => Box::new(sub.accounts.iter().map(move |a| sub.account_json(a))),
        Source::Pages(apps) => Box::new(
            sub.pages
                .iter()
                .filter(move |p| apps.contains(&p.app_id))
                .map(move |p| sub.page_json(p)),
        ),
        Source::Features(apps) => Box::new(
            sub.features
                .iter()
                .filter(move |f| apps.contains(&f.app_id))
                .map(move |f| sub.feature_json(f)),
        ),
        Source::TrackTypes(apps) => Box::new(
            sub.track_types
                .iter()
                .filter(move |t| apps.contains(&t.app_id))
                .map(move |t| sub.track_type_json(t)),
        ),
        Source::Guides(apps) => Box::new(
            sub.guides
                .iter()
                .filter(move |g| apps.contains(&g.app_id))
                .map(move |g| sub.guide_json(g)),
        ),
        Source::Apps => Box::new(sub.apps.iter().map(move |a| sub.app_json(a))),
        Source::Pes(spec) => Box::new(super::pes::compute(spec, sub, ctx).into_iter()),
    }
}
