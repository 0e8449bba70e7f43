//! The queue port: send fetch and resync messages. Consuming is the inbound side's concern
//! (Lambda's event source, or the local worker loop on `EmbeddedQueue`, the durable queue kept in
//! the embedded store's file).

#[cfg(any(test, feature = "testing"))]
pub mod contract;
#[cfg(feature = "embedded")]
pub mod embedded;
pub mod messages;
#[cfg(feature = "aws")]
pub mod sqs;

use crate::error::Cause;
use crate::queue::messages::{
    FetchMessage, ImportMessage, PlanMessage, PurgeMessage, ResyncMessage, RunMessage,
};
use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue could not be reached or refused the messages: `what` is what was being done,
    /// `cause` the adapter's error (the SDK's or SQLite's), when there is one.
    #[error("queue unavailable: {what}")]
    Unavailable {
        what: String,
        #[source]
        cause: Option<Cause>,
    },
    /// SQS refused the call for a reason no retry cures (`error::is_aws_refusal`): `what` is
    /// what was being done, with the service's code and message.
    #[error("queue refused: {what}")]
    Refused {
        what: String,
        #[source]
        cause: Option<Cause>,
    },
    /// Another process consumes the queue of this data folder (the local runner).
    #[error("the data folder {folder} is in use by {holder}: stop it first, or use another --data folder")]
    InUse { folder: String, holder: String },
}

impl QueueError {
    /// `Unavailable` with nothing under it (SQS's reason for a refused entry is in `what`).
    pub fn unavailable(what: impl Into<String>) -> Self {
        Self::Unavailable {
            what: what.into(),
            cause: None,
        }
    }

    /// `Unavailable` because of the adapter's error.
    pub fn unavailable_from(what: impl Into<String>, cause: impl Into<Cause>) -> Self {
        Self::Unavailable {
            what: what.into(),
            cause: Some(cause.into()),
        }
    }

    /// Whether no retry can cure it (the deployment must change).
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::Refused { .. })
    }
}

#[async_trait]
pub trait Queue: Send + Sync {
    /// Sends every message (in batches the adapter chooses).
    ///
    /// # Errors
    /// `Unavailable` when some message could not be sent after retries.
    async fn send_fetch(&self, messages: &[FetchMessage]) -> Result<(), QueueError>;
    /// # Errors
    /// `Unavailable`.
    async fn send_resync(&self, message: &ResyncMessage) -> Result<(), QueueError>;
    /// A directory import's page (on the resync queue: one worker at a time, like a re-sync).
    ///
    /// # Errors
    /// `Unavailable`.
    async fn send_import(&self, message: &ImportMessage) -> Result<(), QueueError>;
    /// Each tenant's daily planning (on the resync queue; in batches the adapter chooses).
    ///
    /// # Errors
    /// `Unavailable` when some message could not be sent after retries.
    async fn send_plans(&self, messages: &[PlanMessage]) -> Result<(), QueueError>;
    /// A run of one mapping the API queued (on the resync queue).
    ///
    /// # Errors
    /// `Unavailable`.
    async fn send_run(&self, message: &RunMessage) -> Result<(), QueueError>;
    /// The purge of a deleted mapping's values (on the resync queue).
    ///
    /// # Errors
    /// `Unavailable`.
    async fn send_purge(&self, message: &PurgeMessage) -> Result<(), QueueError>;
}
