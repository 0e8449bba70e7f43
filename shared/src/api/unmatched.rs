//! Unmatched identities: what each mapping could not use and why, and its recovery.

use super::auth::Caller;
use super::error::{ApiError, Q};
use super::mappings::{mapping_id, Accepted};
use super::Shared;
use crate::app::recovery::{MappingUnmatched, UnmatchedQuery, UnmatchedView};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

/// The Pendo ids whose rows a mapping could not use, by reason (company not in the directory,
/// end user not found with creation off, no company id, anonymous visitor, no id), each with its
/// rows, the value they carried and its first and last day, over the mapping's stored days;
/// exact totals per reason (past 1,000 identities per reason, the rest are counted together);
/// and which of them the directory now holds (their days are re-fetched by the next daily run,
/// or at once by `POST /v1/mappings/{mappingId}/recover`).
#[utoipa::path(get, path = "/v1/mappings/{mappingId}/unmatched", tag = "sync",
    params(("mappingId" = String, Path), UnmatchedQuery),
    responses((status = 200, body = UnmatchedView), (status = 400, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody)))]
pub async fn of_mapping(
    State(app): State<Shared>,
    caller: Caller,
    Path(id): Path<String>,
    Q(q): Q<UnmatchedQuery>,
) -> Result<Json<UnmatchedView>, ApiError> {
    Ok(Json(
        app.unmatched(&caller.tenant, &mapping_id(&id)?, &q).await?,
    ))
}

/// Every mapping's totals of what it could not use, per reason, and how many of its days the
/// directory would now let it recover (mappings with nothing unmatched are left out).
#[utoipa::path(get, path = "/v1/unmatched", tag = "sync",
    responses((status = 200, body = Vec<MappingUnmatched>), (status = 409, body = super::error::ErrorBody)))]
pub async fn overview(
    State(app): State<Shared>,
    caller: Caller,
) -> Result<Json<Vec<MappingUnmatched>>, ApiError> {
    Ok(Json(app.unmatched_overview(&caller.tenant).await?))
}

/// Recover all: a recovery (as Recover starts) for every enabled mapping with days the
/// directory now resolves; a mapping that needs a rebuild is left out, saying so. 409
/// `conflict` when no mapping has anything to recover.
#[utoipa::path(post, path = "/v1/recover", tag = "sync",
    responses((status = 202, body = crate::app::recovery::RecoverAll),
        (status = 409, description = "not_connected, or conflict: nothing to recover", body = super::error::ErrorBody)))]
pub async fn recover_all(
    State(app): State<Shared>,
    caller: Caller,
) -> Result<(StatusCode, Json<crate::app::recovery::RecoverAll>), ApiError> {
    Ok((
        StatusCode::ACCEPTED,
        Json(app.recover_all(&caller.tenant).await?),
    ))
}

/// Recover: re-fetch now only the days on which the mapping could not use rows of companies or
/// end users the directory holds now. 409 `conflict` when there is nothing to recover.
#[utoipa::path(post, path = "/v1/mappings/{mappingId}/recover", tag = "sync",
    params(("mappingId" = String, Path)),
    responses((status = 202, body = Accepted), (status = 404, body = super::error::ErrorBody),
        (status = 409, description = "not_connected, rebuild_required, or conflict: nothing to recover", body = super::error::ErrorBody)))]
pub async fn recover(
    State(app): State<Shared>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let run = app.recover(&caller.tenant, &mapping_id(&id)?).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            run_id: run.to_string(),
        }),
    ))
}
