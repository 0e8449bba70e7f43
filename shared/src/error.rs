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

/// What made an adapter's operation fail: the SDK's, SQLite's, the file system's or serde's error
/// (kept whole, as the `source()` of the error that carries it), or a sentence when there is no
/// error value (`"…".into()`).
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error and its causes on one line, `outer: cause: root` (what logs and the messages recorded
/// on mappings, chunks and imports show).
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(e) = next {
            write!(f, ": {e}")?;
            next = e.source();
        }
        Ok(())
    }
}

/// [`Chain`] as a `String`.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    Chain(e).to_string()
}

/// Whether an AWS error code is one no retry can cure: the caller's role may not make the call
/// (a policy missing an action or resource), the credentials are not accepted, the table or
/// queue does not exist, or the request is malformed. The call fails the same way until the
/// deployment changes, so a message failing with it is given up at once (and the mapping and
/// the run show the error naming the function, the action and the resource) instead of being
/// redelivered until it dead-letters. Codes are DynamoDB's and SQS's (both the JSON protocol's
/// names and the query-compatible ones SQS still reports).
pub fn is_aws_refusal(code: &str) -> bool {
    matches!(
        code,
        "AccessDeniedException"
            | "AccessDenied"
            | "UnrecognizedClientException"
            | "InvalidClientTokenId"
            | "InvalidSignatureException"
            | "IncompleteSignature"
            | "MissingAuthenticationToken"
            | "MissingAuthenticationTokenException"
            | "ResourceNotFoundException"
            | "ValidationException"
            | "QueueDoesNotExist"
            | "AWS.SimpleQueueService.NonExistentQueue"
            | "InvalidAddress"
            | "InvalidParameterValue"
            | "KMS.AccessDeniedException"
            | "KmsAccessDenied"
    )
}

/// `code: message` of an AWS SDK error no retry can cure ([`is_aws_refusal`]; for a denial the
/// message names the role, the action and the resource), else `None`. The DynamoDB and SQS
/// clients share the SDK's error types (`aws-smithy`'s, re-exported by each client crate).
#[cfg(feature = "aws")]
pub fn aws_refusal<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(
    e: &aws_sdk_dynamodb::error::SdkError<E>,
) -> Option<String> {
    let service = e.as_service_error()?;
    let code = service.code().filter(|c| is_aws_refusal(c))?;
    Some(format!("{code}: {}", service.message().unwrap_or("")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("writing values")]
    struct Outer(#[source] Cause);

    #[test]
    fn a_chain_shows_every_cause_once_in_order() {
        let root: Cause = "connection reset".into();
        let e = Outer(root);
        assert_eq!(chain(&e), "writing values: connection reset");
        let lone = ValidationError::new("name", "is empty");
        assert_eq!(chain(&lone), "name: is empty");
    }
}
