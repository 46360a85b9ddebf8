//! The campaign supervisor: one per running campaign. It materializes the audience into
//! the campaign's queue, and on every tick opens as many new lines as the limits allow:
//! each due contact is checked (opt-out, do-not-call list, consent, calling window in the
//! callee's local time) before its attempt is reserved durably and a call actor dials it.
//! When a call actor ends, the retry policy decides the contact's next attempt and the
//! quality monitor judges the recent attempts: a success or connect rate below its
//! threshold with confidence, or a streak of carrier or agent failures, pauses the campaign
//! with the figures. The
//! campaign completes when nobody is left to call or its end time passes.
//!
//! A paused campaign opens no new lines and lets live calls finish; a stopped one does the
//! same and ends when they have.

use crate::call::{CallActor, CallArgs, actor_name};
use crate::outcome::{call_result, history};
use crate::runtime::Services;
use chrono::{Duration as TimeDelta, Timelike};
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use switchboard_engine::campaign::{CampaignStatus, Cause};
use switchboard_engine::quality::{
    AttemptFailure, PauseReason, QualityMonitor, QualitySample, QualityVerdict,
};
use switchboard_engine::retry::{NextStep, next_step};
use switchboard_engine::store::{Audience, CampaignRecord, NewAttempt, QueueEntry};
use switchboard_engine::window::{CallingWindow, zones_for};
use switchboard_engine::{AttemptId, CampaignId, ContactId, TenantId};

/// Messages to a campaign supervisor.
#[derive(Debug)]
pub enum CampaignMsg {
    /// Open new lines if the limits allow.
    Tick,
    /// The campaign was paused: no new lines.
    Paused,
    /// The campaign was resumed.
    Resumed,
    /// The campaign was stopped: no new lines, end when live calls are over.
    Stopped,
    /// A snapshot of the supervisor, for the admin view.
    Snapshot(RpcReplyPort<CampaignSnapshot>),
}

/// What a campaign supervisor shows.
#[derive(Debug, Clone, Serialize)]
pub struct CampaignSnapshot {
    /// Campaign.
    pub campaign_id: CampaignId,
    /// Live calls.
    pub live_calls: usize,
    /// Whether new lines are opened.
    pub dialing: bool,
    /// Attempts reserved since the supervisor started.
    pub dialed: u64,
    /// Contacts skipped at dial time, by reason (dnc, opted_out, no_consent, window).
    pub skipped: HashMap<String, u64>,
    /// The quality monitor's latest figures.
    pub quality: serde_json::Value,
}

/// The campaign supervisor.
pub struct CampaignSupervisor;

/// What a campaign supervisor starts with.
pub struct CampaignArgs {
    /// Shared runtime services.
    pub services: Arc<Services>,
    /// The campaign, `active` or `paused`.
    pub campaign: CampaignRecord,
}

/// A campaign supervisor's state.
pub struct CampaignState {
    services: Arc<Services>,
    tenant: TenantId,
    campaign: CampaignRecord,
    window: CallingWindow,
    live: HashMap<ActorId, (AttemptId, ContactId)>,
    dialing: bool,
    stopping: bool,
    dialed: u64,
    skipped: HashMap<String, u64>,
    quality: QualityMonitor,
    quality_figures: serde_json::Value,
}

/// The registry name of a campaign's supervisor.
pub fn actor_name_for(campaign: CampaignId) -> String {
    format!("campaign:{campaign}")
}

impl Actor for CampaignSupervisor {
    type Msg = CampaignMsg;
    type State = CampaignState;
    type Arguments = CampaignArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<CampaignMsg>,
        args: CampaignArgs,
    ) -> Result<CampaignState, ActorProcessingErr> {
        Ok(CampaignState {
            window: CallingWindow::for_campaign(&args.campaign.config),
            quality: QualityMonitor::for_thresholds(&args.campaign.config.quality),
            tenant: args.campaign.tenant_id,
            dialing: args.campaign.status == CampaignStatus::Active,
            campaign: args.campaign,
            services: args.services,
            live: HashMap::new(),
            stopping: false,
            dialed: 0,
            skipped: HashMap::new(),
            quality_figures: serde_json::Value::Null,
        })
    }

    #[tracing::instrument(name = "campaign", skip_all, fields(campaign_id = %state.campaign.id))]
    async fn post_start(
        &self,
        myself: ActorRef<CampaignMsg>,
        state: &mut CampaignState,
    ) -> Result<(), ActorProcessingErr> {
        // The audience is materialized into the queue; doing it again on a restart only
        // adds contacts that match now (queued contacts are left as they are).
        let audience = Audience::from_spec(&state.campaign.config.audience)?;
        let mut after = None;
        loop {
            let page = state
                .services
                .store
                .audience_page(state.tenant, &audience, after, 5000)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            let ids: Vec<ContactId> = page.iter().map(|c| c.id).collect();
            state
                .services
                .store
                .enqueue_contacts(state.campaign.id, &ids, state.campaign.config.priority)
                .await?;
        }
        reconcile(&myself, state).await?;
        myself.send_interval(state.services.settings.tick, || CampaignMsg::Tick);
        Ok(())
    }

    #[tracing::instrument(name = "campaign", skip_all, fields(campaign_id = %state.campaign.id))]
    async fn handle(
        &self,
        myself: ActorRef<CampaignMsg>,
        msg: CampaignMsg,
        state: &mut CampaignState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            CampaignMsg::Tick => tick(&myself, state).await?,
            CampaignMsg::Paused => state.dialing = false,
            CampaignMsg::Resumed => state.dialing = !state.stopping,
            CampaignMsg::Stopped => {
                state.dialing = false;
                state.stopping = true;
                if state.live.is_empty() {
                    myself.stop(Some("stopped".into()));
                }
            }
            CampaignMsg::Snapshot(reply) => {
                let _ = reply.send(CampaignSnapshot {
                    campaign_id: state.campaign.id,
                    live_calls: state.live.len(),
                    dialing: state.dialing,
                    dialed: state.dialed,
                    skipped: state.skipped.clone(),
                    quality: state.quality_figures.clone(),
                });
            }
        }
        Ok(())
    }

    #[tracing::instrument(name = "campaign", skip_all, fields(campaign_id = %state.campaign.id))]
    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<CampaignMsg>,
        event: SupervisionEvent,
        state: &mut CampaignState,
    ) -> Result<(), ActorProcessingErr> {
        // A call ending (normally or not) never ends its campaign: record, retry, go on.
        let (cell, failure) = match event {
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                (cell, reason.filter(|r| r.starts_with("dial failed")))
            }
            SupervisionEvent::ActorFailed(cell, error) => {
                (cell, Some(format!("call actor failed: {error}")))
            }
            _ => return Ok(()),
        };
        let Some((attempt, contact)) = state.live.remove(&cell.get_id()) else {
            return Ok(());
        };
        call_finished(state, attempt, contact, failure).await?;
        if state.stopping && state.live.is_empty() {
            myself.stop(Some("stopped".into()));
        }
        Ok(())
    }
}

/// After a restart: every attempt of this campaign that a dead process left unfinished is
/// settled with the carrier before anything new is dialed. A call the carrier ended is
/// closed with its result and goes through the retry policy; a live call is followed by a
/// call actor that does not dial; an attempt the carrier never confirmed (the process died
/// between reserving and recording the call) is closed as interrupted and retried only
/// after the policy's delay, as a new attempt. No attempt is ever dialed twice.
async fn reconcile(
    myself: &ActorRef<CampaignMsg>,
    state: &mut CampaignState,
) -> Result<(), ActorProcessingErr> {
    let store = state.services.store.clone();
    let unfinished: Vec<_> = store
        .unfinished_attempts()
        .await?
        .into_iter()
        .filter(|a| a.campaign_id == state.campaign.id)
        .collect();
    for attempt in unfinished {
        let known = match &attempt.carrier_call_id {
            Some(sid) => state.services.dialer.fetch(sid).await.ok(),
            None => None,
        };
        let live = match &known {
            Some(call) => {
                let status = call
                    .status
                    .clone()
                    .unwrap_or(switchboard_media::CallStatus::Unknown(String::new()));
                let (next, result) = crate::dial::attempt_status(&status);
                if next == Some(switchboard_engine::store::AttemptStatus::Ended) {
                    let update = switchboard_engine::store::CarrierUpdate {
                        carrier_call_id: Some(call.sid.clone()),
                        status: next,
                        result: result.map(str::to_owned),
                        answered_by: call.answered_by.as_ref().map(|a| a.as_str().to_owned()),
                        sequence: None,
                        carrier_status: format!("reconciled.{}", status.as_str()),
                        at: state.services.clock.now(),
                    };
                    store.apply_carrier_update(attempt.id, &update).await?;
                    false
                } else {
                    true
                }
            }
            None if attempt.carrier_call_id.is_some() => true,
            None => false,
        };
        if live {
            tracing::info!(call_id = %attempt.id, "following a call placed before the restart");
            spawn_call(myself, state, attempt, true).await?;
        } else {
            let failure = attempt
                .carrier_call_id
                .is_none()
                .then(|| "interrupted before the carrier confirmed the call".to_owned());
            call_finished(state, attempt.id, attempt.contact_id, failure).await?;
        }
    }
    Ok(())
}

/// Starts the call actor of an attempt (`follow`: the call was placed before a restart and
/// must not be dialed again) and counts it as live.
async fn spawn_call(
    myself: &ActorRef<CampaignMsg>,
    state: &mut CampaignState,
    attempt: switchboard_engine::store::AttemptRecord,
    follow: bool,
) -> Result<(), ActorProcessingErr> {
    let (id, contact) = (attempt.id, attempt.contact_id);
    let args = CallArgs {
        services: state.services.clone(),
        attempt,
        follow,
    };
    let (call, _) =
        Actor::spawn_linked(Some(actor_name(id)), CallActor, args, myself.get_cell()).await?;
    state.live.insert(call.get_id(), (id, contact));
    Ok(())
}

/// Decides what follows a finished call.
async fn call_finished(
    state: &mut CampaignState,
    attempt_id: AttemptId,
    contact: ContactId,
    failure: Option<String>,
) -> Result<(), ActorProcessingErr> {
    let store = &state.services.store;
    let now = state.services.clock.now();
    let mut attempt = store.attempt(attempt_id).await?;
    if attempt.status != switchboard_engine::store::AttemptStatus::Ended {
        // The actor died with its call unfinished: close the record with the reason.
        let mut detail = serde_json::Map::new();
        detail.insert(
            "failure".into(),
            serde_json::json!(failure.clone().unwrap_or_else(|| "call actor ended".into())),
        );
        attempt = store
            .update_attempt(
                attempt_id,
                &switchboard_engine::store::AttemptUpdate {
                    status: Some(switchboard_engine::store::AttemptStatus::Ended),
                    result: Some("failed".into()),
                    ended_at: Some(now),
                    detail: Some(detail),
                    ..Default::default()
                },
            )
            .await?;
    }
    let result = call_result(&attempt);
    crate::metrics::call_finished(&attempt);
    state
        .quality
        .record(quality_sample(&attempt, failure.as_deref()));
    let prior = history(
        &store.contact_attempts(state.campaign.id, contact).await?,
        attempt_id,
    );
    let callback_at = attempt
        .detail
        .get("callback_at")
        .and_then(|v| v.as_str())
        .and_then(|s| s.parse().ok());
    let next = next_step(
        &result,
        &prior,
        &state.campaign.config.retry,
        now,
        callback_at,
    );
    let label = attempt
        .outcome
        .clone()
        .or(attempt.result.clone())
        .unwrap_or_else(|| "ended".into());
    match next {
        NextStep::RetryAt(at, _) => {
            store
                .requeue_contact(state.campaign.id, contact, Some(at), &label)
                .await?
        }
        NextStep::Done(_) => {
            store
                .requeue_contact(state.campaign.id, contact, None, &label)
                .await?
        }
    }
    match state.quality.verdict(
        &state.campaign.config.quality,
        &state.campaign.config.success,
    ) {
        QualityVerdict::Healthy(figures) => state.quality_figures = figures,
        QualityVerdict::Pause { reason, figures } => {
            state.quality_figures = figures.clone();
            if state.dialing {
                // Quality is the pacer's call; failure streaks are the system's.
                let cause = if reason == PauseReason::Quality {
                    Cause::Pacing
                } else {
                    Cause::System
                };
                tracing::warn!(campaign_id = %state.campaign.id, reason = reason.as_str(), %figures, "pausing the campaign");
                store
                    .transition_campaign(
                        state.tenant,
                        state.campaign.id,
                        CampaignStatus::Paused,
                        cause,
                        reason.as_str(),
                        Some(figures),
                    )
                    .await?;
                state.dialing = false;
                crate::metrics::auto_paused(state.campaign.id, reason.as_str());
            }
        }
    }
    Ok(())
}

/// A finished attempt as the quality monitor sees it.
fn quality_sample(
    attempt: &switchboard_engine::store::AttemptRecord,
    failure: Option<&str>,
) -> QualitySample {
    let answered_by = attempt
        .detail
        .get("answered_by")
        .and_then(|v| v.as_str())
        .unwrap_or("human");
    let human = attempt.answered_at.is_some()
        && !(answered_by.starts_with("machine") || answered_by == "fax");
    let outcome = attempt.outcome.as_deref().and_then(|o| o.parse().ok());
    let relay_end = attempt
        .detail
        .get("relay")
        .and_then(|r| r.get("end"))
        .and_then(|e| e.get("by"))
        .and_then(|b| b.as_str());
    let failure = if let Some(reason) = failure {
        Some(AttemptFailure::Carrier(reason.to_owned()))
    } else if let Some(error) = attempt.detail.get("dial_error").and_then(|e| e.as_str()) {
        Some(AttemptFailure::Carrier(error.to_owned()))
    } else if attempt.result.as_deref() == Some("failed") && attempt.answered_at.is_none() {
        Some(AttemptFailure::Carrier(
            "the call failed before an answer".to_owned(),
        ))
    } else if matches!(relay_end, Some("agent_error" | "agent_silent")) {
        Some(AttemptFailure::Agent(format!(
            "the agent side ended with {}",
            relay_end.unwrap_or_default()
        )))
    } else if human && outcome.is_none() && !attempt.detail.contains_key("relay") {
        Some(AttemptFailure::Agent(
            "the agent was never connected".to_owned(),
        ))
    } else {
        None
    };
    QualitySample {
        answered_by_human: human,
        outcome,
        failure,
    }
}

/// Opens new lines within the limits.
async fn tick(
    myself: &ActorRef<CampaignMsg>,
    state: &mut CampaignState,
) -> Result<(), ActorProcessingErr> {
    let now = state.services.clock.now();
    let config = state.campaign.config.clone();
    let store = state.services.store.clone();
    if !state.dialing {
        return Ok(());
    }
    if config.ends_at.is_some_and(|end| now >= end) {
        return complete(myself, state, "the end time passed").await;
    }
    let mut lines = (config.max_concurrent_calls as usize).saturating_sub(state.live.len()) as u64;
    if let Some(per_minute) = config.max_calls_per_minute {
        let last_minute = store
            .attempts_since(state.campaign.id, now - TimeDelta::minutes(1))
            .await?;
        lines = lines.min(u64::from(per_minute).saturating_sub(last_minute));
    }
    if let Some(cap) = config.daily_cap {
        let midnight = now
            .with_hour(0)
            .and_then(|t| t.with_minute(0))
            .and_then(|t| t.with_second(0))
            .unwrap_or(now);
        let today = store.attempts_since(state.campaign.id, midnight).await?;
        lines = lines.min(u64::from(cap).saturating_sub(today));
    }
    if lines > 0 {
        let due = store
            .due_contacts(state.campaign.id, now, (lines * 3).min(500) as u32)
            .await?;
        for entry in due {
            if lines == 0 {
                break;
            }
            if dial_if_allowed(myself, state, &entry).await? {
                lines -= 1;
            }
        }
    }
    if state.live.is_empty() {
        let counts = store.queue_counts(state.campaign.id).await?;
        if counts.queued == 0 && counts.in_progress == 0 {
            return complete(myself, state, "every contact is done").await;
        }
    }
    Ok(())
}

/// Checks one due contact and dials it if nothing forbids it. Returns whether it dialed.
async fn dial_if_allowed(
    myself: &ActorRef<CampaignMsg>,
    state: &mut CampaignState,
    entry: &QueueEntry,
) -> Result<bool, ActorProcessingErr> {
    let store = state.services.store.clone();
    let now = state.services.clock.now();
    let campaign = state.campaign.id;
    let contact = store.contact(state.tenant, entry.contact_id).await?;
    let refusal = if contact.opted_out_at.is_some() {
        Some("opted_out")
    } else if store
        .dnc_check(state.tenant, &contact.phone)
        .await?
        .is_some()
    {
        Some("dnc")
    } else if state.campaign.config.compliance.consent_required && contact.consent_at.is_none() {
        Some("no_consent")
    } else {
        None
    };
    if let Some(reason) = refusal {
        *state.skipped.entry(reason.to_owned()).or_default() += 1;
        store
            .requeue_contact(campaign, contact.id, None, reason)
            .await?;
        return Ok(false);
    }
    let zones = zones_for(&contact, &state.campaign.config.timezone);
    if !state.window.is_open(&zones, now) {
        *state.skipped.entry("window".to_owned()).or_default() += 1;
        let next = state.window.next_open(&zones, now);
        let label = if next.is_some() {
            "outside_window"
        } else {
            "window_never_opens"
        };
        store
            .requeue_contact(campaign, contact.id, next, label)
            .await?;
        return Ok(false);
    }
    let reserved = store
        .reserve_attempt(&NewAttempt {
            tenant_id: state.tenant,
            campaign_id: campaign,
            contact_id: contact.id,
            phone: contact.phone.clone(),
            attempts_seen: entry.attempts,
        })
        .await;
    let attempt = match reserved {
        Ok(a) => a,
        Err(switchboard_engine::Error::Conflict(_)) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    spawn_call(myself, state, attempt, false).await?;
    state.dialed += 1;
    crate::metrics::call_dialed(campaign);
    Ok(true)
}

async fn complete(
    myself: &ActorRef<CampaignMsg>,
    state: &mut CampaignState,
    reason: &str,
) -> Result<(), ActorProcessingErr> {
    state.dialing = false;
    let current = state
        .services
        .store
        .campaign(state.tenant, state.campaign.id)
        .await?;
    if matches!(
        current.status,
        CampaignStatus::Active | CampaignStatus::Paused
    ) {
        state
            .services
            .store
            .transition_campaign(
                state.tenant,
                state.campaign.id,
                CampaignStatus::Completed,
                Cause::Scheduler,
                reason,
                None,
            )
            .await?;
    }
    state.stopping = true;
    if state.live.is_empty() {
        myself.stop(Some("completed".into()));
    }
    Ok(())
}
