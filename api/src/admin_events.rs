//! The live changes as Server-Sent Events: `GET /admin/events` (an admin key: every
//! tenant's) and `GET /api/v1/events` (any key: its tenant's). Both read the one shared
//! producer of [`crate::live_events`]:
//!
//! - `campaign`: `{campaign_id, tenant_id, change: "running" | "dialing" | "not_dialing" | "gone"}`
//! - `call`: `{attempt_id, campaign_id, tenant_id, contact_id, change: "started" | "answered" | "ended"}`
//! - `lagged`: `{missed, reconnect: true}`: the client fell too far behind; the server
//!   ends the stream and the client reconnects (an `EventSource` does so by itself, after
//!   the `retry` delay sent with it) to get the current state again.
//!
//! A client first receives every running campaign and live call in its scope. Browsers'
//! `EventSource` cannot set headers: these routes (only these) also accept the key as the
//! `key` query parameter. A stream outlives no key: every [`KEY_CHECK_EVERY`] it checks
//! that its key is still live, and ends (after a `revoked` event) once it is not.

use crate::app::AppState;
use crate::auth::{Auth, hash_key};
use crate::live_events::{Received, Scope, Subscription};
use crate::problem::Problem;
use crate::rest::Params;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde_json::json;
use std::convert::Infallible;
use std::time::Duration;
use switchboard_engine::store::ApiKeyScope;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// How long a client that lagged waits before it reconnects (the `retry` field).
pub const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// How often a stream checks that its key was not revoked.
pub const KEY_CHECK_EVERY: Duration = Duration::from_secs(5);

/// The event stream routes, with their OpenAPI description.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(admin_events))
        .routes(routes!(tenant_events))
}

/// The caller of an event stream: the usual bearer key, or `?key=`.
pub struct StreamAuth(pub Auth);

impl FromRequestParts<AppState> for StreamAuth {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let params = Params::from_request_parts(parts, state).await?;
        let Some(key) = params.get("key") else {
            return Ok(StreamAuth(Auth::from_request_parts(parts, state).await?));
        };
        let record = state
            .store
            .api_key_by_hash(&hash_key(key))
            .await?
            .ok_or_else(|| Problem::unauthorized("unknown or revoked api key"))?;
        state.guards.admit(record.id)?;
        Ok(StreamAuth(Auth {
            tenant: record.tenant_id,
            key: record.id,
            scope: record.scope,
        }))
    }
}

/// Every tenant's live changes (an admin key).
#[utoipa::path(get, path = "/admin/events", tag = "admin",
    params(("key" = Option<String>, Query, description = "The admin key, for clients that cannot send headers (EventSource)")),
    responses((status = 200, description = "Server-Sent Events: `campaign`, `call`, `lagged` (then the stream ends)", content_type = "text/event-stream", body = String),
              (status = 401, description = "Missing, unknown or revoked key"),
              (status = 403, description = "Not an admin key")),
    security(("admin_key" = [])))]
pub async fn admin_events(
    State(state): State<AppState>,
    StreamAuth(auth): StreamAuth,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    if auth.scope != ApiKeyScope::Admin {
        return Err(Problem::forbidden(
            "this route needs an api key with the admin scope",
        ));
    }
    sse(state.events.subscribe(Scope::All), state, auth)
}

/// The tenant's live changes: its running campaigns and their calls.
#[utoipa::path(get, path = "/api/v1/events", tag = "campaigns",
    params(("key" = Option<String>, Query, description = "The API key, for clients that cannot send headers (EventSource)")),
    responses((status = 200, description = "Server-Sent Events: `campaign`, `call`, `lagged` (then the stream ends)", content_type = "text/event-stream", body = String),
              (status = 401, description = "Missing, unknown or revoked key")))]
pub async fn tenant_events(
    State(state): State<AppState>,
    StreamAuth(auth): StreamAuth,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    sse(
        state.events.subscribe(Scope::Tenant(auth.tenant)),
        state,
        auth,
    )
}

/// A subscription as Server-Sent Events; after a `lagged` or `revoked` event the stream
/// ends. A key holds at most `limits.event_streams_per_key` streams (429 beyond).
fn sse(
    subscription: Subscription,
    state: AppState,
    auth: Auth,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    let slot = state.guards.stream_slot(auth.key)?;
    let mut check = tokio::time::interval(KEY_CHECK_EVERY);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let open = Some((subscription, check, slot));
    let stream = futures_util::stream::unfold(open, move |open| {
        let state = state.clone();
        async move {
            let (mut subscription, mut check, slot) = open?;
            let received = loop {
                tokio::select! {
                    received = subscription.next() => break received?,
                    _ = check.tick() => {
                        // A database that does not answer is not a revocation.
                        if let Ok(false) = state.store.api_key_is_live(auth.key).await {
                            tracing::info!(key_id = %auth.key, "api key revoked; ending its event stream");
                            let event = Event::default().event("revoked").data("{}");
                            return Some((Ok(event), None));
                        }
                    }
                }
            };
            let event = match received {
                Received::Event(e) => Event::default().event(e.name).data(&*e.data),
                Received::Lagged(missed) => {
                    tracing::info!(missed, "a live event client lagged; ending its stream");
                    let data = json!({ "missed": missed, "reconnect": true });
                    let event = Event::default().event("lagged").data(data.to_string());
                    return Some((Ok(event.retry(RECONNECT_AFTER)), None));
                }
            };
            Some((Ok(event), Some((subscription, check, slot))))
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
