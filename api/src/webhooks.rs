//! The tenant's outbound webhooks: `POST/GET /api/v1/webhooks`,
//! `DELETE /api/v1/webhooks/{id}` and `GET /api/v1/webhooks/{id}/deliveries`.
//!
//! A subscription's signing secret is generated here and shown once, in the answer to its
//! creation; lists never show it.

use crate::app::AppState;
use crate::auth::Auth;
use crate::problem::Problem;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_engine::WebhookId;
use switchboard_engine::webhook::NewWebhook;

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
    caller: Auth,
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
pub async fn list(State(state): State<AppState>, caller: Auth) -> Result<Json<Value>, Problem> {
    let items = state.store.webhooks(caller.tenant).await?;
    Ok(Json(json!({ "items": items })))
}

/// `DELETE /api/v1/webhooks/{id}` → 204; pending deliveries are dropped.
pub async fn delete(
    State(state): State<AppState>,
    caller: Auth,
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
    caller: Auth,
    Path(id): Path<String>,
    Query(query): Query<DeliveriesQuery>,
) -> Result<Json<Value>, Problem> {
    let items = state
        .store
        .webhook_deliveries(caller.tenant, webhook_id(&id)?, query.limit.unwrap_or(50))
        .await?;
    Ok(Json(json!({ "items": items })))
}
