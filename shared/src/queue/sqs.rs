//! `SqsQueue`: the queue port on two SQS queues (fetch and resync). Bodies are
//! `QueueMessage::encode()`; fetch messages go out with `SendMessageBatch`, at most 10 entries a
//! call (SQS's limit), and entries that fail are re-sent with backoff a bounded number of times.

use super::{Queue, QueueError};
use crate::queue::messages::{
    FetchMessage, ImportMessage, PlanMessage, PurgeMessage, QueueMessage, ResyncMessage, RunMessage,
};
use async_trait::async_trait;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use aws_sdk_sqs::Client;
use std::time::Duration;

/// SQS's limit of entries per `SendMessageBatch`.
pub const MAX_BATCH_SEND: usize = 10;
/// Attempts per entry before `send_fetch` gives up.
const MAX_ATTEMPTS: u32 = 5;

#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    fetch_url: String,
    resync_url: String,
}

impl SqsQueue {
    pub fn new(client: Client, fetch_url: String, resync_url: String) -> Self {
        Self {
            client,
            fetch_url,
            resync_url,
        }
    }

    pub fn fetch_url(&self) -> &str {
        &self.fetch_url
    }

    pub fn resync_url(&self) -> &str {
        &self.resync_url
    }

    /// Sends one batch of at most 10 bodies; returns the bodies that failed (to be re-sent),
    /// each with the reason SQS gave.
    async fn send_batch(
        &self,
        url: &str,
        bodies: Vec<String>,
    ) -> Result<Vec<(String, String)>, QueueError> {
        let entries = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(b)
                    .build()
                    .map_err(|e| QueueError::unavailable_from("building a batch entry", e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .client
            .send_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| sdk_error("send messages", e))?;
        let mut failed = Vec::new();
        for f in out.failed {
            if f.sender_fault {
                // The request itself is wrong (too large, bad characters): re-sending won't help.
                return Err(QueueError::unavailable(format!(
                    "SQS refused a message: {} {}",
                    f.code,
                    f.message.unwrap_or_default()
                )));
            }
            let body = f
                .id
                .parse::<usize>()
                .ok()
                .and_then(|i| bodies.get(i))
                .ok_or_else(|| QueueError::unavailable(format!("unknown batch entry {}", f.id)))?;
            failed.push((body.clone(), f.code));
        }
        Ok(failed)
    }
}

/// An SDK error as `Unavailable`, or as `Refused` (naming SQS's code and message: the action
/// and the queue, for a denial) when no retry can cure it.
fn sdk_error<E>(what: &str, e: aws_sdk_sqs::error::SdkError<E>) -> QueueError
where
    E: std::error::Error + aws_sdk_sqs::error::ProvideErrorMetadata + Send + Sync + 'static,
{
    match crate::error::aws_refusal(&e) {
        Some(why) => QueueError::Refused {
            what: format!("{what}: {why}"),
            cause: Some(e.into()),
        },
        None => QueueError::unavailable_from(what, e),
    }
}

/// Splits bodies into SendMessageBatch-sized groups.
pub fn batches(bodies: Vec<String>) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut it = bodies.into_iter().peekable();
    while it.peek().is_some() {
        out.push(it.by_ref().take(MAX_BATCH_SEND).collect());
    }
    out
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send_fetch(&self, messages: &[FetchMessage]) -> Result<(), QueueError> {
        let bodies = messages
            .iter()
            .map(|m| QueueMessage::Fetch(m.clone()).encode())
            .collect();
        self.send_all(&self.fetch_url, bodies, "fetch").await
    }

    async fn send_resync(&self, message: &ResyncMessage) -> Result<(), QueueError> {
        self.send_to_resync(QueueMessage::Resync(message.clone()))
            .await
    }

    async fn send_import(&self, message: &ImportMessage) -> Result<(), QueueError> {
        self.send_to_resync(QueueMessage::Import(message.clone()))
            .await
    }

    async fn send_plans(&self, messages: &[PlanMessage]) -> Result<(), QueueError> {
        let bodies = messages
            .iter()
            .map(|m| QueueMessage::Plan(m.clone()).encode())
            .collect();
        self.send_all(&self.resync_url, bodies, "plan").await
    }

    async fn send_run(&self, message: &RunMessage) -> Result<(), QueueError> {
        self.send_to_resync(QueueMessage::Run(message.clone()))
            .await
    }

    async fn send_purge(&self, message: &PurgeMessage) -> Result<(), QueueError> {
        self.send_to_resync(QueueMessage::Purge(message.clone()))
            .await
    }
}

impl SqsQueue {
    /// Sends every body to `url` in SendMessageBatch calls of 10, re-sending the entries SQS
    /// failed (a few times, with a pause).
    async fn send_all(&self, url: &str, bodies: Vec<String>, kind: &str) -> Result<(), QueueError> {
        let mut pending = bodies;
        for attempt in 1..=MAX_ATTEMPTS {
            let mut failed = Vec::new();
            for batch in batches(std::mem::take(&mut pending)) {
                failed.extend(self.send_batch(url, batch).await?);
            }
            if failed.is_empty() {
                return Ok(());
            }
            if attempt == MAX_ATTEMPTS {
                let codes: Vec<String> = failed.iter().map(|(_, c)| c.clone()).collect();
                return Err(QueueError::unavailable(format!(
                    "{} {kind} messages not sent after {MAX_ATTEMPTS} attempts: {}",
                    failed.len(),
                    codes.join(", ")
                )));
            }
            tracing::warn!(
                failed = failed.len(),
                attempt,
                "SQS rejected some batch entries; re-sending"
            );
            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            pending = failed.into_iter().map(|(b, _)| b).collect();
        }
        Ok(())
    }

    async fn send_to_resync(&self, message: QueueMessage) -> Result<(), QueueError> {
        self.client
            .send_message()
            .queue_url(&self.resync_url)
            .message_body(message.encode())
            .send()
            .await
            .map_err(|e| sdk_error("send resync message", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_hold_at_most_ten_and_keep_every_body_in_order() {
        let bodies: Vec<String> = (0..23).map(|i| i.to_string()).collect();
        let b = batches(bodies.clone());
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![10, 10, 3]);
        assert_eq!(b.concat(), bodies);
        assert!(batches(Vec::new()).is_empty());
    }
}
