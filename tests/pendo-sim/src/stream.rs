//! Streaming JSON responses: a blocking producer runs the pipeline and serialises rows in
//! ~64 KiB chunks into a bounded channel; the HTTP body reads from it (chunked encoding).

use std::io::Write;

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::Value;

use crate::error::SimError;
use crate::expr::EvalCtx;
use crate::pipeline::{execute, Plan, Rows};
use crate::Simulator;

const CHUNK: usize = 64 * 1024;

/// Plain-text error response for an engine error.
pub fn error_response(e: &SimError) -> Response {
    let code = match e {
        SimError::NotFound => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    };
    (code, e.to_string()).into_response()
}

/// Response whose body is the given bytes sent as one chunk (chunked encoding).
pub fn json_bytes(bytes: Vec<u8>) -> Response {
    let stream =
        futures_util::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(bytes)) });
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

/// Serialise a small JSON value as a chunked response.
pub fn json_value(v: &Value) -> Response {
    json_bytes(serde_json::to_vec(v).unwrap_or_default())
}

fn produce(
    sim: &Simulator,
    plan: &Plan,
    ctx: &EvalCtx,
    envelope: bool,
    limit: Option<u64>,
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, SimError>>,
) {
    let sub = sim.subscription();
    let synthetic = sim
        .control()
        .synthetic_event_rows()
        .and_then(|n| crate::pipeline::synthetic::rows(plan, sub, ctx, n));
    let mut rows: Rows<'_> = synthetic.unwrap_or_else(|| execute(plan, sub, ctx));
    if let Some(n) = limit {
        let mut held = Vec::new();
        for r in rows.by_ref() {
            held.push(r);
            if held.len() as u64 > n {
                let _ = tx.blocking_send(Err(SimError::MemoryLimit));
                return;
            }
        }
        rows = Box::new(held.into_iter());
    }
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK + 4096);
    if envelope {
        let _ = write!(buf, "{{\"startTime\":{},\"results\":[", plan.start_time);
    } else {
        buf.push(b'[');
    }
    let mut first = true;
    for r in rows {
        if !first {
            buf.push(b',');
        }
        first = false;
        if serde_json::to_writer(&mut buf, &r).is_err() {
            return;
        }
        if buf.len() >= CHUNK {
            let chunk = std::mem::replace(&mut buf, Vec::with_capacity(CHUNK + 4096));
            if tx.blocking_send(Ok(Bytes::from(chunk))).is_err() {
                return; // client went away
            }
        }
    }
    buf.extend_from_slice(if envelope { b"]}" } else { b"]" });
    let _ = tx.blocking_send(Ok(Bytes::from(buf)));
}

/// Run a plan and stream its rows, as `{"startTime":…,"results":[…]}` (`envelope`) or a bare
/// array. Errors before the first byte (e.g. the memory limit) become plain-text 400s.
pub async fn stream_plan(sim: Simulator, plan: Plan, ctx: EvalCtx, envelope: bool) -> Response {
    let limit = sim.control().memory_limit_rows();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, SimError>>(4);
    tokio::task::spawn_blocking(move || produce(&sim, &plan, &ctx, envelope, limit, &tx));
    let first = match rx.recv().await {
        Some(Ok(b)) => b,
        Some(Err(e)) => return error_response(&e),
        None => return (StatusCode::INTERNAL_SERVER_ERROR, "producer failed").into_response(),
    };
    let rest = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| {
            let mapped = item.map_err(|e| std::io::Error::other(e.to_string()));
            (mapped, rx)
        })
    });
    let body =
        futures_util::stream::once(async move { Ok::<_, std::io::Error>(first) }).chain(rest);
    let mut r = Response::new(Body::from_stream(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}
