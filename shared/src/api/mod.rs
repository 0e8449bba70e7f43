//! The configurator HTTP API (DESIGN §1): one `axum` router, served by the local runner
//! (`pendo-sync serve`) and by the configurator Lambda. Every route but `/health` needs a
//! bearer token that maps to one tenant and a role; every error is one JSON envelope.
//! The OpenAPI document is generated from the same route registrations, so it cannot drift.

pub mod auth;
pub mod claims;
pub mod directory;
pub mod discovery;
pub mod error;
pub mod integration;
pub mod mappings;
pub mod metrics;
pub mod roles;
pub mod unmatched;
pub mod web;

use crate::App;
use auth::{Auth, Authenticator, Caller};
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Extension, Json, Router};
use error::ApiError;
use std::sync::Arc;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The state every handler gets.
pub type Shared = Arc<App>;

/// Largest request body accepted (a directory batch of 1,000 rows fits easily).
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Pendo Sync configurator API", version = "1"),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

/// The documented routes, and the OpenAPI document generated from them.
pub fn documented() -> (Router<Shared>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(integration::get_integration))
        .routes(routes!(integration::connect, integration::disconnect))
        .routes(routes!(integration::update_settings))
        .routes(routes!(integration::list_apps))
        .routes(routes!(integration::put_app, integration::delete_app))
        .routes(routes!(integration::list_segments))
        .routes(routes!(
            integration::put_segment,
            integration::delete_segment
        ))
        .routes(routes!(discovery::pages))
        .routes(routes!(discovery::features))
        .routes(routes!(discovery::track_types))
        .routes(routes!(discovery::guide_list))
        .routes(routes!(discovery::segments))
        .routes(routes!(discovery::apps))
        .routes(routes!(discovery::reports))
        .routes(routes!(discovery::report_columns))
        .routes(routes!(discovery::aggregation_fields))
        .routes(routes!(discovery::pipeline_check))
        .routes(routes!(mappings::list, mappings::create))
        .routes(routes!(mappings::get, mappings::update, mappings::delete))
        .routes(routes!(mappings::sync_now))
        .routes(routes!(mappings::rebuild))
        .routes(routes!(unmatched::of_mapping))
        .routes(routes!(unmatched::recover))
        .routes(routes!(unmatched::recover_all))
        .routes(routes!(unmatched::overview))
        .routes(routes!(mappings::resync_all, mappings::discard_resync))
        .routes(routes!(mappings::runs))
        .routes(routes!(mappings::run))
        .routes(routes!(directory::upsert, directory::list))
        .routes(routes!(directory::delete))
        .routes(routes!(directory::start_import, directory::imports))
        .routes(routes!(directory::import))
        .routes(routes!(metrics::list))
        .routes(routes!(metrics::series))
        .routes(routes!(metrics::activity))
        .routes(routes!(metrics::system))
        .routes(routes!(web::me))
        .routes(routes!(web::choices))
        .split_for_parts()
}

/// The whole API.
pub fn router(app: Shared, authenticator: Arc<dyn Authenticator>) -> Router {
    let (routes, doc) = documented();
    let doc = Arc::new(doc);
    routes
        .route(
            "/v1/openapi.json",
            get(move |_: Caller| {
                let doc = doc.clone();
                async move { Json((*doc).clone()) }
            }),
        )
        .route("/health", get(|| async { "ok" }))
        .merge(web::assets())
        .route_layer(axum::middleware::from_fn(roles::enforce))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no_route", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this route",
            )
        })
        .layer(Extension(Auth(authenticator)))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(app)
}
