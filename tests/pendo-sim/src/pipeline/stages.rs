//! Application of one stage to a row stream. Streaming stages map/filter lazily; blocking
//! stages (group, reduce, sort, count) consume their input when first polled.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::group::{group, reduce, OrdValue};
use super::parse::{ExpandKind, Path, Stage};
use super::{execute, Rows};
use crate::data::Subscription;
use crate::expr::eval::{eval, is_identified};
use crate::expr::{EvalCtx, Expr};
use crate::value::{cmp_values, get_path, set_path, truthy};

/// Run `f` on first poll only (keeps blocking stages lazy until the stream is consumed).
fn deferred<'a>(f: impl FnOnce() -> Rows<'a> + Send + 'a) -> Rows<'a> {
    let mut f = Some(f);
    let mut inner: Option<Rows<'a>> = None;
    Box::new(std::iter::from_fn(move || {
        if inner.is_none() {
            inner = f.take().map(|f| f());
        }
        inner.as_mut().and_then(|i| i.next())
    }))
}

fn field_value(row: &Value, e: &Expr, ctx: &EvalCtx) -> Value {
    match e {
        Expr::Path(p) => get_path(row, p).cloned().unwrap_or(Value::Null),
        other => eval(other, row, ctx),
    }
}

/// Apply a stage to a stream.
pub fn apply<'a>(
    rows: Rows<'a>,
    stage: &'a Stage,
    sub: &'a Subscription,
    ctx: &'a EvalCtx,
) -> Rows<'a> {
    match stage {
        Stage::Filter(e) => Box::new(rows.filter(move |r| truthy(&eval(e, r, ctx)))),
        Stage::Eval(fields) => Box::new(rows.map(move |mut r| {
            let vals: Vec<Value> = fields.iter().map(|(_, e)| eval(e, &r, ctx)).collect();
            for ((p, _), v) in fields.iter().zip(vals) {
                set_path(&mut r, p, v);
            }
            r
        })),
        Stage::Select(fields) => Box::new(rows.map(move |r| {
            let mut out = Value::Object(Map::new());
            for (p, e) in fields {
                set_path(&mut out, p, field_value(&r, e, ctx));
            }
            out
        })),
        Stage::Identified { field, negate } => Box::new(rows.filter(move |r| {
            let v = get_path(r, field).unwrap_or(&Value::Null);
            is_identified(v) != *negate
        })),
        Stage::Set(fields) => Box::new(rows.map(move |mut r| {
            for (p, v) in fields {
                set_path(&mut r, p, v.clone());
            }
            r
        })),
        Stage::Cat => rows,
        Stage::Segment(idx) => {
            let seg = &sub.segments[*idx];
            Box::new(rows.filter(move |r| {
                match r.get("visitorId").and_then(Value::as_str) {
                    Some(v) => sub.visitor_in_segment(seg, v),
                    None => r
                        .get("accountId")
                        .and_then(Value::as_str)
                        .is_some_and(|a| sub.account_in_segment(seg, a)),
                }
            }))
        }
        Stage::BulkExpand(specs) => Box::new(rows.map(move |mut r| {
            for (target, kind, e) in specs {
                let id = field_value(&r, e, ctx);
                let md = id.as_str().and_then(|id| match kind {
                    ExpandKind::Visitor => sub.visitor(id).map(|v| sub.visitor_metadata(v)),
                    ExpandKind::Account => sub.account(id).map(|a| sub.account_metadata(a)),
                });
                set_path(&mut r, target, md.unwrap_or(Value::Null));
            }
            r
        })),
        Stage::Limit(n) => Box::new(rows.take(*n)),
        Stage::Skip(n) => Box::new(rows.skip(*n)),
        Stage::Count => deferred(move || {
            let n = rows.count();
            Box::new(std::iter::once(json!({ "count": n })))
        }),
        Stage::Group { keys, aggs } => deferred(move || group(rows, keys, aggs, ctx)),
        Stage::Reduce(aggs) => deferred(move || reduce(rows, aggs, ctx)),
        Stage::Sort(keys) => deferred(move || {
            let mut all: Vec<Value> = rows.collect();
            all.sort_by(|a, b| {
                for (p, desc) in keys {
                    let x = get_path(a, p).unwrap_or(&Value::Null);
                    let y = get_path(b, p).unwrap_or(&Value::Null);
                    let o = cmp_values(x, y);
                    let o = if *desc { o.reverse() } else { o };
                    if o.is_ne() {
                        return o;
                    }
                }
                std::cmp::Ordering::Equal
            });
            Box::new(all.into_iter())
        }),
        Stage::Unwind {
            field,
            index,
            keep_empty,
        } => Box::new(rows.flat_map(move |r| unwind(r, field, index.as_ref(), *keep_empty))),
        Stage::Merge {
            fields,
            mappings,
            plan,
        } => {
            let mut lookup: Option<BTreeMap<Vec<OrdValue>, Value>> = None;
            Box::new(rows.map(move |mut r| {
                let table = lookup.get_or_insert_with(|| {
                    let mut t = BTreeMap::new();
                    for inner in execute(plan, sub, ctx) {
                        t.entry(key_of(&inner, fields)).or_insert(inner);
                    }
                    t
                });
                let hit = table.get(&key_of(&r, fields));
                for (out, src) in mappings {
                    let v = hit
                        .and_then(|h| get_path(h, src))
                        .cloned()
                        .unwrap_or(Value::Null);
                    set_path(&mut r, out, v);
                }
                r
            }))
        }
    }
}

fn key_of(row: &Value, fields: &[Path]) -> Vec<OrdValue> {
    fields
        .iter()
        .map(|p| OrdValue(get_path(row, p).cloned().unwrap_or(Value::Null)))
        .collect()
}

fn unwind(row: Value, field: &Path, index: Option<&Path>, keep_empty: bool) -> Vec<Value> {
    let items = match get_path(&row, field) {
        Some(Value::Array(a)) => a.clone(),
        _ => Vec::new(),
    };
    if items.is_empty() {
        return if keep_empty { vec![row] } else { Vec::new() };
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, it)| {
            let mut r = row.clone();
            set_path(&mut r, field, it);
            if let Some(ix) = index {
                set_path(&mut r, ix, Value::from(i));
            }
            r
        })
        .collect()
}
