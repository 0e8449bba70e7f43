//! `HttpPendo`: the Pendo adapter over `reqwest` (rustls). Sends the key header, applies
//! timeouts, retries transient faults with the [`RetryPolicy`], and streams aggregation
//! bodies through the [`RowScanner`] without buffering them.

use super::retry::RetryPolicy;
use super::rows::RowScanner;
use super::{KeyCheck, ObjectList, PendoApi, PendoEndpoints, PendoError, RowSink};
use crate::domain::Connection;
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

#[derive(Debug, Clone)]
pub struct HttpPendo {
    client: reqwest::Client,
    config: HttpPendoConfig,
    gates: Arc<Mutex<HashMap<[u8; 32], Arc<Semaphore>>>>,
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
        })
    }

    /// A turn to call the connection's subscription, held until the response is read.
    /// Subscriptions are told apart by a digest of host and key (the key is not kept).
    async fn turn(&self, conn: &Connection) -> Option<OwnedSemaphorePermit> {
        let id: [u8; 32] = Sha256::new()
            .chain_update(self.config.endpoints.base_url(conn.domain).as_bytes())
            .chain_update([0])
            .chain_update(conn.key.expose().as_bytes())
            .finalize()
            .into();
        let gate = {
            let mut gates = self.gates.lock().ok()?;
            gates
                .entry(id)
                .or_insert_with(|| {
                    Arc::new(Semaphore::new(
                        self.config.max_concurrent_per_subscription.max(1),
                    ))
                })
                .clone()
        };
        gate.acquire_owned().await.ok()
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
            let result = async {
                let _turn = self.turn(conn).await;
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
            }
            .await;
            match result {
                Err(e) if self.backoff("get", n, &e).await => n += 1,
                other => return other,
            }
        }
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
            let result = async {
                let _turn = self.turn(conn).await;
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
            }
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
mod tests {
    use super::*;
    use crate::domain::integration::{IntegrationKey, PendoDomain};
    use crate::pendo::RowError;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Count(u64);
    impl RowSink for Count {
        fn row(&mut self, _: &[u8]) -> Result<(), RowError> {
            self.0 += 1;
            Ok(())
        }
        fn reset(&mut self) {
            self.0 = 0;
        }
    }

    /// A server that answers one row after 40 ms and records the most calls it saw at once.
    async fn server() -> (String, Arc<AtomicUsize>) {
        let now = Arc::new(AtomicUsize::new(0));
        let max = Arc::new(AtomicUsize::new(0));
        let (n, m) = (now.clone(), max.clone());
        let app = axum::Router::new().route(
            "/api/v1/aggregation",
            axum::routing::post(move || {
                let (n, m) = (n.clone(), m.clone());
                async move {
                    let in_flight = n.fetch_add(1, Ordering::SeqCst) + 1;
                    m.fetch_max(in_flight, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(40)).await;
                    n.fetch_sub(1, Ordering::SeqCst);
                    r#"{"results":[{"a":1}]}"#
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}"), max)
    }

    fn conn(key: &str) -> Connection {
        Connection {
            domain: PendoDomain::Us,
            key: IntegrationKey::parse(key).unwrap(),
        }
    }

    #[tokio::test]
    async fn calls_to_one_subscription_are_bounded_and_subscriptions_do_not_share_turns() {
        let (url, max) = server().await;
        let pendo = HttpPendo::new(HttpPendoConfig {
            endpoints: PendoEndpoints {
                all: Some(url),
                ..PendoEndpoints::default()
            },
            max_concurrent_per_subscription: 2,
            ..HttpPendoConfig::default()
        })
        .unwrap();
        let call = |key: &'static str| {
            let pendo = pendo.clone();
            async move {
                let mut sink = Count(0);
                pendo
                    .aggregate(&conn(key), &serde_json::json!({}), &mut sink)
                    .await
                    .unwrap();
                sink.0
            }
        };
        let one: Vec<u64> =
            futures_util::future::join_all((0..8).map(|_| call("key-one-0000"))).await;
        assert_eq!(one, vec![1; 8]);
        assert_eq!(max.load(Ordering::SeqCst), 2);
        max.store(0, Ordering::SeqCst);
        let two = futures_util::future::join_all((0..8).map(|i| {
            call(if i % 2 == 0 {
                "key-one-0000"
            } else {
                "key-two-0000"
            })
        }))
        .await;
        assert_eq!(two, vec![1; 8]);
        assert_eq!(max.load(Ordering::SeqCst), 4);
    }

    /// What a call against the simulator ended as, and how many Pendo calls it took.
    type Outcome = (Result<u64, PendoError>, u64);

    const AGG: &str = "/api/v1/aggregation";

    /// How a row of the table gets its error answer from the simulator.
    #[derive(Clone, Copy, Debug)]
    enum Answer {
        /// `/_sim/memory-limit` below the result's size: 400 "Query exceeded memory limit".
        MemoryLimit,
        /// A pipeline the simulator refuses: 400 with its reason.
        BadPipeline,
        /// An unknown key: the key check's empty 403.
        UnknownKey,
        /// A status fault that answers `status` with `message` on every call.
        Status(u16, &'static str),
        /// 429 without / with `Retry-After: 0`, and the 5xx faults.
        Fault(pendo_sim::FaultKind),
    }

    fn rows_request() -> serde_json::Value {
        serde_json::json!({"response": {"mimeType": "application/json"},
            "request": {"name": "t", "requestId": "t", "pipeline": [
                {"source": {"events": {"appId": "expandAppIds(\"*\")"},
                    "timeSeries": {"period": "dayRange", "first": "now()", "count": -7}}},
                {"group": {"group": ["visitorId", "day"], "fields": {"n": {"sum": "numEvents"}}}}]}})
    }

    fn bad_request() -> serde_json::Value {
        serde_json::json!({"response": {"mimeType": "application/json"},
            "request": {"name": "t", "requestId": "t", "pipeline": [{"noSuchStage": {}}]}})
    }

    /// Sets the simulator up for `answer`, with `on_top` (a body or delay fault, or none) on
    /// the first call only, and makes one aggregation call.
    async fn call_with(
        sim: &pendo_sim::Simulator,
        pendo: &HttpPendo,
        answer: Answer,
        on_top: Option<pendo_sim::FaultKind>,
    ) -> Outcome {
        use pendo_sim::{FaultKind, FaultRule};
        let c = sim.control();
        c.clear_faults();
        c.reset_requests();
        c.set_memory_limit_rows(None);
        let mut request = rows_request();
        let mut key = "sim-key-0001";
        let delayed = |mut r: FaultRule| {
            if on_top == Some(FaultKind::Delay) {
                r.delay_ms = Some(20);
            }
            r
        };
        let status_rule = |times: Option<u64>| match answer {
            Answer::Status(code, message) => Some(FaultRule::status(AGG, code, message, times)),
            Answer::Fault(kind) => Some(FaultRule {
                times,
                retry_after_secs: Some(0),
                ..FaultRule::times(AGG, kind, 0)
            }),
            _ => None,
        };
        match status_rule(Some(1)) {
            // A status answer: the first one carries the fault, the next ones are clean.
            Some(first) => {
                if let Some(k) = on_top {
                    let first = FaultRule {
                        body: Some(k).filter(|k| k.is_body()),
                        ..delayed(first)
                    };
                    c.add_fault(first).unwrap();
                }
                c.add_fault(status_rule(None).unwrap()).unwrap();
            }
            None => {
                match answer {
                    Answer::MemoryLimit => c.set_memory_limit_rows(Some(0)),
                    Answer::BadPipeline => request = bad_request(),
                    _ => key = "unknown-key-0001",
                }
                if let Some(k) = on_top {
                    c.add_fault(delayed(FaultRule::times(AGG, k, 1))).unwrap();
                }
            }
        }
        let mut sink = Count(0);
        let result = pendo.aggregate(&conn(key), &request, &mut sink).await;
        (result, c.calls(AGG))
    }

    /// Every error status the client classifies, with every fault the simulator can put on top
    /// of it: an answer whose body did not arrive whole is retried (one more call), and only
    /// the whole answer is classified. A cleanly ended body cannot be told from a whole one,
    /// except a memory-limit text cut short, which is retried too.
    #[tokio::test]
    async fn error_answers_are_classified_only_when_their_body_arrived_whole() {
        use pendo_sim::FaultKind::*;
        let sim = pendo_sim::Simulator::new(pendo_sim::SimConfig {
            keys: vec![pendo_sim::SimKey::write("sim-key-0001")],
            ..pendo_sim::SimConfig::tiny()
        });
        let running = sim.spawn("127.0.0.1:0").await.unwrap();
        let pendo = HttpPendo::new(HttpPendoConfig {
            endpoints: PendoEndpoints {
                all: Some(running.base_url()),
                ..PendoEndpoints::default()
            },
            retry: RetryPolicy {
                max_attempts: 3,
                base_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(5),
                max_retry_after: Duration::from_millis(5),
            },
            ..HttpPendoConfig::default()
        })
        .unwrap();
        let rows = sim.run_aggregation(&rows_request()).unwrap().len() as u64;
        assert!(
            rows > 0,
            "the request must have rows for the memory limit to bite"
        );
        let refusal = sim
            .run_aggregation(&bad_request())
            .map(|rows| rows.len())
            .unwrap_err()
            .to_string();
        assert!(
            !refusal.is_empty() && !refusal.contains(MEMORY_LIMIT_TEXT),
            "{refusal}"
        );
        // The first half of a one-chunk plain-text body, as the simulator cuts it.
        let half = |s: &str| s[..s.len() / 2].trim().to_string();
        let bad = |status: u16, message: &str| PendoError::BadRequest {
            status,
            message: message.to_string(),
        };
        let server = |status| PendoError::Server { status };
        let limited = |retry_after| PendoError::RateLimited { retry_after };
        let zero = Some(Duration::ZERO);
        // (answer, the whole answer's verdict and calls, then those of a cleanly truncated
        // body: taken as whole, but for a memory-limit text cut short, which is retried)
        type Row = (Answer, PendoError, u64, PendoError, u64);
        let table: Vec<Row> = vec![
            (
                Answer::MemoryLimit,
                PendoError::MemoryLimit,
                1,
                PendoError::MemoryLimit,
                2,
            ),
            (
                Answer::BadPipeline,
                bad(400, &refusal),
                1,
                bad(400, &half(&refusal)),
                1,
            ),
            (
                Answer::Status(401, "Unauthorized"),
                PendoError::Unauthorized { status: 401 },
                1,
                PendoError::Unauthorized { status: 401 },
                1,
            ),
            (
                Answer::UnknownKey,
                PendoError::Unauthorized { status: 403 },
                1,
                PendoError::Unauthorized { status: 403 },
                1,
            ),
            (
                Answer::Status(404, "not found"),
                bad(404, "not found"),
                1,
                bad(404, "not"),
                1,
            ),
            (Answer::Fault(Status429), limited(None), 3, limited(None), 3),
            (
                Answer::Fault(Status429RetryAfter),
                limited(zero),
                3,
                limited(zero),
                3,
            ),
            (Answer::Fault(Status500), server(500), 3, server(500), 3),
            (Answer::Fault(Status502), server(502), 3, server(502), 3),
            (Answer::Fault(Status503), server(503), 3, server(503), 3),
        ];
        let mut failures = Vec::new();
        for (answer, whole, calls, truncated, truncated_calls) in table {
            // A permanent answer takes one more call when its first body was cut.
            let after_cut = if whole.is_retryable() {
                calls
            } else {
                calls + 1
            };
            for (on_top, want) in [
                (None, (Err(whole.clone()), calls)),
                (Some(Delay), (Err(whole.clone()), calls)),
                (Some(DropMidBody), (Err(whole.clone()), after_cut)),
                (
                    Some(TruncateMidJson),
                    (Err(truncated.clone()), truncated_calls),
                ),
            ] {
                let got = call_with(&sim, &pendo, answer, on_top).await;
                if got != want {
                    failures.push(format!(
                        "{answer:?} + {on_top:?}: got {got:?}, want {want:?}"
                    ));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        // And with nothing in the way, the same call succeeds at once.
        sim.control().clear_faults();
        sim.control().reset_requests();
        sim.control().set_memory_limit_rows(None);
        let mut sink = Count(0);
        let got = pendo
            .aggregate(&conn("sim-key-0001"), &rows_request(), &mut sink)
            .await;
        assert_eq!((got, sim.control().calls(AGG)), (Ok(rows), 1));
    }

    #[test]
    fn only_a_proper_start_of_the_memory_limit_text_reads_as_cut() {
        assert!(is_cut_memory_limit("Query exceede"));
        assert!(is_cut_memory_limit("Q"));
        assert!(!is_cut_memory_limit(""));
        assert!(!is_cut_memory_limit(MEMORY_LIMIT_TEXT));
        assert!(!is_cut_memory_limit("Query failed"));
        assert_eq!(
            classify_message(StatusCode::BAD_REQUEST, "Query exceed".into()),
            PendoError::Truncated
        );
        assert_eq!(
            classify_message(
                StatusCode::REQUEST_TIMEOUT,
                format!("{MEMORY_LIMIT_TEXT} (42 GB)")
            ),
            PendoError::MemoryLimit
        );
        assert_eq!(
            classify_message(StatusCode::REQUEST_TIMEOUT, String::new()),
            PendoError::Timeout
        );
    }
}
