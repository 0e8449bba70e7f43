//! `HttpPendo`: the Pendo adapter over `reqwest` (rustls). Sends the key header, applies
//! timeouts, retries transient faults with the [`RetryPolicy`], and streams aggregation
//! bodies through the [`RowScanner`] without buffering them. Each attempt takes its turn: a
//! place among this process's calls to the subscription, then (when the deployment sets one)
//! a token of the subscription's request budget shared by every process through the store
//! ([`crate::domain::budget`]), settled with Pendo's answer.

use super::retry::RetryPolicy;
use super::rows::RowScanner;
use super::{KeyCheck, ObjectList, PendoApi, PendoEndpoints, PendoError, RowSink};
use crate::domain::{Answer, BudgetSettings, Connection, Take};
use crate::store::BudgetStore;
use async_trait::async_trait;
use futures_util::StreamExt;
use rand::Rng;
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

const KEY_HEADER: &str = "x-pendo-integration-key";
const MEMORY_LIMIT_TEXT: &str = "Query exceeded memory limit";

#[derive(Debug, Clone)]
pub struct HttpPendoConfig {
    pub endpoints: PendoEndpoints,
    pub retry: RetryPolicy,
    /// Whole-request limit (aggregations can take minutes on Pendo's side).
    pub request_timeout: Duration,
    /// Longest silence while reading a body.
    pub read_timeout: Duration,
    pub connect_timeout: Duration,
    /// Calls in flight at once against one Pendo subscription (one key on one host), however
    /// many chunks run in parallel; further calls wait their turn.
    pub max_concurrent_per_subscription: usize,
}

impl Default for HttpPendoConfig {
    fn default() -> Self {
        Self {
            endpoints: PendoEndpoints::default(),
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(300),
            read_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            max_concurrent_per_subscription: 4,
        }
    }
}

#[derive(Clone)]
pub struct HttpPendo {
    client: reqwest::Client,
    config: HttpPendoConfig,
    gates: Arc<Mutex<HashMap<[u8; 32], Arc<Semaphore>>>>,
    /// The shared request budgets and their settings, when the deployment sets them.
    budgets: Option<(Arc<dyn BudgetStore>, BudgetSettings)>,
}

impl std::fmt::Debug for HttpPendo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpPendo")
            .field("config", &self.config)
            .field("budget", &self.budgets.as_ref().map(|(_, s)| s))
            .finish_non_exhaustive()
    }
}

/// An attempt's turn: its place among this process's calls to the subscription, and the lease
/// of the shared budget it holds until settled.
struct Turn {
    _permit: Option<OwnedSemaphorePermit>,
    lease: Option<(String, i64)>,
}

/// The budget's view of an attempt's result.
fn answer_of<T>(result: &Result<T, PendoError>) -> Answer {
    match result {
        Err(PendoError::RateLimited { retry_after }) => Answer::Throttled {
            retry_after_ms: retry_after.map(|d| d.as_millis().min(i64::MAX as u128) as i64),
        },
        Err(PendoError::Timeout | PendoError::Transport(_) | PendoError::Truncated) => Answer::Lost,
        _ => Answer::Answered,
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A reqwest client builder whose TLS uses aws-lc-rs, the crypto library the AWS SDK brings
/// (reqwest is built without one of its own): installs it as the process's rustls provider the
/// first time (a provider already installed stays).
pub fn client_builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
}

impl HttpPendo {
    pub fn new(config: HttpPendoConfig) -> Result<Self, PendoError> {
        let client = client_builder()
            .timeout(config.request_timeout)
            .read_timeout(config.read_timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("pendo-sync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| PendoError::Transport(e.to_string()))?;
        Ok(Self {
            client,
            config,
            gates: Arc::default(),
            budgets: None,
        })
    }

    /// This client, taking each call's token from the subscription's budget in `store` when
    /// the deployment sets one (`settings`; none: only this process's cap per subscription).
    pub fn with_budgets(
        mut self,
        store: Arc<dyn BudgetStore>,
        settings: Option<BudgetSettings>,
    ) -> Self {
        self.budgets = settings.map(|s| (store, s));
        self
    }

    /// Subscriptions are told apart by a digest of host and key (the key is not kept).
    fn subscription(&self, conn: &Connection) -> [u8; 32] {
        Sha256::new()
            .chain_update(self.config.endpoints.base_url(conn.domain).as_bytes())
            .chain_update([0])
            .chain_update(conn.key.expose().as_bytes())
            .finalize()
            .into()
    }

    /// A turn to call the connection's subscription, held until the response is read: a place
    /// among this process's calls, then a token of the shared budget (waiting as it says).
    ///
    /// # Errors
    /// `RateLimited` when the wait would outlast the invocation's time for Pendo calls.
    async fn turn(&self, conn: &Connection) -> Result<Turn, PendoError> {
        let id = self.subscription(conn);
        let gate = self.gates.lock().ok().map(|mut gates| {
            gates
                .entry(id)
                .or_insert_with(|| {
                    Arc::new(Semaphore::new(
                        self.config.max_concurrent_per_subscription.max(1),
                    ))
                })
                .clone()
        });
        let permit = match gate {
            Some(g) => g.acquire_owned().await.ok(),
            None => None,
        };
        let lease = match &self.budgets {
            Some((store, settings)) => self.lease(store.as_ref(), settings, &id).await?,
            None => None,
        };
        Ok(Turn {
            _permit: permit,
            lease,
        })
    }

    /// A token and lease of the subscription's shared budget, after the waits it asks for.
    /// A store that cannot be reached lets the call go without one (the budget paces calls;
    /// it must not stop them).
    async fn lease(
        &self,
        store: &dyn BudgetStore,
        settings: &BudgetSettings,
        id: &[u8; 32],
    ) -> Result<Option<(String, i64)>, PendoError> {
        let sub: String = id.iter().map(|b| format!("{b:02x}")).collect();
        loop {
            match store.take_budget(&sub, settings, now_ms()).await {
                Ok(Take::Granted { lease_until_ms }) => return Ok(Some((sub, lease_until_ms))),
                Ok(Take::Wait { ms }) => {
                    let wait = Duration::from_millis(ms.max(1) as u64);
                    if crate::deadline::left().is_some_and(|left| wait >= left) {
                        return Err(PendoError::RateLimited {
                            retry_after: Some(wait),
                        });
                    }
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the request budget could not be read; calling Pendo without it");
                    return Ok(None);
                }
            }
        }
    }

    /// Settles the turn's lease with the attempt's result.
    async fn settle<T>(&self, turn: Turn, result: &Result<T, PendoError>) {
        let (Some((store, settings)), Some((sub, lease))) = (&self.budgets, turn.lease) else {
            return;
        };
        let answer = answer_of(result);
        if let Err(e) = store
            .settle_budget(&sub, settings, now_ms(), lease, answer)
            .await
        {
            tracing::warn!(error = %e, "the request budget could not be settled; its lease will expire");
        }
    }

    /// One attempt of a call: its turn, the call bounded by the invocation's deadline, the
    /// budget settled with the result (also when the deadline cut the call short).
    async fn attempt<T>(
        &self,
        conn: &Connection,
        call: impl std::future::Future<Output = Result<T, PendoError>>,
    ) -> Result<T, PendoError> {
        let turn = self.turn(conn).await?;
        let result = bounded(call).await;
        self.settle(turn, &result).await;
        result
    }

    fn url(&self, conn: &Connection, path: &str) -> String {
        format!("{}{}", self.config.endpoints.base_url(conn.domain), path)
    }

    /// The pause before retrying after `e` on attempt `n`, or `None` to give up.
    async fn backoff(&self, what: &'static str, n: u32, e: &PendoError) -> bool {
        if !e.is_retryable() {
            return false;
        }
        let retry_after = match e {
            PendoError::RateLimited { retry_after } => *retry_after,
            _ => None,
        };
        let jitter: f64 = rand::thread_rng().gen();
        match self.config.retry.delay(n, retry_after, jitter) {
            Some(d) if crate::deadline::left().is_some_and(|left| d >= left) => {
                tracing::warn!(call = what, attempt = n, error = %e, delay_ms = d.as_millis() as u64, "pendo call failed; no time left in this invocation to retry it");
                false
            }
            Some(d) => {
                tracing::warn!(call = what, attempt = n, error = %e, delay_ms = d.as_millis() as u64, "pendo call failed; retrying");
                tokio::time::sleep(d).await;
                true
            }
            None => false,
        }
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        key: &str,
    ) -> Result<reqwest::Response, PendoError> {
        let resp = req
            .header(KEY_HEADER, key)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(transport)?;
        classify(resp).await
    }

    async fn get_json(
        &self,
        conn: &Connection,
        path: &str,
    ) -> Result<serde_json::Value, PendoError> {
        let mut n = 1;
        loop {
            let result = self
                .attempt(conn, async {
                    let resp = self
                        .send(self.client.get(self.url(conn, path)), conn.key.expose())
                        .await?;
                    let bytes = resp.bytes().await.map_err(transport)?;
                    serde_json::from_slice(&bytes).map_err(|e| {
                        if e.is_eof() {
                            PendoError::Truncated
                        } else {
                            PendoError::Malformed(e.to_string())
                        }
                    })
                })
                .await;
            match result {
                Err(e) if self.backoff("get", n, &e).await => n += 1,
                other => return other,
            }
        }
    }
}

/// One attempt, cut off as a timeout when the invocation's time for Pendo calls runs out
/// (`deadline`; unbounded outside a Lambda batch).
async fn bounded<T>(
    attempt: impl std::future::Future<Output = Result<T, PendoError>>,
) -> Result<T, PendoError> {
    match crate::deadline::left() {
        Some(left) => tokio::time::timeout(left, attempt)
            .await
            .unwrap_or(Err(PendoError::Timeout)),
        None => attempt.await,
    }
}

fn transport(e: reqwest::Error) -> PendoError {
    if e.is_timeout() {
        PendoError::Timeout
    } else {
        // reqwest's Display of a connection error does not include headers (so never the key).
        PendoError::Transport(e.without_url().to_string())
    }
}

/// Most of an error body kept for its message (Pendo's are short plain text).
const ERROR_BODY_KEPT: usize = 4096;
/// Most of an error body read to learn that it arrived whole; past this, the kept part is used.
const ERROR_BODY_READ: usize = 64 * 1024;

/// Maps a non-2xx status to the error taxonomy. Only an error body that arrived whole is
/// classified: one the connection cut (a body error or a read timeout) is a transient fault,
/// whatever the status, and so is a memory-limit answer that ended cleanly but short.
async fn classify(resp: reqwest::Response) -> Result<reqwest::Response, PendoError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let code = status.as_u16();
    let body = error_body(resp).await;
    Err(match (status, body) {
        // Retried whatever the body; the status (and its Retry-After) is what counts.
        (StatusCode::TOO_MANY_REQUESTS, _) => PendoError::RateLimited { retry_after },
        (s, _) if s.is_server_error() => PendoError::Server { status: code },
        (_, Err(cut)) => cut,
        (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN, Ok(_)) => {
            PendoError::Unauthorized { status: code }
        }
        (_, Ok(message)) => classify_message(status, message),
    })
}

/// A whole 4xx body (401, 403, 429 aside): the memory limit, a timeout, or a refusal.
fn classify_message(status: StatusCode, message: String) -> PendoError {
    if message.contains(MEMORY_LIMIT_TEXT) {
        PendoError::MemoryLimit
    } else if is_cut_memory_limit(&message) {
        // Only the memory-limit answer cut short reads like this: retry, never refuse.
        PendoError::Truncated
    } else if status == StatusCode::REQUEST_TIMEOUT {
        PendoError::Timeout
    } else {
        PendoError::BadRequest {
            status: status.as_u16(),
            message,
        }
    }
}

/// A body that is the start, and only the start, of the memory-limit text.
fn is_cut_memory_limit(message: &str) -> bool {
    !message.is_empty()
        && message.len() < MEMORY_LIMIT_TEXT.len()
        && MEMORY_LIMIT_TEXT.starts_with(message)
}

/// Reads an error body to its end (up to [`ERROR_BODY_READ`]), keeping its first
/// [`ERROR_BODY_KEPT`] bytes as trimmed text.
///
/// # Errors
/// The transport error (retryable) when the body does not arrive whole.
async fn error_body(resp: reqwest::Response) -> Result<String, PendoError> {
    let mut kept = Vec::new();
    let mut read = 0usize;
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(transport)?;
        read += chunk.len();
        let room = ERROR_BODY_KEPT.saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if read > ERROR_BODY_READ {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&kept).trim().to_string())
}

#[async_trait]
impl PendoApi for HttpPendo {
    async fn verify(&self, conn: &Connection) -> Result<KeyCheck, PendoError> {
        let v = self.get_json(conn, "/api/v1/token/verify").await?;
        Ok(KeyCheck {
            valid: v
                .get("valid")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false),
            write_access: v
                .get("writeAccess")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false),
        })
    }

    async fn aggregate(
        &self,
        conn: &Connection,
        request: &serde_json::Value,
        sink: &mut dyn RowSink,
    ) -> Result<u64, PendoError> {
        let body = serde_json::to_vec(request).map_err(|e| PendoError::Malformed(e.to_string()))?;
        let url = self.url(conn, "/api/v1/aggregation");
        let mut n = 1;
        loop {
            sink.reset();
            let result = self
                .attempt(conn, async {
                    let resp = self
                        .send(
                            self.client
                                .post(&url)
                                .header(reqwest::header::CONTENT_TYPE, "application/json")
                                .body(body.clone()),
                            conn.key.expose(),
                        )
                        .await?;
                    let mut scanner = RowScanner::new();
                    let mut stream = resp.bytes_stream();
                    while let Some(chunk) = stream.next().await {
                        let chunk = chunk.map_err(transport)?;
                        scanner.feed_sink(&chunk, sink)?;
                    }
                    scanner.finish()
                })
                .await;
            match result {
                Err(e) if self.backoff("aggregation", n, &e).await => n += 1,
                other => return other,
            }
        }
    }

    async fn list(
        &self,
        conn: &Connection,
        what: ObjectList,
    ) -> Result<Vec<serde_json::Value>, PendoError> {
        match self.get_json(conn, what.path()).await? {
            serde_json::Value::Array(v) => Ok(v),
            _ => Err(PendoError::Malformed(format!(
                "{} did not return an array",
                what.path()
            ))),
        }
    }
}

#[cfg(test)]
mod tests;
