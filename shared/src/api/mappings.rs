//! Mappings, Sync now, rebuild, Re-sync all, runs.

use super::auth::Caller;
use super::error::Q;
use super::error::{ApiError, Body};
use super::Shared;
use crate::domain::mapping::MappingInput;
use crate::domain::{
    ChunkStats, ChunkStatus, Mapping, MappingId, MappingStatus, RunId, RunState, SyncRun,
};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// A mapping with its sync status (last synced day, last run and last successful run with the
/// mapping's share of each, last error).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MappingView {
    #[serde(flatten)]
    pub mapping: Mapping,
    /// The metrics it writes (before a multi-app prefix), as
    /// `domain::mapping::part_metric_name` names them.
    pub metric_names: Vec<String>,
    pub state: Option<MappingStatus>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    pub run_id: String,
}

/// A run with its progress.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunView {
    #[serde(flatten)]
    pub run: SyncRun,
    /// True when nothing more will happen to the run: every chunk is over, or a newer Re-sync
    /// all superseded it.
    pub finished: bool,
    /// `running`, `finished`, `interrupted` (chunks pending with no progress for an hour:
    /// the process running it stopped; the next run continues from each mapping's cursor) or
    /// `superseded` (a newer Re-sync all replaced it before it was over).
    pub state: RunState,
    pub chunks_total: usize,
    pub chunks_done: usize,
    pub chunks_failed: usize,
    pub chunks_superseded: usize,
    /// Deliveries of the run's chunk messages (duplicates and retries included).
    pub attempts: u64,
    /// Deliveries that met a transient fault and were left for the queue to redeliver.
    pub retries: u64,
    pub totals: ChunkStats,
}

impl RunView {
    /// The run as it stands at `now`, the tenant's generation being `generation`.
    pub fn at(run: SyncRun, now: chrono::DateTime<chrono::Utc>, generation: u64) -> Self {
        let count = |s: ChunkStatus| run.chunks.iter().filter(|c| c.status == s).count();
        let state = run.state(now, generation);
        Self {
            finished: run.is_finished() || state == RunState::Superseded,
            state,
            chunks_total: run.chunks.len(),
            chunks_done: count(ChunkStatus::Done),
            chunks_failed: count(ChunkStatus::Failed),
            chunks_superseded: count(ChunkStatus::Superseded),
            attempts: run.chunks.iter().map(|c| u64::from(c.attempts)).sum(),
            retries: run.chunks.iter().map(|c| u64::from(c.retries)).sum(),
            totals: run.totals(),
            run,
        }
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

pub(super) fn mapping_id(raw: &str) -> Result<MappingId, ApiError> {
    MappingId::parse(raw).map_err(|_| ApiError::not_found(format!("mapping {raw}")))
}

async fn with_state(app: &crate::App, m: Mapping) -> Result<MappingView, ApiError> {
    let state = app.mapping_status(&m).await?;
    let metric_names = crate::domain::mapping::metric_names(&m.source, &m.metric_name);
    Ok(MappingView {
        mapping: m,
        metric_names,
        state,
    })
}

/// Every mapping of the tenant, with its state.
#[utoipa::path(get, path = "/v1/mappings", tag = "mappings", responses((status = 200, body = Vec<MappingView>)))]
pub async fn list(State(app): State<Shared>, caller: Caller) -> ApiResult<Vec<MappingView>> {
    let ms = app.mappings(&caller.tenant).await?;
    let mut out = Vec::with_capacity(ms.len());
    for m in ms {
        out.push(with_state(&app, m).await?);
    }
    Ok(Json(out))
}

/// Create a mapping. Every Pendo object it refers to (feature, page, saved report, PES app,
/// segment) is checked against what Pendo lists first: one it does not list is a 400 naming
/// the field (`source.featureId`, `source.pageId`, `source.reportId`, `source.appId`,
/// `segmentId`); when Pendo cannot be reached, a 502 `pendo_unreachable` naming the field.
/// Nothing is stored unless every check passes.
#[utoipa::path(post, path = "/v1/mappings", tag = "mappings", request_body = MappingInput,
    responses((status = 201, body = MappingView), (status = 400, body = super::error::ErrorBody), (status = 409, description = "connect Pendo first (not_connected)", body = super::error::ErrorBody),
        (status = 502, description = "Pendo could not be reached to check a reference (pendo_unreachable); nothing was saved", body = super::error::ErrorBody)))]
pub async fn create(
    State(app): State<Shared>,
    caller: Caller,
    Body(input): Body<MappingInput>,
) -> Result<(StatusCode, Json<MappingView>), ApiError> {
    let m = app.create_mapping(&caller.tenant, &input).await?;
    Ok((StatusCode::CREATED, Json(with_state(&app, m).await?)))
}

/// One mapping.
#[utoipa::path(get, path = "/v1/mappings/{mappingId}", tag = "mappings",
    params(("mappingId" = String, Path)), responses((status = 200, body = MappingView), (status = 404, body = super::error::ErrorBody)))]
pub async fn get(
    State(app): State<Shared>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<MappingView> {
    let m = app.mapping(&caller.tenant, &mapping_id(&id)?).await?;
    Ok(Json(with_state(&app, m).await?))
}

/// Replace a mapping in place; a change of what it fetches marks it "rebuild required". The
/// Pendo objects the edit refers to anew (another feature, page, report, app or segment; a
/// report also when the target changes) are checked as on create; references it keeps are
/// not (their disappearance shows on the mapping's status after a sync).
#[utoipa::path(put, path = "/v1/mappings/{mappingId}", tag = "mappings", request_body = MappingInput,
    params(("mappingId" = String, Path)),
    responses((status = 200, body = MappingView), (status = 400, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody), (status = 409, description = "connect Pendo first (not_connected)", body = super::error::ErrorBody),
        (status = 502, description = "Pendo could not be reached to check a reference (pendo_unreachable); nothing was saved", body = super::error::ErrorBody)))]
pub async fn update(
    State(app): State<Shared>,
    caller: Caller,
    Path(id): Path<String>,
    Body(input): Body<MappingInput>,
) -> ApiResult<MappingView> {
    let m = app
        .update_mapping(&caller.tenant, &mapping_id(&id)?, &input)
        .await?;
    Ok(Json(with_state(&app, m).await?))
}

/// Delete a mapping and every value it wrote.
#[utoipa::path(delete, path = "/v1/mappings/{mappingId}", tag = "mappings",
    params(("mappingId" = String, Path)), responses((status = 204), (status = 404, body = super::error::ErrorBody)))]
pub async fn delete(
    State(app): State<Shared>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.delete_mapping(&caller.tenant, &mapping_id(&id)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sync now: fetch what is missing since the last synced day. Deletes nothing. A mapping edited
/// since its values were made (`rebuildRequired`) is refused with 409 `rebuild_required` until
/// its rebuild: syncing it with the edit would split its series.
#[utoipa::path(post, path = "/v1/mappings/{mappingId}/sync", tag = "sync",
    params(("mappingId" = String, Path)),
    responses((status = 202, body = Accepted), (status = 404, body = super::error::ErrorBody), (status = 409, description = "not_connected, or rebuild_required: the mapping was edited and needs its rebuild first", body = super::error::ErrorBody)))]
pub async fn sync_now(
    State(app): State<Shared>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let run = app.sync_now(&caller.tenant, &mapping_id(&id)?).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            run_id: run.to_string(),
        }),
    ))
}

/// Rebuild one mapping: purge its values and re-fetch `daysToSync` days. A mapping whose Pendo
/// object (feature, page, report, segment) is no longer listed is refused with 409 `conflict`
/// before anything is purged.
#[utoipa::path(post, path = "/v1/mappings/{mappingId}/rebuild", tag = "sync",
    params(("mappingId" = String, Path)),
    responses((status = 202, body = Accepted), (status = 404, body = super::error::ErrorBody), (status = 409, description = "not_connected, or conflict: an object the mapping refers to is no longer in Pendo (nothing purged)", body = super::error::ErrorBody)))]
pub async fn rebuild(
    State(app): State<Shared>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let run = app
        .rebuild_mapping(&caller.tenant, &mapping_id(&id)?)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            run_id: run.to_string(),
        }),
    ))
}

/// Discard the Re-sync all in progress (or one that failed): the values shown stay, runs write
/// them again, and the half-built generation is purged in the background.
#[utoipa::path(delete, path = "/v1/resync", tag = "sync",
    responses((status = 204), (status = 404, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody)))]
pub async fn discard_resync(
    State(app): State<Shared>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    app.discard_resync(&caller.tenant).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Re-sync all: rebuild `daysToSync` days of every enabled mapping from scratch. The values
/// shown stay until every chunk of the rebuild is done, then all switch to the new ones at once.
#[utoipa::path(post, path = "/v1/resync", tag = "sync",
    responses((status = 202, body = Accepted), (status = 404, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody)))]
pub async fn resync_all(
    State(app): State<Shared>,
    caller: Caller,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let run = app.resync_all(&caller.tenant).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            run_id: run.to_string(),
        }),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RunsQuery {
    /// At most this many runs, newest first (default 20, at most 200).
    pub limit: Option<usize>,
}

/// Recent runs, newest first, with progress.
#[utoipa::path(get, path = "/v1/runs", tag = "sync", params(RunsQuery), responses((status = 200, body = Vec<RunView>)))]
pub async fn runs(
    State(app): State<Shared>,
    caller: Caller,
    Q(q): Q<RunsQuery>,
) -> ApiResult<Vec<RunView>> {
    let limit = q.limit.unwrap_or(20).clamp(1, 200);
    let runs = app.runs(&caller.tenant, limit).await?;
    let now = app.now();
    let generation = app.generation(&caller.tenant).await?;
    Ok(Json(
        runs.into_iter()
            .map(|r| RunView::at(r, now, generation))
            .collect(),
    ))
}

/// One run with its progress and per-chunk outcome.
#[utoipa::path(get, path = "/v1/runs/{runId}", tag = "sync", params(("runId" = String, Path)),
    responses((status = 200, body = RunView), (status = 404, body = super::error::ErrorBody)))]
pub async fn run(
    State(app): State<Shared>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<RunView> {
    let id = RunId::parse(&id).map_err(|_| ApiError::not_found(format!("run {id}")))?;
    let run = app.run(&caller.tenant, &id).await?;
    let generation = app.generation(&caller.tenant).await?;
    Ok(Json(RunView::at(run, app.now(), generation)))
}
