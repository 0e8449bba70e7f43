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
use std::time::Duration;

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
}

impl Default for HttpPendoConfig {
    fn default() -> Self {
        Self {
            endpoints: PendoEndpoints::default(),
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(300),
            read_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone)]
pub struct HttpPendo {
    client: reqwest::Client,
    config: HttpPendoConfig,
}

impl HttpPendo {
    pub fn new(config: HttpPendoConfig) -> Result<Self, PendoError> {
        let client = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .read_timeout(config.read_timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("pendo-sync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| PendoError::Transport(e.to_string()))?;
        Ok(Self { client, config })
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

/// Maps a non-2xx status to the error taxonomy.
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
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            Err(PendoError::Unauthorized { status: code })
        }
        StatusCode::TOO_MANY_REQUESTS => Err(PendoError::RateLimited { retry_after }),
        s if s.is_server_error() => Err(PendoError::Server { status: code }),
        _ => {
            // Error bodies are short plain text; read at most 4 KiB of it.
            let mut body = Vec::new();
            let mut stream = resp.bytes_stream();
            while let Some(Ok(chunk)) = stream.next().await {
                body.extend_from_slice(&chunk);
                if body.len() > 4096 {
                    body.truncate(4096);
                    break;
                }
            }
            let message = String::from_utf8_lossy(&body).trim().to_string();
            if message.contains(MEMORY_LIMIT_TEXT) {
                Err(PendoError::MemoryLimit)
            } else if status == StatusCode::REQUEST_TIMEOUT {
                Err(PendoError::Timeout)
            } else {
                Err(PendoError::BadRequest {
                    status: code,
                    message,
                })
            }
        }
    }
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
                    scanner.feed(&chunk, |row| sink.row(row).map_err(PendoError::Sink))?;
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
