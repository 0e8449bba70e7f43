//! The Lambda handlers, exactly as each function's `main` calls them (so tests call them too):
//! the EventBridge schedule, the fetch and resync SQS batches with partial batch failures, and
//! the configurator's router (API Gateway HTTP API, payload v2, through `lambda_http`).
//!
//! SQS batches: each record is decoded and processed on its own (a poisoned body fails alone),
//! with bounded concurrency. The retry-vs-give-up decision is the core's (`ProcessError`); here
//! it only becomes the batch response:
//! - `Ok(Done)`, `Ok(Superseded)` (an older generation, a deleted mapping): acknowledged;
//! - `Err(Permanent)` (an undecodable body, a revoked key, a last attempt): acknowledged and
//!   logged — redelivery cannot help, and the mapping already shows the error;
//! - `Err(Retryable)`: the message id goes into `batchItemFailures`, so SQS redelivers it after
//!   its visibility timeout and, after the queue's max receive count, moves it to the DLQ.
//!
//! `final_attempt` is `ApproximateReceiveCount >= max_receives` (the redrive policy's
//! `maxReceiveCount`), so the core can record a last failure before SQS gives up.

use crate::app::App;
use crate::queue::messages::MessageKind;
use crate::sync::processed::{ProcessError, Processed};
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures_util::StreamExt;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tracing::Instrument;

/// How a function's SQS batches are processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// The queue's `maxReceiveCount`: the receive at which a message is on its last attempt.
    pub max_receives: u32,
    /// Records processed at once. The fetch function's is 1 (its `FETCH_CONCURRENCY`), so that
    /// its reserved concurrency (`FetchConcurrency` in the template) bounds the Pendo calls
    /// in flight across all invocations.
    pub concurrency: usize,
    /// The time a record needs after its Pendo calls (writes, its record, the follow-up):
    /// Pendo calls end this long before the invocation's deadline.
    pub reserve: Duration,
    /// The least time left worth starting a record with; a record not started is reported
    /// in `batchItemFailures` untouched.
    pub min_record: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_receives: 5,
            concurrency: 1,
            reserve: Duration::from_secs(30),
            min_record: Duration::from_secs(60),
        }
    }
}

/// The invocation's deadline (`Lambda-Runtime-Deadline-Ms`) as an instant of this process's
/// clock; `None` when the context has none (0: a hand-built context).
pub fn invocation_deadline(context: &lambda_runtime::Context) -> Option<tokio::time::Instant> {
    if context.deadline == 0 {
        return None;
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Some(
        tokio::time::Instant::now()
            + Duration::from_millis(context.deadline.saturating_sub(now_ms)),
    )
}

/// What a failed scheduler invocation reports (CloudWatch shows `errorType`).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct HandlerError {
    kind: &'static str,
    message: String,
}

impl From<HandlerError> for Diagnostic {
    fn from(e: HandlerError) -> Self {
        Diagnostic {
            error_type: e.kind.to_string(),
            error_message: e.message,
        }
    }
}

impl From<ProcessError> for Diagnostic {
    fn from(e: ProcessError) -> Self {
        let kind = match e {
            ProcessError::Retryable(_) => "Retryable",
            ProcessError::Permanent(_) => "Permanent",
        };
        Diagnostic {
            error_type: kind.to_string(),
            error_message: e.message(),
        }
    }
}

/// JSON logs, one object per line (what Lambda's JSON log format and CloudWatch Logs Insights
/// read); level from `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else `info`. No span or event
/// carries the integration key.
pub fn init_tracing() {
    use tracing_subscriber::{fmt, layer::SubscriberExt, util::SubscriberInitExt};
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    // A second init (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(fmt::layer().json().with_target(false))
        .with(log_filter(&level))
        .try_init();
}

/// The log filter of a function: a level (`AWS_LAMBDA_LOG_LEVEL`: TRACE … ERROR, or FATAL,
/// read as ERROR) or `RUST_LOG`-style directives (`warn,pendo_sync=debug`; a bare word is a
/// target, as for `RUST_LOG`); a directive with a level that is not one is `info`.
/// (`Targets`, not `EnvFilter`: the same directives without span and field filters, and
/// without the regex engine in every function's binary.)
///
/// Every crate but ours is capped at DEBUG, whatever is asked: at TRACE, `lambda_runtime` logs
/// each raw event (a connect's body holds the Pendo key, an API event the caller's JWT) and
/// the AWS SDK each request (the integration item holds the key).
pub fn log_filter(level: &str) -> tracing_subscriber::filter::Targets {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    let level = level.trim().to_lowercase();
    let level = if level == "fatal" { "error" } else { &level };
    let asked = level
        .parse::<Targets>()
        .unwrap_or_else(|_| Targets::new().with_default(LevelFilter::INFO));
    let default = asked.default_level().unwrap_or(LevelFilter::OFF);
    let ours = |target: &str| OWN_TARGETS.iter().any(|o| target.starts_with(o));
    let mut capped = Targets::new().with_default(default.min(LevelFilter::DEBUG));
    for own in OWN_TARGETS {
        if !asked.iter().any(|(t, _)| t == *own) {
            capped = capped.with_target(*own, default);
        }
    }
    for (target, level) in asked.iter() {
        let level = if ours(target) {
            level
        } else {
            level.min(LevelFilter::DEBUG)
        };
        capped = capped.with_target(target, level);
    }
    capped
}

/// The targets of this workspace's code (never capped: no event of ours carries a key or a
/// token).
const OWN_TARGETS: &[&str] = &["pendo_sync", "scheduler", "fetch", "resync", "configurator"];

/// The configurator function's service: the API's router, with the caller taken from the JWT
/// authorizer's claims (`api::claims`). `lambda_http::run` serves it; tests drive it with
/// `lambda_http::Adapter` on v2 event fixtures.
#[cfg(feature = "configurator")]
pub fn configurator_router(app: App, names: crate::api::claims::ClaimNames) -> axum::Router {
    crate::api::router(
        std::sync::Arc::new(app),
        std::sync::Arc::new(crate::api::claims::JwtClaimsAuth { names }),
    )
}

/// The scheduler's answer: how many tenants it sent a planning message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleOutcome {
    pub tenants: usize,
}

/// The daily schedule: one planning message per tenant on the resync queue (the resync
/// function plans each tenant as its own record). The event's payload is ignored (the core's
/// clock says which day it is). A failure fails the invocation, so EventBridge's retry policy
/// runs it again: planning is once per tenant and day, so nothing is planned twice.
///
/// # Errors
/// `HandlerError` when listing tenants, planning or sending fails.
pub async fn handle_schedule(
    app: &App,
    event: LambdaEvent<EventBridgeEvent>,
) -> Result<ScheduleOutcome, HandlerError> {
    let span = tracing::info_span!(
        "schedule",
        event_id = event.payload.id.as_deref().unwrap_or("")
    );
    async {
        match app.run_schedule().await {
            Ok(tenants) => {
                tracing::info!(tenants = tenants.len(), "daily planning queued");
                Ok(ScheduleOutcome {
                    tenants: tenants.len(),
                })
            }
            Err(e) => {
                let message = crate::error::chain(&e);
                tracing::error!(error.message = %message, "the daily schedule failed");
                Err(HandlerError {
                    kind: "ScheduleFailed",
                    message,
                })
            }
        }
    }
    .instrument(span)
    .await
}

/// The fetch function: one chunk per record.
///
/// # Errors
/// Never: failures are reported per record in the response.
pub async fn handle_fetch_batch(
    app: &App,
    config: BatchConfig,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, HandlerError> {
    let deadline = invocation_deadline(&event.context);
    Ok(sqs_batch(app, config, FETCH_TAKES, event.payload, deadline).await)
}

/// What the fetch function takes.
pub const FETCH_TAKES: &[MessageKind] = &[MessageKind::Fetch];
/// What the resync function takes (all on the resync queue): Re-sync all, directory import
/// pages, each tenant's daily planning, the runs of one mapping the API queued, and the purge
/// of a deleted mapping's values.
pub const RESYNC_TAKES: &[MessageKind] = &[
    MessageKind::Resync,
    MessageKind::Import,
    MessageKind::Plan,
    MessageKind::Run,
    MessageKind::Purge,
];

/// The resync function: purge, reset and fan out per record.
///
/// # Errors
/// Never: failures are reported per record in the response.
pub async fn handle_resync_batch(
    app: &App,
    config: BatchConfig,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, HandlerError> {
    let deadline = invocation_deadline(&event.context);
    Ok(sqs_batch(app, config, RESYNC_TAKES, event.payload, deadline).await)
}

/// What became of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOutcome {
    Acknowledged,
    Retry,
}

/// Processes every record on its own (of the kinds `accepts`) and returns the ids of those to
/// redeliver. With a `deadline` (the invocation's), a record is started only while at least
/// `min_record` is left (the others are reported untouched), and its Pendo calls end
/// `reserve` before the deadline (`deadline::within`), so no invocation outlives its timeout
/// with work unreported.
pub async fn sqs_batch(
    app: &App,
    config: BatchConfig,
    accepts: &[MessageKind],
    event: SqsEvent,
    deadline: Option<tokio::time::Instant>,
) -> SqsBatchResponse {
    let outcomes: Vec<(Option<String>, RecordOutcome)> = futures_util::stream::iter(event.records)
        .map(|record| async move {
            let id = record.message_id.clone();
            let Some(end) = deadline else {
                return (id, process_record(app, config, accepts, &record).await);
            };
            let now = tokio::time::Instant::now();
            if end.saturating_duration_since(now) < config.min_record {
                tracing::warn!(
                    message_id = id.as_deref().unwrap_or(""),
                    left_ms = end.saturating_duration_since(now).as_millis() as u64,
                    "too little time left in this invocation: record not started, returned to the queue"
                );
                return (id, RecordOutcome::Retry);
            }
            let calls_end = end.checked_sub(config.reserve).unwrap_or(now);
            let outcome =
                crate::deadline::within(calls_end, process_record(app, config, accepts, &record))
                    .await;
            (id, outcome)
        })
        .buffer_unordered(config.concurrency.max(1))
        .collect()
        .await;
    let mut response = SqsBatchResponse::default();
    for (id, outcome) in outcomes {
        if outcome == RecordOutcome::Retry {
            match id {
                Some(id) => response.add_failure(id),
                None => tracing::error!("a failed record has no message id; it cannot be retried"),
            }
        }
    }
    response
}

/// The receive count SQS put on the record (1 on the first delivery).
pub fn receive_count(record: &SqsMessage) -> u32 {
    record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|c| c.parse().ok())
        .unwrap_or(1)
}

async fn process_record(
    app: &App,
    config: BatchConfig,
    accepts: &[MessageKind],
    record: &SqsMessage,
) -> RecordOutcome {
    let id = record.message_id.as_deref().unwrap_or("");
    let receives = receive_count(record);
    let span = tracing::info_span!("message", message_id = id, receives);
    async {
        let Some(body) = record.body.as_deref() else {
            tracing::error!("record without a body: dropped");
            return RecordOutcome::Acknowledged;
        };
        let final_attempt = receives >= config.max_receives;
        match app.process_message_of(accepts, body, final_attempt).await {
            Ok(Processed::Done(_)) => RecordOutcome::Acknowledged,
            Ok(Processed::Superseded) => {
                tracing::info!("superseded message acknowledged");
                RecordOutcome::Acknowledged
            }
            Ok(Processed::Duplicate) => {
                tracing::info!("duplicate of a finished chunk acknowledged");
                RecordOutcome::Acknowledged
            }
            Err(e @ ProcessError::Permanent(_)) if e.is_aws_refusal() => {
                // Counted by the template's metric filter (AwsRefusedAlarm).
                tracing::error!(error.message = %e.message(), aws_refused = true, "AWS refused a call of this function: fix its permissions or resources; message acknowledged");
                RecordOutcome::Acknowledged
            }
            Err(e @ ProcessError::Permanent(_)) => {
                tracing::error!(error.message = %e.message(), "message failed permanently: acknowledged");
                RecordOutcome::Acknowledged
            }
            Err(e @ ProcessError::Retryable(_)) => {
                tracing::warn!(error.message = %e.message(), final_attempt, "message failed: returned to the queue");
                RecordOutcome::Retry
            }
        }
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests {
    #[test]
    fn log_filter_reads_lambda_levels_and_rust_log_directives() {
        use tracing::Level;
        let on = |f: &str, target: &str, level: Level| log_filter(f).would_enable(target, &level);
        assert!(on("INFO", "pendo_sync::sync", Level::INFO));
        assert!(!on("INFO", "pendo_sync::sync", Level::DEBUG));
        assert!(on(" debug ", "x", Level::DEBUG));
        assert!(on("FATAL", "x", Level::ERROR));
        assert!(!on("FATAL", "x", Level::WARN));
        assert!(on(
            "warn,pendo_sync=trace",
            "pendo_sync::store",
            Level::TRACE
        ));
        assert!(!on("warn,pendo_sync=trace", "hyper", Level::INFO));
        // A bare word is a target (every level of it, nothing else).
        assert!(on("pendo_sync", "pendo_sync::api", Level::TRACE));
        assert!(!on("pendo_sync", "hyper", Level::ERROR));
        // A level that is not one: info.
        assert!(on("pendo_sync=loud", "x", Level::INFO));
        assert!(!on("pendo_sync=loud", "x", Level::DEBUG));
    }

    #[test]
    fn trace_never_reaches_the_runtime_or_the_sdk_which_log_raw_payloads_there() {
        use tracing::Level;
        let on = |f: &str, target: &str, level: Level| log_filter(f).would_enable(target, &level);
        let raw_event = "lambda_runtime::layers::api_response";
        let sdk_request = "aws_smithy_runtime::client::orchestrator";
        for asked in [
            "TRACE",
            "trace",
            "lambda_runtime=trace,aws_smithy_runtime=trace",
        ] {
            assert!(!on(asked, raw_event, Level::TRACE), "{asked}");
            assert!(!on(asked, sdk_request, Level::TRACE), "{asked}");
            assert!(on(asked, raw_event, Level::DEBUG), "{asked}");
        }
        // Ours keep what was asked.
        assert!(on("TRACE", "pendo_sync::api", Level::TRACE));
        assert!(on("TRACE", "fetch", Level::TRACE));
        assert!(on(
            "info,pendo_sync=trace",
            "pendo_sync::sync",
            Level::TRACE
        ));
        assert!(!on("info,pendo_sync=trace", "hyper", Level::DEBUG));
        assert!(!on("INFO", "pendo_sync::sync", Level::DEBUG));
    }

    use super::*;

    #[test]
    fn receive_count_defaults_to_a_first_delivery() {
        let mut m = SqsMessage::default();
        assert_eq!(receive_count(&m), 1);
        m.attributes
            .insert("ApproximateReceiveCount".into(), "4".into());
        assert_eq!(receive_count(&m), 4);
        m.attributes
            .insert("ApproximateReceiveCount".into(), "x".into());
        assert_eq!(receive_count(&m), 1);
    }

    #[test]
    fn errors_show_their_kind_in_cloudwatch() {
        let d: Diagnostic = ProcessError::Retryable("pendo 503".into()).into();
        assert_eq!(d.error_type, "Retryable");
        assert_eq!(d.error_message, "pendo 503");
        // A store failure shows what was being done and the SDK's error under it.
        let cause =
            crate::store::StoreError::unavailable_from("writing values", "connection reset");
        let d: Diagnostic = ProcessError::from(cause).into();
        assert_eq!(d.error_type, "Retryable");
        assert_eq!(
            d.error_message,
            "store unavailable: writing values: connection reset"
        );
    }
}
