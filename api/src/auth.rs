//! API keys: how they are made (random, shown once, stored as a SHA-256 hash) and the
//! extractors that turn `Authorization: Bearer <key>` into the caller's tenant.
//!
//! [`Auth`] accepts any live key and scopes the request to the key's tenant; [`AdminAuth`]
//! also requires the `admin` scope. A missing, unknown or revoked key is a 401 problem; a
//! key over its request rate ([`crate::limits`]) a 429.

use crate::app::AppState;
use crate::problem::Problem;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use switchboard_engine::store::{ApiKeyRecord, ApiKeyScope, Store};
use switchboard_engine::{ApiKeyId, TenantId};

/// What every key starts with, so that a leaked key is recognisable.
pub const KEY_PREFIX: &str = "sb_";

/// The caller of a tenant-scoped route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Auth {
    /// The tenant every query of the request is scoped to.
    pub tenant: TenantId,
    /// The key used.
    pub key: ApiKeyId,
    /// What the key may do.
    pub scope: ApiKeyScope,
}

/// The caller of an admin route: a key with the `admin` scope (403 otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminAuth(pub Auth);

/// A freshly made key: the plain key (show it once) and what is stored.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// The key itself; never stored.
    pub key: String,
    /// Its first characters, stored to recognise it in lists.
    pub prefix: String,
    /// Its SHA-256, hex; what is stored and looked up.
    pub hash: String,
}

/// The SHA-256 of a key, lowercase hex.
pub fn hash_key(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Makes a new key from 24 bytes of the operating system's randomness.
pub fn generate_key() -> Result<NewKey, getrandom::Error> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes)?;
    let body: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let key = format!("{KEY_PREFIX}{body}");
    Ok(NewKey {
        prefix: key[..KEY_PREFIX.len() + 8].to_owned(),
        hash: hash_key(&key),
        key,
    })
}

/// Why a key could not be created.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The operating system gave no randomness.
    #[error("the operating system's random source failed: {0}")]
    Random(String),
    /// The store refused.
    #[error(transparent)]
    Store(#[from] switchboard_engine::Error),
}

/// Creates and stores a key for the tenant; returns the record and the plain key, which
/// exists nowhere else afterwards.
pub async fn create_key(
    store: &Store,
    tenant: TenantId,
    name: &str,
    scope: ApiKeyScope,
) -> Result<(ApiKeyRecord, String), KeyError> {
    let new = generate_key().map_err(|e| KeyError::Random(e.to_string()))?;
    let record = store
        .create_api_key(tenant, name, &new.prefix, &new.hash, scope)
        .await?;
    Ok((record, new.key))
}

/// The bearer token of a request, if it has one.
fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

impl<S> FromRequestParts<S> for Auth
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let key = bearer(parts).ok_or_else(|| {
            Problem::unauthorized("missing api key: send `Authorization: Bearer <api key>`")
        })?;
        let record = state
            .store
            .api_key_by_hash(&hash_key(key))
            .await?
            .ok_or_else(|| Problem::unauthorized("unknown or revoked api key"))?;
        state.guards.admit(record.id)?;
        Ok(Auth {
            tenant: record.tenant_id,
            key: record.id,
            scope: record.scope,
        })
    }
}

impl<S> FromRequestParts<S> for AdminAuth
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = Auth::from_request_parts(parts, state).await?;
        if auth.scope != ApiKeyScope::Admin {
            return Err(Problem::forbidden(
                "this route needs an api key with the admin scope",
            ));
        }
        Ok(AdminAuth(auth))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_is_random_prefixed_and_stored_only_as_its_hash() {
        let a = generate_key().unwrap();
        let b = generate_key().unwrap();
        assert_ne!(a.key, b.key);
        assert!(a.key.starts_with(KEY_PREFIX) && a.key.len() == KEY_PREFIX.len() + 48);
        assert!(a.key.starts_with(&a.prefix));
        assert_eq!(a.hash, hash_key(&a.key));
        assert_eq!(a.hash.len(), 64);
        assert!(!a.hash.contains(&a.key[KEY_PREFIX.len()..]));
    }
}
