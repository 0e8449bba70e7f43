//! HTTP control API under `/_sim/` (no key needed): clock, faults, memory limit, keys,
//! request limits and latency, deleting objects of the subscription, request log and counters.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::control::ObjectKind;
use crate::faults::FaultRule;
use crate::limits::{Latency, Limits};
use crate::stream::json_value;
use crate::Simulator;

fn bad(msg: String) -> Response {
    (StatusCode::BAD_REQUEST, msg).into_response()
}

fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))
}

/// Parse an RFC 3339 instant.
pub fn parse_instant(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("invalid RFC 3339 time {s:?}: {e}"))
}

fn now_json(sim: &Simulator) -> Value {
    let now = sim.control().now();
    json!({ "now": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "nowMs": now.timestamp_millis() })
}

async fn get_now(State(sim): State<Simulator>) -> Response {
    json_value(&now_json(&sim))
}

#[derive(Deserialize)]
struct NowBody {
    now: String,
}

async fn set_now(State(sim): State<Simulator>, body: Bytes) -> Response {
    let b: NowBody = match parse(&body) {
        Ok(b) => b,
        Err(e) => return bad(e),
    };
    match parse_instant(&b.now) {
        Ok(t) => {
            sim.control().set_now(t);
            json_value(&now_json(&sim))
        }
        Err(e) => bad(e),
    }
}

async fn add_fault(State(sim): State<Simulator>, body: Bytes) -> Response {
    let rule: FaultRule = match parse(&body) {
        Ok(r) => r,
        Err(e) => return bad(e),
    };
    match sim.control().add_fault(rule) {
        Ok(()) => json_value(&json!({ "faults": sim.control().faults() })),
        Err(e) => bad(e),
    }
}

async fn list_faults(State(sim): State<Simulator>) -> Response {
    json_value(&json!({ "faults": sim.control().faults() }))
}

async fn clear_faults(State(sim): State<Simulator>) -> Response {
    sim.control().clear_faults();
    json_value(&json!({ "faults": [] }))
}

#[derive(Deserialize)]
struct LimitBody {
    rows: Option<u64>,
}

async fn memory_limit(State(sim): State<Simulator>, body: Bytes) -> Response {
    let b: LimitBody = match parse(&body) {
        Ok(b) => b,
        Err(e) => return bad(e),
    };
    sim.control().set_memory_limit_rows(b.rows);
    json_value(&json!({ "rows": b.rows }))
}

async fn synthetic_rows(State(sim): State<Simulator>, body: Bytes) -> Response {
    let b: LimitBody = match parse(&body) {
        Ok(b) => b,
        Err(e) => return bad(e),
    };
    sim.control().set_synthetic_event_rows(b.rows);
    json_value(&json!({ "rows": b.rows }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyBody {
    key: String,
    #[serde(default = "yes")]
    write_access: bool,
}

fn yes() -> bool {
    true
}

async fn set_key(State(sim): State<Simulator>, body: Bytes) -> Response {
    let b: KeyBody = match parse(&body) {
        Ok(b) => b,
        Err(e) => return bad(e),
    };
    if b.key.is_empty() {
        return bad("key must not be empty".into());
    }
    sim.control().set_key(&b.key, b.write_access);
    json_value(&json!({ "key": b.key, "writeAccess": b.write_access }))
}

async fn revoke_key(State(sim): State<Simulator>, Path(key): Path<String>) -> Response {
    let existed = sim.control().revoke_key(&key);
    json_value(&json!({ "key": key, "revoked": existed }))
}

async fn delete_object(
    State(sim): State<Simulator>,
    Path((kind, id)): Path<(String, String)>,
) -> Response {
    let Some(k) = ObjectKind::parse(&kind) else {
        return bad(format!(
            "unknown object kind {kind:?}: feature, page, trackType, guide, report or segment"
        ));
    };
    let sub = sim.subscription();
    let exists = match k {
        ObjectKind::Feature => sub.features.iter().any(|f| f.id == id),
        ObjectKind::Page => sub.pages.iter().any(|p| p.id == id),
        ObjectKind::TrackType => sub.track_types.iter().any(|t| t.id == id),
        ObjectKind::Guide => sub.guide(&id).is_some(),
        ObjectKind::Report => sub.report(&id).is_some(),
        ObjectKind::Segment => sub.segment(&id).is_some(),
    };
    if !exists {
        return (StatusCode::NOT_FOUND, format!("no {kind} {id}")).into_response();
    }
    let was_listed = sim.control().delete_object(k, &id);
    json_value(&json!({ "kind": k, "id": id, "deleted": was_listed }))
}

async fn requests(State(sim): State<Simulator>) -> Response {
    json_value(&json!(sim.control().request_log()))
}

async fn reset_requests(State(sim): State<Simulator>) -> Response {
    sim.control().reset_requests();
    json_value(&json!({ "reset": true }))
}

async fn get_limits(State(sim): State<Simulator>) -> Response {
    json_value(&json!(sim.control().limits()))
}

/// Replace the limits: an absent or null field removes that limit.
async fn set_limits(State(sim): State<Simulator>, body: Bytes) -> Response {
    let limits: Limits = match parse(&body) {
        Ok(l) => l,
        Err(e) => return bad(e),
    };
    match sim.control().set_limits(limits) {
        Ok(()) => json_value(&json!(limits)),
        Err(e) => bad(e),
    }
}

async fn get_latency(State(sim): State<Simulator>) -> Response {
    json_value(&json!(sim.control().latency()))
}

/// Replace the latency model: an absent field is zero.
async fn set_latency(State(sim): State<Simulator>, body: Bytes) -> Response {
    let latency: Latency = match parse(&body) {
        Ok(l) => l,
        Err(e) => return bad(e),
    };
    match sim.control().set_latency(latency) {
        Ok(()) => json_value(&json!(latency)),
        Err(e) => bad(e),
    }
}

/// Calls per path, plus `rateLimited` (429s of the request limits per key) once there are any.
async fn counters(State(sim): State<Simulator>) -> Response {
    let mut out = json!(sim.control().counters());
    let limited = sim.control().rate_limited();
    if let (Some(map), false) = (out.as_object_mut(), limited.is_empty()) {
        map.insert("rateLimited".into(), json!(limited));
    }
    json_value(&out)
}

async fn info(State(sim): State<Simulator>) -> Response {
    let sub = sim.subscription();
    json_value(&json!({
        "timezone": sub.timezone.name(),
        "firstDate": sub.first_date.to_string(),
        "lastDate": sub.last_date.to_string(),
        "apps": sub.app_ids(),
        "accounts": sub.accounts.len(),
        "visitors": sub.visitors.len(),
        "seed": sub.seed,
    }))
}

/// The `/_sim/` router.
pub fn control_router(sim: Simulator) -> Router {
    Router::new()
        .route("/_sim/now", get(get_now).post(set_now))
        .route(
            "/_sim/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/_sim/memory-limit", post(memory_limit))
        .route("/_sim/synthetic-rows", post(synthetic_rows))
        .route("/_sim/limits", get(get_limits).put(set_limits))
        .route("/_sim/latency", get(get_latency).put(set_latency))
        .route("/_sim/keys", post(set_key))
        .route("/_sim/keys/{key}", delete(revoke_key))
        .route("/_sim/objects/{kind}/{id}", delete(delete_object))
        .route("/_sim/requests", get(requests).delete(reset_requests))
        .route("/_sim/counters", get(counters))
        .route("/_sim/info", get(info))
        .with_state(sim)
}
