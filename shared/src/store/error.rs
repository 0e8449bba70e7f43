//! What a store operation answers when it cannot do what was asked.

use crate::domain::EndUser;
use crate::error::Cause;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write lost: the stored version/generation/cursor is not the expected one.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A write for a generation that is no longer the integration's current one.
    #[error("stale generation {0}")]
    StaleGeneration(u64),
    #[error("not found: {0}")]
    NotFound(String),
    /// The store could not be reached or refused the operation: `what` is what was being done,
    /// `cause` the adapter's error (the SDK's or SQLite's), when there is one.
    #[error("store unavailable: {what}")]
    Unavailable {
        what: String,
        #[source]
        cause: Option<Cause>,
    },
    /// AWS refused the call for a reason no retry cures (`error::is_aws_refusal`: access
    /// denied, a missing table, a malformed request): `what` is what was being done, with the
    /// service's code and message (which name the action and the resource).
    #[error("store refused: {what}")]
    Refused {
        what: String,
        #[source]
        cause: Option<Cause>,
    },
    /// Stored data that does not decode (a bug or a manual edit), never user input.
    #[error("corrupt stored data: {what}")]
    Corrupt {
        what: String,
        #[source]
        cause: Option<Cause>,
    },
    /// A directory end user whose email already belongs to another end user of its company:
    /// nothing was written.
    #[error(transparent)]
    EmailTaken(#[from] EmailTaken),
}

impl StoreError {
    /// `Unavailable` with nothing under it (a limit of the store, a poisoned lock).
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

    /// `Refused` because of the adapter's error.
    pub fn refused_from(what: impl Into<String>, cause: impl Into<Cause>) -> Self {
        Self::Refused {
            what: what.into(),
            cause: Some(cause.into()),
        }
    }

    /// Whether no retry can cure it (the deployment must change).
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::Refused { .. })
    }

    /// The same error again, for another party to the same failed operation (the chunks of a
    /// shared call): same kind and words, its causes kept as one line of text.
    pub fn echo(&self) -> Self {
        let causes = |cause: &Option<Cause>| {
            cause
                .as_ref()
                .map(|c| Cause::from(crate::error::chain(c.as_ref())))
        };
        match self {
            Self::Conflict(m) => Self::Conflict(m.clone()),
            Self::StaleGeneration(g) => Self::StaleGeneration(*g),
            Self::NotFound(m) => Self::NotFound(m.clone()),
            Self::Unavailable { what, cause } => Self::Unavailable {
                what: what.clone(),
                cause: causes(cause),
            },
            Self::Refused { what, cause } => Self::Refused {
                what: what.clone(),
                cause: causes(cause),
            },
            Self::Corrupt { what, cause } => Self::Corrupt {
                what: what.clone(),
                cause: causes(cause),
            },
            Self::EmailTaken(e) => Self::EmailTaken(e.clone()),
        }
    }

    /// `Corrupt`: what does not decode.
    pub fn corrupt(what: impl Into<String>) -> Self {
        Self::Corrupt {
            what: what.into(),
            cause: None,
        }
    }

    /// `Corrupt` because of the decoder's error.
    pub fn corrupt_from(what: impl Into<String>, cause: impl Into<Cause>) -> Self {
        Self::Corrupt {
            what: what.into(),
            cause: Some(cause.into()),
        }
    }
}

/// The end user that holds an email a directory row asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("email {email} already belongs to end user {} of company {company}", holder_name(.holder_external_id.as_deref(), .holder_id))]
pub struct EmailTaken {
    pub company: String,
    pub email: String,
    /// The holder's external id (`None` for a user known only by its email).
    pub holder_external_id: Option<String>,
    /// The holder's service id.
    pub holder_id: String,
}

impl EmailTaken {
    pub fn new(email: &str, holder: &EndUser) -> Self {
        Self {
            company: holder.company_id.clone(),
            email: email.to_string(),
            holder_external_id: holder.external_id.clone(),
            holder_id: holder.id.clone(),
        }
    }
}

fn holder_name(external_id: Option<&str>, id: &str) -> String {
    match external_id {
        Some(e) => e.to_string(),
        None => format!("{id} (no external id)"),
    }
}
