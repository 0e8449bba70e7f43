//! Who may do what: one table of every route that changes something, with the role it needs,
//! enforced by one layer before the handler runs (so a refused request reads no body and
//! changes nothing). Reading is open to both roles.
//!
//! - **admin**: the Pendo connection, the settings, the apps and segments tables, the
//!   directory (uploads, imports and their previews, deletes), Re-sync all, deleting mappings;
//! - **member**: everything an admin reads, and creating and editing mappings, Sync now,
//!   Rebuild and Recover on a mapping, and checking a pipeline.
//!
//! A route that changes something and is not in the table fails the table's unit test.

use super::auth::Caller;
use super::error::ApiError;
use crate::app::Role;
use axum::extract::{FromRequestParts, MatchedPath, Request};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// One route that changes something, the role it needs, and what it does in the words of the
/// refusal ("only an admin can …").
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub method: &'static str,
    pub path: &'static str,
    pub needs: Role,
    pub what: &'static str,
}

const fn rule(method: &'static str, path: &'static str, needs: Role, what: &'static str) -> Rule {
    Rule {
        method,
        path,
        needs,
        what,
    }
}

use Role::{Admin, Member};

/// Every route that is not a read.
pub const RULES: &[Rule] = &[
    rule(
        "PUT",
        "/v1/integration/connection",
        Admin,
        "connect Pendo or replace its key",
    ),
    rule(
        "DELETE",
        "/v1/integration/connection",
        Admin,
        "disconnect Pendo",
    ),
    rule(
        "PATCH",
        "/v1/integration/settings",
        Admin,
        "change the settings",
    ),
    rule(
        "PUT",
        "/v1/apps/{appId}",
        Admin,
        "add apps or change their prefixes",
    ),
    rule("DELETE", "/v1/apps/{appId}", Admin, "remove apps"),
    rule(
        "PUT",
        "/v1/segments/{segmentId}",
        Admin,
        "add or rename segments",
    ),
    rule(
        "DELETE",
        "/v1/segments/{segmentId}",
        Admin,
        "remove segments",
    ),
    rule("PUT", "/v1/directory/{kind}", Admin, "change the directory"),
    rule(
        "DELETE",
        "/v1/directory/{kind}/{id}",
        Admin,
        "delete from the directory",
    ),
    rule(
        "POST",
        "/v1/imports",
        Admin,
        "import the directory from Pendo (or preview an import)",
    ),
    rule("POST", "/v1/resync", Admin, "run Re-sync all"),
    rule("DELETE", "/v1/resync", Admin, "discard a Re-sync all"),
    rule(
        "DELETE",
        "/v1/mappings/{mappingId}",
        Admin,
        "delete mappings",
    ),
    rule("POST", "/v1/mappings", Member, "create mappings"),
    rule("PUT", "/v1/mappings/{mappingId}", Member, "edit mappings"),
    rule(
        "POST",
        "/v1/mappings/{mappingId}/sync",
        Member,
        "sync a mapping now",
    ),
    rule(
        "POST",
        "/v1/mappings/{mappingId}/rebuild",
        Member,
        "rebuild a mapping",
    ),
    rule(
        "POST",
        "/v1/mappings/{mappingId}/recover",
        Member,
        "recover a mapping's unmatched rows",
    ),
    rule(
        "POST",
        "/v1/recover",
        Member,
        "recover every mapping's unmatched rows",
    ),
    rule(
        "POST",
        "/v1/discovery/aggregation-fields",
        Member,
        "check a pipeline",
    ),
    rule(
        "POST",
        "/v1/discovery/pipeline-check",
        Member,
        "run a pipeline for one day",
    ),
];

/// The rule of a route, if it changes something.
pub fn rule_for(method: &Method, path: &str) -> Option<&'static Rule> {
    RULES
        .iter()
        .find(|r| r.method == method.as_str() && r.path == path)
}

/// The refusal a member gets for an admin's route (403, nothing read or changed).
pub fn refusal(r: &Rule) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!("only an admin can {}", r.what),
    )
}

/// The layer: a route that needs an admin is answered 401 without a caller and 403 for a
/// member, before its handler runs.
pub async fn enforce(request: Request, next: Next) -> Response {
    let needs_admin = request
        .extensions()
        .get::<MatchedPath>()
        .and_then(|p| rule_for(request.method(), p.as_str()))
        .filter(|r| r.needs == Admin);
    let Some(r) = needs_admin else {
        return next.run(request).await;
    };
    let (mut parts, body) = request.into_parts();
    match Caller::from_request_parts(&mut parts, &()).await {
        Err(e) => e.into_response(),
        Ok(c) if c.role != Admin => refusal(r).into_response(),
        Ok(_) => next.run(Request::from_parts(parts, body)).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::openapi::path::HttpMethod;

    fn name(m: &HttpMethod) -> &'static str {
        match m {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Delete => "DELETE",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Head => "HEAD",
            HttpMethod::Options => "OPTIONS",
            HttpMethod::Trace => "TRACE",
        }
    }

    /// Every documented route that is not a read has a rule, and every rule names a route.
    #[test]
    fn every_route_that_changes_something_has_a_role() {
        let (_, doc) = super::super::documented();
        let mut routes = Vec::new();
        for (path, item) in &doc.paths.paths {
            for (m, op) in [
                (HttpMethod::Get, &item.get),
                (HttpMethod::Post, &item.post),
                (HttpMethod::Put, &item.put),
                (HttpMethod::Delete, &item.delete),
                (HttpMethod::Patch, &item.patch),
            ] {
                if op.is_some() && m != HttpMethod::Get {
                    routes.push((name(&m), path.clone()));
                }
            }
        }
        for (m, p) in &routes {
            assert!(
                RULES.iter().any(|r| r.method == *m && r.path == p),
                "{m} {p} has no role"
            );
        }
        for r in RULES {
            assert!(
                routes.iter().any(|(m, p)| *m == r.method && p == r.path),
                "{} {} is not a route",
                r.method,
                r.path
            );
        }
        assert_eq!(routes.len(), RULES.len());
    }

    #[test]
    fn the_refusal_says_what_only_an_admin_can_do() {
        let r = rule_for(&Method::POST, "/v1/resync").map(refusal);
        assert_eq!(
            r.map(|e| (e.status, e.message)),
            Some((
                StatusCode::FORBIDDEN,
                "only an admin can run Re-sync all".to_string()
            ))
        );
        assert!(rule_for(&Method::GET, "/v1/mappings").is_none());
    }
}
