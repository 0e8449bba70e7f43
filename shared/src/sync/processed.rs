//! How a queue message ended: done, dropped or a duplicate; or why it failed, retryable or
//! permanent. The workers decide it once; the queue glue (Lambda or the local worker) acts on it.

use crate::domain::ChunkStats;
use crate::error::Cause;
use crate::queue::QueueError;
use crate::store::StoreError;

/// How a message ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Processed {
    Done(ChunkStats),
    /// Dropped: an older generation, a deleted mapping, or a run already superseded.
    Superseded,
    /// A delivery of a chunk already over for its run: acknowledged without calling Pendo or
    /// writing (what the chunk's first delivery left undone, if it crashed, is finished).
    Duplicate,
}

/// Why a message failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// Try again later (the queue redelivers). Displays as its cause.
    #[error(transparent)]
    Retryable(Cause),
    /// Will never succeed as it is; recorded on the mapping and dropped. Displays as its cause.
    #[error(transparent)]
    Permanent(Cause),
}

impl ProcessError {
    /// Whether AWS refused a call for good (`StoreError::Refused`, `QueueError::Refused`):
    /// the deployment must change (a policy, a missing table or queue), not the message.
    pub fn is_aws_refusal(&self) -> bool {
        let cause = match self {
            Self::Retryable(c) | Self::Permanent(c) => c.as_ref(),
        };
        cause
            .downcast_ref::<StoreError>()
            .is_some_and(StoreError::is_refusal)
            || cause
                .downcast_ref::<QueueError>()
                .is_some_and(QueueError::is_refusal)
    }

    /// The cause and what is under it, on one line (for logs and the records of a chunk).
    pub fn message(&self) -> String {
        match self {
            Self::Retryable(c) | Self::Permanent(c) => crate::error::chain(&**c),
        }
    }
}

impl From<StoreError> for ProcessError {
    fn from(e: StoreError) -> Self {
        match e {
            e @ (StoreError::Corrupt { .. } | StoreError::Refused { .. }) => {
                ProcessError::Permanent(e.into())
            }
            other => ProcessError::Retryable(other.into()),
        }
    }
}

impl From<QueueError> for ProcessError {
    fn from(e: QueueError) -> Self {
        if e.is_refusal() {
            ProcessError::Permanent(e.into())
        } else {
            ProcessError::Retryable(e.into())
        }
    }
}
