//! `group` and `reduce`: aggregators sum, count (rows / distinct values), first, last, min,
//! max, list, avg. Group holds one accumulator set per distinct key, never the input rows.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};

use serde_json::{Map, Value};

use super::parse::Path;
use super::Rows;
use crate::expr::eval::eval;
use crate::expr::{parse_value, EvalCtx, Expr};
use crate::value::{cmp_values, get_path, num, set_path, split_path};

/// Aggregator kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggKind {
    /// Sum of numeric values (0 when none).
    Sum,
    /// `{"count": null}`: number of rows.
    CountRows,
    /// `{"count": "f"}`: number of distinct non-null values.
    CountDistinct,
    /// First row's value.
    First,
    /// Last row's value.
    Last,
    /// Minimum non-null value.
    Min,
    /// Maximum non-null value.
    Max,
    /// All non-null values in row order.
    List,
    /// Mean of numeric values (null when none).
    Avg,
}

/// One aggregator: kind plus argument expression.
#[derive(Debug, Clone)]
pub struct Agg {
    /// Kind.
    pub kind: AggKind,
    /// Argument (None only for `CountRows`).
    pub arg: Option<Expr>,
}

/// A JSON value ordered by [`cmp_values`], usable as a map key.
#[derive(Debug, Clone)]
pub struct OrdValue(pub Value);

impl PartialEq for OrdValue {
    fn eq(&self, o: &Self) -> bool {
        cmp_values(&self.0, &o.0) == Ordering::Equal
    }
}
impl Eq for OrdValue {}
impl PartialOrd for OrdValue {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for OrdValue {
    fn cmp(&self, o: &Self) -> Ordering {
        cmp_values(&self.0, &o.0)
    }
}

/// Hash consistent with [`cmp_values`] equality (numbers by value).
fn hash_value<H: Hasher>(v: &Value, h: &mut H) {
    match v {
        Value::Null => 0u8.hash(h),
        Value::Bool(b) => {
            1u8.hash(h);
            b.hash(h);
        }
        Value::Number(n) => {
            2u8.hash(h);
            let f = n.as_f64().unwrap_or(0.0);
            (if f == 0.0 { 0.0f64 } else { f }).to_bits().hash(h);
        }
        Value::String(s) => {
            3u8.hash(h);
            s.hash(h);
        }
        Value::Array(a) => {
            4u8.hash(h);
            a.len().hash(h);
            for x in a {
                hash_value(x, h);
            }
        }
        Value::Object(_) => {
            5u8.hash(h);
            serde_json::to_string(v).unwrap_or_default().hash(h);
        }
    }
}

impl Hash for OrdValue {
    fn hash<H: Hasher>(&self, h: &mut H) {
        hash_value(&self.0, h);
    }
}

fn parse_agg(spec: &Value) -> Result<Agg, String> {
    let m = spec
        .as_object()
        .filter(|m| m.len() == 1)
        .ok_or(format!("aggregator must be a one-key object, got {spec}"))?;
    let (k, arg) = m.iter().next().ok_or("empty aggregator")?;
    let kind = match k.as_str() {
        "sum" => AggKind::Sum,
        "count" if arg.is_null() => AggKind::CountRows,
        "count" => AggKind::CountDistinct,
        "first" => AggKind::First,
        "last" => AggKind::Last,
        "min" => AggKind::Min,
        "max" => AggKind::Max,
        "list" => AggKind::List,
        "avg" | "mean" => AggKind::Avg,
        other => return Err(format!("unknown aggregator {other:?}")),
    };
    let arg = if kind == AggKind::CountRows {
        None
    } else if arg.is_null() {
        return Err(format!("aggregator {k} needs a field"));
    } else {
        Some(parse_value(arg).map_err(|e| format!("aggregator {k}: {e}"))?)
    };
    Ok(Agg { kind, arg })
}

/// Parse `fields` as an object `{"out": {"sum": "f"}}` or a list of one-key objects.
pub fn parse_aggs(v: &Value) -> Result<Vec<(Path, Agg)>, String> {
    let mut out = Vec::new();
    let mut push = |m: &Map<String, Value>| -> Result<(), String> {
        for (name, spec) in m {
            out.push((split_path(name), parse_agg(spec)?));
        }
        Ok(())
    };
    match v {
        Value::Object(m) => push(m)?,
        Value::Array(items) => {
            for it in items {
                push(it.as_object().ok_or("fields entries must be objects")?)?;
            }
        }
        _ => return Err("fields must be an object or a list of objects".into()),
    }
    Ok(out)
}

enum Acc {
    Sum(f64),
    Rows(u64),
    Distinct(BTreeSet<OrdValue>),
    First(Option<Value>),
    Last(Value),
    Min(Option<Value>),
    Max(Option<Value>),
    List(Vec<Value>),
    Avg(f64, u64),
}

impl Acc {
    fn new(kind: AggKind) -> Acc {
        match kind {
            AggKind::Sum => Acc::Sum(0.0),
            AggKind::CountRows => Acc::Rows(0),
            AggKind::CountDistinct => Acc::Distinct(BTreeSet::new()),
            AggKind::First => Acc::First(None),
            AggKind::Last => Acc::Last(Value::Null),
            AggKind::Min => Acc::Min(None),
            AggKind::Max => Acc::Max(None),
            AggKind::List => Acc::List(Vec::new()),
            AggKind::Avg => Acc::Avg(0.0, 0),
        }
    }

    fn add(&mut self, agg: &Agg, row: &Value, ctx: &EvalCtx) {
        if let Acc::Rows(n) = self {
            *n += 1;
            return;
        }
        let v = match &agg.arg {
            Some(Expr::Path(p)) => get_path(row, p).cloned().unwrap_or(Value::Null),
            Some(e) => eval(e, row, ctx),
            None => Value::Null,
        };
        match self {
            Acc::Sum(s) => *s += v.as_f64().unwrap_or(0.0),
            Acc::Rows(_) => {}
            Acc::Distinct(set) => {
                if !v.is_null() {
                    set.insert(OrdValue(v));
                }
            }
            Acc::First(f) => {
                if f.is_none() {
                    *f = Some(v);
                }
            }
            Acc::Last(l) => *l = v,
            Acc::Min(m) => {
                if !v.is_null() && m.as_ref().is_none_or(|x| cmp_values(&v, x).is_lt()) {
                    *m = Some(v);
                }
            }
            Acc::Max(m) => {
                if !v.is_null() && m.as_ref().is_none_or(|x| cmp_values(&v, x).is_gt()) {
                    *m = Some(v);
                }
            }
            Acc::List(l) => {
                if !v.is_null() {
                    l.push(v);
                }
            }
            Acc::Avg(s, n) => {
                if let Some(f) = v.as_f64() {
                    *s += f;
                    *n += 1;
                }
            }
        }
    }

    fn finish(self) -> Value {
        match self {
            Acc::Sum(s) => num(s),
            Acc::Rows(n) => Value::from(n),
            Acc::Distinct(set) => Value::from(set.len()),
            Acc::First(f) => f.unwrap_or(Value::Null),
            Acc::Last(l) => l,
            Acc::Min(m) | Acc::Max(m) => m.unwrap_or(Value::Null),
            Acc::List(l) => Value::Array(l),
            Acc::Avg(s, n) => {
                if n == 0 {
                    Value::Null
                } else {
                    num(s / n as f64)
                }
            }
        }
    }
}

fn new_accs(aggs: &[(Path, Agg)]) -> Vec<Acc> {
    aggs.iter().map(|(_, a)| Acc::new(a.kind)).collect()
}

fn output(keys: &[Path], key: Vec<OrdValue>, aggs: &[(Path, Agg)], accs: Vec<Acc>) -> Value {
    let mut row = Value::Object(Map::new());
    for (p, k) in keys.iter().zip(key) {
        set_path(&mut row, p, k.0);
    }
    for ((p, _), acc) in aggs.iter().zip(accs) {
        set_path(&mut row, p, acc.finish());
    }
    row
}

/// Group rows by key paths; output ordered by key (hash map for lookups, sorted once at the
/// end, so output never depends on hash order).
pub fn group<'a>(
    rows: Rows<'a>,
    keys: &'a [Path],
    aggs: &'a [(Path, Agg)],
    ctx: &'a EvalCtx,
) -> Rows<'a> {
    let keyed = rows.map(move |row| {
        let key: Vec<OrdValue> = keys
            .iter()
            .map(|p| OrdValue(get_path(&row, p).cloned().unwrap_or(Value::Null)))
            .collect();
        (key, row)
    });
    group_keyed(keyed, keys, aggs, ctx)
}

/// [`group`] of rows whose keys are already computed: `(key values in key order, a row holding
/// at least the aggregators' fields)`. The event fast path feeds it without building full rows.
pub fn group_keyed<'a>(
    rows: impl Iterator<Item = (Vec<OrdValue>, Value)>,
    keys: &'a [Path],
    aggs: &'a [(Path, Agg)],
    ctx: &'a EvalCtx,
) -> Rows<'a> {
    let mut groups: HashMap<Vec<OrdValue>, Vec<Acc>> = HashMap::new();
    for (key, row) in rows {
        let accs = groups.entry(key).or_insert_with(|| new_accs(aggs));
        for (acc, (_, agg)) in accs.iter_mut().zip(aggs) {
            acc.add(agg, &row, ctx);
        }
    }
    let mut sorted: Vec<(Vec<OrdValue>, Vec<Acc>)> = groups.into_iter().collect();
    sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Box::new(
        sorted
            .into_iter()
            .map(move |(k, accs)| output(keys, k, aggs, accs)),
    )
}

/// Collapse all rows into one row of aggregates (one row even for empty input).
pub fn reduce<'a>(rows: Rows<'a>, aggs: &'a [(Path, Agg)], ctx: &'a EvalCtx) -> Rows<'a> {
    let mut accs = new_accs(aggs);
    for row in rows {
        for (acc, (_, agg)) in accs.iter_mut().zip(aggs) {
            acc.add(agg, &row, ctx);
        }
    }
    Box::new(std::iter::once(output(&[], Vec::new(), aggs, accs)))
}
