//! API keys: how they are made (random, shown once, stored as a SHA-256 hash) and the
//! extractors that turn `Authorization: Bearer <key>` into the caller.
//!
//! Two kinds of key. A tenant's key (`sb_...`, `switchboard keys create`) scopes every
//! request to its tenant; with the supervisor scope it also reaches the live view of its
//! own tenant. An operator key (`sb_op_...`, `switchboard operators create`) belongs to no
//! tenant: whoever runs Switchboard holds it, and only it reaches across tenants.
//!
//! [`Auth`] accepts a tenant's key; [`OperatorAuth`] an operator key; [`AdminAuth`] (the
//! live view) either an operator key (every tenant) or a supervisor key (its own tenant).
//! A missing, unknown or revoked key is a 401 problem; a key of the wrong kind a 403; a
//! tenant's key over its request rate ([`crate::limits`]) a 429.

use crate::app::AppState;
use crate::problem::Problem;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use switchboard_engine::store::{ApiKeyRecord, ApiKeyScope, OperatorKeyRecord, Store};
use switchboard_engine::{ApiKeyId, OperatorKeyId, TenantId};

/// What every key starts with, so that a leaked key is recognisable.
pub const KEY_PREFIX: &str = "sb_";

/// What every operator key starts with (a tenant's key never does: its body is hex).
pub const OPERATOR_KEY_PREFIX: &str = "sb_op_";

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

/// The caller of an operator route: an operator key (a tenant's key is refused with 403).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperatorAuth {
    /// The operator key used.
    pub key: OperatorKeyId,
}

/// The caller of a live-view route (`/admin/...`): an operator, who sees every tenant, or
/// a tenant's supervisor, who sees only its own tenant (403 for any other tenant key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminAuth {
    /// An operator key: every tenant.
    Operator(OperatorAuth),
    /// A supervisor key: its own tenant only.
    Supervisor(Auth),
}

impl AdminAuth {
    /// The one tenant the caller sees, or `None` for an operator (every tenant).
    pub fn tenant(&self) -> Option<TenantId> {
        match self {
            AdminAuth::Operator(_) => None,
            AdminAuth::Supervisor(auth) => Some(auth.tenant),
        }
    }

    /// Whether the caller sees this tenant's campaigns and calls.
    pub fn sees(&self, tenant: TenantId) -> bool {
        self.tenant().is_none_or(|own| own == tenant)
    }

    /// The key, as a call event records who acted.
    pub fn actor(&self) -> serde_json::Value {
        match self {
            AdminAuth::Operator(op) => serde_json::json!({ "operator_key": op.key }),
            AdminAuth::Supervisor(auth) => serde_json::json!({ "by_key": auth.key }),
        }
    }
}

/// Whoever a live key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// A tenant's key.
    Tenant(Auth),
    /// An operator key.
    Operator(OperatorAuth),
}

impl Caller {
    /// Counts the request against a tenant key's rate (429 past it); the operator is not
    /// limited.
    pub fn admitted(self, guards: &crate::limits::Guards) -> Result<Caller, Problem> {
        if let Caller::Tenant(auth) = &self {
            guards.admit(auth.key)?;
        }
        Ok(self)
    }

    /// Looks the key up: an operator key by its prefix, any other in the tenants' keys.
    pub async fn resolve(store: &Store, key: &str) -> Result<Caller, Problem> {
        let unknown = || Problem::unauthorized("unknown or revoked api key");
        let hash = hash_key(key);
        if key.starts_with(OPERATOR_KEY_PREFIX) {
            let record = store
                .operator_key_by_hash(&hash)
                .await?
                .ok_or_else(unknown)?;
            return Ok(Caller::Operator(OperatorAuth { key: record.id }));
        }
        let record = store.api_key_by_hash(&hash).await?.ok_or_else(unknown)?;
        Ok(Caller::Tenant(Auth {
            tenant: record.tenant_id,
            key: record.id,
            scope: record.scope,
        }))
    }

    /// Whether the key is still live (long-lived streams ask while they run).
    pub async fn is_live(&self, store: &Store) -> switchboard_engine::error::Result<bool> {
        match self {
            Caller::Tenant(auth) => store.api_key_is_live(auth.key).await,
            Caller::Operator(op) => store.operator_key_is_live(op.key).await,
        }
    }

    /// A tenant's key, or 403 for an operator key.
    pub fn tenant(self) -> Result<Auth, Problem> {
        match self {
            Caller::Tenant(auth) => Ok(auth),
            Caller::Operator(_) => Err(Problem::forbidden(
                "an operator key belongs to no tenant: this route needs a tenant's api key",
            )),
        }
    }

    /// An operator key, or 403 for a tenant's key.
    pub fn operator(self) -> Result<OperatorAuth, Problem> {
        match self {
            Caller::Operator(op) => Ok(op),
            Caller::Tenant(_) => Err(Problem::forbidden(
                "this route needs an operator key (`switchboard operators create`); \
                 a tenant's key, supervisor or not, cannot reach it",
            )),
        }
    }

    /// An operator or a supervisor key, or 403 for a plain tenant key.
    pub fn admin(self) -> Result<AdminAuth, Problem> {
        match self {
            Caller::Operator(op) => Ok(AdminAuth::Operator(op)),
            Caller::Tenant(auth) if auth.scope == ApiKeyScope::Supervisor => {
                Ok(AdminAuth::Supervisor(auth))
            }
            Caller::Tenant(_) => Err(Problem::forbidden(
                "this route needs a supervisor key of the tenant (`switchboard keys create \
                 --supervisor`) or an operator key",
            )),
        }
    }
}

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

/// Makes a new tenant key from 24 bytes of the operating system's randomness.
pub fn generate_key() -> Result<NewKey, getrandom::Error> {
    generate_with_prefix(KEY_PREFIX)
}

/// Makes a new operator key, the same way with its own prefix.
pub fn generate_operator_key() -> Result<NewKey, getrandom::Error> {
    generate_with_prefix(OPERATOR_KEY_PREFIX)
}

fn generate_with_prefix(prefix: &str) -> Result<NewKey, getrandom::Error> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes)?;
    let body: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let key = format!("{prefix}{body}");
    Ok(NewKey {
        prefix: key[..prefix.len() + 8].to_owned(),
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

/// Creates and stores an operator key; returns the record and the plain key, which exists
/// nowhere else afterwards.
pub async fn create_operator_key(
    store: &Store,
    name: &str,
) -> Result<(OperatorKeyRecord, String), KeyError> {
    let new = generate_operator_key().map_err(|e| KeyError::Random(e.to_string()))?;
    let record = store
        .create_operator_key(name, &new.prefix, &new.hash)
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

impl<S> FromRequestParts<S> for Caller
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
        Caller::resolve(&state.store, key)
            .await?
            .admitted(&state.guards)
    }
}

impl<S> FromRequestParts<S> for Auth
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Caller::from_request_parts(parts, state).await?.tenant()
    }
}

impl<S> FromRequestParts<S> for OperatorAuth
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Caller::from_request_parts(parts, state).await?.operator()
    }
}

impl<S> FromRequestParts<S> for AdminAuth
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Caller::from_request_parts(parts, state).await?.admin()
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
        let op = generate_operator_key().unwrap();
        assert!(op.key.starts_with(OPERATOR_KEY_PREFIX) && op.prefix.starts_with("sb_op_"));
        assert!(
            !a.key.starts_with(OPERATOR_KEY_PREFIX),
            "a tenant key's hex body never reads as an operator key"
        );
    }
}
