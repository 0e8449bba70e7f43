//! `sqs-poller`: the development stand-in for Lambda's SQS event source mapping (`make dev`).
//!
//! ```text
//! sqs-poller setup --prefix dev --env-file target/dev/lambda.env   # tables, queues + DLQs
//! sqs-poller run --invoke-url http://127.0.0.1:9000                 # deliver, until Ctrl-C
//! ```
//!
//! `setup` creates (idempotently) the two tables with the production key schema
//! (`store::dynamo::ensure_tables`) and the fetch and resync queues, each with a dead-letter
//! queue and a redrive policy, then writes the functions' environment to an env file for
//! `cargo lambda watch --env-file`.
//!
//! `run` receives up to 10 messages at a time from each queue and invokes the function that
//! consumes it through the Lambda Invoke API that `cargo lambda watch` serves, with the event
//! Lambda would send (records with `ApproximateReceiveCount`, `eventSourceARN`, …). Then, as the
//! event source mapping does with `ReportBatchItemFailures`: every record not named in
//! `batchItemFailures` is deleted; the named ones — or the whole batch, when the invocation fails
//! or its answer names an id that is not in the batch — stay on the queue and come back after
//! the visibility timeout, until the redrive policy moves them to the dead-letter queue.
//!
//! It talks only to 127.0.0.1 (`AWS_ENDPOINT_URL` and the invoke URL must be loopback).

use anyhow::{bail, Context as _, Result};
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName, QueueAttributeName};
use clap::{Parser, Subcommand};
use pendo_sync::store::dynamo::{ensure_tables, DynamoTables};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "sqs-poller",
    about = "Delivers local SQS messages to `cargo lambda watch` as Lambda's event source mapping does"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the tables and the queues (with DLQs) and write the functions' env file.
    Setup {
        #[arg(long, default_value = "dev")]
        prefix: String,
        /// Receives before a message moves to its DLQ (the template's MaxReceiveCount).
        #[arg(long, default_value_t = 5)]
        max_receives: u32,
        /// Seconds a received message stays invisible (short, for development).
        #[arg(long, default_value_t = 30)]
        visibility_timeout: u32,
        /// Where to write KEY=VALUE lines (stdout when absent).
        #[arg(long)]
        env_file: Option<PathBuf>,
        /// Extra KEY=VALUE lines for the env file (e.g. PENDO_BASE_URL=…).
        #[arg(long = "env")]
        extra: Vec<String>,
    },
    /// Deliver messages until interrupted.
    Run {
        #[arg(long, default_value = "http://127.0.0.1:9000")]
        invoke_url: String,
        #[arg(long, env = "FETCH_QUEUE_URL")]
        fetch_queue_url: String,
        #[arg(long, env = "RESYNC_QUEUE_URL")]
        resync_queue_url: String,
        #[arg(long, default_value = "fetch")]
        fetch_function: String,
        #[arg(long, default_value = "resync")]
        resync_function: String,
        /// Messages per invocation (SQS and Lambda allow at most 10 per receive).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(i32).range(1..=10))]
        batch_size: i32,
    },
}

fn loopback(url: &str) -> bool {
    let rest = url.trim_start_matches("http://");
    let host = rest.split([':', '/']).next().unwrap_or("");
    url.starts_with("http://") && ["127.0.0.1", "localhost"].contains(&host)
}

async fn sdk() -> Result<aws_config::SdkConfig> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    if !loopback(&endpoint) {
        bail!(
            "AWS_ENDPOINT_URL={endpoint:?}: the poller only talks to a local server on 127.0.0.1"
        );
    }
    Ok(aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await)
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_target(false)
        .init();
    match Cli::parse().command {
        Command::Setup {
            prefix,
            max_receives,
            visibility_timeout,
            env_file,
            extra,
        } => {
            let sdk = sdk().await?;
            let env = setup(&sdk, &prefix, max_receives, visibility_timeout).await?;
            let mut text: String = env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
            for line in extra {
                text.push_str(&line);
                text.push('\n');
            }
            match env_file {
                Some(path) => {
                    if let Some(dir) = path.parent() {
                        std::fs::create_dir_all(dir)?;
                    }
                    std::fs::write(&path, text).with_context(|| format!("write {path:?}"))?;
                    println!("sqs-poller: wrote {}", path.display());
                }
                None => print!("{text}"),
            }
            Ok(())
        }
        Command::Run {
            invoke_url,
            fetch_queue_url,
            resync_queue_url,
            fetch_function,
            resync_function,
            batch_size,
        } => {
            if !loopback(&invoke_url) {
                bail!("--invoke-url {invoke_url}: only 127.0.0.1 is allowed");
            }
            let sdk = sdk().await?;
            let poller = Poller {
                sqs: aws_sdk_sqs::Client::new(&sdk),
                http: pendo_sync::pendo::http::client_builder()
                    .timeout(Duration::from_secs(900))
                    .build()?,
                invoke_url: invoke_url.trim_end_matches('/').to_string(),
                region: sdk
                    .region()
                    .map(|r| r.to_string())
                    .unwrap_or_else(|| "us-east-1".into()),
                batch_size,
            };
            let sources = [
                Source::new(&poller, resync_queue_url, resync_function).await?,
                Source::new(&poller, fetch_queue_url, fetch_function).await?,
            ];
            tokio::select! {
                r = poller.run(&sources) => r,
                _ = tokio::signal::ctrl_c() => {
                    tracing::info!("interrupted");
                    Ok(())
                }
            }
        }
    }
}

async fn setup(
    sdk: &aws_config::SdkConfig,
    prefix: &str,
    max_receives: u32,
    visibility: u32,
) -> Result<Vec<(String, String)>> {
    let tables = DynamoTables::with_prefix(prefix);
    ensure_tables(&aws_sdk_dynamodb::Client::new(sdk), &tables).await?;
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let mut urls = Vec::new();
    for name in ["fetch", "resync"] {
        let dlq = sqs
            .create_queue()
            .queue_name(format!("{prefix}-{name}-dlq"))
            .send()
            .await?
            .queue_url
            .context("no dead-letter queue url")?;
        let dlq_arn = queue_arn(&sqs, &dlq).await?;
        let redrive =
            json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives.to_string()});
        let url = sqs
            .create_queue()
            .queue_name(format!("{prefix}-{name}"))
            .attributes(
                QueueAttributeName::VisibilityTimeout,
                visibility.to_string(),
            )
            .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
            .send()
            .await?
            .queue_url
            .context("no queue url")?;
        urls.push(url);
    }
    Ok(vec![
        ("CONFIG_TABLE".into(), tables.config),
        ("DATA_TABLE".into(), tables.data),
        ("FETCH_QUEUE_URL".into(), urls[0].clone()),
        ("RESYNC_QUEUE_URL".into(), urls[1].clone()),
        ("MAX_RECEIVES".into(), max_receives.to_string()),
    ])
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String> {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .with_context(|| format!("no ARN for {url}"))
}

struct Poller {
    sqs: aws_sdk_sqs::Client,
    http: reqwest::Client,
    invoke_url: String,
    region: String,
    batch_size: i32,
}

/// One event source mapping: a queue and the function it feeds.
struct Source {
    url: String,
    arn: String,
    function: String,
}

impl Source {
    async fn new(p: &Poller, url: String, function: String) -> Result<Self> {
        let arn = queue_arn(&p.sqs, &url).await?;
        Ok(Self { url, arn, function })
    }
}

impl Poller {
    async fn run(&self, sources: &[Source]) -> Result<()> {
        tracing::info!(invoke_url = %self.invoke_url, "delivering");
        loop {
            let mut idle = true;
            for s in sources {
                match self.deliver_once(s).await {
                    Ok(0) => {}
                    Ok(_) => idle = false,
                    Err(e) => {
                        tracing::warn!(function = %s.function, error = %format!("{e:#}"), "delivery failed; retrying")
                    }
                }
            }
            if idle {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }

    /// One receive → invoke → settle round; returns the number of messages delivered.
    async fn deliver_once(&self, s: &Source) -> Result<usize> {
        let msgs = self
            .sqs
            .receive_message()
            .queue_url(&s.url)
            .max_number_of_messages(self.batch_size)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await?
            .messages
            .unwrap_or_default();
        if msgs.is_empty() {
            return Ok(0);
        }
        let event = sqs_event(&msgs, &s.arn, &self.region);
        let url = format!(
            "{}/2015-03-31/functions/{}/invocations",
            self.invoke_url, s.function
        );
        let answer = match self.http.post(&url).json(&event).send().await {
            Ok(r) => {
                let failed =
                    !r.status().is_success() || r.headers().contains_key("x-amz-function-error");
                let body = r.text().await.unwrap_or_default();
                if failed {
                    Err(body)
                } else {
                    Ok(body)
                }
            }
            Err(e) => Err(e.to_string()),
        };
        let ids: Vec<String> = msgs.iter().filter_map(|m| m.message_id.clone()).collect();
        let retry = match &answer {
            Ok(body) => failures(&ids, body),
            Err(e) => {
                tracing::warn!(function = %s.function, error = %e, "invocation failed: the whole batch stays on the queue");
                ids.iter().cloned().collect()
            }
        };
        let mut deleted = 0;
        for m in &msgs {
            let id = m.message_id.as_deref().unwrap_or("");
            if retry.contains(id) {
                continue;
            }
            if let Some(handle) = &m.receipt_handle {
                self.sqs
                    .delete_message()
                    .queue_url(&s.url)
                    .receipt_handle(handle)
                    .send()
                    .await?;
                deleted += 1;
            }
        }
        tracing::info!(function = %s.function, messages = msgs.len(), deleted, left_for_redelivery = msgs.len() - deleted, "batch delivered");
        Ok(msgs.len())
    }
}

/// The SQS event Lambda's event source mapping sends for `msgs`.
fn sqs_event(msgs: &[Message], queue_arn: &str, region: &str) -> Value {
    let records: Vec<Value> = msgs
        .iter()
        .map(|m| {
            let mut attributes = serde_json::Map::new();
            for (k, v) in m.attributes.iter().flatten() {
                attributes.insert(k.as_str().to_string(), Value::String(v.clone()));
            }
            json!({
                "messageId": m.message_id,
                "receiptHandle": m.receipt_handle,
                "body": m.body,
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": m.md5_of_body,
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            })
        })
        .collect();
    json!({ "Records": records })
}

/// The ids to leave on the queue, from a successful invocation's answer, with Lambda's rules:
/// an empty/`null` answer or no `batchItemFailures` → none; an entry whose id is missing, empty
/// or not in the batch → all of them (the answer cannot be trusted).
fn failures(batch: &[String], answer: &str) -> HashSet<String> {
    let all = || batch.iter().cloned().collect();
    let answer = answer.trim();
    if answer.is_empty() || answer == "null" {
        return HashSet::new();
    }
    let Ok(v) = serde_json::from_str::<Value>(answer) else {
        return all();
    };
    let Some(list) = v.get("batchItemFailures") else {
        return HashSet::new();
    };
    let Some(list) = list.as_array() else {
        return all();
    };
    let mut out = HashSet::new();
    for f in list {
        match f.get("itemIdentifier").and_then(Value::as_str) {
            Some(id) if batch.iter().any(|b| b == id) => {
                out.insert(id.to_string());
            }
            _ => return all(),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Vec<String> {
        vec!["a".into(), "b".into(), "c".into()]
    }

    fn set(v: &[&str]) -> HashSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_the_reported_records_stay() {
        assert_eq!(
            failures(&ids(), r#"{"batchItemFailures":[{"itemIdentifier":"b"}]}"#),
            set(&["b"])
        );
        assert_eq!(failures(&ids(), r#"{"batchItemFailures":[]}"#), set(&[]));
        assert_eq!(failures(&ids(), ""), set(&[]));
        assert_eq!(failures(&ids(), "null"), set(&[]));
    }

    #[test]
    fn an_untrustworthy_answer_fails_the_whole_batch() {
        let all = set(&["a", "b", "c"]);
        assert_eq!(
            failures(&ids(), r#"{"batchItemFailures":[{"itemIdentifier":"zz"}]}"#),
            all
        );
        assert_eq!(
            failures(&ids(), r#"{"batchItemFailures":[{"itemIdentifier":""}]}"#),
            all
        );
        assert_eq!(failures(&ids(), r#"{"batchItemFailures":"b"}"#), all);
        assert_eq!(failures(&ids(), "not json"), all);
    }

    #[test]
    fn the_event_is_what_the_sqs_handler_decodes() {
        let m = Message::builder()
            .message_id("m-1")
            .receipt_handle("rh-1")
            .body(r#"{"type":"fetch"}"#)
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "3")
            .build();
        let ev = sqs_event(
            &[m],
            "arn:aws:sqs:us-east-1:123456789012:dev-fetch",
            "us-east-1",
        );
        let decoded: aws_lambda_events::event::sqs::SqsEvent = serde_json::from_value(ev).unwrap();
        let r = &decoded.records[0];
        assert_eq!(r.message_id.as_deref(), Some("m-1"));
        assert_eq!(r.body.as_deref(), Some(r#"{"type":"fetch"}"#));
        assert_eq!(pendo_sync::lambda::receive_count(r), 3);
        assert_eq!(
            r.event_source_arn.as_deref(),
            Some("arn:aws:sqs:us-east-1:123456789012:dev-fetch")
        );
    }

    #[test]
    fn only_loopback_urls() {
        assert!(loopback("http://127.0.0.1:4566"));
        assert!(loopback("http://localhost:9000/"));
        assert!(!loopback("https://sqs.us-east-1.amazonaws.com"));
        assert!(!loopback("http://127.0.0.1.evil.example:80"));
        assert!(!loopback(""));
    }
}
