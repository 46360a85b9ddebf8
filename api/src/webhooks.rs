//! The tenant's outbound webhooks: `POST/GET /api/v1/webhooks`,
//! `DELETE /api/v1/webhooks/{id}` and `GET /api/v1/webhooks/{id}/deliveries`.
//!
//! A subscription's signing secret is generated here and shown once, in the answer to its
//! creation; lists never show it. Its URL must reach a public address
//! ([`crate::webhook_guard`]) unless the server allows private ones.

use crate::app::AppState;
use crate::auth::Auth;
use crate::problem::Problem;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use switchboard_engine::webhook::NewWebhook;
use switchboard_engine::{FieldError, WebhookId};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The webhook routes, with their OpenAPI description.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(delete))
        .routes(routes!(deliveries))
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

/// Subscribes a URL to events; the answer carries the signing secret, shown this once.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks",
    request_body(content = Object, description = "{url, events: [\"call.completed\" | \"campaign.status_changed\" | \"campaign.auto_paused\" | \"contact.opted_out\"], description?}"),
    responses((status = 201, description = "{id, tenant_id, url, events, description, created_at, secret}", body = Object),
              (status = 400, description = "Unreadable body (the field named)"),
              (status = 422, description = "Invalid fields; a `url` that is not http(s), does not resolve, or reaches a loopback, private, link-local, unique-local, unspecified, multicast or broadcast address")))]
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
    hook.validate()?;
    if !state.api.webhook_allow_private_addresses {
        crate::webhook_guard::check_url(&hook.url)
            .await
            .map_err(|e| {
                let error = FieldError::new("url", e.to_string());
                Problem::with_errors(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid webhook",
                    vec![error],
                )
            })?;
    }
    let secret = new_secret()?;
    let record = state
        .store
        .create_webhook(caller.tenant, &hook, &secret)
        .await?;
    let mut answer = serde_json::to_value(&record).unwrap_or_default();
    answer["secret"] = json!(secret);
    Ok((StatusCode::CREATED, Json(answer)))
}

/// The tenant's subscriptions (secrets are never listed).
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks",
    responses((status = 200, description = "{items: [{id, tenant_id, url, events, description, created_at}]}", body = Object)))]
pub async fn list(State(state): State<AppState>, caller: Auth) -> Result<Json<Value>, Problem> {
    let items = state.store.webhooks(caller.tenant).await?;
    Ok(Json(json!({ "items": items })))
}

/// Removes a subscription and its pending deliveries.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = i64, Path, description = "Webhook id")),
    responses((status = 204, description = "Removed"), (status = 404, description = "No such webhook")))]
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

/// The latest deliveries, newest first, each with every send (status code, error,
/// duration).
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = i64, Path, description = "Webhook id"),
           ("limit" = Option<u32>, Query, description = "At most this many (default 50, at most 500)")),
    responses((status = 200, description = "{items: [{id, webhook_id, event, payload, status, attempts, next_attempt_at, last_error, created_at, finished_at, log}]}", body = Object),
              (status = 404, description = "No such webhook")))]
pub async fn deliveries(
    State(state): State<AppState>,
    caller: Auth,
    Path(id): Path<String>,
    params: crate::rest::Params,
) -> Result<Json<Value>, Problem> {
    let id = webhook_id(&id)?;
    let limit = params.limit(50, 500)?;
    let items = state
        .store
        .webhook_deliveries(caller.tenant, id, limit)
        .await?;
    Ok(Json(json!({ "items": items })))
}
