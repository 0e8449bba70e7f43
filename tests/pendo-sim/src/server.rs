//! The `/api/v1/*` surface: request limits and latency, key checks, fault injection, request
//! logging and the handlers.

use std::collections::BTreeMap;

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde_json::{json, Value};

use crate::control::ObjectKind;
use crate::faults::{cut_body, status_response, FaultKind, FaultRule};
use crate::limits::{hold_until_sent, Permit, Rejection};
use crate::pipeline::{parse::parse_plan, plan_request};
use crate::rng::fnv1a;
use crate::stream::{error_response, json_value, stream_plan};
use crate::{SimError, Simulator};

/// Max accepted request body.
const MAX_BODY: usize = 32 * 1024 * 1024;

/// The `fault` of a request-log entry answered 429 by the request limits.
pub const RATE_LIMITED: &str = "rateLimited";

/// Whether the calling key has write access (inserted by the guard).
#[derive(Debug, Clone, Copy)]
pub struct KeyAccess {
    /// Write access flag.
    pub write: bool,
}

fn forbidden() -> Response {
    (StatusCode::FORBIDDEN, Body::empty()).into_response()
}

fn fault_name(kind: FaultKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn header_key(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("x-pendo-integration-key")
        .and_then(|v| v.to_str().ok())
}

/// The request limits: `Err` refuses a known key's call beyond its budget (answer 429); `Ok`
/// carries the in-flight permit, if any limit is set. Unknown keys are not limited (they get
/// their 403).
fn admit(sim: &Simulator, headers: &HeaderMap) -> Result<Option<Permit>, Rejection> {
    let control = sim.control();
    match header_key(headers).filter(|k| control.key_access(k).is_some()) {
        Some(k) => control.admit(k),
        None => Ok(None),
    }
}

/// The key check, then the handler.
async fn answer(sim: &Simulator, parts: Parts, bytes: Bytes, next: Next) -> Response {
    let key = header_key(&parts.headers).and_then(|k| sim.control().key_access(k));
    let aggregation = parts.method == Method::POST && parts.uri.path() == "/api/v1/aggregation";
    match key {
        None => forbidden(),
        Some(false) if aggregation => forbidden(),
        Some(write) => {
            let mut req = Request::from_parts(parts, Body::from(bytes));
            req.extensions_mut().insert(KeyAccess { write });
            next.run(req).await
        }
    }
}

async fn guard(State(sim): State<Simulator>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let (parts, body) = req.into_parts();
    let bytes = match to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("cannot read body: {e}")).into_response()
        }
    };
    let digest = fnv1a(&bytes);
    let control = sim.control();
    // A call beyond the limits is answered at once and counted apart: not a call to its path,
    // not seen by fault rules, no latency.
    let permit = match admit(&sim, &parts.headers) {
        Ok(p) => p,
        Err(rejection) => {
            control.record(
                method.as_str(),
                &path,
                digest,
                429,
                Some(RATE_LIMITED.into()),
            );
            return rejection.response();
        }
    };
    control.count_call(&path);
    let fault = control.pick_fault(&path);
    let latency = control.latency().fixed();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(d) = fault.as_ref().and_then(FaultRule::delay) {
        tokio::time::sleep(d).await;
    }
    let resp = match fault.as_ref().and_then(status_response) {
        Some(r) => r,
        None => answer(&sim, parts, bytes, next).await,
    };
    // A body fault lands on whatever answer the call gets, error answers included.
    let resp = match fault.as_ref().and_then(FaultRule::cut) {
        Some(k) => cut_body(resp, k),
        None => resp,
    };
    control.record(
        method.as_str(),
        &path,
        digest,
        resp.status().as_u16(),
        fault.map(|f| fault_name(f.kind)),
    );
    match permit {
        Some(p) => hold_until_sent(resp, p),
        None => resp,
    }
}

async fn aggregation(State(sim): State<Simulator>, body: Bytes) -> Response {
    let json: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")).into_response()
        }
    };
    if let Some(answer) = sim.control().cached_answer(&body) {
        return json_bytes(answer);
    }
    let ctx = sim.eval_ctx();
    let response = match plan_request(&json, sim.subscription(), &ctx) {
        Ok(mut plan) => {
            forget_deleted(&sim, &mut plan);
            stream_plan(sim.clone(), plan, ctx, true).await
        }
        Err(e) => error_response(&e),
    };
    if !(sim.control().caches_aggregations() && response.status() == StatusCode::OK) {
        return response;
    }
    match to_bytes(response.into_body(), usize::MAX).await {
        Ok(answer) => {
            sim.control().keep_answer(&body, answer.clone());
            json_bytes(answer)
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// A whole JSON answer.
fn json_bytes(answer: Bytes) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        answer,
    )
        .into_response()
}

/// A deleted feature, page or track type has no events any more: a source naming it matches
/// none. Likewise a deleted guide: a guide or poll source naming it, one of its steps or one of
/// its polls has no rows.
fn forget_deleted(sim: &Simulator, plan: &mut crate::pipeline::Plan) {
    use crate::pipeline::source::Source;
    let control = sim.control();
    let sub = sim.subscription();
    match &mut plan.source {
        Source::Events {
            kind,
            item: Some(id),
            ..
        } => {
            let object = match kind {
                crate::data::EventSource::FeatureEvents => ObjectKind::Feature,
                crate::data::EventSource::PageEvents => ObjectKind::Page,
                crate::data::EventSource::TrackEvents => ObjectKind::TrackType,
                _ => return,
            };
            if control.is_deleted(object, id) {
                id.push_str("#deleted");
            }
        }
        Source::GuideEvents {
            guide, step, poll, ..
        } => {
            let deleted = |g: Option<&crate::data::Guide>| {
                g.is_some_and(|g| control.is_deleted(ObjectKind::Guide, &g.id))
            };
            if let Some(id) = guide.as_mut().filter(|id| deleted(sub.guide(id))) {
                id.push_str("#deleted");
            }
            if let Some(id) = step.as_mut().filter(|id| deleted(sub.guide_of_step(id))) {
                id.push_str("#deleted");
            }
            if let Some(id) = poll.as_mut().filter(|id| deleted(sub.guide_of_poll(id))) {
                id.push_str("#deleted");
            }
        }
        _ => {}
    }
}

async fn reports(State(sim): State<Simulator>) -> Response {
    let listed = sim
        .subscription()
        .reports
        .iter()
        .filter(|r| {
            let id = r.get("id").and_then(Value::as_str).unwrap_or_default();
            !sim.control().is_deleted(ObjectKind::Report, id)
        })
        .cloned()
        .collect();
    json_value(&Value::Array(listed))
}

async fn report_results(State(sim): State<Simulator>, Path(id): Path<String>) -> Response {
    let sub = sim.subscription();
    let Some(pipeline) = sub
        .report(&id)
        .filter(|_| !sim.control().is_deleted(ObjectKind::Report, &id))
        .and_then(|r| r.pointer("/aggregation/pipeline"))
        .and_then(Value::as_array)
    else {
        return error_response(&SimError::NotFound);
    };
    let ctx = sim.eval_ctx();
    match parse_plan(pipeline, sub, &ctx, 0) {
        Ok(plan) => stream_plan(sim.clone(), plan, ctx, false).await,
        Err(e) => error_response(&SimError::BadRequest(e)),
    }
}

fn all_apps(q: &BTreeMap<String, String>) -> bool {
    q.get("expand").is_some_and(|v| v == "*")
}

/// What an object endpoint lists: the default app's objects, or every app's with `expand=*`,
/// less those deleted through the control API.
fn listed<T>(
    sim: &Simulator,
    q: &BTreeMap<String, String>,
    (kind, items): (ObjectKind, &[T]),
    id_app: impl Fn(&T) -> (&str, i64),
    json: impl Fn(&T) -> Value,
) -> Response {
    let all = all_apps(q);
    let out: Vec<Value> = items
        .iter()
        .filter(|o| all || id_app(o).1 == crate::data::DEFAULT_APP_ID)
        .filter(|o| !sim.control().is_deleted(kind, id_app(o).0))
        .map(json)
        .collect();
    json_value(&Value::Array(out))
}

async fn pages(
    State(sim): State<Simulator>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let sub = sim.subscription();
    let items = (ObjectKind::Page, sub.pages.as_slice());
    listed(&sim, &q, items, |p| (&p.id, p.app_id), |p| sub.page_json(p))
}

async fn features(
    State(sim): State<Simulator>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let sub = sim.subscription();
    let items = (ObjectKind::Feature, sub.features.as_slice());
    listed(
        &sim,
        &q,
        items,
        |f| (&f.id, f.app_id),
        |f| sub.feature_json(f),
    )
}

async fn track_types(
    State(sim): State<Simulator>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let sub = sim.subscription();
    let items = (ObjectKind::TrackType, sub.track_types.as_slice());
    listed(
        &sim,
        &q,
        items,
        |t| (&t.id, t.app_id),
        |t| sub.track_type_json(t),
    )
}

async fn guides(
    State(sim): State<Simulator>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let sub = sim.subscription();
    let items = (ObjectKind::Guide, sub.guides.as_slice());
    listed(
        &sim,
        &q,
        items,
        |g| (&g.id, g.app_id),
        |g| sub.guide_json(g),
    )
}

async fn segments(State(sim): State<Simulator>) -> Response {
    let sub = sim.subscription();
    json_value(&Value::Array(
        sub.segments
            .iter()
            .filter(|s| !sim.control().is_deleted(ObjectKind::Segment, &s.id))
            .map(|s| sub.segment_json(s))
            .collect(),
    ))
}

async fn segment(State(sim): State<Simulator>, Path(id): Path<String>) -> Response {
    let sub = sim.subscription();
    match sub
        .segment(&id)
        .filter(|_| !sim.control().is_deleted(ObjectKind::Segment, &id))
    {
        Some(s) => json_value(&sub.segment_json(s)),
        None => error_response(&SimError::NotFound),
    }
}

async fn schema(State(sim): State<Simulator>, Path(kind): Path<String>) -> Response {
    match sim.subscription().metadata_schema(&kind) {
        Some(v) => json_value(&v),
        None => error_response(&SimError::NotFound),
    }
}

async fn verify(Extension(access): Extension<KeyAccess>) -> Response {
    json_value(&json!({ "valid": true, "writeAccess": access.write }))
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found").into_response()
}

/// The `/api/` router (guarded).
pub fn api_router(sim: Simulator) -> Router {
    Router::new()
        .route("/api/v1/aggregation", post(aggregation))
        .route("/api/v1/report", get(reports))
        .route("/api/v1/report/{id}/results.json", get(report_results))
        .route("/api/v1/page", get(pages))
        .route("/api/v1/feature", get(features))
        .route("/api/v1/tracktype", get(track_types))
        .route("/api/v1/guide", get(guides))
        .route("/api/v1/segment", get(segments))
        .route("/api/v1/segment/{id}", get(segment))
        .route("/api/v1/metadata/schema/{kind}", get(schema))
        .route("/api/v1/token/verify", get(verify))
        .route("/api/{*rest}", axum::routing::any(not_found))
        .layer(middleware::from_fn_with_state(sim.clone(), guard))
        .with_state(sim)
}
