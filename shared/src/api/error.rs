//! One error envelope for every API failure: `{"error":{"code","message","field"}}`, a 4xx for
//! anything the caller can fix, and internal errors hidden (logged, never echoed).
//! Also the JSON body extractor that names unknown and invalid fields.

use crate::app::AppError;
use crate::error::ValidationError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code (`invalid`, `unknown_field`, `not_found`, …).
    pub code: String,
    pub message: String,
    /// The field the error is about, when there is one.
    pub field: Option<String>,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }
    pub fn field(mut self, f: impl Into<String>) -> Self {
        self.field = Some(f.into());
        self
    }
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{} not found", what.into()),
        )
    }
    /// 409 for a route that needs a Pendo connection the tenant does not have.
    pub fn not_connected() -> Self {
        Self::new(StatusCode::CONFLICT, "not_connected", "connect Pendo first")
    }
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required",
        )
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", e.reason.clone()).field(e.field)
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Validation(v) => v.into(),
            AppError::NotFound { what, id } => Self::not_found(format!("{what} {id}")),
            AppError::NotConnected => Self::not_connected(),
            e @ AppError::RebuildRequired(_) => {
                Self::new(StatusCode::CONFLICT, "rebuild_required", e.to_string())
            }
            AppError::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            AppError::Connection(p) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, p.code(), p.to_string()).field("key")
            }
            AppError::Pendo(p) => Self::new(StatusCode::BAD_GATEWAY, "pendo_error", p.to_string()),
            e @ AppError::PendoCheck { field, .. } => {
                Self::new(StatusCode::BAD_GATEWAY, "pendo_unreachable", e.to_string()).field(field)
            }
            AppError::Store(e) if e.is_refusal() => refused(&e),
            AppError::Queue(e) if e.is_refusal() => refused(&e),
            AppError::Store(e) => internal(&e),
            AppError::Queue(e) => internal(&e),
            AppError::Upload(e) => e.into(),
        }
    }
}

impl From<crate::directory::csv::CsvError> for ApiError {
    fn from(e: crate::directory::csv::CsvError) -> Self {
        use crate::directory::csv::CsvError;
        match e {
            CsvError::Io(_) => internal(&e),
            CsvError::TooManyRows | CsvError::TooLarge => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", e.to_string())
            }
            CsvError::Header(_) | CsvError::Empty => {
                Self::new(StatusCode::BAD_REQUEST, "bad_csv", e.to_string()).field("header")
            }
            CsvError::Row { .. } => Self::new(StatusCode::BAD_REQUEST, "bad_csv", e.to_string()),
        }
    }
}

/// AWS refused a call of the function (a policy, a missing table): an internal error to the
/// caller, and counted by the template's metric filter (`AwsRefusedAlarm`).
fn refused(e: &(dyn std::error::Error + 'static)) -> ApiError {
    tracing::error!(error = %crate::error::Chain(e), aws_refused = true, "AWS refused a call of this function: fix its permissions or resources");
    internal_answer()
}

fn internal(e: &(dyn std::error::Error + 'static)) -> ApiError {
    tracing::error!(error = %crate::error::Chain(e), "internal error");
    internal_answer()
}

fn internal_answer() -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error; it has been logged",
    )
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                field: self.field,
            },
        };
        (self.status, axum::Json(body)).into_response()
    }
}

/// A JSON body: 413 past the size limit, 400 naming the field for unknown or invalid fields.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    "the request body is too large",
                )
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, "bad_body", e.body_text())
            }
        })?;
        parse_json(&bytes).map(Body)
    }
}

/// Parses a body, naming the offending field on error.
/// The body must be exactly one JSON value: anything after it but whitespace (a second value,
/// a stray character, a NUL) is refused, naming where it starts.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    let value = result.map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = inner.to_string();
        if msg.starts_with("unknown field") {
            let name = msg.split('`').nth(1).unwrap_or_default();
            let field = key_path(bytes, path, name, false);
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "unknown_field",
                format!("unknown field '{name}'"),
            )
            .field(field)
        } else if inner.is_syntax() || inner.is_eof() {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_json",
                format!("the body is not valid JSON: {msg}"),
            )
        } else if msg.starts_with("missing field") {
            let name = msg.split('`').nth(1).unwrap_or_default();
            let field = key_path(bytes, path, name, true);
            ApiError::new(StatusCode::BAD_REQUEST, "invalid", msg.clone()).field(field)
        } else {
            let field = if path == "." { None } else { Some(path) };
            let words = in_words(field.as_deref().unwrap_or("the body"), &msg);
            let mut e = ApiError::new(StatusCode::BAD_REQUEST, "invalid", words);
            e.field = field;
            e
        }
    })?;
    de.end().map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_json",
            format!("the body must be one JSON value with only whitespace after it: {e}"),
        )
    })?;
    Ok(value)
}

/// A parser's message about a field in the words a person reads:
/// `invalid type: string "30", expected i64 at line 1 column 18` on `daysToSync` is
/// `days to sync must be a whole number (not the text "30")`.
pub fn in_words(path: &str, msg: &str) -> String {
    let msg = msg.split(" at line ").next().unwrap_or(msg);
    let last = path.rsplit('.').next().unwrap_or(path);
    let name = last.split('[').next().unwrap_or(last);
    let mut words = String::new();
    for c in name.chars() {
        if c.is_uppercase() {
            words.push(' ');
            words.extend(c.to_lowercase());
        } else {
            words.push(c);
        }
    }
    let (got, expected) = if let Some(rest) = msg.strip_prefix("unknown variant ") {
        match rest.split_once(", expected ") {
            Some((got, exp)) => (got.replace('`', "'"), exp.replace('`', "'")),
            None => return msg.to_string(),
        }
    } else if let Some(rest) = msg
        .strip_prefix("invalid type: ")
        .or_else(|| msg.strip_prefix("invalid value: "))
    {
        match rest.split_once(", expected ") {
            Some((got, exp)) => (got_words(got), expected_words(exp).to_string()),
            None => return msg.to_string(),
        }
    } else {
        return msg.to_string();
    };
    format!("{words} must be {expected} (not {got})")
}

fn expected_words(e: &str) -> &str {
    match e {
        "i8" | "i16" | "i32" | "i64" | "isize" | "u8" | "u16" | "u32" | "u64" | "usize" => {
            "a whole number"
        }
        "f32" | "f64" => "a number",
        "a boolean" => "true or false",
        "a string" => "text",
        "a sequence" => "a list",
        e if e.starts_with("struct ") || e.starts_with("a map") => "an object",
        e => e,
    }
}

fn got_words(g: &str) -> String {
    let g = g.replace('`', "");
    if let Some(s) = g.strip_prefix("string ") {
        return format!("the text {s}");
    }
    for kind in ["integer ", "floating point ", "boolean "] {
        if let Some(v) = g.strip_prefix(kind) {
            return v.to_string();
        }
    }
    match g.as_str() {
        "map" => "an object".into(),
        "sequence" => "a list".into(),
        _ => g,
    }
}

/// The JSON path of an unknown or missing key `name` reported at serde's `path`. serde's path
/// ends with an unknown key and stops at the object a key is missing from, except inside an
/// internally tagged enum (a mapping's `source`), where it stops at the enum whatever the depth.
/// The key is appended only where the body shows it belongs: an unknown key present in the
/// object at `path`; a missing key absent from it, with no list of objects below it that could
/// be the one missing it. Otherwise the enclosing object's path is kept (shorter, never wrong).
fn key_path(bytes: &[u8], path: String, name: &str, missing: bool) -> String {
    if path == "." || path.is_empty() {
        return name.to_string();
    }
    if path == name || path.ends_with(&format!(".{name}")) {
        return path;
    }
    let body: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    let mut at = Some(&body);
    for part in path.split('.') {
        let (key, indexes) = part.split_once('[').unwrap_or((part, ""));
        at = at.and_then(|v| v.get(key));
        for i in indexes.split('[').filter(|i| !i.is_empty()) {
            let i = i.trim_end_matches(']').parse::<usize>().ok();
            at = at.and_then(|v| i.and_then(|i| v.get(i)));
        }
    }
    let Some(obj) = at.and_then(serde_json::Value::as_object) else {
        return path;
    };
    let lists_of_objects = obj
        .values()
        .filter_map(serde_json::Value::as_array)
        .any(|a| a.iter().any(serde_json::Value::is_object));
    let belongs = if missing {
        !obj.contains_key(name) && !lists_of_objects
    } else {
        obj.contains_key(name)
    };
    if belongs {
        format!("{path}.{name}")
    } else {
        path
    }
}

/// A query string, with the same error envelope as bodies.
pub struct Q<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> axum::extract::FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Q(q.0))
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 32: a parser's message is never shown as it is.
    #[test]
    fn a_parsers_message_reads_in_words() {
        let e = parse_json::<crate::app::SettingsUpdate>(br#"{"daysToSync": "30"}"#)
            .err()
            .map(|e| (e.field, e.message));
        assert_eq!(
            e,
            Some((
                Some("daysToSync".to_string()),
                "days to sync must be a whole number (not the text \"30\")".to_string()
            ))
        );
        assert_eq!(
            in_words(
                "autoDetectEndUsers",
                "invalid type: integer `1`, expected a boolean at line 1 column 2"
            ),
            "auto detect end users must be true or false (not 1)"
        );
        assert_eq!(
            in_words(
                "source.kind",
                "unknown variant `featur`, expected one of `feature`, `page`"
            ),
            "kind must be one of 'feature', 'page' (not 'featur')"
        );
        assert_eq!(
            in_words("items[3].name", "invalid type: map, expected a string"),
            "name must be text (not an object)"
        );
    }
}
