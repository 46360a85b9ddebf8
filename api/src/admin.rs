//! The admin live view: every running campaign supervisor with its pacing figures, every
//! live call with its state and timings, one call's snapshot and stored events, and the
//! operator's hands (hang up a call at the carrier, pause a campaign), and the engine's
//! shared parts (the event writer's counters).
//!
//! Who sees what ([`AdminAuth`]): an operator key sees and controls every tenant; a
//! tenant's supervisor key only its own tenant, as if the others did not exist (another
//! tenant's call or campaign is a 404, so ids do not leak); a plain tenant key is refused
//! with 403. The engine's shared parts need an operator key. The live stream of changes
//! is in [`crate::admin_events`]. Every route is described in the OpenAPI spec under the
//! `admin_key` security scheme.

use crate::app::AppState;
use crate::auth::{AdminAuth, OperatorAuth};
use crate::calls::RelayLive;
use crate::problem::Problem;
use crate::rest::path_id;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use switchboard_actors::campaign::{CampaignSnapshot, LiveCall};
use switchboard_actors::dial::DialError;
use switchboard_actors::{Runtime, WriterSnapshot};
use switchboard_engine::store::{AttemptRecord, AttemptStatus, CallEvent, CallFilter};
use switchboard_engine::{AttemptId, CampaignId};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The admin routes, with their OpenAPI description.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(campaigns))
        .routes(routes!(pause_campaign))
        .routes(routes!(calls))
        .routes(routes!(call))
        .routes(routes!(hangup))
        .routes(routes!(engine))
}

/// The runtime, or a 503 when Twilio is not configured.
fn runtime(state: &AppState) -> Result<&Runtime, Problem> {
    state.runtime.as_ref().ok_or_else(|| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "campaign runtime not running",
            "the live view needs the campaign runtime, which needs twilio",
        )
    })
}

/// Every running campaign supervisor's snapshot.
pub async fn snapshots(state: &AppState) -> Result<Vec<CampaignSnapshot>, Problem> {
    let mut snapshots = runtime(state)?.snapshots().await.map_err(|e| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "runtime unavailable",
            e.to_string(),
        )
    })?;
    snapshots.sort_by_key(|s| s.campaign_id);
    Ok(snapshots)
}

/// The running campaign supervisors' snapshots the caller sees.
async fn visible_snapshots(
    state: &AppState,
    admin: &AdminAuth,
) -> Result<Vec<CampaignSnapshot>, Problem> {
    let mut all = snapshots(state).await?;
    all.retain(|s| admin.sees(s.tenant_id));
    Ok(all)
}

/// The attempt, when the caller sees its tenant; otherwise the same 404 as no attempt.
async fn visible_attempt(
    state: &AppState,
    admin: &AdminAuth,
    id: AttemptId,
) -> Result<AttemptRecord, Problem> {
    let attempt = state.store.attempt(id).await?;
    if !admin.sees(attempt.tenant_id) {
        return Err(switchboard_engine::Error::not_found("attempt", id).into());
    }
    Ok(attempt)
}

/// A running campaign as the admin view shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminCampaign {
    /// Its name.
    pub name: String,
    /// Its stored status.
    pub status: String,
    /// The supervisor's snapshot, flattened: `campaign_id`, `tenant_id`, `live_calls`,
    /// `bridged_calls`, `dialing`, `dialed`, `skipped`, `pacing`, `calls`, and the lease:
    /// `owner` (this process's instance id) and `lease_expires_at`; `agent`: whether its
    /// agent can be reached (`status`, `reachable`, `reason`, `since`, ...).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub snapshot: CampaignSnapshot,
}

/// Every running campaign.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminCampaigns {
    /// This process's instance id. With several processes on one database, each lists
    /// the campaigns whose lease it holds.
    pub instance: String,
    /// One per campaign supervisor of this process, by campaign id.
    pub items: Vec<AdminCampaign>,
}

/// Every running campaign supervisor of this process with its pacing figures and lease.
#[utoipa::path(get, path = "/admin/campaigns", tag = "admin",
    responses((status = 200, description = "Every running campaign", body = AdminCampaigns),
              (status = 403, description = "Not an admin key"),
              (status = 503, description = "The campaign runtime is not running")),
    security(("admin_key" = [])))]
async fn campaigns(
    State(state): State<AppState>,
    admin: AdminAuth,
) -> Result<Json<AdminCampaigns>, Problem> {
    let mut items = Vec::new();
    for snapshot in visible_snapshots(&state, &admin).await? {
        let record = state
            .store
            .campaign(snapshot.tenant_id, snapshot.campaign_id)
            .await?;
        items.push(AdminCampaign {
            name: record.config.name.clone(),
            status: record.status.as_str().to_owned(),
            snapshot,
        });
    }
    let instance = runtime(&state)?.instance().to_owned();
    Ok(Json(AdminCampaigns { instance, items }))
}

/// One live call as the admin view shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminCall {
    /// The attempt.
    #[schema(value_type = i64)]
    pub attempt_id: AttemptId,
    /// Its campaign.
    #[schema(value_type = i64)]
    pub campaign_id: CampaignId,
    /// Its tenant.
    #[schema(value_type = i64)]
    pub tenant_id: switchboard_engine::TenantId,
    /// The contact called.
    #[schema(value_type = i64)]
    pub contact_id: switchboard_engine::ContactId,
    /// The attempt's stored status (`dialing`, `ringing`, `answered`, `bridged`, ...).
    #[schema(value_type = String)]
    pub state: AttemptStatus,
    /// The carrier's call id, once known.
    pub carrier_call_id: Option<String>,
    /// When its call actor started.
    #[schema(value_type = String, format = DateTime)]
    pub started_at: DateTime<Utc>,
    /// When it was answered, once it was.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub answered_at: Option<DateTime<Utc>>,
    /// Seconds since the call actor started.
    pub secs_since_start: f64,
    /// Seconds since the answer.
    pub secs_since_answer: Option<f64>,
    /// The relay's figures (bridge time; first agent audio and latency once reported).
    pub relay: Option<RelayLive>,
}

/// The campaign's unfinished attempts, by id: a few queries per campaign rather than one
/// per live call.
async fn unfinished_attempts(
    state: &AppState,
    snapshot: &CampaignSnapshot,
) -> Result<HashMap<AttemptId, AttemptRecord>, Problem> {
    let mut out = HashMap::new();
    if snapshot.calls.is_empty() {
        return Ok(out);
    }
    for status in AttemptStatus::ALL {
        if status == AttemptStatus::Ended {
            continue;
        }
        let filter = CallFilter {
            status: Some(status),
            limit: Some(1000),
            ..CallFilter::default()
        };
        let page = state
            .store
            .campaign_calls(snapshot.tenant_id, snapshot.campaign_id, &filter)
            .await?;
        out.extend(page.into_iter().map(|a| (a.id, a)));
    }
    Ok(out)
}

async fn admin_call(
    state: &AppState,
    campaign: CampaignId,
    live: &LiveCall,
    known: Option<AttemptRecord>,
) -> Result<AdminCall, Problem> {
    // An attempt that just ended is not among the unfinished ones: read it alone.
    let attempt = match known {
        Some(attempt) => attempt,
        None => state.store.attempt(live.attempt_id).await?,
    };
    let now = Utc::now();
    let answered_at = attempt.answered_at.or(live.answered_at);
    let secs = |at: DateTime<Utc>| (now - at).num_milliseconds().max(0) as f64 / 1000.0;
    Ok(AdminCall {
        attempt_id: attempt.id,
        campaign_id: campaign,
        tenant_id: attempt.tenant_id,
        contact_id: attempt.contact_id,
        state: attempt.status,
        carrier_call_id: attempt.carrier_call_id,
        started_at: live.started_at,
        answered_at,
        secs_since_start: secs(live.started_at),
        secs_since_answer: answered_at.map(secs),
        relay: state.calls.relays.get(attempt.id),
    })
}

/// Every live call.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminCalls {
    /// By campaign, then in the order their call actors started.
    pub items: Vec<AdminCall>,
}

/// Every live call of every running campaign.
#[utoipa::path(get, path = "/admin/calls", tag = "admin",
    responses((status = 200, description = "Every live call", body = AdminCalls),
              (status = 403, description = "Not an admin key"),
              (status = 503, description = "The campaign runtime is not running")),
    security(("admin_key" = [])))]
async fn calls(
    State(state): State<AppState>,
    admin: AdminAuth,
) -> Result<Json<AdminCalls>, Problem> {
    let mut items = Vec::new();
    for snapshot in visible_snapshots(&state, &admin).await? {
        let mut attempts = unfinished_attempts(&state, &snapshot).await?;
        for live in &snapshot.calls {
            let known = attempts.remove(&live.attempt_id);
            items.push(admin_call(&state, snapshot.campaign_id, live, known).await?);
        }
    }
    Ok(Json(AdminCalls { items }))
}

/// One call: its stored attempt, its live snapshot (while live) and its events.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallDetail {
    /// The stored attempt (status, result, outcome, times, carrier call id, detail).
    #[schema(value_type = Object)]
    attempt: switchboard_engine::store::AttemptRecord,
    /// What the live view shows of it, while it is live.
    live: Option<AdminCall>,
    /// Its stored events, oldest first: `{attempt_id, at, kind, data}`.
    #[schema(value_type = Vec<Object>)]
    events: Vec<CallEvent>,
}

/// One call: its stored attempt, its live snapshot while live, and its stored events.
#[utoipa::path(get, path = "/admin/calls/{attempt_id}", tag = "admin",
    params(("attempt_id" = i64, Path, description = "Call attempt id")),
    responses((status = 200, description = "The call", body = CallDetail),
              (status = 403, description = "Not an admin key"),
              (status = 404, description = "No such attempt"),
              (status = 503, description = "The campaign runtime is not running")),
    security(("admin_key" = [])))]
async fn call(
    State(state): State<AppState>,
    admin: AdminAuth,
    Path(id): Path<String>,
) -> Result<Json<CallDetail>, Problem> {
    let id: AttemptId = path_id(&id, "attempt_id")?;
    let attempt = visible_attempt(&state, &admin, id).await?;
    let mut live = None;
    for snapshot in visible_snapshots(&state, &admin).await? {
        if let Some(call) = snapshot.calls.iter().find(|c| c.attempt_id == id) {
            let known = Some(attempt.clone());
            live = Some(admin_call(&state, snapshot.campaign_id, call, known).await?);
        }
    }
    let events = state.store.attempt_events(id).await?;
    let detail = CallDetail {
        attempt,
        live,
        events,
    };
    Ok(Json(detail))
}

/// Hangs the call up at the carrier (a SIP call: deletes its LiveKit room); its call actor
/// then sees it end. 409 when the call is over or has not been placed yet.
#[utoipa::path(post, path = "/admin/calls/{attempt_id}/hangup", tag = "admin",
    params(("attempt_id" = i64, Path, description = "Call attempt id")),
    responses((status = 202, description = "{attempt_id, carrier_call_id (the room for a SIP call), hangup: \"requested\"}", body = Object),
              (status = 403, description = "Not an admin key"),
              (status = 404, description = "No such attempt"),
              (status = 409, description = "The call is over, or has no carrier call yet"),
              (status = 502, description = "The carrier refused the hang-up"),
              (status = 503, description = "The campaign runtime is not running, or LiveKit is not configured for a SIP call")),
    security(("admin_key" = [])))]
async fn hangup(
    State(state): State<AppState>,
    admin: AdminAuth,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let id: AttemptId = path_id(&id, "attempt_id")?;
    let attempt = visible_attempt(&state, &admin, id).await?;
    if attempt.status == AttemptStatus::Ended {
        return Err(Problem::conflict(format!("call {id} is already over")));
    }
    let sid = match runtime(&state)?.hangup_call(&attempt).await {
        Ok(sid) => sid,
        Err(DialError::NotPlaced(status)) => {
            return Err(Problem::conflict(format!(
                "call {id} has no carrier call yet (status {status})"
            )));
        }
        Err(e @ DialError::SipUnavailable) => {
            return Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "livekit not configured",
                format!("call {id}: {e}"),
            ));
        }
        Err(e) => {
            let call = attempt.carrier_call_id.as_deref().unwrap_or("not placed");
            return Err(Problem::new(
                StatusCode::BAD_GATEWAY,
                "carrier refused the hang-up",
                format!("call {id} ({call}): {e}"),
            ));
        }
    };
    let event = CallEvent {
        attempt_id: id,
        at: Utc::now(),
        kind: "admin.hangup".into(),
        data: admin.actor(),
    };
    state.writer.append_events(vec![event]).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "attempt_id": id, "carrier_call_id": sid, "hangup": "requested" })),
    ))
}

/// Pauses a running campaign (an operator: of any tenant; a supervisor: of its own).
#[utoipa::path(post, path = "/admin/campaigns/{id}/pause", tag = "admin",
    params(("id" = i64, Path, description = "Campaign id")),
    responses((status = 200, description = "The campaign, paused", body = Object),
              (status = 403, description = "Not an admin key"),
              (status = 404, description = "No running campaign with this id"),
              (status = 409, description = "Not active"),
              (status = 503, description = "The campaign runtime is not running")),
    security(("admin_key" = [])))]
async fn pause_campaign(
    State(state): State<AppState>,
    admin: AdminAuth,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    let id: CampaignId = path_id(&id, "id")?;
    let snapshot = visible_snapshots(&state, &admin)
        .await?
        .into_iter()
        .find(|s| s.campaign_id == id)
        .ok_or_else(|| Problem::not_found("running campaign", id))?;
    let record = runtime(&state)?
        .pause_campaign(snapshot.tenant_id, id, "paused by an administrator")
        .await
        .map_err(|e| match e {
            switchboard_actors::RuntimeError::Store(e) => Problem::from(e),
            other => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "runtime unavailable",
                other.to_string(),
            ),
        })?;
    Ok(Json(json!(record)))
}

/// The engine's shared parts, as the live view shows them.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminEngine {
    /// The event writer: writes queued, transactions, writes per transaction, last error.
    #[schema(value_type = Object)]
    pub writer: WriterSnapshot,
}

/// The engine's shared parts: the event writer's counters (answers without the campaign
/// runtime too: the HTTP handlers write through the same writer). Operator keys only.
#[utoipa::path(get, path = "/admin/engine", tag = "admin",
    responses((status = 200, description = "The engine's shared parts", body = AdminEngine),
              (status = 403, description = "Not an operator key")),
    security(("operator_key" = [])))]
async fn engine(State(state): State<AppState>, _operator: OperatorAuth) -> Json<AdminEngine> {
    Json(AdminEngine {
        writer: state.writer.snapshot(),
    })
}
