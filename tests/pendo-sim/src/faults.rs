//! Fault injection rules (429/5xx/delay/dropped or truncated bodies) and their selection.

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// What a fault does to a matching call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FaultKind {
    /// 429 without `Retry-After`.
    Status429,
    /// 429 with `Retry-After: retryAfterSecs`.
    Status429RetryAfter,
    /// 500.
    Status500,
    /// 502.
    Status502,
    /// 503.
    Status503,
    /// Sleep `delayMs`, then answer normally.
    Delay,
    /// Send part of the body, then abort the connection (client sees a body error).
    DropMidBody,
    /// Send a prefix of the JSON body, then end cleanly (client sees invalid JSON).
    TruncateMidJson,
    /// Answer `status` (400–599) with the plain-text `message` (default: the reason phrase).
    Status,
}

impl FaultKind {
    /// Whether the fault replaces the answer with an error status of its own.
    pub fn is_status(self) -> bool {
        matches!(
            self,
            FaultKind::Status429
                | FaultKind::Status429RetryAfter
                | FaultKind::Status500
                | FaultKind::Status502
                | FaultKind::Status503
                | FaultKind::Status
        )
    }

    /// Whether the fault cuts the body of whatever answer the call gets.
    pub fn is_body(self) -> bool {
        matches!(self, FaultKind::DropMidBody | FaultKind::TruncateMidJson)
    }
}

/// A fault rule as posted to `POST /_sim/faults`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultRule {
    /// Path prefix (default: every `/api/` path).
    #[serde(default)]
    pub path: Option<String>,
    /// Fault kind.
    pub kind: FaultKind,
    /// Fire on the next N matching calls.
    #[serde(default)]
    pub times: Option<u64>,
    /// Fire on every K-th matching call (K, 2K, …).
    #[serde(default)]
    pub every: Option<u64>,
    /// `Retry-After` seconds for `status429RetryAfter` (default 1).
    #[serde(default)]
    pub retry_after_secs: Option<u64>,
    /// Delay for `delay` (default 1000 ms); on a status fault, a delay before its answer.
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// The status of a `status` fault.
    #[serde(default)]
    pub status: Option<u16>,
    /// The plain-text body of a `status` fault.
    #[serde(default)]
    pub message: Option<String>,
    /// On a status fault: cut its answer's body as this body fault (`dropMidBody` or
    /// `truncateMidJson`) would, so that a fault can land on top of an error answer.
    #[serde(default)]
    pub body: Option<FaultKind>,
}

impl FaultRule {
    /// A rule firing on the next `times` calls to paths starting with `path`.
    pub fn times(path: &str, kind: FaultKind, times: u64) -> Self {
        FaultRule {
            path: Some(path.to_string()),
            kind,
            times: Some(times),
            every: None,
            retry_after_secs: None,
            delay_ms: None,
            status: None,
            message: None,
            body: None,
        }
    }

    /// A `status` fault answering `status` with `message`, on the next `times` calls.
    pub fn status(path: &str, status: u16, message: &str, times: Option<u64>) -> Self {
        FaultRule {
            times,
            status: Some(status),
            message: Some(message.to_string()),
            ..FaultRule::times(path, FaultKind::Status, 0)
        }
    }

    /// How long to wait before answering, if at all.
    pub fn delay(&self) -> Option<std::time::Duration> {
        let ms = match self.kind {
            FaultKind::Delay => Some(self.delay_ms.unwrap_or(1000)),
            k if k.is_status() => self.delay_ms,
            _ => None,
        };
        ms.map(std::time::Duration::from_millis)
    }

    /// The body fault to apply to the answer, if any.
    pub fn cut(&self) -> Option<FaultKind> {
        if self.kind.is_body() {
            Some(self.kind)
        } else {
            self.body
        }
    }

    /// Check the rule is usable.
    pub fn validate(&self) -> Result<(), String> {
        if self.times.is_some() && self.every.is_some() {
            return Err("give either times or every, not both".into());
        }
        if self.every == Some(0) {
            return Err("every must be at least 1".into());
        }
        match (self.kind, self.status) {
            (FaultKind::Status, Some(400..=599)) => {}
            (FaultKind::Status, _) => return Err("a status fault needs a status 400-599".into()),
            (_, Some(_)) => return Err("status is only for kind status".into()),
            _ => {}
        }
        if self.message.is_some() && self.kind != FaultKind::Status {
            return Err("message is only for kind status".into());
        }
        if let Some(b) = self.body {
            if !b.is_body() {
                return Err("body must be dropMidBody or truncateMidJson".into());
            }
            if !self.kind.is_status() {
                return Err("body is only for status faults".into());
            }
        }
        Ok(())
    }

    fn matches(&self, path: &str) -> bool {
        match &self.path {
            Some(p) => path.starts_with(p.as_str()),
            None => path.starts_with("/api/"),
        }
    }
}

/// A rule plus its counters.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultState {
    /// The rule.
    pub rule: FaultRule,
    /// Matching calls seen.
    pub seen: u64,
    /// Times fired.
    pub fired: u64,
}

/// Decide which rule (if any) fires for a call; updates counters.
pub fn pick(states: &mut [FaultState], path: &str) -> Option<FaultRule> {
    let mut chosen = None;
    for st in states.iter_mut().filter(|s| s.rule.matches(path)) {
        st.seen += 1;
        if chosen.is_some() {
            continue;
        }
        let fire = match (st.rule.times, st.rule.every) {
            (Some(n), _) => st.fired < n,
            (None, Some(k)) => st.seen % k == 0,
            (None, None) => true,
        };
        if fire {
            st.fired += 1;
            chosen = Some(st.rule.clone());
        }
    }
    chosen
}

/// The immediate response of a status fault (None for delay/body faults).
pub fn status_response(rule: &FaultRule) -> Option<Response> {
    let plain = |code: StatusCode, msg: &'static str| (code, msg).into_response();
    match rule.kind {
        FaultKind::Status429 => Some(plain(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests")),
        FaultKind::Status429RetryAfter => {
            let mut r = plain(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
            let secs = rule.retry_after_secs.unwrap_or(1);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            Some(r)
        }
        FaultKind::Status500 => Some(plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error",
        )),
        FaultKind::Status502 => Some(plain(StatusCode::BAD_GATEWAY, "Bad Gateway")),
        FaultKind::Status503 => Some(plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
        )),
        FaultKind::Status => {
            let code = rule
                .status
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let message = rule
                .message
                .clone()
                .unwrap_or_else(|| code.canonical_reason().unwrap_or_default().to_string());
            Some((code, message).into_response())
        }
        _ => None,
    }
}

/// Wrap a response body so it stops half-way through its first chunk: cleanly
/// (`truncateMidJson`) or with a transport error (`dropMidBody`).
pub fn cut_body(resp: Response, kind: FaultKind) -> Response {
    let (mut parts, body) = resp.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let mut inner = body.into_data_stream();
    let drop = kind == FaultKind::DropMidBody;
    let stream = async_stream_once(async move {
        let first = match inner.next().await {
            Some(Ok(b)) => b,
            _ => bytes::Bytes::new(),
        };
        let keep = (first.len() / 2).max(usize::from(first.len() > 1));
        first.slice(..keep.min(first.len()))
    })
    .chain(
        futures_util::stream::once(async move {
            if drop {
                // Let the headers and partial body reach the client before aborting.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                Some(Err(std::io::Error::other("simulated connection drop")))
            } else {
                None
            }
        })
        .filter_map(|x| async move { x }),
    );
    Response::from_parts(parts, Body::from_stream(stream))
}

fn async_stream_once(
    f: impl std::future::Future<Output = bytes::Bytes> + Send + 'static,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    futures_util::stream::once(async move { Ok(f.await) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_and_times() {
        let mut every = FaultRule::times("/api/v1/aggregation", FaultKind::Status500, 0);
        every.times = None;
        every.every = Some(3);
        let mut st = vec![
            FaultState {
                rule: FaultRule::times("/api/v1/page", FaultKind::Status429, 2),
                seen: 0,
                fired: 0,
            },
            FaultState {
                rule: every,
                seen: 0,
                fired: 0,
            },
        ];
        let agg: Vec<bool> = (0..6)
            .map(|_| pick(&mut st, "/api/v1/aggregation").is_some())
            .collect();
        assert_eq!(agg, vec![false, false, true, false, false, true]);
        assert!(pick(&mut st, "/api/v1/page").is_some());
        assert!(pick(&mut st, "/api/v1/page").is_some());
        assert!(pick(&mut st, "/api/v1/page").is_none());
        let json = r#"{"kind":"status429RetryAfter","retryAfterSecs":7,"times":1}"#;
        let r: FaultRule = serde_json::from_str(json).unwrap();
        assert_eq!(r.kind, FaultKind::Status429RetryAfter);
        assert!(serde_json::from_str::<FaultRule>(r#"{"kind":"nope"}"#).is_err());
    }
}
