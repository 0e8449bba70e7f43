//! What a use case answers when it cannot do what was asked, each with its own message.

use crate::error::ValidationError;
use crate::pendo::PendoError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// An object the tenant does not have: `what` names its kind (mapping, run, …).
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    /// The route needs a Pendo connection and the tenant has none (never connected, or
    /// disconnected).
    #[error("connect Pendo first")]
    NotConnected,
    /// The mapping was edited in a way its stored values do not follow; it syncs again only
    /// after its rebuild (or a Re-sync all).
    /// (The mapping's name.)
    #[error("mapping \"{0}\" was edited and needs a rebuild before it syncs again: click Rebuild on it (or run Re-sync all); until then its stored values stay as they were made")]
    RebuildRequired(String),
    #[error("{0}")]
    Conflict(String),
    /// The key check failed; nothing was saved.
    #[error("{0}")]
    Connection(ConnectProblem),
    #[error("Pendo: {0}")]
    Pendo(#[from] PendoError),
    /// A reference of a mapping could not be checked because Pendo could not be reached (or
    /// refused the call); nothing was saved.
    #[error("could not check {field} with Pendo ({error}); nothing was saved: try again")]
    PendoCheck {
        field: &'static str,
        error: PendoError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] crate::queue::QueueError),
    /// A directory upload that cannot be read as it is; nothing of it was stored.
    #[cfg(feature = "api")]
    #[error("{0}")]
    Upload(#[from] crate::directory::csv::CsvError),
}

/// Why a key was not accepted, each with its own message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectProblem {
    #[error("Pendo refused this integration key on {domain}: check that it is copied whole and not revoked")]
    KeyRejected { domain: &'static str },
    #[error("this key belongs to another region: it works on {works_on}, not on {domain}")]
    WrongRegion {
        domain: &'static str,
        works_on: &'static str,
    },
    #[error("this integration key is read-only: Pendo's aggregation API needs a key created with \"Allow Write Access\"")]
    ReadOnly,
    #[error("could not verify the key with Pendo: {0}")]
    Unreachable(String),
}

impl ConnectProblem {
    pub fn code(&self) -> &'static str {
        match self {
            Self::KeyRejected { .. } => "pendo_key_rejected",
            Self::WrongRegion { .. } => "pendo_wrong_region",
            Self::ReadOnly => "pendo_key_read_only",
            Self::Unreachable(_) => "pendo_unreachable",
        }
    }
}

/// A use case's error inside a worker: what the store, the queue and Pendo may cure later is
/// retried, the rest is permanent.
impl From<AppError> for crate::sync::processed::ProcessError {
    fn from(e: AppError) -> Self {
        use crate::sync::processed::ProcessError;
        match e {
            AppError::Store(e) => e.into(),
            AppError::Queue(e) => e.into(),
            AppError::Pendo(p) if p.is_retryable() => ProcessError::Retryable(p.into()),
            other => ProcessError::Permanent(other.into()),
        }
    }
}
