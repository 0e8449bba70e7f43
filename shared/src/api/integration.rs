//! Integration, connection, settings, apps and segments.

use super::auth::Caller;
use super::error::{ApiError, Body};
use super::Shared;
use crate::app::SettingsUpdate;
use crate::domain::{AppRow, ConnectionStatus, FieldMappings, Integration, Segment};
use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The field mappings as shown (`-` where a field is not mapped).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldMappingsView {
    pub company_id: String,
    pub end_user_id: String,
    pub asset_id: String,
    pub project_id: String,
    pub email: String,
    pub name: String,
    pub surname: String,
}

impl From<&FieldMappings> for FieldMappingsView {
    fn from(f: &FieldMappings) -> Self {
        let s = |v: &Option<crate::domain::FieldRef>| {
            v.as_ref()
                .map(|f| f.display())
                .unwrap_or_else(|| "-".into())
        };
        Self {
            company_id: f.company_id.display(),
            end_user_id: s(&f.end_user_id),
            asset_id: s(&f.asset_id),
            project_id: s(&f.project_id),
            email: s(&f.email),
            name: s(&f.name),
            surname: s(&f.surname),
        }
    }
}

/// The integration as a user sees it. The key shows only its last 4 characters.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationView {
    pub tenant: String,
    /// `notConnected`, `active` or `disconnected`.
    pub status: String,
    pub status_message: Option<String>,
    pub domain: Option<String>,
    pub key_masked: Option<String>,
    pub days_to_sync: u32,
    pub timezone: Option<String>,
    pub field_mappings: FieldMappingsView,
    pub auto_detect_end_users: bool,
    /// The generation runs write.
    pub generation: u64,
    /// The generation reads show: below `generation` while a Re-sync all builds the next one
    /// (its values appear all at once when it is whole).
    pub shown_generation: u64,
    /// Whether a Re-sync all is building a generation not shown yet (running, or failed and
    /// waiting to be run again or discarded).
    pub resync_pending: bool,
    /// The mappings whose rebuild is building values not shown yet: reads show their values from
    /// before the edit until the rebuild is whole.
    pub rebuilding: Vec<String>,
    pub resync_required: bool,
    pub apps: Vec<AppRow>,
    pub segments: Vec<Segment>,
}

impl From<&Integration> for IntegrationView {
    fn from(i: &Integration) -> Self {
        let (status, status_message) = match &i.status {
            ConnectionStatus::NotConnected => ("notConnected", None),
            ConnectionStatus::Active => ("active", None),
            ConnectionStatus::Disconnected { message } => ("disconnected", Some(message.clone())),
        };
        Self {
            tenant: i.tenant.to_string(),
            status: status.into(),
            status_message,
            domain: i.connection.as_ref().map(|c| c.domain.host().to_string()),
            key_masked: i.connection.as_ref().map(|c| c.key.masked()),
            days_to_sync: i.settings.days_to_sync.get(),
            timezone: i.settings.timezone.map(|z| z.0.name().to_string()),
            field_mappings: (&i.settings.field_mappings).into(),
            auto_detect_end_users: i.settings.auto_detect_end_users,
            generation: i.generation,
            shown_generation: i.read_generation(),
            resync_pending: i.resync_pending(),
            rebuilding: i
                .generations()
                .rebuilds()
                .map(ToString::to_string)
                .collect(),
            resync_required: i.resync_required,
            apps: i.apps.rows().to_vec(),
            segments: i.segments.clone(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectInput {
    /// The Pendo integration key (never returned).
    pub key: String,
    /// One of app.pendo.io, app.eu.pendo.io, us1.app.pendo.io, app.jpn.pendo.io, app.au.pendo.io.
    pub domain: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrefixInput {
    /// Metric prefix for the app (may be empty).
    pub prefix: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NameInput {
    pub name: String,
}

type ApiResult<T> = Result<Json<T>, ApiError>;

fn view(i: Integration) -> ApiResult<IntegrationView> {
    Ok(Json((&i).into()))
}

/// Read the integration (a tenant that never connected gets the defaults).
#[utoipa::path(get, path = "/v1/integration", tag = "integration",
    responses((status = 200, body = IntegrationView), (status = 401, body = super::error::ErrorBody)))]
pub async fn get_integration(
    State(app): State<Shared>,
    caller: Caller,
) -> ApiResult<IntegrationView> {
    view(app.integration_or_default(&caller.tenant).await?)
}

/// Connect or replace the key and domain. The key is verified with Pendo first; nothing is saved
/// when it is refused.
#[utoipa::path(put, path = "/v1/integration/connection", tag = "integration", request_body = ConnectInput,
    responses((status = 200, body = IntegrationView), (status = 400, body = super::error::ErrorBody),
        (status = 422, description = "Pendo refused the key (pendo_key_rejected, pendo_wrong_region, pendo_key_read_only)", body = super::error::ErrorBody)))]
pub async fn connect(
    State(app): State<Shared>,
    caller: Caller,
    Body(input): Body<ConnectInput>,
) -> ApiResult<IntegrationView> {
    view(
        app.connect(&caller.tenant, &input.key, &input.domain)
            .await?,
    )
}

/// Disconnect: the key is forgotten; settings, mappings and values stay.
#[utoipa::path(delete, path = "/v1/integration/connection", tag = "integration",
    responses((status = 200, body = IntegrationView), (status = 409, description = "connect Pendo first (not_connected)", body = super::error::ErrorBody)))]
pub async fn disconnect(State(app): State<Shared>, caller: Caller) -> ApiResult<IntegrationView> {
    view(app.disconnect(&caller.tenant).await?)
}

/// Change settings (admins). Marks "re-sync required". The
/// company id field cannot leave `accountId` while PES mappings exist: 400 on
/// `fieldMappings.companyId`, naming them (PES is computed per Pendo account).
#[utoipa::path(patch, path = "/v1/integration/settings", tag = "integration", request_body = SettingsUpdate,
    responses((status = 200, body = IntegrationView), (status = 400, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody), (status = 409, description = "connect Pendo first (not_connected)", body = super::error::ErrorBody)))]
pub async fn update_settings(
    State(app): State<Shared>,
    caller: Caller,
    Body(input): Body<SettingsUpdate>,
) -> ApiResult<IntegrationView> {
    view(app.update_settings(&caller.tenant, &input).await?)
}

/// The apps table.
#[utoipa::path(get, path = "/v1/apps", tag = "apps", responses((status = 200, body = Vec<AppRow>), (status = 409, description = "connect Pendo first (not_connected)", body = super::error::ErrorBody)))]
pub async fn list_apps(State(app): State<Shared>, caller: Caller) -> ApiResult<Vec<AppRow>> {
    Ok(Json(
        app.integration(&caller.tenant).await?.apps.rows().to_vec(),
    ))
}

/// Add an app or change its prefix. Marks "re-sync required".
#[utoipa::path(put, path = "/v1/apps/{appId}", tag = "apps", request_body = PrefixInput,
    params(("appId" = String, Path, description = "A Pendo app id or `unknown`")),
    responses((status = 200, body = Vec<AppRow>), (status = 400, body = super::error::ErrorBody), (status = 409, description = "connect Pendo first (not_connected)", body = super::error::ErrorBody)))]
pub async fn put_app(
    State(app): State<Shared>,
    caller: Caller,
    Path(app_id): Path<String>,
    Body(input): Body<PrefixInput>,
) -> ApiResult<Vec<AppRow>> {
    Ok(Json(
        app.upsert_app(&caller.tenant, &app_id, &input.prefix)
            .await?
            .apps
            .rows()
            .to_vec(),
    ))
}

/// Remove an app (`-323232` and `unknown` are permanent: 409).
#[utoipa::path(delete, path = "/v1/apps/{appId}", tag = "apps",
    params(("appId" = String, Path, description = "A Pendo app id")),
    responses((status = 200, body = Vec<AppRow>), (status = 404, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody)))]
pub async fn delete_app(
    State(app): State<Shared>,
    caller: Caller,
    Path(app_id): Path<String>,
) -> ApiResult<Vec<AppRow>> {
    Ok(Json(
        app.remove_app(&caller.tenant, &app_id)
            .await?
            .apps
            .rows()
            .to_vec(),
    ))
}

/// The segments table.
#[utoipa::path(get, path = "/v1/segments", tag = "segments", responses((status = 200, body = Vec<Segment>), (status = 409, description = "connect Pendo first (not_connected)", body = super::error::ErrorBody)))]
pub async fn list_segments(State(app): State<Shared>, caller: Caller) -> ApiResult<Vec<Segment>> {
    Ok(Json(app.integration(&caller.tenant).await?.segments))
}

/// Add or rename a segment.
#[utoipa::path(put, path = "/v1/segments/{segmentId}", tag = "segments", request_body = NameInput,
    params(("segmentId" = String, Path, description = "A Pendo segment id")),
    responses((status = 200, body = Vec<Segment>), (status = 400, body = super::error::ErrorBody), (status = 409, description = "connect Pendo first (not_connected)", body = super::error::ErrorBody)))]
pub async fn put_segment(
    State(app): State<Shared>,
    caller: Caller,
    Path(id): Path<String>,
    Body(input): Body<NameInput>,
) -> ApiResult<Vec<Segment>> {
    Ok(Json(
        app.upsert_segment(&caller.tenant, &id, &input.name)
            .await?
            .segments,
    ))
}

/// Remove a segment (409 while a mapping uses it).
#[utoipa::path(delete, path = "/v1/segments/{segmentId}", tag = "segments",
    params(("segmentId" = String, Path, description = "A Pendo segment id")),
    responses((status = 200, body = Vec<Segment>), (status = 404, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody)))]
pub async fn delete_segment(
    State(app): State<Shared>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Vec<Segment>> {
    Ok(Json(
        app.remove_segment(&caller.tenant, &id).await?.segments,
    ))
}
