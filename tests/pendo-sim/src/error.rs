//! Error type of the simulator engine and its HTTP mapping.

use thiserror::Error;

/// Errors the engine reports; all map to plain-text HTTP responses.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SimError {
    /// Malformed JSON, envelope, pipeline or expression (HTTP 400, plain-text reason).
    #[error("{0}")]
    BadRequest(String),
    /// The configured result row limit was exceeded (HTTP 400).
    #[error("Query exceeded memory limit")]
    MemoryLimit,
    /// Unknown object id (HTTP 404).
    #[error("not found")]
    NotFound,
}

impl SimError {
    /// Shorthand for a 400 with a reason.
    pub fn bad(msg: impl Into<String>) -> Self {
        SimError::BadRequest(msg.into())
    }
}
