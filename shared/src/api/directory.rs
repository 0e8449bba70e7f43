//! Directory: bulk upsert (idempotent by external id; at most 1,000 rows; per-row errors, valid
//! rows kept) and listing of companies, assets, projects and end users.

use super::auth::Caller;
use super::error::{ApiError, Body};
use super::Shared;
use crate::app::AppError;
use crate::domain::{DirectoryObject, EndUserInput, Target};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

pub const MAX_BATCH: usize = 1000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// Companies, assets and projects: `{externalId, name?, companyId?}`; end users:
    /// `{companyId, externalId?, email?, name?, surname?}`.
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RowError {
    pub index: usize,
    pub field: Option<String>,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResult {
    pub accepted: usize,
    pub errors: Vec<RowError>,
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

fn row<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T, (Option<String>, String)> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let msg = e.into_inner().to_string();
        let field = if msg.starts_with("unknown field") {
            msg.split('`').nth(1).map(str::to_string)
        } else {
            Some(path).filter(|p| p != ".")
        };
        (field, msg)
    })
}

/// Upsert a batch; invalid rows are reported by index and the valid ones are kept.
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
    let store = &app.ports.store;
    let mut errors = Vec::new();
    let mut accepted = 0;
    if kind == Target::EndUser {
        for (index, item) in batch.items.iter().enumerate() {
            let parsed = row::<EndUserInput>(item)
                .and_then(|u| u.validated().map_err(|e| (Some(e.field), e.reason)));
            match parsed {
                Ok(u) => match store.upsert_end_user(&caller.tenant, &u).await {
                    Ok(_) => accepted += 1,
                    Err(crate::store::StoreError::Conflict(m)) => errors.push(RowError {
                        index,
                        field: None,
                        message: m,
                    }),
                    Err(e) => return Err(AppError::from(e).into()),
                },
                Err((field, message)) => errors.push(RowError {
                    index,
                    field,
                    message,
                }),
            }
        }
    } else {
        let mut valid = Vec::new();
        for (index, item) in batch.items.iter().enumerate() {
            match row::<DirectoryObject>(item)
                .and_then(|o| o.validated().map_err(|e| (Some(e.field), e.reason)))
            {
                Ok(o) => valid.push(o),
                Err((field, message)) => errors.push(RowError {
                    index,
                    field,
                    message,
                }),
            }
        }
        accepted = valid.len();
        store
            .upsert_objects(&caller.tenant, kind, &valid)
            .await
            .map_err(AppError::from)?;
    }
    Ok(Json(BatchResult { accepted, errors }))
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
