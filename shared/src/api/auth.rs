//! Who is calling: a tenant and a role, from `Authorization: Bearer <token>`. Locally, tokens come
//! from a file or an env var and are kept only as SHA-256 hashes; on AWS the tenant and role come
//! from the JWT authorizer's claims (another `Authenticator`). Tokens are never logged.

use super::error::ApiError;
use crate::app::Role;
use crate::domain::TenantId;
use crate::error::ValidationError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub tenant: TenantId,
    pub role: Role,
}

/// Maps a request's headers (and extensions) to a caller.
pub trait Authenticator: Send + Sync {
    fn authenticate(&self, parts: &Parts) -> Option<Caller>;

    /// The caller, or the refusal to answer with (401 unless an authenticator knows better, e.g.
    /// a 403 for a genuine token that grants no access: `claims::JwtClaimsAuth`).
    fn identify(&self, parts: &Parts) -> Result<Caller, ApiError> {
        self.authenticate(parts).ok_or_else(ApiError::unauthorized)
    }
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Bearer tokens known by their hashes.
#[derive(Default)]
pub struct TokenTable {
    by_hash: HashMap<[u8; 32], Caller>,
}

impl std::fmt::Debug for TokenTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenTable({} tokens)", self.by_hash.len())
    }
}

impl TokenTable {
    pub fn insert(&mut self, token: &str, caller: Caller) {
        self.by_hash.insert(hash(token), caller);
    }

    /// Parses lines or comma-separated entries `token:tenant:role` (role `admin` or `member`);
    /// blank lines and `#` comments are skipped. Errors name the entry number, never the token.
    ///
    /// # Errors
    /// The first entry that is not `token:tenant:role`, with a token of 16+ characters, a valid
    /// tenant and a known role; its field is `token entry N`.
    pub fn parse(spec: &str) -> Result<Self, ValidationError> {
        let entry_error =
            |n: usize, reason: &str| ValidationError::new(format!("token entry {}", n + 1), reason);
        let mut t = Self::default();
        for (n, entry) in spec.split([',', '\n']).map(str::trim).enumerate() {
            if entry.is_empty() || entry.starts_with('#') {
                continue;
            }
            let parts: Vec<&str> = entry.split(':').map(str::trim).collect();
            let [token, tenant, role] = parts.as_slice() else {
                return Err(entry_error(n, "is not token:tenant:role"));
            };
            if token.len() < 16 {
                return Err(entry_error(n, "tokens must be at least 16 characters"));
            }
            let role = match *role {
                "admin" => Role::Admin,
                "member" => Role::Member,
                _ => return Err(entry_error(n, "role must be admin or member")),
            };
            let tenant = TenantId::parse(tenant).map_err(|e| entry_error(n, &e.to_string()))?;
            t.insert(token, Caller { tenant, role });
        }
        Ok(t)
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

impl Authenticator for TokenTable {
    fn authenticate(&self, parts: &Parts) -> Option<Caller> {
        let value = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)?
            .to_str()
            .ok()?;
        let (scheme, token) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        self.by_hash.get(&hash(token.trim())).cloned()
    }
}

/// The authenticator a router runs with.
#[derive(Clone)]
pub struct Auth(pub Arc<dyn Authenticator>);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let auth = parts
            .extensions
            .get::<Auth>()
            .cloned()
            .ok_or_else(ApiError::unauthorized)?;
        auth.0.identify(parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_specs() {
        let t = TokenTable::parse(
            "# comment\nabcdefghijklmnop1:acme:admin, abcdefghijklmnop2:acme:member",
        )
        .unwrap();
        assert!(!t.is_empty());
        let says = |spec: &str| TokenTable::parse(spec).unwrap_err().to_string();
        assert_eq!(
            says("short:acme:admin"),
            "token entry 1: tokens must be at least 16 characters"
        );
        assert_eq!(
            says("abcdefghijklmnop1:acme:root"),
            "token entry 1: role must be admin or member"
        );
        assert_eq!(
            says("ok:acme:admin\nabcdefghijklmnop1:acme"),
            "token entry 1: tokens must be at least 16 characters"
        );
        assert_eq!(
            says("abcdefghijklmnop2:acme:admin\nabcdefghijklmnop1:acme"),
            "token entry 2: is not token:tenant:role"
        );
        let err = says("abcdefghijklmnop1::admin");
        assert!(
            !err.contains("abcdefghijklmnop1"),
            "the token never shows in errors"
        );
    }
}
