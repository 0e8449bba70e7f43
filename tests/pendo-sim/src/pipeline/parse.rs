//! Parsing of pipeline stages into a typed [`Plan`]. Every malformed stage is a 400 reason.

use serde_json::{Map, Value};

use super::group::{parse_aggs, Agg};
use super::source::{parse_source, Source};
use crate::data::Subscription;
use crate::expr::{parse_value, EvalCtx, Expr};
use crate::value::split_path;

/// A dotted field path.
pub type Path = Vec<String>;

/// Which record `bulkExpand` attaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpandKind {
    /// Visitor metadata groups.
    Visitor,
    /// Account metadata groups.
    Account,
}

/// One pipeline stage.
#[derive(Debug, Clone)]
pub enum Stage {
    /// Keep rows where the expression is truthy.
    Filter(Expr),
    /// Add/overwrite fields (all evaluated against the incoming row).
    Eval(Vec<(Path, Expr)>),
    /// Project to exactly these fields.
    Select(Vec<(Path, Expr)>),
    /// Keep identified (or, negated, anonymous) values of a field.
    Identified {
        /// Field checked.
        field: Path,
        /// `!field`: keep only anonymous.
        negate: bool,
    },
    /// Group by keys with aggregators.
    Group {
        /// Key paths.
        keys: Vec<Path>,
        /// Output aggregators.
        aggs: Vec<(Path, Agg)>,
    },
    /// Collapse all rows into one.
    Reduce(Vec<(Path, Agg)>),
    /// Attach visitor/account metadata.
    BulkExpand(Vec<(Path, ExpandKind, Expr)>),
    /// Keep rows whose visitor (or account) is in the segment (index into segments).
    Segment(usize),
    /// Stable sort; `true` = descending.
    Sort(Vec<(Path, bool)>),
    /// First N rows.
    Limit(usize),
    /// Drop first N rows.
    Skip(usize),
    /// One row `{"count": N}`.
    Count,
    /// One row per element of an array field.
    Unwind {
        /// Array field.
        field: Path,
        /// Optional output index field.
        index: Option<Path>,
        /// Keep rows whose array is empty/missing.
        keep_empty: bool,
    },
    /// Left join with an inner pipeline.
    Merge {
        /// Join key paths.
        fields: Vec<Path>,
        /// out ← inner field.
        mappings: Vec<(Path, Path)>,
        /// Inner pipeline.
        plan: Box<Plan>,
    },
    /// No-op.
    Cat,
    /// Constant fields.
    Set(Vec<(Path, Value)>),
}

/// A parsed pipeline.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Row source.
    pub source: Source,
    /// Stages after the source.
    pub stages: Vec<Stage>,
    /// `startTime` of the response (window start, or now for snapshot sources).
    pub start_time: i64,
}

const MAX_NESTING: usize = 8;

fn expr_map(v: &Value, what: &str) -> Result<Vec<(Path, Expr)>, String> {
    let m = v.as_object().ok_or(format!("{what} must be an object"))?;
    m.iter()
        .map(|(k, e)| {
            let ex = parse_value(e).map_err(|err| format!("{what}.{k}: {err}"))?;
            Ok((split_path(k), ex))
        })
        .collect()
}

fn usize_arg(v: &Value, what: &str) -> Result<usize, String> {
    v.as_f64()
        .filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f <= 1e12)
        .map(|f| f as usize)
        .ok_or(format!("{what} must be a non-negative integer"))
}

fn path_str(v: &Value, what: &str) -> Result<Path, String> {
    v.as_str()
        .filter(|s| !s.is_empty())
        .map(split_path)
        .ok_or(format!("{what} must be a non-empty string"))
}

/// Parse a pipeline array.
pub fn parse_plan(
    pipeline: &[Value],
    sub: &Subscription,
    ctx: &EvalCtx,
    depth: usize,
) -> Result<Plan, String> {
    if depth > MAX_NESTING {
        return Err("pipelines nested too deeply".into());
    }
    let first = pipeline.first().ok_or("empty pipeline")?;
    let (name, body) = single_key(first)?;
    let (source, start_time) = match name {
        "source" => parse_source(body, ctx)?,
        "pes" => super::pes::parse_pes(body, sub, ctx)?,
        other => {
            return Err(format!(
                "pipeline must start with a source (or pes) stage, found {other:?}"
            ))
        }
    };
    let stages = pipeline[1..]
        .iter()
        .map(|s| parse_stage(s, sub, ctx, depth))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Plan {
        source,
        stages,
        start_time,
    })
}

fn single_key(stage: &Value) -> Result<(&str, &Value), String> {
    let m: &Map<String, Value> = stage
        .as_object()
        .ok_or(format!("pipeline stage must be an object, got {stage}"))?;
    if m.len() != 1 {
        return Err(format!(
            "pipeline stage must have exactly one operator key, got {}",
            m.len()
        ));
    }
    m.iter()
        .next()
        .map(|(k, v)| (k.as_str(), v))
        .ok_or_else(|| "empty stage".to_string())
}

fn parse_stage(
    stage: &Value,
    sub: &Subscription,
    ctx: &EvalCtx,
    depth: usize,
) -> Result<Stage, String> {
    let (name, v) = single_key(stage)?;
    Ok(match name {
        "filter" => Stage::Filter(parse_value(v).map_err(|e| format!("filter: {e}"))?),
        "eval" => Stage::Eval(expr_map(v, "eval")?),
        "select" => Stage::Select(expr_map(v, "select")?),
        "identified" => {
            let s = v.as_str().ok_or("identified must be a field name string")?;
            let (negate, f) = match s.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, s),
            };
            if f.is_empty() {
                return Err("identified needs a field name".into());
            }
            Stage::Identified {
                field: split_path(f),
                negate,
            }
        }
        "group" => {
            let o = v.as_object().ok_or("group must be an object")?;
            let keys = match o.get("group") {
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|k| path_str(k, "group.group[]"))
                    .collect::<Result<Vec<_>, _>>()?,
                Some(Value::String(s)) => vec![split_path(s)],
                None | Some(Value::Null) => Vec::new(),
                Some(_) => return Err("group.group must be a list of field names".into()),
            };
            let aggs = match o.get("fields") {
                None | Some(Value::Null) => Vec::new(),
                Some(f) => parse_aggs(f)?,
            };
            Stage::Group { keys, aggs }
        }
        "reduce" => Stage::Reduce(parse_aggs(v)?),
        "bulkExpand" => {
            let o = v.as_object().ok_or("bulkExpand must be an object")?;
            let mut out = Vec::new();
            for (target, spec) in o {
                let (kind, field) = single_key(spec).map_err(|e| format!("bulkExpand: {e}"))?;
                let kind = match kind {
                    "visitor" => super::parse::ExpandKind::Visitor,
                    "account" => super::parse::ExpandKind::Account,
                    other => return Err(format!("bulkExpand: unsupported kind {other:?}")),
                };
                let e = parse_value(field).map_err(|e| format!("bulkExpand: {e}"))?;
                out.push((split_path(target), kind, e));
            }
            Stage::BulkExpand(out)
        }
        "segment" => {
            let id = v
                .get("id")
                .and_then(Value::as_str)
                .ok_or("segment needs {\"id\": \"…\"}")?;
            let idx = sub
                .segments
                .iter()
                .position(|s| s.id == id)
                .ok_or(format!("unknown segment id {id:?}"))?;
            Stage::Segment(idx)
        }
        "sort" => {
            let keys: Vec<&Value> = match v {
                Value::Array(a) => a.iter().collect(),
                Value::String(_) => vec![v],
                _ => return Err("sort must be a list of field names".into()),
            };
            let mut out = Vec::new();
            for k in keys {
                let s = k.as_str().ok_or("sort keys must be strings")?;
                let (desc, f) = match s.strip_prefix('-') {
                    Some(r) => (true, r),
                    None => (false, s),
                };
                if f.is_empty() {
                    return Err("empty sort key".into());
                }
                out.push((split_path(f), desc));
            }
            Stage::Sort(out)
        }
        "limit" => Stage::Limit(usize_arg(v, "limit")?),
        "skip" => Stage::Skip(usize_arg(v, "skip")?),
        "count" => Stage::Count,
        "cat" => Stage::Cat,
        "set" => {
            let o = v.as_object().ok_or("set must be an object")?;
            Stage::Set(o.iter().map(|(k, c)| (split_path(k), c.clone())).collect())
        }
        "unwind" => {
            let o = v.as_object().ok_or("unwind must be an object")?;
            Stage::Unwind {
                field: path_str(o.get("field").unwrap_or(&Value::Null), "unwind.field")?,
                index: match o.get("index") {
                    None | Some(Value::Null) => None,
                    Some(i) => Some(path_str(i, "unwind.index")?),
                },
                keep_empty: o.get("keepEmpty").and_then(Value::as_bool).unwrap_or(false),
            }
        }
        "merge" => {
            let o = v.as_object().ok_or("merge must be an object")?;
            let fields = o
                .get("fields")
                .and_then(Value::as_array)
                .ok_or("merge.fields must be a list")?
                .iter()
                .map(|f| path_str(f, "merge.fields[]"))
                .collect::<Result<Vec<_>, _>>()?;
            let mappings = match o.get("mappings") {
                Some(Value::Object(m)) => m
                    .iter()
                    .map(|(out, inner)| Ok((split_path(out), path_str(inner, "merge.mappings")?)))
                    .collect::<Result<Vec<_>, String>>()?,
                None | Some(Value::Null) => Vec::new(),
                Some(_) => return Err("merge.mappings must be an object".into()),
            };
            let inner = o
                .get("pipeline")
                .and_then(Value::as_array)
                .ok_or("merge.pipeline must be a list")?;
            let plan = parse_plan(inner, sub, ctx, depth + 1)?;
            Stage::Merge {
                fields,
                mappings,
                plan: Box::new(plan),
            }
        }
        "source" | "pes" => return Err(format!("{name} is only allowed as the first stage")),
        other => return Err(format!("unknown pipeline operator {other:?}")),
    })
}
