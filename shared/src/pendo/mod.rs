//! The Pendo port: what the core needs from Pendo's API, its error classification, and where
//! each domain is reached. The HTTP adapter is in `http/`, the streaming row parser in
//! `rows.rs`, the retry policy in `retry.rs`, request builders in `pipelines.rs`.
//! Nothing here may log or format the integration key.

pub(crate) mod event_row;
pub mod http;
pub mod pipelines;
pub mod reports;
pub mod retry;
pub mod rows;

use crate::domain::{Connection, PendoDomain};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::time::Duration;

/// Why a Pendo call failed, classified once for every caller.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PendoError {
    /// 401/403: wrong, revoked, wrong-region key, or a key without write access on aggregations.
    #[error("Pendo rejected the integration key (HTTP {status}): it is wrong, revoked, or belongs to another region's domain")]
    Unauthorized { status: u16 },
    #[error("Pendo is rate limiting (HTTP 429)")]
    RateLimited { retry_after: Option<Duration> },
    /// 400/408 with "Query exceeded memory limit": split the window and retry.
    #[error("Pendo: query exceeded memory limit")]
    MemoryLimit,
    /// Other 4xx: the request is wrong; retrying will not help.
    #[error("Pendo refused the request (HTTP {status}): {message}")]
    BadRequest { status: u16, message: String },
    #[error("Pendo server error (HTTP {status})")]
    Server { status: u16 },
    #[error("Pendo did not answer in time")]
    Timeout,
    #[error("network error talking to Pendo: {0}")]
    Transport(String),
    /// The body ended before the JSON document did.
    #[error("Pendo's response was cut short before the JSON document ended")]
    Truncated,
    #[error("Pendo's response is not the JSON expected: {0}")]
    Malformed(String),
    /// The consumer of the rows failed (not Pendo's fault; not retried here).
    #[error("row processing failed: {0}")]
    Sink(#[source] RowError),
}

impl PendoError {
    /// Transient faults worth another try of the same call.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. }
                | Self::Server { .. }
                | Self::Timeout
                | Self::Transport(_)
                | Self::Truncated
        )
    }
}

/// Why a row sink refused a row of Pendo's results: a row that is not what the request asked
/// for (a field of the wrong type, a row too long), in the product's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RowError(pub String);

impl From<String> for RowError {
    fn from(message: String) -> Self {
        RowError(message)
    }
}

impl From<&str> for RowError {
    fn from(message: &str) -> Self {
        RowError(message.to_string())
    }
}

/// Receives the rows of a `results` array one at a time, as raw JSON bytes of one row object.
/// `reset` is called before every retry of the call, so a sink never sees a row twice.
pub trait RowSink: Send {
    fn row(&mut self, raw: &[u8]) -> Result<(), RowError>;
    /// A row that starts at `rest[0]` (its `{`), taken in the same pass that finds where it
    /// ends: `Some(Ok(length))` when the sink has read the whole row from the front of `rest`
    /// exactly as [`RowSink::row`] would have read those bytes, `None` when it cannot tell (the
    /// scanner then finds the end itself and calls `row`). By default, `None`.
    fn row_prefix(&mut self, rest: &[u8]) -> Option<Result<usize, RowError>> {
        let _ = rest;
        None
    }
    fn reset(&mut self);
}

/// What a key check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyCheck {
    pub valid: bool,
    pub write_access: bool,
}

/// The object lists discovery reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectList {
    Pages,
    Features,
    TrackTypes,
    Guides,
    Segments,
    Reports,
}

impl ObjectList {
    pub fn path(self) -> &'static str {
        match self {
            Self::Pages => "/api/v1/page?expand=*",
            Self::Features => "/api/v1/feature?expand=*",
            Self::TrackTypes => "/api/v1/tracktype?expand=*",
            Self::Guides => "/api/v1/guide?expand=*",
            Self::Segments => "/api/v1/segment",
            Self::Reports => "/api/v1/report",
        }
    }
}

/// The port.
#[async_trait]
pub trait PendoApi: Send + Sync {
    /// `GET /api/v1/token/verify`.
    ///
    /// # Errors
    /// `Unauthorized` when Pendo refuses the key; transient errors after retries.
    async fn verify(&self, conn: &Connection) -> Result<KeyCheck, PendoError>;

    /// `POST /api/v1/aggregation`, streaming each row of `results` into `sink`.
    /// Retries transient faults itself (calling `sink.reset()` before each retry).
    /// Returns the number of rows delivered by the successful attempt.
    ///
    /// # Errors
    /// `MemoryLimit` (caller splits), `Unauthorized`, `BadRequest`, `Sink`, or the last
    /// transient error once retries are exhausted. A truncated body is never a success.
    async fn aggregate(
        &self,
        conn: &Connection,
        request: &serde_json::Value,
        sink: &mut dyn RowSink,
    ) -> Result<u64, PendoError>;

    /// A GET of an object list (JSON array).
    ///
    /// # Errors
    /// As `verify`.
    async fn list(
        &self,
        conn: &Connection,
        what: ObjectList,
    ) -> Result<Vec<serde_json::Value>, PendoError>;
}

/// Where each Pendo domain is reached. Production: `https://{host}`. The overrides exist only as
/// a deployment setting (for the simulator), never as tenant input.
#[derive(Debug, Clone, Default)]
pub struct PendoEndpoints {
    /// Replaces every domain's base URL.
    pub all: Option<String>,
    /// Replaces one domain's base URL (takes precedence over `all`).
    pub per_domain: BTreeMap<&'static str, String>,
}

impl PendoEndpoints {
    /// Parses `PENDO_BASE_URL` (all domains) and `PENDO_BASE_URLS`
    /// (`app.eu.pendo.io=http://127.0.0.1:9001,app.pendo.io=http://127.0.0.1:9000`).
    ///
    /// # Errors
    /// An entry of `PENDO_BASE_URLS` that is not `host=url` with one of Pendo's hosts.
    pub fn from_settings(
        all: Option<&str>,
        per_domain: Option<&str>,
    ) -> Result<Self, crate::error::ValidationError> {
        let invalid =
            |reason: String| crate::error::ValidationError::new("PENDO_BASE_URLS", reason);
        let mut out = Self {
            all: all.filter(|s| !s.is_empty()).map(str::to_string),
            ..Self::default()
        };
        for part in per_domain
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let (host, url) = part
                .split_once('=')
                .ok_or_else(|| invalid(format!("entry '{part}' is not host=url")))?;
            let domain = PendoDomain::parse(host).map_err(|e| invalid(e.to_string()))?;
            out.per_domain
                .insert(domain.host(), url.trim().trim_end_matches('/').to_string());
        }
        Ok(out)
    }

    pub fn base_url(&self, domain: PendoDomain) -> String {
        if let Some(u) = self.per_domain.get(domain.host()) {
            return u.clone();
        }
        match &self.all {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => format!("https://{}", domain.host()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let e = PendoEndpoints::from_settings(None, None).unwrap();
        assert_eq!(e.base_url(PendoDomain::Eu), "https://app.eu.pendo.io");
        let e = PendoEndpoints::from_settings(
            Some("http://127.0.0.1:1/"),
            Some("app.eu.pendo.io=http://127.0.0.1:2"),
        )
        .unwrap();
        assert_eq!(e.base_url(PendoDomain::Us), "http://127.0.0.1:1");
        assert_eq!(e.base_url(PendoDomain::Eu), "http://127.0.0.1:2");
        let e = PendoEndpoints::from_settings(None, Some("evil.com=http://x")).unwrap_err();
        assert_eq!(e.field, "PENDO_BASE_URLS");
        let e = PendoEndpoints::from_settings(None, Some("app.pendo.io")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "PENDO_BASE_URLS: entry 'app.pendo.io' is not host=url"
        );
    }

    #[test]
    fn retryable_classification() {
        assert!(PendoError::Truncated.is_retryable());
        assert!(PendoError::Server { status: 502 }.is_retryable());
        assert!(!PendoError::MemoryLimit.is_retryable());
        assert!(!PendoError::Unauthorized { status: 403 }.is_retryable());
        assert!(!PendoError::BadRequest {
            status: 400,
            message: "x".into()
        }
        .is_retryable());
    }
}
