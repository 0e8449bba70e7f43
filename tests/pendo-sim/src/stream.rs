//! Streaming JSON responses: a blocking producer runs the pipeline and serialises rows in
//! ~64 KiB chunks into a bounded channel; the HTTP body reads from it (chunked encoding),
//! paced by the latency model's time per 1,000 rows (`crate::limits::Pacer`).

use std::io::Write;

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;

use crate::error::SimError;
use crate::expr::EvalCtx;
use crate::limits::Pacer;
use crate::pipeline::{execute, Plan, Rows};
use crate::Simulator;

const CHUNK: usize = 64 * 1024;

/// A piece of a row body and the number of rows it completes.
struct Chunk {
    bytes: Bytes,
    rows: u64,
}

type ChunkTx = tokio::sync::mpsc::Sender<Result<Chunk, SimError>>;
type ChunkRx = tokio::sync::mpsc::Receiver<Result<Chunk, SimError>>;

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
    tx: &ChunkTx,
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
    let mut in_buf = 0u64;
    for r in rows {
        if !first {
            buf.push(b',');
        }
        first = false;
        if serde_json::to_writer(&mut buf, &r).is_err() {
            return;
        }
        in_buf += 1;
        if buf.len() >= CHUNK {
            let bytes = Bytes::from(std::mem::replace(
                &mut buf,
                Vec::with_capacity(CHUNK + 4096),
            ));
            let rows = std::mem::take(&mut in_buf);
            if tx.blocking_send(Ok(Chunk { bytes, rows })).is_err() {
                return; // client went away
            }
        }
    }
    buf.extend_from_slice(if envelope { b"]}" } else { b"]" });
    let last = Chunk {
        bytes: Bytes::from(buf),
        rows: in_buf,
    };
    let _ = tx.blocking_send(Ok(last));
}

/// What the body stream carries from one chunk to the next.
struct Paced {
    first: Option<Chunk>,
    rx: ChunkRx,
    pacer: Pacer,
}

/// The body: `first`, then the rest of the channel, each chunk released when the latency
/// model's per-row time for the rows so far has passed.
fn paced_body(paced: Paced) -> Body {
    let chunks = futures_util::stream::unfold(paced, |mut p| async move {
        let item = match p.first.take() {
            Some(c) => Ok(c),
            None => p.rx.recv().await?,
        };
        let out = match item {
            Ok(c) => {
                p.pacer.wait(c.rows).await;
                Ok(c.bytes)
            }
            Err(e) => Err(std::io::Error::other(e.to_string())),
        };
        Some((out, p))
    });
    Body::from_stream(chunks)
}

/// Run a plan and stream its rows, as `{"startTime":…,"results":[…]}` (`envelope`) or a bare
/// array. Errors before the first byte (e.g. the memory limit) become plain-text 400s. With a
/// latency per 1,000 rows set, a body of N rows takes at least N/1000 × that time.
pub async fn stream_plan(sim: Simulator, plan: Plan, ctx: EvalCtx, envelope: bool) -> Response {
    let limit = sim.control().memory_limit_rows();
    let latency = sim.control().latency();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Chunk, SimError>>(4);
    tokio::task::spawn_blocking(move || produce(&sim, &plan, &ctx, envelope, limit, &tx));
    let first = match rx.recv().await {
        Some(Ok(c)) => c,
        Some(Err(e)) => return error_response(&e),
        None => return (StatusCode::INTERNAL_SERVER_ERROR, "producer failed").into_response(),
    };
    let pacer = Pacer::new(latency);
    let mut r = Response::new(paced_body(Paced {
        first: Some(first),
        rx,
        pacer,
    }));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}
