//! The tenant's outbound webhooks: `POST/GET /api/v1/webhooks`,
//! `DELETE /api/v1/webhooks/{id}` and `GET /api/v1/webhooks/{id}/deliveries`.
//!
//! A subscription's signing secret is generated here and shown once, in the answer to its
//! creation; lists never show it.

use crate::app::AppState;
use crate::problem::Problem;
use axum::Json;
use axum::extract::{FromRef, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_engine::webhook::NewWebhook;
use switchboard_engine::{TenantId, WebhookId};

/// The tenant a request acts for, from `Authorization: Bearer <api key>` (the key's
/// SHA-256, hex, is looked up; a missing, unknown or revoked key is a 401 problem).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The tenant every query of the request is scoped to.
    pub tenant: TenantId,
}

fn hash_key(key: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn unauthorized(detail: &str) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
}

impl<S> FromRequestParts<S> for Caller
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let state = AppState::from_ref(state);
        let key = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, key)| key.trim())
            .filter(|key| !key.is_empty())
            .ok_or_else(|| {
                unauthorized("missing api key: send `Authorization: Bearer <api key>`")
            })?;
        let record = state
            .store
            .api_key_by_hash(&hash_key(key))
            .await?
            .ok_or_else(|| unauthorized("unknown or revoked api key"))?;
        Ok(Caller {
            tenant: record.tenant_id,
        })
    }
}

/// A webhook id from the path.
fn webhook_id(s: &str) -> Result<WebhookId, Problem> {
    s.parse()
        .map_err(|_| Problem::bad_request("id", format!("{s:?} is not a webhook id")))
}

/// A fresh signing secret from the operating system's randomness.
fn new_secret() -> Result<String, Problem> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| {
        tracing::error!(error = %e, "no randomness for a webhook secret");
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "no randomness for a signing secret; retry later",
        )
    })?;
    Ok(switchboard_engine::webhook::new_secret(bytes))
}

/// `POST /api/v1/webhooks` `{url, events: [...], description?}` → 201 with the secret.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let mut reader = serde_json::Deserializer::from_slice(&body);
    let hook: NewWebhook = serde_path_to_error::deserialize(&mut reader).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "body".to_owned() } else { path };
        Problem::bad_request(&field, e.into_inner().to_string())
    })?;
    let secret = new_secret()?;
    let record = state
        .store
        .create_webhook(caller.tenant, &hook, &secret)
        .await?;
    let mut answer = serde_json::to_value(&record).unwrap_or_default();
    answer["secret"] = json!(secret);
    Ok((StatusCode::CREATED, Json(answer)))
}

/// `GET /api/v1/webhooks` → `{items: [...]}` (secrets are never listed).
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, Problem> {
    let items = state.store.webhooks(caller.tenant).await?;
    Ok(Json(json!({ "items": items })))
}

/// `DELETE /api/v1/webhooks/{id}` → 204; pending deliveries are dropped.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    state
        .store
        .delete_webhook(caller.tenant, webhook_id(&id)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Query of the deliveries list.
#[derive(Debug, Deserialize)]
pub struct DeliveriesQuery {
    /// At most this many (default 50, at most 500).
    pub limit: Option<u32>,
}

/// `GET /api/v1/webhooks/{id}/deliveries?limit=` → `{items: [...]}`, newest first, each
/// with every send (status code, error, duration).
pub async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<DeliveriesQuery>,
) -> Result<Json<Value>, Problem> {
    let items = state
        .store
        .webhook_deliveries(caller.tenant, webhook_id(&id)?, query.limit.unwrap_or(50))
        .await?;
    Ok(Json(json!({ "items": items })))
}
