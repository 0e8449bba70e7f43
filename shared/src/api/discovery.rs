//! Discovery from Pendo: pages, features, track types, guides (with their steps and polls),
//! segments, and reports classified as compatible or not.

use super::auth::Caller;
use super::error::ApiError;
use super::Shared;
use crate::pendo::reports::ReportInfo;
use crate::pendo::ObjectList;
use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// A page, feature, track type or segment as Pendo lists it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendoObject {
    pub id: String,
    pub name: String,
    pub app_id: Option<i64>,
    pub is_core_event: bool,
}

/// Reports: the compatible ones, and the refused ones with their reason.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportsView {
    pub compatible: Vec<ReportInfo>,
    pub rejected: Vec<ReportInfo>,
}

async fn list(app: &crate::App, caller: &Caller, what: ObjectList) -> Result<Vec<Value>, ApiError> {
    Ok(app.pendo_objects(&caller.tenant, what).await?)
}

fn objects(v: Vec<Value>) -> Vec<PendoObject> {
    let mut out: Vec<PendoObject> = v
        .iter()
        .filter_map(|o| {
            Some(PendoObject {
                id: o.get("id")?.as_str()?.to_string(),
                name: o
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                app_id: o.get("appId").and_then(Value::as_i64),
                is_core_event: o
                    .get("isCoreEvent")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    out
}

/// Pendo pages of every app.
#[utoipa::path(get, path = "/v1/discovery/pages", tag = "discovery",
    responses((status = 200, body = Vec<PendoObject>), (status = 409, body = super::error::ErrorBody), (status = 502, body = super::error::ErrorBody)))]
pub async fn pages(
    State(app): State<Shared>,
    caller: Caller,
) -> Result<Json<Vec<PendoObject>>, ApiError> {
    Ok(Json(objects(list(&app, &caller, ObjectList::Pages).await?)))
}

/// Pendo features of every app.
#[utoipa::path(get, path = "/v1/discovery/features", tag = "discovery",
    responses((status = 200, body = Vec<PendoObject>), (status = 409, body = super::error::ErrorBody), (status = 502, body = super::error::ErrorBody)))]
pub async fn features(
    State(app): State<Shared>,
    caller: Caller,
) -> Result<Json<Vec<PendoObject>>, ApiError> {
    Ok(Json(objects(
        list(&app, &caller, ObjectList::Features).await?,
    )))
}

/// Pendo track types (server- and client-side custom events) of every app.
#[utoipa::path(get, path = "/v1/discovery/track-types", tag = "discovery",
    responses((status = 200, body = Vec<PendoObject>), (status = 409, body = super::error::ErrorBody), (status = 502, body = super::error::ErrorBody)))]
pub async fn track_types(
    State(app): State<Shared>,
    caller: Caller,
) -> Result<Json<Vec<PendoObject>>, ApiError> {
    Ok(Json(objects(
        list(&app, &caller, ObjectList::TrackTypes).await?,
    )))
}

/// A guide as Pendo lists it: its app, state, number of steps and polls.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GuideObject {
    pub id: String,
    pub name: String,
    pub app_id: Option<i64>,
    /// `public`, `staged`, `draft`, … as Pendo says.
    pub state: Option<String>,
    /// Its steps (a guide of several steps can be completed).
    pub steps: usize,
    pub polls: Vec<GuidePoll>,
}

/// A poll of a guide: its id and type (`NPSRating`, `NPSReason`, `PositiveNegative`,
/// `NumberScale`, … from the poll's `attributes.type`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GuidePoll {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub question: Option<String>,
}

fn guides(v: &[Value]) -> Vec<GuideObject> {
    let text = |o: &Value, k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
    let mut out: Vec<GuideObject> = v
        .iter()
        .filter_map(|g| {
            let polls = g.get("polls").and_then(Value::as_array);
            Some(GuideObject {
                id: text(g, "id")?,
                name: text(g, "name").unwrap_or_default(),
                app_id: g.get("appId").and_then(Value::as_i64),
                state: text(g, "state"),
                steps: crate::sync::guide_source::steps(g).len(),
                polls: polls
                    .into_iter()
                    .flatten()
                    .filter_map(|p| {
                        Some(GuidePoll {
                            id: text(p, "id")?,
                            kind: p.get("attributes").and_then(|a| text(a, "type")),
                            question: text(p, "question"),
                        })
                    })
                    .collect(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    out
}

/// Pendo guides of every app, with their steps and polls.
#[utoipa::path(get, path = "/v1/discovery/guides", tag = "discovery",
    responses((status = 200, body = Vec<GuideObject>), (status = 409, body = super::error::ErrorBody), (status = 502, body = super::error::ErrorBody)))]
pub async fn guide_list(
    State(app): State<Shared>,
    caller: Caller,
) -> Result<Json<Vec<GuideObject>>, ApiError> {
    Ok(Json(guides(
        &list(&app, &caller, ObjectList::Guides).await?,
    )))
}

/// Pendo's apps with their names (for pickers: a PES mapping's app, the apps table).
#[utoipa::path(get, path = "/v1/discovery/apps", tag = "discovery",
    responses((status = 200, body = Vec<crate::sync::references::PendoApp>), (status = 409, body = super::error::ErrorBody), (status = 502, body = super::error::ErrorBody)))]
pub async fn apps(
    State(app): State<Shared>,
    caller: Caller,
) -> Result<Json<Vec<crate::sync::references::PendoApp>>, ApiError> {
    Ok(Json(app.pendo_apps(&caller.tenant).await?))
}

/// Pendo segments.
#[utoipa::path(get, path = "/v1/discovery/segments", tag = "discovery",
    responses((status = 200, body = Vec<PendoObject>), (status = 409, body = super::error::ErrorBody), (status = 502, body = super::error::ErrorBody)))]
pub async fn segments(
    State(app): State<Shared>,
    caller: Caller,
) -> Result<Json<Vec<PendoObject>>, ApiError> {
    Ok(Json(objects(
        list(&app, &caller, ObjectList::Segments).await?,
    )))
}

/// Saved reports: compatible ones (with their numeric columns and any warning), and the refused
/// ones with the reason.
#[utoipa::path(get, path = "/v1/discovery/reports", tag = "discovery",
    responses((status = 200, body = ReportsView), (status = 409, body = super::error::ErrorBody), (status = 502, body = super::error::ErrorBody)))]
pub async fn reports(
    State(app): State<Shared>,
    caller: Caller,
) -> Result<Json<ReportsView>, ApiError> {
    let (compatible, rejected) = app
        .report_catalog(&caller.tenant)
        .await?
        .into_iter()
        .partition(|r| r.compatible);
    Ok(Json(ReportsView {
        compatible,
        rejected,
    }))
}

/// One report's numeric columns (404 for an unknown or refused report).
#[utoipa::path(get, path = "/v1/discovery/reports/{reportId}/columns", tag = "discovery",
    params(("reportId" = String, Path)),
    responses((status = 200, body = Vec<crate::pendo::reports::ReportColumn>), (status = 404, body = super::error::ErrorBody), (status = 409, description = "connect Pendo first (not_connected)", body = super::error::ErrorBody)))]
pub async fn report_columns(
    State(app): State<Shared>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<crate::pendo::reports::ReportColumn>>, ApiError> {
    let found = app
        .report_catalog(&caller.tenant)
        .await?
        .into_iter()
        .find(|r| r.id == id && r.compatible)
        .ok_or_else(|| ApiError::not_found(format!("compatible report {id}")))?;
    Ok(Json(found.numeric_columns))
}

/// A custom aggregation pipeline to analyse (a bare array of stages, or the request envelope).
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineBody {
    #[schema(value_type = Object)]
    pub pipeline: Value,
    /// The mapping's target: its id fields must be in the output.
    #[serde(default)]
    pub target: Option<crate::domain::Target>,
}

/// The check names fields as in a mapping's body (`source.pipeline[…]`); here the pipeline is
/// at the body's root.
fn at_root(e: crate::app::AppError) -> ApiError {
    let mut e = ApiError::from(e);
    if let Some(rest) = e.field.as_deref().and_then(|f| f.strip_prefix("source.")) {
        e.field = Some(rest.to_string());
    }
    e
}

/// The numeric-looking output fields of a custom aggregation pipeline, which a mapping may map
/// to metrics (400 naming the stage when the pipeline is refused: an unknown stage or source,
/// or, with `target`, an output without the target's id fields). Does not call Pendo: the
/// page's live check, the same check as the server's on save.
#[utoipa::path(post, path = "/v1/discovery/aggregation-fields", tag = "discovery",
    request_body = PipelineBody,
    responses((status = 200, body = Vec<String>), (status = 400, body = super::error::ErrorBody)))]
pub async fn aggregation_fields(
    State(app): State<Shared>,
    caller: Caller,
    super::error::Body(body): super::error::Body<PipelineBody>,
) -> Result<Json<Vec<String>>, ApiError> {
    let c = app
        .check_pipeline(&caller.tenant, &body.pipeline, body.target, false)
        .await
        .map_err(at_root)?;
    Ok(Json(c.fields))
}

/// The same check, then the pipeline run once for the tenant's last complete day (one Pendo
/// call; nothing stored): its rows, the fields they carry and the first few rows. What a
/// mapping's save does too; a pipeline Pendo refuses is a 400 with Pendo's message.
#[utoipa::path(post, path = "/v1/discovery/pipeline-check", tag = "discovery",
    request_body = PipelineBody,
    responses((status = 200, body = crate::app::pipeline_check::PipelineCheck), (status = 400, body = super::error::ErrorBody),
        (status = 409, description = "connect Pendo first (not_connected)", body = super::error::ErrorBody),
        (status = 502, body = super::error::ErrorBody)))]
pub async fn pipeline_check(
    State(app): State<Shared>,
    caller: Caller,
    super::error::Body(body): super::error::Body<PipelineBody>,
) -> Result<Json<crate::app::pipeline_check::PipelineCheck>, ApiError> {
    app.check_pipeline(&caller.tenant, &body.pipeline, body.target, true)
        .await
        .map(Json)
        .map_err(at_root)
}
