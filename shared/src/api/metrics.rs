//! Reading metrics: the metrics of an object, one series, recent activity, system metrics.
//! Each is 404 for an object the caller's tenant does not know (`App::require_object`).

use super::auth::Caller;
use super::error::{ApiError, Q};
use super::Shared;
use crate::app::ObjectMetric;
use crate::app::SystemMetrics;
use crate::domain::{Activity, ObjectRef, Target};
use crate::store::SeriesPoint;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{Duration, NaiveDate};
use serde::Deserialize;
use utoipa::IntoParams;

/// Longest series one request may read.
pub const MAX_SERIES_DAYS: i64 = 800;

fn object(kind: &str, id: String) -> Result<ObjectRef, ApiError> {
    let kind =
        Target::parse(kind).ok_or_else(|| ApiError::not_found(format!("object kind {kind}")))?;
    Ok(ObjectRef { kind, id })
}

fn bad(field: &str, msg: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid", msg).field(field)
}

/// The metrics present on an object (with the app of per-app metrics), each with the mapping
/// that writes it and the days it has synced (`syncedFrom`..`syncedTo`: a day in between without
/// a value had no events).
#[utoipa::path(get, path = "/v1/objects/{kind}/{id}/metrics", tag = "metrics",
    params(("kind" = String, Path, description = "company, endUser, asset or project"), ("id" = String, Path)),
    responses((status = 200, body = Vec<ObjectMetric>), (status = 404, description = "Unknown kind, or an object that is neither in the caller's directory nor has values or activity for the caller", body = super::error::ErrorBody)))]
pub async fn list(
    State(app): State<Shared>,
    caller: Caller,
    Path((kind, id)): Path<(String, String)>,
) -> Result<Json<Vec<ObjectMetric>>, ApiError> {
    let o = object(&kind, id)?;
    Ok(Json(app.object_metrics(&caller.tenant, &o).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SeriesQuery {
    /// The metric name.
    pub metric: String,
    /// First day, YYYY-MM-DD.
    pub from: NaiveDate,
    /// Last day, YYYY-MM-DD (inclusive).
    pub to: NaiveDate,
}

/// One metric's daily values between two days.
#[utoipa::path(get, path = "/v1/objects/{kind}/{id}/series", tag = "metrics",
    params(("kind" = String, Path), ("id" = String, Path), SeriesQuery),
    responses((status = 200, body = Vec<SeriesPoint>), (status = 400, body = super::error::ErrorBody),
        (status = 404, description = "Unknown kind, or an object that is neither in the caller's directory nor has values or activity for the caller", body = super::error::ErrorBody)))]
pub async fn series(
    State(app): State<Shared>,
    caller: Caller,
    Path((kind, id)): Path<(String, String)>,
    Q(q): Q<SeriesQuery>,
) -> Result<Json<Vec<SeriesPoint>>, ApiError> {
    let o = object(&kind, id)?;
    if q.to < q.from {
        return Err(bad("to", "must not be before from"));
    }
    if q.to - q.from > Duration::days(MAX_SERIES_DAYS) {
        return Err(bad("to", "a series may span at most 800 days"));
    }
    Ok(Json(
        app.object_series(&caller.tenant, &o, &q.metric, q.from, q.to)
            .await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ActivityQuery {
    /// Only activity on or after this day (default: 30 days ago).
    pub from: Option<NaiveDate>,
    /// At most this many records (default 100, at most 1,000).
    pub limit: Option<usize>,
}

/// Recent activity of an end user or a company, newest first (passive activity included).
#[utoipa::path(get, path = "/v1/objects/{kind}/{id}/activity", tag = "metrics",
    params(("kind" = String, Path, description = "endUser or company"), ("id" = String, Path), ActivityQuery),
    responses((status = 200, body = Vec<Activity>), (status = 400, description = "Invalid query, or an asset or project (no activity)", body = super::error::ErrorBody),
        (status = 404, description = "Unknown kind, or an object that is neither in the caller's directory nor has values or activity for the caller", body = super::error::ErrorBody)))]
pub async fn activity(
    State(app): State<Shared>,
    caller: Caller,
    Path((kind, id)): Path<(String, String)>,
    Q(q): Q<ActivityQuery>,
) -> Result<Json<Vec<Activity>>, ApiError> {
    let o = object(&kind, id)?;
    let from = q
        .from
        .unwrap_or_else(|| app.now().date_naive() - Duration::days(30));
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(
        app.object_activity(&caller.tenant, &o, from, limit).await?,
    ))
}

/// System metrics: an end user's last seen / last active, a company's users active last 7 days.
#[utoipa::path(get, path = "/v1/objects/{kind}/{id}/system", tag = "metrics",
    params(("kind" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = SystemMetrics), (status = 404, description = "Unknown kind, or an object that is neither in the caller's directory nor has values or activity for the caller", body = super::error::ErrorBody), (status = 409, description = "connect Pendo first (not_connected)", body = super::error::ErrorBody)))]
pub async fn system(
    State(app): State<Shared>,
    caller: Caller,
    Path((kind, id)): Path<(String, String)>,
) -> Result<Json<SystemMetrics>, ApiError> {
    let o = object(&kind, id)?;
    Ok(Json(app.system_metrics(&caller.tenant, &o).await?))
}
