//! What the runtime counts, through the `metrics` facade (the API's `/metrics` renders it).
//! Every metric is labelled with its campaign. The actors call these in one line each where
//! the thing happens.

use switchboard_engine::CampaignId;
use switchboard_engine::quality::PauseReason;
use switchboard_engine::store::AttemptRecord;

/// How long a person may wait, after answering, for the agent's first audio before the
/// call counts as abandoned.
pub const ABANDON_AFTER_MS: u64 = 2000;

/// An attempt was reserved and handed to a call actor to dial (the dial rate).
pub fn call_dialed(campaign: CampaignId) {
    metrics::counter!("switchboard_calls_originated_total", "campaign_id" => campaign.to_string())
        .increment(1);
}

/// The carrier refused a dial: `capacity` (429 or 5xx: the reservation is withdrawn and
/// the dialer backs off) or `rejected` (any other refusal: the attempt failed).
pub fn dial_refused(campaign: CampaignId, capacity: bool) {
    let kind = if capacity { "capacity" } else { "rejected" };
    metrics::counter!("switchboard_dials_refused_total", "campaign_id" => campaign.to_string(), "kind" => kind)
        .increment(1);
}

/// A campaign's agent gate opened (the agent answers) or closed (it cannot be reached).
pub fn agent_gate(campaign: CampaignId, reachable: bool) {
    let id = campaign.to_string();
    let change = if reachable { "opened" } else { "closed" };
    metrics::counter!("switchboard_campaign_agent_gate_total", "campaign_id" => id, "change" => change)
        .increment(1);
}

/// A call is over: logged and counted by result and outcome; a person who answered counts towards the
/// abandonment rate's denominator, and as abandoned when the agent was not heard within
/// [`ABANDON_AFTER_MS`].
pub fn call_finished(attempt: &AttemptRecord) {
    let campaign = attempt.campaign_id.to_string();
    let result = attempt.result.clone().unwrap_or_else(|| "unknown".into());
    let outcome = attempt.outcome.clone().unwrap_or_else(|| "none".into());
    tracing::info!(call_id = %attempt.id, %result, %outcome, "call finished");
    metrics::counter!("switchboard_calls_total", "campaign_id" => campaign.clone(), "result" => result, "outcome" => outcome)
        .increment(1);
    let answered_by = attempt
        .detail
        .get("answered_by")
        .and_then(|v| v.as_str())
        .unwrap_or("human");
    let human = attempt.answered_at.is_some()
        && !(answered_by.starts_with("machine") || answered_by == "fax");
    if !human {
        return;
    }
    metrics::counter!("switchboard_calls_answered_by_human_total", "campaign_id" => campaign.clone())
        .increment(1);
    // The call actor's verdict when it judged the call; otherwise what the relay saw, and
    // without a relay (an agent that never spoke) an agent's report shows that someone
    // was there.
    let verdict = attempt.detail.get("abandoned").and_then(|v| v.as_bool());
    let first_audio = attempt
        .detail
        .get("first_agent_audio_ms")
        .or_else(|| {
            attempt
                .detail
                .get("relay")
                .and_then(|r| r.get("first_agent_audio_ms"))
        })
        .and_then(|v| v.as_u64());
    let abandoned = match (verdict, first_audio) {
        (Some(verdict), _) => verdict,
        (None, Some(ms)) => ms > ABANDON_AFTER_MS,
        (None, None) => attempt.outcome.is_none(),
    };
    if abandoned {
        metrics::counter!("switchboard_calls_abandoned_total", "campaign_id" => campaign)
            .increment(1);
    }
}

/// A campaign paused itself (quality, failure streak).
pub fn auto_paused(campaign: CampaignId, reason: &str) {
    metrics::counter!("switchboard_campaign_auto_pauses_total", "campaign_id" => campaign.to_string(), "reason" => reason.to_owned())
        .increment(1);
}

/// This process acquired a campaign's lease and runs its supervisor (at start, on a start
/// or resume, or taking over from a process that stopped renewing it).
pub fn lease_acquired(campaign: CampaignId) {
    metrics::counter!("switchboard_campaign_leases_acquired_total", "campaign_id" => campaign.to_string())
        .increment(1);
    // The campaign's counters of rare events start at 0 here, so that a rate over them
    // (and an alert on it) has a series from the start.
    let id = campaign.to_string();
    metrics::counter!("switchboard_calls_originated_total", "campaign_id" => id.clone())
        .increment(0);
    for kind in ["capacity", "rejected"] {
        metrics::counter!("switchboard_dials_refused_total", "campaign_id" => id.clone(), "kind" => kind)
            .increment(0);
    }
    for reason in [
        PauseReason::Quality,
        PauseReason::CarrierFailures,
        PauseReason::AgentFailures,
    ] {
        metrics::counter!("switchboard_campaign_auto_pauses_total", "campaign_id" => id.clone(), "reason" => reason.as_str())
            .increment(0);
    }
    metrics::counter!("switchboard_calls_answered_by_human_total", "campaign_id" => id.clone())
        .increment(0);
    metrics::counter!("switchboard_calls_abandoned_total", "campaign_id" => id).increment(0);
}

/// A campaign supervisor found its lease taken over by another process and stopped.
pub fn lease_lost(campaign: CampaignId) {
    metrics::counter!("switchboard_campaign_leases_lost_total", "campaign_id" => campaign.to_string())
        .increment(1);
}
