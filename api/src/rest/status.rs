//! What a campaign is doing: progress from its queue, live calls and pacing from the
//! runtime, rates from its attempts, cost from billed minutes; and its call history, as
//! JSON pages or CSV.

use super::{Page, Params, path_id};
use crate::app::AppState;
use crate::auth::Auth;
use crate::problem::Problem;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{Duration, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use switchboard_engine::store::{AttemptRecord, AttemptStatus, CallFilter, CallStats, QueueCounts};
use switchboard_engine::{AttemptId, CampaignId};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The status and call history routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(campaign_status))
        .routes(routes!(campaign_calls))
        .routes(routes!(campaign_calls_csv))
}

/// Rates over the campaign's attempts; `None` while the denominator is zero.
#[derive(Debug, Serialize)]
pub struct Rates {
    /// Answered / attempts.
    pub answer: Option<f64>,
    /// Connected to the agent / answered.
    pub connect: Option<f64>,
    /// Successful outcomes (the campaign's `success.outcomes`) / connected.
    pub success: Option<f64>,
    /// Abandoned (a person waited more than 2 s for the agent) / answered by a person.
    pub abandonment: Option<f64>,
}

fn ratio(n: u64, d: u64) -> Option<f64> {
    (d > 0).then(|| n as f64 / d as f64)
}

fn progress(queue: QueueCounts) -> Value {
    let total = queue.queued + queue.in_progress + queue.done;
    json!({
        "total": total,
        "queued": queue.queued,
        "in_progress": queue.in_progress,
        "done": queue.done,
        "percent_done": ratio(queue.done, total).map(|r| (r * 1000.0).round() / 10.0),
    })
}

/// Progress, live calls, pacing, rates and cost of one campaign.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/status", tag = "campaigns",
    params(("id" = i64, Path, description = "Campaign id")),
    responses((status = 200, description = "{campaign, progress, agent, live, pacing, calls, rates, cost}; agent: {status, reachable, reason, since, failed_probes, next_probe_at} while the campaign runs", body = Object),
              (status = 404, description = "No such campaign")))]
pub async fn campaign_status(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    let id: CampaignId = path_id(&id, "id")?;
    let campaign = state.store.campaign(auth.tenant, id).await?;
    let queue = state.store.queue_counts(id).await?;
    let stats: CallStats = state.store.call_stats(auth.tenant, id).await?;
    let now = Utc::now();
    let today = now.date_naive().and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    let last_minute = state
        .store
        .attempts_since(id, now - Duration::minutes(1))
        .await?;
    let since_midnight = match today {
        Some(t) => state.store.attempts_since(id, t).await?,
        None => 0,
    };
    let snapshot = match (&state.runtime, campaign.status.is_running()) {
        (Some(runtime), true) => runtime
            .snapshots()
            .await
            .ok()
            .and_then(|all| all.into_iter().find(|s| s.campaign_id == id)),
        _ => None,
    };
    let successes: u64 = stats
        .outcomes
        .iter()
        .filter(|(o, _)| {
            o.parse::<switchboard_engine::campaign::Outcome>()
                .is_ok_and(|o| campaign.config.success.is_success(o))
        })
        .map(|(_, n)| n)
        .sum();
    let rates = Rates {
        answer: ratio(stats.answered, stats.attempts),
        connect: ratio(stats.connected, stats.answered),
        success: ratio(successes, stats.connected),
        abandonment: ratio(stats.abandoned, stats.answered_by_person),
    };
    let rate = state.api.cost_per_minute;
    let config = &campaign.config;
    Ok(Json(json!({
        "campaign": {"id": campaign.id, "name": config.name, "status": campaign.status, "status_reason": campaign.status_reason},
        "progress": progress(queue),
        "agent": snapshot.as_ref().map(|s| &s.agent),
        "live": snapshot.as_ref().map(|s| json!({
            "live_calls": s.live_calls,
            "dialing": s.dialing,
            "agent": s.agent,
            "dialed_since_start": s.dialed,
            "skipped": s.skipped,
            "bridged_calls": s.bridged_calls,
            "quality": s.pacing.as_ref().map(|p| &p.quality),
            "abandonment_ledger": s.pacing.as_ref().map(|p| p.abandonment),
            "calls": s.calls,
        })),
        "pacing": {
            "max_concurrent_calls": config.max_concurrent_calls,
            "max_calls_per_minute": config.max_calls_per_minute,
            "daily_cap": config.daily_cap,
            "attempts_last_minute": last_minute,
            "attempts_today": since_midnight,
            "live_calls": snapshot.as_ref().map(|s| s.live_calls),
            "mode": config.pacing.mode,
            "agent_sessions": config.agent_sessions(),
            "decision": snapshot.as_ref().and_then(|s| s.pacing.as_ref()).and_then(|p| p.decision),
        },
        "calls": {
            "attempts": stats.attempts,
            "ended": stats.ended,
            "answered": stats.answered,
            "connected": stats.connected,
            "successful": successes,
            "abandoned": stats.abandoned,
            "outcomes": stats.outcomes,
            "results": stats.results,
        },
        "rates": rates,
        "cost": {
            "billed_minutes": stats.billed_minutes,
            "per_minute": rate,
            "total": (stats.billed_minutes as f64 * rate * 10_000.0).round() / 10_000.0,
        },
    })))
}

fn call_filter(params: &Params, limit: u32) -> Result<CallFilter, Problem> {
    let status = match params.get("status") {
        None => None,
        Some(s) => Some(
            AttemptStatus::ALL
                .into_iter()
                .find(|v| v.as_str() == s)
                .ok_or_else(|| {
                    Problem::bad_request(
                        "status",
                        format!(
                            "{s:?}: expected reserved, dialing, ringing, answered, bridged or ended"
                        ),
                    )
                })?,
        ),
    };
    if let Some(o) = params.get("outcome") {
        o.parse::<switchboard_engine::campaign::Outcome>()
            .map_err(|e| Problem::bad_request("outcome", e.to_string()))?;
    }
    Ok(CallFilter {
        status,
        outcome: params.get("outcome").map(str::to_owned),
        result: params.get("result").map(str::to_owned),
        since: params.time("since")?,
        until: params.time("until")?,
        before: params.cursor()?.map(AttemptId),
        limit: Some(limit),
    })
}

/// The campaign's calls, newest first, filtered by status, outcome, result and time.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/calls", tag = "campaigns",
    params(("id" = i64, Path, description = "Campaign id"),
           ("status" = Option<String>, Query, description = "reserved, dialing, ringing, answered, bridged or ended"),
           ("outcome" = Option<String>, Query, description = "interested, not_interested, callback, do_not_call, voicemail, wrong_number"),
           ("result" = Option<String>, Query, description = "completed, no_answer, busy, failed, ..."),
           ("since" = Option<String>, Query, description = "Reserved at or after (RFC 3339 or YYYY-MM-DD)"),
           ("until" = Option<String>, Query, description = "Reserved before"),
           ("limit" = Option<u32>, Query, description = "1 to 1000 (default 50)"),
           ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, description = "{items, next_cursor}", body = Object), (status = 404, description = "No such campaign")))]
pub async fn campaign_calls(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    params: Params,
) -> Result<Json<Page<AttemptRecord>>, Problem> {
    let id: CampaignId = path_id(&id, "id")?;
    let limit = params.limit(50, 1000)?;
    let filter = call_filter(&params, limit)?;
    state.store.campaign(auth.tenant, id).await?;
    let items = state.store.campaign_calls(auth.tenant, id, &filter).await?;
    Ok(Json(Page::new(items, limit, |a| a.id.0)))
}

const CSV_COLUMNS: [&str; 16] = [
    "call_id",
    "contact_id",
    "attempt_no",
    "phone",
    "status",
    "result",
    "outcome",
    "reserved_at",
    "dialed_at",
    "answered_at",
    "ended_at",
    "talk_seconds",
    "notes",
    "carrier_call_id",
    "error_code",
    "sip_response_code",
];

fn csv_record(a: &AttemptRecord) -> Vec<String> {
    let time = |t: Option<chrono::DateTime<Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
    let talk = match (a.answered_at, a.ended_at) {
        (Some(s), Some(e)) => ((e - s).num_milliseconds().max(0) / 1000).to_string(),
        _ => String::new(),
    };
    vec![
        a.id.to_string(),
        a.contact_id.to_string(),
        a.attempt_no.to_string(),
        a.phone.clone(),
        a.status.as_str().to_owned(),
        a.result.clone().unwrap_or_default(),
        a.outcome.clone().unwrap_or_default(),
        a.reserved_at.to_rfc3339(),
        time(a.dialed_at),
        time(a.answered_at),
        time(a.ended_at),
        talk,
        a.detail
            .get("notes")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        a.carrier_call_id.clone().unwrap_or_default(),
        a.error_code.map(|c| c.to_string()).unwrap_or_default(),
        a.sip_response_code
            .map(|c| c.to_string())
            .unwrap_or_default(),
    ]
}

/// The campaign's calls as CSV (same filters as the JSON list, every page).
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/calls.csv", tag = "campaigns",
    params(("id" = i64, Path, description = "Campaign id")),
    responses((status = 200, description = "text/csv, one row per call", content_type = "text/csv", body = String),
              (status = 404, description = "No such campaign")))]
pub async fn campaign_calls_csv(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, Problem> {
    let id: CampaignId = path_id(&id, "id")?;
    let mut filter = call_filter(&params, 1000)?;
    state.store.campaign(auth.tenant, id).await?;
    let mut out = csv::Writer::from_writer(Vec::new());
    let io = |e: csv::Error| {
        Problem::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "export failed",
            e.to_string(),
        )
    };
    out.write_record(CSV_COLUMNS).map_err(io)?;
    loop {
        let page = state.store.campaign_calls(auth.tenant, id, &filter).await?;
        let Some(last) = page.last() else { break };
        filter.before = Some(last.id);
        for a in &page {
            let row = csv_record(a);
            out.write_record(
                row.iter()
                    .map(|c| switchboard_engine::export::neutralize(c).into_owned()),
            )
            .map_err(io)?;
        }
    }
    let bytes = out.into_inner().map_err(|e| io(e.into_error().into()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"campaign-{id}-calls.csv\""),
            ),
        ],
        bytes,
    )
        .into_response())
}
