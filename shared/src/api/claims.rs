//! Who is calling, on AWS: the tenant and role from the claims API Gateway's JWT authorizer has
//! already verified (signature, issuer, audience, expiry) and put in the request context of an
//! HTTP API (payload v2) event. The function never sees an unverified token: it only reads
//! `requestContext.authorizer.jwt.claims`.
//!
//! - The claim names are deployment settings: `JWT_TENANT_CLAIM` (default `tenant`) and
//!   `JWT_ROLE_CLAIM` (default `role`); with Cognito, e.g. `custom:tenant` and `cognito:groups`.
//! - The role claim holds `admin` or `member`, alone or in a list (API Gateway renders an array
//!   claim as `[admin other]`); `admin` wins when both are present.
//! - No JWT claims at all → 401 (the request did not come through the authorizer). Claims
//!   without a valid tenant or with no known role → 403: the token is genuine, but does not
//!   grant access to this API. Errors name the claim, never its value.

use super::auth::Caller;
use super::error::ApiError;
use crate::app::Role;
use crate::domain::TenantId;
use axum::http::StatusCode;
use std::collections::HashMap;
#[cfg(feature = "configurator")]
use {super::auth::Authenticator, axum::http::request::Parts};

/// Environment variable naming the tenant claim.
pub const TENANT_CLAIM_VAR: &str = "JWT_TENANT_CLAIM";
/// Environment variable naming the role claim.
pub const ROLE_CLAIM_VAR: &str = "JWT_ROLE_CLAIM";
pub const DEFAULT_TENANT_CLAIM: &str = "tenant";
pub const DEFAULT_ROLE_CLAIM: &str = "role";

/// Which claims carry the tenant and the role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimNames {
    pub tenant: String,
    pub role: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        Self {
            tenant: DEFAULT_TENANT_CLAIM.into(),
            role: DEFAULT_ROLE_CLAIM.into(),
        }
    }
}

impl ClaimNames {
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the names through `var`; unset or blank variables keep the defaults.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Self {
        let name = |k: &str, default: &str| {
            var(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_string())
        };
        Self {
            tenant: name(TENANT_CLAIM_VAR, DEFAULT_TENANT_CLAIM),
            role: name(ROLE_CLAIM_VAR, DEFAULT_ROLE_CLAIM),
        }
    }
}

/// Why claims do not identify a caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsError {
    #[error("the request carries no verified JWT claims")]
    NoClaims,
    #[error("the token has no '{0}' claim")]
    Missing(String),
    #[error("the token's '{0}' claim is not a valid tenant id")]
    InvalidTenant(String),
    #[error("the token's '{0}' claim names neither admin nor member")]
    UnknownRole(String),
}

impl From<ClaimsError> for ApiError {
    fn from(e: ClaimsError) -> Self {
        match e {
            ClaimsError::NoClaims => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid bearer token (JWT) is required",
            ),
            other => ApiError::new(StatusCode::FORBIDDEN, "forbidden", other.to_string()),
        }
    }
}

/// The values of a claim: one value, or the elements of a list claim (`[a b]`, `["a","b"]`,
/// `a,b`).
fn claim_values(raw: &str) -> impl Iterator<Item = &str> {
    let inner = raw.trim();
    let inner = inner
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(inner);
    inner
        .split(|c: char| c == ',' || c.is_whitespace())
        .map(|v| v.trim_matches('"'))
        .filter(|v| !v.is_empty())
}

/// The caller the claims name.
///
/// # Errors
/// `ClaimsError` naming the claim that is missing or unusable.
pub fn caller_from_claims(
    claims: &HashMap<String, String>,
    names: &ClaimNames,
) -> Result<Caller, ClaimsError> {
    if claims.is_empty() {
        return Err(ClaimsError::NoClaims);
    }
    let tenant = claims
        .get(&names.tenant)
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ClaimsError::Missing(names.tenant.clone()))?;
    let tenant =
        TenantId::parse(tenant).map_err(|_| ClaimsError::InvalidTenant(names.tenant.clone()))?;
    let raw_role = claims
        .get(&names.role)
        .ok_or_else(|| ClaimsError::Missing(names.role.clone()))?;
    let (mut admin, mut member) = (false, false);
    for v in claim_values(raw_role) {
        admin |= v == "admin";
        member |= v == "member";
    }
    let role = match (admin, member) {
        (true, _) => Role::Admin,
        (false, true) => Role::Member,
        (false, false) => return Err(ClaimsError::UnknownRole(names.role.clone())),
    };
    Ok(Caller { tenant, role })
}

/// The claims of an API Gateway HTTP API (payload v2) request's JWT authorizer, as
/// `lambda_http` puts the request context in the request's extensions.
#[cfg(feature = "configurator")]
pub fn jwt_claims(parts: &Parts) -> Option<&HashMap<String, String>> {
    use lambda_http::request::RequestContext;
    match parts.extensions.get::<RequestContext>()? {
        RequestContext::ApiGatewayV2(ctx) => Some(&ctx.authorizer.as_ref()?.jwt.as_ref()?.claims),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// The authenticator of the configurator Lambda: the JWT authorizer's claims.
#[cfg(feature = "configurator")]
#[derive(Debug, Clone, Default)]
pub struct JwtClaimsAuth {
    pub names: ClaimNames,
}

#[cfg(feature = "configurator")]
impl Authenticator for JwtClaimsAuth {
    fn authenticate(&self, parts: &Parts) -> Option<Caller> {
        self.identify(parts).ok()
    }

    fn identify(&self, parts: &Parts) -> Result<Caller, ApiError> {
        let empty = HashMap::new();
        let claims = jwt_claims(parts).unwrap_or(&empty);
        caller_from_claims(claims, &self.names).map_err(|e| {
            tracing::info!(reason = %e, "request refused");
            ApiError::from(e)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn caller(tenant: &str, role: Role) -> Caller {
        Caller {
            tenant: TenantId::parse(tenant).unwrap(),
            role,
        }
    }

    #[test]
    fn names_default_to_tenant_and_role_and_follow_the_environment() {
        assert_eq!(
            ClaimNames::from_lookup(|_| None),
            ClaimNames {
                tenant: "tenant".into(),
                role: "role".into()
            }
        );
        let n = ClaimNames::from_lookup(|k| match k {
            TENANT_CLAIM_VAR => Some(" custom:tenant ".into()),
            ROLE_CLAIM_VAR => Some("".into()),
            _ => None,
        });
        assert_eq!(n.tenant, "custom:tenant");
        assert_eq!(n.role, "role", "a blank variable keeps the default");
    }

    #[test]
    fn a_tenant_and_a_role_make_a_caller() {
        let n = ClaimNames::default();
        let c = claims(&[("sub", "u1"), ("tenant", "acme-cs"), ("role", "member")]);
        assert_eq!(
            caller_from_claims(&c, &n),
            Ok(caller("acme-cs", Role::Member))
        );
        let c = claims(&[("tenant", "acme-cs"), ("role", "admin")]);
        assert_eq!(
            caller_from_claims(&c, &n),
            Ok(caller("acme-cs", Role::Admin))
        );
    }

    #[test]
    fn list_claims_are_read_as_api_gateway_renders_them_and_admin_wins() {
        let n = ClaimNames {
            tenant: "custom:tenant".into(),
            role: "cognito:groups".into(),
        };
        for (groups, role) in [
            ("[readers member]", Role::Member),
            ("[member admin]", Role::Admin),
            ("[\"admin\",\"x\"]", Role::Admin),
            ("member, ops", Role::Member),
        ] {
            let c = claims(&[("custom:tenant", "acme"), ("cognito:groups", groups)]);
            assert_eq!(
                caller_from_claims(&c, &n),
                Ok(caller("acme", role)),
                "{groups}"
            );
        }
        let c = claims(&[
            ("custom:tenant", "acme"),
            ("cognito:groups", "[administrators]"),
        ]);
        assert_eq!(
            caller_from_claims(&c, &n),
            Err(ClaimsError::UnknownRole("cognito:groups".into()))
        );
    }

    #[test]
    fn missing_or_unusable_claims_are_refused_by_name() {
        let n = ClaimNames::default();
        assert_eq!(
            caller_from_claims(&HashMap::new(), &n),
            Err(ClaimsError::NoClaims)
        );
        assert_eq!(
            caller_from_claims(&claims(&[("sub", "u1"), ("role", "admin")]), &n),
            Err(ClaimsError::Missing("tenant".into()))
        );
        assert_eq!(
            caller_from_claims(&claims(&[("tenant", "  "), ("role", "admin")]), &n),
            Err(ClaimsError::Missing("tenant".into()))
        );
        assert_eq!(
            caller_from_claims(&claims(&[("tenant", "a\u{1}b"), ("role", "admin")]), &n),
            Err(ClaimsError::InvalidTenant("tenant".into()))
        );
        assert_eq!(
            caller_from_claims(&claims(&[("tenant", "acme")]), &n),
            Err(ClaimsError::Missing("role".into()))
        );
        assert_eq!(
            caller_from_claims(&claims(&[("tenant", "acme"), ("role", "root")]), &n),
            Err(ClaimsError::UnknownRole("role".into()))
        );
        assert_eq!(
            caller_from_claims(&claims(&[("tenant", "acme"), ("role", "")]), &n),
            Err(ClaimsError::UnknownRole("role".into()))
        );
    }

    #[test]
    fn refusals_map_to_401_and_403_without_echoing_values() {
        let e = ApiError::from(ClaimsError::NoClaims);
        assert_eq!(
            (e.status, e.code),
            (StatusCode::UNAUTHORIZED, "unauthorized")
        );
        let e = ApiError::from(ClaimsError::UnknownRole("role".into()));
        assert_eq!((e.status, e.code), (StatusCode::FORBIDDEN, "forbidden"));
        assert_eq!(
            e.message,
            "the token's 'role' claim names neither admin nor member"
        );
    }
}
