//! Per-integration-key request limits and a latency model, both off by default.
//!
//! Pendo publishes no rate limit, yet clients receive 429s with `Retry-After` (third parties
//! describe a leaky-bucket limit per subscription). The simulator enforces an *assumed* limit
//! per key: a token bucket (capacity = the per-second rate, at least one request, refilled
//! continuously) plus a cap on requests in flight. A request is in flight from its admission
//! until its response body has been fully sent or dropped: the [`Permit`] it holds travels
//! with the body. Beyond either limit the call is answered 429 with `Retry-After` (whole
//! seconds, at least 1) and counted per key.
//!
//! The latency model stands for Pendo's query time: a fixed time before the response headers
//! of every admitted `/api/` call, and a time per thousand rows that paces streamed row bodies
//! (`crate::stream`).

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::time::Instant;

/// Longest accepted latency setting (one hour), so that timers stay meaningful.
const MAX_LATENCY_MS: u64 = 3_600_000;

/// The request limits per integration key (`None` = unlimited).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Limits {
    /// Sustained requests per second per key; also the bucket's capacity (burst), at least 1.
    #[serde(default, alias = "requests_per_second")]
    pub requests_per_second: Option<f64>,
    /// Requests per key in flight at once.
    #[serde(default, alias = "max_in_flight")]
    pub max_in_flight: Option<u32>,
}

impl Limits {
    /// Errors on a rate that is not a finite positive number or a zero in-flight cap.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(r) = self.requests_per_second {
            if !r.is_finite() || r <= 0.0 {
                return Err(format!(
                    "requestsPerSecond must be a positive number, got {r}"
                ));
            }
        }
        if self.max_in_flight == Some(0) {
            return Err("maxInFlight must be at least 1".into());
        }
        Ok(())
    }

    fn is_off(&self) -> bool {
        self.requests_per_second.is_none() && self.max_in_flight.is_none()
    }
}

/// The latency model (zero = answer at once, today's behaviour).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Latency {
    /// Fixed time per call, before the response headers.
    #[serde(default, rename = "latencyMs", alias = "latency_ms")]
    pub latency_ms: u64,
    /// Time per 1,000 rows of a streamed row body (aggregation and report results).
    #[serde(
        default,
        rename = "latencyPer1000RowsMs",
        alias = "latency_per_1000_rows_ms"
    )]
    pub per_1000_rows_ms: u64,
}

impl Latency {
    /// Errors on a value above one hour.
    pub fn validate(&self) -> Result<(), String> {
        if self.latency_ms > MAX_LATENCY_MS || self.per_1000_rows_ms > MAX_LATENCY_MS {
            return Err(format!("latencies must be at most {MAX_LATENCY_MS} ms"));
        }
        Ok(())
    }

    /// The fixed part.
    pub fn fixed(&self) -> Duration {
        Duration::from_millis(self.latency_ms)
    }

    /// Time for `rows` rows (µs per row = ms per 1,000 rows).
    pub fn for_rows(&self, rows: u64) -> Duration {
        Duration::from_micros(self.per_1000_rows_ms.saturating_mul(rows))
    }
}

/// Why a call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The key's token bucket is empty.
    Rate,
    /// The key has `maxInFlight` requests in flight.
    InFlight,
}

/// A refused call: answer it with [`Rejection::response`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    /// Why.
    pub reason: Reason,
    /// Whole seconds until a retry can succeed (at least 1).
    pub retry_after_secs: u64,
}

impl Rejection {
    fn new(reason: Reason, wait_secs: f64) -> Self {
        // Float to whole seconds: `ceil` then a saturating cast; never below 1.
        let secs = wait_secs.ceil().clamp(1.0, 3600.0) as u64;
        Rejection {
            reason,
            retry_after_secs: secs,
        }
    }

    /// 429 with `Retry-After` and a small JSON body.
    pub fn response(&self) -> Response {
        let message = match self.reason {
            Reason::Rate => "rate limit exceeded for this integration key",
            Reason::InFlight => "too many concurrent requests for this integration key",
        };
        let body = json!({
            "error": "Too Many Requests",
            "message": message,
            "retryAfterSecs": self.retry_after_secs,
        });
        let mut r = (StatusCode::TOO_MANY_REQUESTS, body.to_string()).into_response();
        let headers = r.headers_mut();
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from(self.retry_after_secs),
        );
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
    in_flight: u32,
}

fn capacity(rate: f64) -> f64 {
    rate.max(1.0)
}

impl Bucket {
    fn full(limits: &Limits, now: Instant) -> Self {
        Bucket {
            tokens: limits.requests_per_second.map_or(0.0, capacity),
            at: now,
            in_flight: 0,
        }
    }

    fn refill(&mut self, rate: f64, now: Instant) {
        let earned = now.saturating_duration_since(self.at).as_secs_f64() * rate;
        self.tokens = (self.tokens + earned).min(capacity(rate));
        self.at = now;
    }

    /// Admit one call (a token and an in-flight slot) or say why not.
    fn take(&mut self, limits: &Limits, now: Instant) -> Result<(), Rejection> {
        if let Some(rate) = limits.requests_per_second {
            self.refill(rate, now);
        }
        if limits
            .max_in_flight
            .is_some_and(|max| self.in_flight >= max)
        {
            return Err(Rejection::new(Reason::InFlight, 1.0));
        }
        if let Some(rate) = limits.requests_per_second {
            if self.tokens < 1.0 {
                return Err(Rejection::new(Reason::Rate, (1.0 - self.tokens) / rate));
            }
            self.tokens -= 1.0;
        }
        self.in_flight += 1;
        Ok(())
    }
}

#[derive(Debug, Default)]
struct State {
    limits: Limits,
    latency: Latency,
    buckets: BTreeMap<String, Bucket>,
    rejected: BTreeMap<String, u64>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Limits, latency and the per-key buckets (cheap to clone; clones share state).
#[derive(Debug, Clone, Default)]
pub struct Limiter {
    state: Arc<Mutex<State>>,
}

impl Limiter {
    /// Admit a call of `key`: `Ok(None)` when no limit is set, `Ok(Some(permit))` when the
    /// call fits (keep the permit until the response body is sent), else the rejection (also
    /// counted for the key).
    pub fn admit(&self, key: &str) -> Result<Option<Permit>, Rejection> {
        let mut guard = lock(&self.state);
        let st = &mut *guard;
        if st.limits.is_off() {
            return Ok(None);
        }
        let now = Instant::now();
        let bucket = st
            .buckets
            .entry(key.to_string())
            .or_insert_with(|| Bucket::full(&st.limits, now));
        match bucket.take(&st.limits, now) {
            Ok(()) => Ok(Some(Permit {
                state: Arc::clone(&self.state),
                key: key.to_string(),
            })),
            Err(r) => {
                *st.rejected.entry(key.to_string()).or_insert(0) += 1;
                Err(r)
            }
        }
    }

    /// Replace the limits; every bucket is refilled to the new capacity (calls in flight stay
    /// counted).
    pub fn set_limits(&self, limits: Limits) -> Result<(), String> {
        limits.validate()?;
        let mut st = lock(&self.state);
        st.limits = limits;
        let now = Instant::now();
        for b in st.buckets.values_mut() {
            b.tokens = limits.requests_per_second.map_or(0.0, capacity);
            b.at = now;
        }
        Ok(())
    }

    /// The current limits.
    pub fn limits(&self) -> Limits {
        lock(&self.state).limits
    }

    /// Replace the latency model.
    pub fn set_latency(&self, latency: Latency) -> Result<(), String> {
        latency.validate()?;
        lock(&self.state).latency = latency;
        Ok(())
    }

    /// The current latency model.
    pub fn latency(&self) -> Latency {
        lock(&self.state).latency
    }

    /// Calls of `key` admitted under a limit and not finished yet.
    pub fn in_flight(&self, key: &str) -> u32 {
        lock(&self.state)
            .buckets
            .get(key)
            .map_or(0, |b| b.in_flight)
    }

    /// Calls answered 429 by the limiter, per key.
    pub fn rejected(&self) -> BTreeMap<String, u64> {
        lock(&self.state).rejected.clone()
    }

    /// Forget the 429 counts.
    pub fn clear_rejected(&self) {
        lock(&self.state).rejected.clear();
    }
}

/// An admitted call's in-flight slot, released on drop.
#[derive(Debug)]
pub struct Permit {
    state: Arc<Mutex<State>>,
    key: String,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(b) = lock(&self.state).buckets.get_mut(&self.key) {
            b.in_flight = b.in_flight.saturating_sub(1);
        }
    }
}

/// A body stream that keeps a permit until it is dropped (the server drops a body once it
/// has been fully sent, or when the client goes away).
struct Held<S> {
    inner: S,
    _permit: Permit,
}

impl<S: Stream + Unpin> Stream for Held<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.inner).poll_next(cx)
    }
}

/// Keep `permit` until `resp`'s body has been sent or dropped. An empty body is sent with the
/// headers, so its permit is released at once; a body of known length keeps its
/// `Content-Length`.
pub fn hold_until_sent(resp: Response, permit: Permit) -> Response {
    let (mut parts, body) = resp.into_parts();
    if body.is_end_stream() {
        return Response::from_parts(parts, body);
    }
    if let Some(n) = body.size_hint().exact() {
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    let held = Held {
        inner: body.into_data_stream(),
        _permit: permit,
    };
    Response::from_parts(parts, Body::from_stream(held))
}

/// Paces a streamed body: the chunk that brings the total to `n` rows is released no earlier
/// than `n` × the per-row time after the body started.
#[derive(Debug)]
pub struct Pacer {
    start: Instant,
    latency: Latency,
    rows: u64,
}

impl Pacer {
    /// Start pacing now.
    pub fn new(latency: Latency) -> Self {
        Pacer {
            start: Instant::now(),
            latency,
            rows: 0,
        }
    }

    /// Wait until `rows` more rows may be released.
    pub async fn wait(&mut self, rows: u64) {
        self.rows = self.rows.saturating_add(rows);
        if self.latency.per_1000_rows_ms == 0 {
            return;
        }
        let due = self.latency.for_rows(self.rows);
        if let Some(at) = self.start.checked_add(due) {
            tokio::time::sleep_until(at).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rps: Option<f64>, max: Option<u32>) -> Limits {
        Limits {
            requests_per_second: rps,
            max_in_flight: max,
        }
    }

    #[test]
    fn bucket_spends_its_burst_then_refills() {
        let l = limits(Some(2.0), None);
        let t0 = Instant::now();
        let mut b = Bucket::full(&l, t0);
        assert!(b.take(&l, t0).is_ok());
        assert!(b.take(&l, t0).is_ok());
        let r = b.take(&l, t0).unwrap_err();
        assert_eq!((r.reason, r.retry_after_secs), (Reason::Rate, 1));
        assert!(b.take(&l, t0 + Duration::from_millis(500)).is_ok());
    }

    #[test]
    fn slow_rates_ask_for_longer_waits_and_allow_one_call() {
        let l = limits(Some(0.25), None);
        let t0 = Instant::now();
        let mut b = Bucket::full(&l, t0);
        assert!(b.take(&l, t0).is_ok());
        assert_eq!(b.take(&l, t0).unwrap_err().retry_after_secs, 4);
    }

    #[test]
    fn in_flight_cap_counts_slots() {
        let l = limits(None, Some(1));
        let t0 = Instant::now();
        let mut b = Bucket::full(&l, t0);
        assert!(b.take(&l, t0).is_ok());
        assert_eq!(b.take(&l, t0).unwrap_err().reason, Reason::InFlight);
        b.in_flight = 0;
        assert!(b.take(&l, t0).is_ok());
    }

    #[test]
    fn validation() {
        assert!(limits(Some(0.0), None).validate().is_err());
        assert!(limits(Some(f64::INFINITY), None).validate().is_err());
        assert!(limits(None, Some(0)).validate().is_err());
        assert!(limits(Some(0.5), Some(1)).validate().is_ok());
        let l = Latency {
            latency_ms: MAX_LATENCY_MS + 1,
            per_1000_rows_ms: 0,
        };
        assert!(l.validate().is_err());
    }

    #[test]
    fn permits_release_their_slot() {
        let lim = Limiter::default();
        assert!(lim.admit("k").is_ok_and(|p| p.is_none()));
        lim.set_limits(limits(None, Some(2))).unwrap();
        let a = lim.admit("k").unwrap();
        let _b = lim.admit("k").unwrap();
        assert!(lim.admit("k").is_err());
        assert_eq!(lim.in_flight("k"), 2);
        drop(a);
        assert_eq!(lim.in_flight("k"), 1);
        assert!(lim.admit("other").is_ok());
        assert_eq!(lim.rejected().get("k"), Some(&1));
    }
}
