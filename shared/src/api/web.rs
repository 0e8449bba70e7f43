//! The configurator page: static assets compiled into the binary (the sources in `shared/web/src`,
//! with uPlot vendored under `shared/assets/web` by `shared/web/build.mjs`), served at `/` by the same router as the API, so the
//! local runner and the configurator Lambda both serve it. The page talks only to `/v1`.
//! Also the two small routes the page needs to draw its forms: who is calling, and the fixed
//! choices (domains, IANA time zones, PES components).

use super::auth::Caller;
use super::Shared;
use crate::app::Role;
use crate::domain::mapping::PesComponent;
use crate::domain::{PendoDomain, Target};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

/// The page's files: uPlot joined to the sources.
pub const INDEX_HTML: &str = include_str!("../../web/src/index.html");
/// The page's scripts run in one function scope, in strict mode.
pub const APP_JS: &str = concat!(
    include_str!("../../assets/web/uplot.js"),
    "\n;\n(() => {\n  'use strict';\n",
    include_str!("../../web/src/app.js"),
    "\n",
    include_str!("../../web/src/directory.js"),
    "\n",
    include_str!("../../web/src/unmatched.js"),
    "\n})();\n"
);
pub const APP_CSS: &str = concat!(
    include_str!("../../assets/web/uplot.css"),
    "\n",
    include_str!("../../web/src/app.css")
);

/// Scripts and styles come only from this origin; the page calls only this origin.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Small files; always revalidate so a new binary's page is picked up at once.
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

/// The page's routes (no token: the page signs in with one itself).
pub fn assets() -> Router<Shared> {
    Router::new()
        .route(
            "/",
            get(|| async { asset(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/assets/app.js",
            get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/assets/app.css",
            get(|| async { asset(APP_CSS, "text/css; charset=utf-8") }),
        )
}

/// The caller, as the token maps it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub tenant: String,
    pub role: Role,
}

/// Who is calling (the page shows days to sync read-only to members).
#[utoipa::path(get, path = "/v1/me", tag = "integration",
    responses((status = 200, body = Me), (status = 401, body = super::error::ErrorBody)))]
pub async fn me(caller: Caller) -> Json<Me> {
    Json(Me {
        tenant: caller.tenant.to_string(),
        role: caller.role,
    })
}

/// The fixed choices of the settings and mapping forms.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Choices {
    /// Pendo domains a connection may use.
    pub domains: Vec<String>,
    /// IANA time zone names the settings accept, sorted.
    pub timezones: Vec<String>,
    pub pes_components: Vec<PesComponent>,
    pub targets: Vec<Target>,
}

/// The fixed choices: domains, IANA time zones, PES components, targets.
#[utoipa::path(get, path = "/v1/choices", tag = "integration",
    responses((status = 200, body = Choices), (status = 401, body = super::error::ErrorBody)))]
pub async fn choices(_caller: Caller) -> Json<Choices> {
    let mut timezones: Vec<String> = chrono_tz::TZ_VARIANTS
        .iter()
        .map(|z| z.name().to_string())
        .collect();
    timezones.sort();
    Json(Choices {
        domains: PendoDomain::ALL
            .iter()
            .map(|d| d.host().to_string())
            .collect(),
        timezones,
        pes_components: vec![
            PesComponent::Score,
            PesComponent::Adoption,
            PesComponent::Stickiness,
            PesComponent::Growth,
        ],
        targets: vec![
            Target::Company,
            Target::EndUser,
            Target::Asset,
            Target::Project,
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_its_own_assets_only() {
        assert!(INDEX_HTML.contains("src=\"/assets/app.js\""));
        assert!(INDEX_HTML.contains("href=\"/assets/app.css\""));
        // The built script carries the chart library and the page's code.
        assert!(APP_JS.contains("uPlot"));
        assert!(APP_JS.contains("/v1/integration"));
        assert!(!INDEX_HTML.contains("http://") && !INDEX_HTML.contains("https://"));
    }
}
