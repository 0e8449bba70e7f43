//! The one validation error every use case returns for bad input: it names the field and why.
//! It never carries a secret (integration keys are masked before they reach a message).

use serde::Serialize;

/// Bad input, with the field it concerns (a JSON-pointer-like dotted path) and a readable reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ValidationError {
    pub field: String,
    pub reason: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
