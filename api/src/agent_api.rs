//! The agent API: an agent reports the outcome of the call it handled, authenticated by
//! the per-call token it received in the stream's `start` (or its dispatch metadata).

use crate::app::AppState;
use crate::problem::Problem;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use switchboard_engine::call_token;
use switchboard_engine::store::OutcomeReport;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The agent API's route, with its OpenAPI description.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(report_outcome))
}

/// An agent reports its call's outcome, with the per-call token as its bearer.
#[utoipa::path(post, path = "/api/v1/agent/outcome", tag = "agents",
    request_body(content = Object, description = "{outcome, notes?, callback_at?, transcript?, call_id?}"),
    responses((status = 200, description = "{call_id, outcome, recorded}", body = Object),
              (status = 401, description = "Missing, invalid or expired call token"),
              (status = 404, description = "The token's call no longer exists"),
              (status = 409, description = "A different outcome was already recorded"),
              (status = 422, description = "A `callback` without `callback_at`, or a `call_id` that is not the token's call")),
    security(("call_token" = [])))]
pub async fn report_outcome(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, Problem> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| Problem::unauthorized("missing bearer call token"))?;
    let attempt = call_token::verify(
        state.calls.call_token_secret.expose_secret().as_bytes(),
        token,
    )
    .ok_or_else(|| Problem::unauthorized("invalid call token"))?;
    let call = state.calls.store.attempt(attempt).await?;
    if switchboard_engine::time::now() > call_token::expires_at(call.reserved_at, call.ended_at) {
        return Err(Problem::unauthorized("expired call token"));
    }
    let report: OutcomeReport = crate::rest::json_body(&body)?;
    if let Some(call_id) = &report.call_id
        && call_id != &attempt.to_string()
    {
        return Err(Problem::with_errors(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid outcome report",
            vec![switchboard_engine::FieldError::new(
                "call_id",
                format!("{call_id:?} is not the call this token is for"),
            )],
        ));
    }
    let outcome = report.outcome;
    let recorded = state.writer.record_outcome(attempt, report).await?;
    switchboard_actors::call::notify(attempt);
    tracing::info!(call_id = %attempt, outcome = outcome.as_str(), "agent outcome");
    Ok(Json(
        json!({ "call_id": attempt.to_string(), "outcome": outcome.as_str(), "recorded": recorded }),
    ))
}
