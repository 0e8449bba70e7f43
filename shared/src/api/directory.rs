//! Directory: bulk upsert (idempotent by external id; at most 1,000 rows; per-row errors, valid
//! rows kept) and listing of companies, assets, projects and end users.

use super::auth::Caller;
use super::error::{ApiError, Body};
use super::Shared;
use crate::app::AppError;
use crate::domain::Target;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

pub use crate::directory::{BatchResult, RowError, MAX_BATCH};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// Companies, assets and projects: `{externalId, name?, companyId?}`; end users:
    /// `{companyId, externalId?, email?, name?, surname?}`.
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<Value>,
}

/// `companies`, `assets`, `projects` or `end-users`.
fn kind(raw: &str) -> Result<Target, ApiError> {
    match raw {
        "companies" => Ok(Target::Company),
        "assets" => Ok(Target::Asset),
        "projects" => Ok(Target::Project),
        "end-users" => Ok(Target::EndUser),
        _ => Err(ApiError::not_found(format!("directory {raw}"))),
    }
}

/// Upsert a batch; invalid rows are reported by index, field and reason, and the valid ones are
/// kept. Matched by external id within the company (an end user without one, by email); an end
/// user row whose email belongs to another end user of its company is refused, naming both,
/// and a row repeating an earlier row's email or external id is refused, naming that row.
#[utoipa::path(put, path = "/v1/directory/{kind}", tag = "directory", request_body = Batch,
    params(("kind" = String, Path, description = "companies, assets, projects or end-users")),
    responses((status = 200, body = BatchResult), (status = 400, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)))]
pub async fn upsert(
    State(app): State<Shared>,
    caller: Caller,
    Path(k): Path<String>,
    Body(batch): Body<Batch>,
) -> Result<Json<BatchResult>, ApiError> {
    let kind = kind(&k)?;
    if batch.items.len() > MAX_BATCH {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "too_many",
            format!("at most {MAX_BATCH} items per batch"),
        )
        .field("items"));
    }
    Ok(Json(
        app.upsert_directory(&caller.tenant, kind, &batch.items)
            .await?,
    ))
}

/// List a directory (end users include their service id, used by the metrics routes).
#[utoipa::path(get, path = "/v1/directory/{kind}", tag = "directory",
    params(("kind" = String, Path, description = "companies, assets, projects or end-users")),
    responses((status = 200, body = Vec<Object>), (status = 404, body = super::error::ErrorBody)))]
pub async fn list(
    State(app): State<Shared>,
    caller: Caller,
    Path(k): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let kind = kind(&k)?;
    let store = &app.ports.store;
    let v = if kind == Target::EndUser {
        serde_json::to_value(
            store
                .list_end_users(&caller.tenant)
                .await
                .map_err(AppError::from)?,
        )
    } else {
        serde_json::to_value(
            store
                .list_objects(&caller.tenant, kind)
                .await
                .map_err(AppError::from)?,
        )
    };
    v.map(Json)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))
}
