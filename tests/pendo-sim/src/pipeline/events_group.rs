//! Fast path of `source (events) → [segment …] → group → …` for day or longer periods: group
//! keys and aggregated fields are read straight from the generated event rows, so a raw row is
//! never built as a full JSON object (the generic path spends most of a large grouped query
//! doing that). A query of one page or feature (every Feature/Page mapping's request) reads
//! that item's rows from the per-item generator (`Subscription::item_event_rows`), which never
//! walks the other items. Same keys, accumulators, output order and later stages as the generic
//! path; any other shape of plan returns `None` and runs generically.

use serde_json::{Map, Value};

use super::group::{group_keyed, OrdValue};
use super::parse::{Path, Plan, Stage};
use super::source::Source;
use super::timeseries::Period;
use super::{stages, Rows};
use crate::data::{EventRow, EventSource, Subscription};
use crate::expr::{EvalCtx, Expr};
use crate::timeutil::local_date;

/// A top-level field of an event row as `EventRow::to_json(false)` writes it.
#[derive(Debug, Clone, Copy)]
enum Field {
    Visitor,
    Account,
    App,
    Day,
    Item,
    Events,
    Minutes,
    FirstTime,
    LastTime,
    RemoteIp,
    Server,
    UserAgent,
}

impl Field {
    fn of(p: &Path, kind: EventSource) -> Option<Field> {
        let [name] = p.as_slice() else {
            return None;
        };
        Some(match name.as_str() {
            "visitorId" => Field::Visitor,
            "accountId" => Field::Account,
            "appId" => Field::App,
            "day" => Field::Day,
            "numEvents" => Field::Events,
            "numMinutes" => Field::Minutes,
            "firstTime" => Field::FirstTime,
            "lastTime" => Field::LastTime,
            "remoteIp" => Field::RemoteIp,
            "server" => Field::Server,
            "userAgent" => Field::UserAgent,
            n if kind.item_field() == Some(n) => Field::Item,
            _ => return None,
        })
    }

    /// The field's value; `None` where the JSON row has no such key.
    fn get(self, r: &EventRow<'_>) -> Option<Value> {
        Some(match self {
            Field::Visitor => Value::from(r.visitor_id),
            Field::Account => Value::from(r.account_id?),
            Field::App => Value::from(r.app_id),
            Field::Day => Value::from(r.day),
            Field::Item => Value::from(r.item_id?),
            Field::Events => Value::from(r.num_events),
            Field::Minutes => Value::from(r.num_minutes),
            Field::FirstTime => Value::from(r.first_time),
            Field::LastTime => Value::from(r.last_time),
            Field::RemoteIp => Value::from(r.remote_ip.as_str()),
            Field::Server => Value::from(r.server),
            Field::UserAgent => Value::from(r.user_agent),
        })
    }
}

/// The plan's rows by the fast path, or `None` if the plan is not a grouped event query.
pub fn rows<'a>(plan: &'a Plan, sub: &'a Subscription, ctx: &'a EvalCtx) -> Option<Rows<'a>> {
    let Source::Events {
        kind,
        apps,
        item,
        window,
    } = &plan.source
    else {
        return None;
    };
    // Hourly rows are filtered by hour and carry `hour`: the generic path handles them.
    if window.period == Period::Hour || *kind == EventSource::TrackEvents {
        return None;
    }
    let at = plan
        .stages
        .iter()
        .position(|s| matches!(s, Stage::Group { .. }))?;
    // Row filters before the group: segments, and filters that keep a set of items
    // (`featureId == "a" || featureId == "b"`, the shared call of several mappings).
    let mut segments: Vec<usize> = Vec::new();
    let mut items: Option<Vec<&'a str>> = None;
    for s in &plan.stages[..at] {
        match s {
            Stage::Segment(i) => segments.push(*i),
            Stage::Filter(e) if *kind != EventSource::Events => {
                let set = item_set(e, kind.item_field()?)?;
                items = Some(match items {
                    None => set,
                    Some(had) => had.into_iter().filter(|i| set.contains(i)).collect(),
                });
            }
            _ => return None,
        }
    }
    let Stage::Group { keys, aggs } = &plan.stages[at] else {
        return None;
    };
    let key_fields: Vec<Field> = keys
        .iter()
        .map(|k| Field::of(k, *kind))
        .collect::<Option<_>>()?;
    let mut agg_fields: Vec<(String, Field)> = Vec::new();
    for (_, agg) in aggs {
        match &agg.arg {
            None => {}
            Some(Expr::Path(p)) => agg_fields.push((p.join("."), Field::of(p, *kind)?)),
            Some(_) => return None,
        }
    }
    let today = local_date(ctx.tz, ctx.now_ms);
    let last = window.last_date.min(today);
    // One page/feature/track type (every Feature/Page mapping's query): that item's rows
    // alone, generated directly; otherwise the generic walk.
    let raw: Box<dyn Iterator<Item = EventRow<'a>> + Send + 'a> = match (item.as_deref(), items) {
        (Some(id), items) if *kind != EventSource::Events => {
            // A filter on other items than the source's one keeps nothing.
            let keep = items.is_none_or(|set| set.contains(&id));
            let rows = sub.item_event_rows(*kind, apps, window.first_date, last, id);
            Box::new(rows.filter(move |_| keep))
        }
        (None, Some(set)) => {
            let (first, kind) = (window.first_date, *kind);
            Box::new(
                set.into_iter()
                    .flat_map(move |id| sub.item_event_rows(kind, apps, first, last, id)),
            )
        }
        _ => Box::new(sub.event_rows(*kind, apps, window.first_date, last, item.as_deref())),
    };
    let events = raw.filter(move |r| {
        segments
            .iter()
            .all(|i| sub.visitor_in_segment(&sub.segments[*i], r.visitor_id))
    });
    let keyed = events.map(move |r| {
        let key = key_fields
            .iter()
            .map(|f| OrdValue(f.get(&r).unwrap_or(Value::Null)))
            .collect();
        let mut m = Map::new();
        for (name, f) in &agg_fields {
            if let Some(v) = f.get(&r) {
                m.insert(name.clone(), v);
            }
        }
        (key, Value::Object(m))
    });
    let mut out = group_keyed(keyed, keys, aggs, ctx);
    for stage in &plan.stages[at + 1..] {
        out = stages::apply(out, stage, sub, ctx);
    }
    Some(out)
}

/// The items a filter keeps when it is a disjunction of `<item field> == "<id>"` (either side
/// of `==`), without repeats; `None` for any other filter.
fn item_set<'a>(e: &'a Expr, field: &str) -> Option<Vec<&'a str>> {
    use crate::expr::BinOp;
    let mut out: Vec<&'a str> = Vec::new();
    let mut todo = vec![e];
    while let Some(e) = todo.pop() {
        let Expr::Binary(op, a, b) = e else {
            return None;
        };
        match (op, a.as_ref(), b.as_ref()) {
            (BinOp::Or, _, _) => {
                todo.push(b);
                todo.push(a);
            }
            (BinOp::Eq, Expr::Path(p), Expr::Lit(Value::String(id)))
            | (BinOp::Eq, Expr::Lit(Value::String(id)), Expr::Path(p))
                if p.len() == 1 && p[0] == field =>
            {
                if !out.contains(&id.as_str()) {
                    out.push(id);
                }
            }
            _ => return None,
        }
    }
    Some(out)
}
