//! Aggregation pipelines: request envelope, plan (source + stages) and streaming execution.
//!
//! Execution returns a lazy row iterator: non-blocking stages (filter, eval, select,
//! identified, segment, bulkExpand, skip, limit, unwind, merge) pass rows straight through;
//! blocking stages (group, sort, reduce, count) hold only what they must (group holds groups).

pub mod events_group;
pub mod group;
pub mod parse;
pub mod pes;
pub mod source;
pub mod stages;
pub mod synthetic;
pub mod timeseries;

use serde_json::Value;

pub use parse::{Plan, Stage};

use crate::data::Subscription;
use crate::error::SimError;
use crate::expr::EvalCtx;

/// A boxed row stream.
pub type Rows<'a> = Box<dyn Iterator<Item = Value> + Send + 'a>;

/// Extract the pipeline array from an envelope (`{"request":{"pipeline":[…]}}`), a bare
/// `{"pipeline":[…]}` object or a bare array.
pub fn pipeline_of(body: &Value) -> Result<&Vec<Value>, SimError> {
    let p = match body {
        Value::Array(a) => return Ok(a),
        Value::Object(o) => match o.get("request") {
            Some(Value::Object(r)) => r.get("pipeline"),
            Some(Value::Array(_)) => {
                return Err(SimError::bad(
                    "request must be an object; the plural \"requests\" form is not supported",
                ))
            }
            Some(_) => return Err(SimError::bad("request must be an object")),
            None => o.get("pipeline"),
        },
        _ => None,
    };
    match p {
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(SimError::bad("request.pipeline must be an array")),
        None => Err(SimError::bad("missing request.pipeline")),
    }
}

/// Parse a request body into a plan.
pub fn plan_request(body: &Value, sub: &Subscription, ctx: &EvalCtx) -> Result<Plan, SimError> {
    if let Some(mime) = body
        .get("response")
        .and_then(|r| r.get("mimeType"))
        .filter(|m| !m.is_null())
    {
        if mime.as_str() != Some("application/json") {
            return Err(SimError::bad(format!(
                "unsupported response.mimeType {mime}; only application/json"
            )));
        }
    }
    parse::parse_plan(pipeline_of(body)?, sub, ctx, 0).map_err(SimError::BadRequest)
}

/// Execute a plan lazily (a grouped event query is grouped on the call, by the fast path).
pub fn execute<'a>(plan: &'a Plan, sub: &'a Subscription, ctx: &'a EvalCtx) -> Rows<'a> {
    match events_group::rows(plan, sub, ctx) {
        Some(rows) => rows,
        None => execute_generic(plan, sub, ctx),
    }
}

/// Execute a plan stage by stage, without the grouped-events fast path (tests compare the two).
pub fn execute_generic<'a>(plan: &'a Plan, sub: &'a Subscription, ctx: &'a EvalCtx) -> Rows<'a> {
    let mut rows = source::rows(&plan.source, sub, ctx);
    for stage in &plan.stages {
        rows = stages::apply(rows, stage, sub, ctx);
    }
    rows
}
