//! Mutable simulator state behind the control API: clock, keys, faults, memory limit,
//! objects deleted from the subscription, request limits and latency (`crate::limits`),
//! request log and per-path call counters.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard, RwLock};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::SimKey;
use crate::faults::{pick, FaultRule, FaultState};
use crate::limits::{Latency, Limiter, Limits, Permit, Rejection};

/// One logged `/api/` call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestLogEntry {
    /// Sequence number (from 1, reset by `DELETE /_sim/requests`).
    pub seq: u64,
    /// HTTP method.
    pub method: String,
    /// Request path (no query).
    pub path: String,
    /// FNV-1a 64-bit digest of the request body, 16 hex digits.
    pub body_digest: String,
    /// Response status.
    pub status: u16,
    /// Fault applied, if any (its kind, camelCase).
    pub fault: Option<String>,
}

/// The kinds of objects the control API can delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ObjectKind {
    /// A feature (`GET /api/v1/feature`).
    Feature,
    /// A page (`GET /api/v1/page`).
    Page,
    /// A track type (`GET /api/v1/tracktype`).
    TrackType,
    /// A guide (`GET /api/v1/guide`).
    Guide,
    /// A saved report (`GET /api/v1/report`).
    Report,
    /// A segment (`GET /api/v1/segment`).
    Segment,
}

impl ObjectKind {
    /// `feature`, `page`, `trackType`, `guide`, `report` or `segment`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "feature" => Some(Self::Feature),
            "page" => Some(Self::Page),
            "trackType" => Some(Self::TrackType),
            "guide" => Some(Self::Guide),
            "report" => Some(Self::Report),
            "segment" => Some(Self::Segment),
            _ => None,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Control state shared by the server and the library API.
#[derive(Debug)]
pub struct Control {
    now: RwLock<DateTime<Utc>>,
    keys: RwLock<BTreeMap<String, bool>>,
    faults: Mutex<Vec<FaultState>>,
    memory_limit: Mutex<Option<u64>>,
    synthetic_rows: Mutex<Option<u64>>,
    /// Benchmarks: whole aggregation answers by request body, when on.
    answers: Mutex<Option<BTreeMap<Vec<u8>, bytes::Bytes>>>,
    deleted: RwLock<BTreeSet<(ObjectKind, String)>>,
    log: Mutex<Vec<RequestLogEntry>>,
    counters: Mutex<BTreeMap<String, u64>>,
    limiter: Limiter,
}

impl Control {
    /// New state with an initial clock and keys.
    pub fn new(now: DateTime<Utc>, keys: &[SimKey]) -> Self {
        Control {
            now: RwLock::new(now),
            keys: RwLock::new(
                keys.iter()
                    .map(|k| (k.key.clone(), k.write_access))
                    .collect(),
            ),
            faults: Mutex::new(Vec::new()),
            memory_limit: Mutex::new(None),
            synthetic_rows: Mutex::new(None),
            answers: Mutex::new(None),
            deleted: RwLock::new(BTreeSet::new()),
            log: Mutex::new(Vec::new()),
            counters: Mutex::new(BTreeMap::new()),
            limiter: Limiter::default(),
        }
    }

    /// The simulated clock.
    pub fn now(&self) -> DateTime<Utc> {
        *self.now.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Set the simulated clock.
    pub fn set_now(&self, now: DateTime<Utc>) {
        *self.now.write().unwrap_or_else(|e| e.into_inner()) = now;
    }

    /// Add a fault rule (errors if the rule is inconsistent).
    pub fn add_fault(&self, rule: FaultRule) -> Result<(), String> {
        rule.validate()?;
        lock(&self.faults).push(FaultState {
            rule,
            seen: 0,
            fired: 0,
        });
        Ok(())
    }

    /// Remove all fault rules.
    pub fn clear_faults(&self) {
        lock(&self.faults).clear();
    }

    /// Current fault rules with counters.
    pub fn faults(&self) -> Vec<FaultState> {
        lock(&self.faults).clone()
    }

    /// Pick the fault for a call (updates rule counters).
    pub fn pick_fault(&self, path: &str) -> Option<FaultRule> {
        pick(&mut lock(&self.faults), path)
    }

    /// Answer 400 `Query exceeded memory limit` when an aggregation result exceeds `rows`.
    pub fn set_memory_limit_rows(&self, rows: Option<u64>) {
        *lock(&self.memory_limit) = rows;
    }

    /// The configured result-row limit.
    pub fn memory_limit_rows(&self) -> Option<u64> {
        *lock(&self.memory_limit)
    }

    /// Benchmarks only: answer grouped event queries with exactly `rows` synthetic rows
    /// (see `pipeline::synthetic`); `None` restores the real engine.
    pub fn set_synthetic_event_rows(&self, rows: Option<u64>) {
        *lock(&self.synthetic_rows) = rows;
    }

    /// The configured synthetic row count.
    pub fn synthetic_event_rows(&self) -> Option<u64> {
        *lock(&self.synthetic_rows)
    }

    /// Benchmarks only: keep each aggregation's whole answer and give it again to the same
    /// request body, without running the pipeline (so that a benchmark's later runs measure
    /// the client alone, not the simulator computing beside it). Off by default; the clock,
    /// deletions and faults are not part of the key, so leave them alone while it is on.
    pub fn set_cache_aggregations(&self, on: bool) {
        *lock(&self.answers) = on.then(BTreeMap::new);
    }

    /// Whether aggregation answers are kept.
    pub fn caches_aggregations(&self) -> bool {
        lock(&self.answers).is_some()
    }

    /// The kept answer to this aggregation request body, if any.
    pub fn cached_answer(&self, request: &[u8]) -> Option<bytes::Bytes> {
        lock(&self.answers).as_ref()?.get(request).cloned()
    }

    /// Keeps an aggregation's answer (when keeping is on).
    pub fn keep_answer(&self, request: &[u8], answer: bytes::Bytes) {
        if let Some(m) = lock(&self.answers).as_mut() {
            m.insert(request.to_vec(), answer);
        }
    }

    /// Delete an object of the subscription, as a user deleting it in Pendo would: it leaves
    /// its list (`GET /api/v1/feature`, …), a deleted report's results answer 404 and a deleted
    /// feature, page, track type or guide has no events any more (a source naming it, or for a
    /// guide one of its steps or polls, has no rows). Returns whether it was listed before.
    pub fn delete_object(&self, kind: ObjectKind, id: &str) -> bool {
        self.deleted
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert((kind, id.to_string()))
    }

    /// Whether an object was deleted.
    pub fn is_deleted(&self, kind: ObjectKind, id: &str) -> bool {
        self.deleted
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&(kind, id.to_string()))
    }

    /// Add or replace a key.
    pub fn set_key(&self, key: &str, write_access: bool) {
        self.keys
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_string(), write_access);
    }

    /// Revoke a key; true if it existed.
    pub fn revoke_key(&self, key: &str) -> bool {
        self.keys
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key)
            .is_some()
    }

    /// `Some(write_access)` for a known key.
    pub fn key_access(&self, key: &str) -> Option<bool> {
        self.keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .copied()
    }

    /// Set the per-key request limits (`Limits::default()` = none); refills every bucket.
    pub fn set_limits(&self, limits: Limits) -> Result<(), String> {
        self.limiter.set_limits(limits)
    }

    /// The per-key request limits.
    pub fn limits(&self) -> Limits {
        self.limiter.limits()
    }

    /// Set the latency model (`Latency::default()` = none).
    pub fn set_latency(&self, latency: Latency) -> Result<(), String> {
        self.limiter.set_latency(latency)
    }

    /// The latency model.
    pub fn latency(&self) -> Latency {
        self.limiter.latency()
    }

    /// Admit an `/api/` call of a known key under the limits (see [`Limiter::admit`]).
    pub fn admit(&self, key: &str) -> Result<Option<Permit>, Rejection> {
        self.limiter.admit(key)
    }

    /// Calls of `key` admitted under a limit whose response is not fully sent yet.
    pub fn in_flight(&self, key: &str) -> u32 {
        self.limiter.in_flight(key)
    }

    /// Calls answered 429 by the request limits, per key (not in [`Control::counters`]).
    pub fn rate_limited(&self) -> BTreeMap<String, u64> {
        self.limiter.rejected()
    }

    /// Record an `/api/` call.
    pub fn record(
        &self,
        method: &str,
        path: &str,
        digest: u64,
        status: u16,
        fault: Option<String>,
    ) {
        let mut log = lock(&self.log);
        let seq = log.len() as u64 + 1;
        log.push(RequestLogEntry {
            seq,
            method: method.to_string(),
            path: path.to_string(),
            body_digest: format!("{digest:016x}"),
            status,
            fault,
        });
    }

    /// Count a call to a path.
    pub fn count_call(&self, path: &str) {
        *lock(&self.counters).entry(path.to_string()).or_insert(0) += 1;
    }

    /// The request log.
    pub fn request_log(&self) -> Vec<RequestLogEntry> {
        lock(&self.log).clone()
    }

    /// Calls made to exactly `path`.
    pub fn calls(&self, path: &str) -> u64 {
        lock(&self.counters).get(path).copied().unwrap_or(0)
    }

    /// Calls per path.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        lock(&self.counters).clone()
    }

    /// Clear the request log and counters (the 429 counts too; the buckets stay).
    pub fn reset_requests(&self) {
        lock(&self.log).clear();
        lock(&self.counters).clear();
        self.limiter.clear_rejected();
    }
}
