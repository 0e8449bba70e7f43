//! Identifier newtypes. Every id that reaches a store key is parsed here first, so a key can
//! never hold an empty string, a control character, or be confused with another object's key.

use crate::error::ValidationError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest id accepted anywhere (Pendo ids are ~27 chars; external ids from other systems
/// may be longer, but never kilobytes).
pub const MAX_ID_LEN: usize = 256;

/// Checks an id: non-empty after trimming, at most [`MAX_ID_LEN`] bytes, no control characters.
pub fn check_id(field: &str, raw: &str) -> Result<String, ValidationError> {
    let s = raw.trim();
    if s.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if s.len() > MAX_ID_LEN {
        return Err(ValidationError::new(
            field,
            format!("must be at most {MAX_ID_LEN} bytes"),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(s.to_string())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(raw: &str) -> Result<Self, ValidationError> {
                check_id($field, raw).map(Self)
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = ValidationError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A tenant: one customer of the service, with one Pendo integration.
    TenantId,
    "tenant"
);
id_type!(
    /// A metric mapping of a tenant.
    MappingId,
    "mappingId"
);
id_type!(
    /// A sync run (a daily schedule, a Sync now, a Re-sync all).
    RunId,
    "runId"
);

id_type!(
    /// An import of the directory from Pendo.
    ImportId,
    "importId"
);

impl ImportId {
    pub fn random() -> Self {
        Self(format!("i-{}", uuid::Uuid::new_v4().simple()))
    }
}

impl MappingId {
    pub fn random() -> Self {
        Self(format!("m-{}", uuid::Uuid::new_v4().simple()))
    }
}

impl RunId {
    pub fn random() -> Self {
        Self(format!("r-{}", uuid::Uuid::new_v4().simple()))
    }

    /// The daily run of a tenant for the schedule's `day` (one per tenant and day, whoever
    /// plans it and however often).
    pub fn daily(day: chrono::NaiveDate) -> Self {
        Self(format!("d-{day}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_trimmed_and_checked() {
        assert_eq!(TenantId::parse(" acme ").unwrap().as_str(), "acme");
        assert_eq!(TenantId::parse("").unwrap_err().field, "tenant");
        assert!(TenantId::parse("a\nb").is_err());
        assert!(MappingId::parse(&"x".repeat(MAX_ID_LEN + 1)).is_err());
        assert_eq!(MappingId::parse("a#b/c").unwrap().as_str(), "a#b/c");
    }

    #[test]
    fn ids_deserialize_through_validation() {
        let bad: Result<TenantId, _> = serde_json::from_str("\"\"");
        assert!(bad.is_err());
        let good: TenantId = serde_json::from_str("\"t1\"").unwrap();
        assert_eq!(good.as_str(), "t1");
    }
}
