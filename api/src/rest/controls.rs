//! Campaign controls: start, schedule, pause, resume, stop. The lifecycle
//! (`engine::campaign::transition`) decides what is legal; an illegal change is a 409
//! saying why. Start and resume need the campaign runtime (Twilio configured), and LiveKit
//! for a campaign whose agent is `sip` (503 naming the missing settings), and respect
//! the tenant's limit on active campaigns, checked atomically with the change by the store
//! (409 naming the limit); pause and stop work without it.

use super::{optional_json_body, path_id};
use crate::app::AppState;
use crate::auth::Auth;
use crate::problem::Problem;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use switchboard_actors::{Runtime, RuntimeError};
use switchboard_engine::CampaignId;
use switchboard_engine::campaign::{CampaignStatus, Cause};
use switchboard_engine::store::CampaignRecord;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The control routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_campaign))
        .routes(routes!(schedule_campaign))
        .routes(routes!(pause_campaign))
        .routes(routes!(resume_campaign))
        .routes(routes!(stop_campaign))
}

/// The optional body of a control: why.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlBody {
    /// Stored with the status change.
    #[serde(default)]
    pub reason: Option<String>,
}

fn reason(body: &Bytes, default: &str) -> Result<String, Problem> {
    let body: ControlBody = optional_json_body(body)?;
    Ok(body
        .reason
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| default.to_owned()))
}

fn runtime_error(state: &AppState, e: RuntimeError) -> Problem {
    match e {
        RuntimeError::Store(e) => e.into(),
        RuntimeError::SipUnavailable => sip_unavailable(state),
        RuntimeError::Unavailable(why) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "runtime unavailable",
            format!("the campaign runtime did not answer: {why}"),
        ),
    }
}

/// A 503 naming the LiveKit settings a SIP campaign needs and the server lacks.
fn sip_unavailable(state: &AppState) -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "livekit not configured",
        format!(
            "the campaign's agent is in sip mode, which dials through livekit; set {}",
            state.api.livekit_missing.join(", ")
        ),
    )
    .with_extension(
        "missing_settings",
        serde_json::json!(state.api.livekit_missing),
    )
}

/// A control only the runtime carries out: the campaign must be the tenant's (404 first),
/// the runtime must run (503 naming `action`), its LiveKit trunk and agent name must be
/// allowed for the tenant (422: a campaign stored before the allowlist was set), and the
/// answer is the campaign as stored after it.
async fn by_runtime(
    state: &AppState,
    auth: &Auth,
    id: CampaignId,
    action: &str,
    control: impl AsyncFnOnce(&Runtime) -> Result<CampaignRecord, RuntimeError>,
) -> Result<Json<CampaignRecord>, Problem> {
    let campaign = state.store.campaign(auth.tenant, id).await?;
    if switchboard_actors::call::sip::is_sip(&campaign.config) && state.calls.livekit.is_none() {
        return Err(sip_unavailable(state));
    }
    state
        .store
        .check_livekit_agent(auth.tenant, campaign.config.agent.as_ref())
        .await?;
    let record = control(runtime(state, action)?)
        .await
        .map_err(|e| runtime_error(state, e))?;
    Ok(Json(state.store.campaign(auth.tenant, record.id).await?))
}

fn runtime<'a>(state: &'a AppState, action: &str) -> Result<&'a Runtime, Problem> {
    state.runtime.as_ref().ok_or_else(|| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "campaign runtime not running",
            format!(
                "cannot {action}: the campaign runtime needs twilio; set {}",
                state.api.runtime_missing.join(", ")
            ),
        )
        .with_extension(
            "missing_settings",
            serde_json::json!(state.api.runtime_missing),
        )
    })
}

/// Starts a campaign now (a complete draft is scheduled and activated in one step).
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/start", tag = "controls",
    params(("id" = i64, Path, description = "Campaign id")),
    request_body(content = Object, description = "Optional: {\"reason\": \"...\"}"),
    responses((status = 200, description = "The campaign, active", body = Object),
              (status = 409, description = "Not startable from its status, or the tenant's active-campaign limit is reached"),
              (status = 422, description = "The configuration is incomplete (named fields)"),
              (status = 503, description = "The runtime is not running (Twilio not configured), or the campaign is in SIP mode and LiveKit is not configured")))]
pub async fn start_campaign(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<CampaignRecord>, Problem> {
    let id: CampaignId = path_id(&id, "id")?;
    reason(&body, "started")?;
    by_runtime(&state, &auth, id, "start a campaign", async |runtime| {
        runtime.start_campaign(auth.tenant, id).await
    })
    .await
}

/// Schedules a complete draft: it starts at its `starts_at`.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/schedule", tag = "controls",
    params(("id" = i64, Path, description = "Campaign id")),
    request_body(content = Object, description = "Optional: {\"reason\": \"...\"}"),
    responses((status = 200, description = "The campaign, scheduled", body = Object),
              (status = 409, description = "Not a draft"), (status = 422, description = "Incomplete configuration")))]
pub async fn schedule_campaign(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<CampaignRecord>, Problem> {
    let id: CampaignId = path_id(&id, "id")?;
    let why = reason(&body, "scheduled")?;
    let record = state
        .store
        .transition_campaign(
            auth.tenant,
            id,
            CampaignStatus::Scheduled,
            Cause::User,
            &why,
            None,
        )
        .await?;
    Ok(Json(record))
}

/// Pauses a campaign: no new dials, live calls finish.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/pause", tag = "controls",
    params(("id" = i64, Path, description = "Campaign id")),
    request_body(content = Object, description = "Optional: {\"reason\": \"...\"}"),
    responses((status = 200, description = "The campaign, paused", body = Object), (status = 409, description = "Not active")))]
pub async fn pause_campaign(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<CampaignRecord>, Problem> {
    let id: CampaignId = path_id(&id, "id")?;
    let why = reason(&body, "paused")?;
    let record = match &state.runtime {
        Some(runtime) => runtime
            .pause_campaign(auth.tenant, id, &why)
            .await
            .map_err(|e| runtime_error(&state, e))?,
        None => {
            state
                .store
                .transition_campaign(
                    auth.tenant,
                    id,
                    CampaignStatus::Paused,
                    Cause::User,
                    &why,
                    None,
                )
                .await?
        }
    };
    Ok(Json(record))
}

/// Resumes a paused campaign.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/resume", tag = "controls",
    params(("id" = i64, Path, description = "Campaign id")),
    request_body(content = Object, description = "Optional: {\"reason\": \"...\"}"),
    responses((status = 200, description = "The campaign, active", body = Object),
              (status = 409, description = "Not paused, or the tenant's active-campaign limit is reached"),
              (status = 503, description = "The runtime is not running (Twilio not configured), or the campaign is in SIP mode and LiveKit is not configured")))]
pub async fn resume_campaign(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<CampaignRecord>, Problem> {
    let id: CampaignId = path_id(&id, "id")?;
    reason(&body, "resumed")?;
    by_runtime(&state, &auth, id, "resume a campaign", async |runtime| {
        runtime.resume_campaign(auth.tenant, id).await
    })
    .await
}

/// Stops a campaign for good: no new dials, live calls finish.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/stop", tag = "controls",
    params(("id" = i64, Path, description = "Campaign id")),
    request_body(content = Object, description = "Optional: {\"reason\": \"...\"}"),
    responses((status = 200, description = "The campaign, stopped", body = Object), (status = 409, description = "Already finished")))]
pub async fn stop_campaign(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<CampaignRecord>, Problem> {
    let id: CampaignId = path_id(&id, "id")?;
    let why = reason(&body, "stopped")?;
    let record = match &state.runtime {
        Some(runtime) => runtime
            .stop_campaign(auth.tenant, id, &why)
            .await
            .map_err(|e| runtime_error(&state, e))?,
        None => {
            state
                .store
                .transition_campaign(
                    auth.tenant,
                    id,
                    CampaignStatus::Stopped,
                    Cause::User,
                    &why,
                    None,
                )
                .await?
        }
    };
    Ok(Json(record))
}
