//! The queue port: send fetch and resync messages. Consuming is the inbound side's concern
//! (Lambda's event source, or the local worker loop on `InProcessQueue`).

#[cfg(any(test, feature = "testing"))]
pub mod contract;
#[cfg(feature = "embedded")]
pub mod in_process;
#[cfg(feature = "aws")]
pub mod sqs;

use crate::sync::messages::{FetchMessage, ResyncMessage};
use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue unavailable: {0}")]
    Unavailable(String),
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
}
