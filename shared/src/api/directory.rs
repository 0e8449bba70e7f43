//! Directory: bulk upsert (idempotent by external id; JSON batches of at most 1,000 rows, or a
//! CSV upload of at most 100,000; per-row errors, valid rows kept) and listing of companies,
//! assets, projects and end users.

use super::auth::Caller;
use super::error::{ApiError, Body};
use super::Shared;
use crate::app::imports::{ImportPreview, ImportRequest};
use crate::directory::csv::Spooler;
use crate::domain::{DirectoryImport, ImportId, Target};
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

pub use crate::directory::{BatchResult, RowError, UploadResult, MAX_BATCH};

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

/// What an upsert answers: a JSON batch's result, or a CSV upload's.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum UpsertResult {
    Batch(BatchResult),
    Upload(UploadResult),
}

/// Whether the request's body is CSV (`text/csv`, any parameters).
fn is_csv(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("text/csv"))
}

/// Upsert a batch; invalid rows are reported by index, field and reason, and the valid ones are
/// kept. Matched by external id within the company (an end user without one, by email); an end
/// user row whose email belongs to another end user of its company is refused, naming both,
/// and a row repeating an earlier row's email or external id is refused, naming that row.
///
/// With `Content-Type: text/csv`, the body is a CSV file: a header row naming the fields of a
/// JSON row (`externalId,name,companyId`; end users `companyId,externalId,email,name,surname`),
/// then one row per object (an empty cell is an absent field), at most 100,000 rows and 64 MiB.
/// A file that cannot be read as such (an unknown column, a row with another number of cells,
/// text that is not UTF-8) is refused with nothing stored; otherwise its rows are upserted
/// 1,000 at a time exactly as JSON batches, and the answer counts them (`rows`, `accepted`),
/// lists the first 1,000 per-row errors (`index` from 0 for the line after the header) and
/// counts the rest (`errorsNotListed`).
#[utoipa::path(put, path = "/v1/directory/{kind}", tag = "directory",
    request_body(content((Batch = "application/json"), (String = "text/csv"))),
    params(("kind" = String, Path, description = "companies, assets, projects or end-users")),
    responses((status = 200, body = UpsertResult), (status = 400, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody), (status = 413, body = super::error::ErrorBody)))]
pub async fn upsert(
    State(app): State<Shared>,
    caller: Caller,
    Path(k): Path<String>,
    request: Request,
) -> Result<Json<UpsertResult>, ApiError> {
    let kind = kind(&k)?;
    if is_csv(request.headers()) {
        let mut spool = Spooler::new(kind)?;
        let mut body = request.into_body().into_data_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk
                .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_body", e.to_string()))?;
            spool.push(&chunk)?;
        }
        let upload = spool.finish()?;
        let done = app
            .upsert_directory_csv(&caller.tenant, kind, upload)
            .await?;
        return Ok(Json(UpsertResult::Upload(done)));
    }
    let Body(batch) = Body::<Batch>::from_request(request, &()).await?;
    if batch.items.len() > MAX_BATCH {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "too_many",
            format!("at most {MAX_BATCH} items per batch"),
        )
        .field("items"));
    }
    Ok(Json(UpsertResult::Batch(
        app.upsert_directory(&caller.tenant, kind, &batch.items)
            .await?,
    )))
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
    let v = if kind == Target::EndUser {
        serde_json::to_value(app.directory_end_users(&caller.tenant).await?)
    } else {
        serde_json::to_value(app.directory_objects(&caller.tenant, kind).await?)
    };
    v.map(Json)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))
}

/// Delete one entry of a directory (admins only): a company, asset or project by its external
/// id, an end user by its service id (`id` in its listing). A company that end users, assets
/// or projects still belong to is refused (409), naming how many. The entry's values and
/// activity stay as stored (reads and the export still show them) and are no longer updated;
/// the next Re-sync all drops them. The answer says so.
#[utoipa::path(delete, path = "/v1/directory/{kind}/{id}", tag = "directory",
    params(("kind" = String, Path, description = "companies, assets, projects or end-users"),
        ("id" = String, Path, description = "the external id (end users: the service id)")),
    responses((status = 200, body = crate::app::Deleted), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody)))]
pub async fn delete(
    State(app): State<Shared>,
    caller: Caller,
    Path((k, id)): Path<(String, String)>,
) -> Result<Json<crate::app::Deleted>, ApiError> {
    let kind = kind(&k)?;
    Ok(Json(
        app.delete_directory_entry(&caller.tenant, kind, &id)
            .await?,
    ))
}

/// Import the directory from Pendo: companies from the subscription's accounts (external id from
/// the company id field, name from `companyNameField`), end users from its identified visitors
/// (through the field mappings, in their company). Nothing non-empty is overwritten. With
/// `dryRun`, every page is read and nothing written: the answer (200) counts what would be
/// created, filled, left unchanged and skipped (and why), with a sample. Otherwise the import
/// starts (202) and runs page by page in the background; read its progress from
/// `GET /v1/imports/{importId}`.
#[utoipa::path(post, path = "/v1/imports", tag = "directory", request_body = ImportRequest,
    responses((status = 200, description = "a dry run's result", body = ImportPreview),
        (status = 202, description = "the import, started", body = DirectoryImport),
        (status = 400, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody),
        (status = 502, body = super::error::ErrorBody)))]
pub async fn start_import(
    State(app): State<Shared>,
    caller: Caller,
    Body(request): Body<ImportRequest>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    if request.dry_run {
        let preview = app.preview_import(&caller.tenant, &request).await?;
        return Ok((StatusCode::OK, Json(preview)).into_response());
    }
    let job = app.start_import(&caller.tenant, &request).await?;
    Ok((StatusCode::ACCEPTED, Json(job)).into_response())
}

/// The tenant's latest imports from Pendo (at most 20), newest first.
#[utoipa::path(get, path = "/v1/imports", tag = "directory",
    responses((status = 200, body = Vec<DirectoryImport>)))]
pub async fn imports(
    State(app): State<Shared>,
    caller: Caller,
) -> Result<Json<Vec<DirectoryImport>>, ApiError> {
    Ok(Json(app.imports(&caller.tenant).await?))
}

/// One import from Pendo: its stage, pages, counts and state.
#[utoipa::path(get, path = "/v1/imports/{importId}", tag = "directory",
    params(("importId" = String, Path)),
    responses((status = 200, body = DirectoryImport), (status = 404, body = super::error::ErrorBody)))]
pub async fn import(
    State(app): State<Shared>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<DirectoryImport>, ApiError> {
    let id = ImportId::parse(&id).map_err(|_| ApiError::not_found(format!("import {id}")))?;
    Ok(Json(app.import(&caller.tenant, &id).await?))
}
