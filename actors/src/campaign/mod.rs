//! The campaign supervisor: one per running campaign. It materializes the audience into
//! the campaign's queue, and on every tick asks its pacing actor how many new lines to
//! open (within the agent capacity, the campaign's limits and the carrier account's
//! calls per second): each due contact is checked (opt-out, do-not-call list, consent,
//! calling window in the callee's local time) before its attempt is reserved durably and
//! a call actor dials it. Call actors report their ring ends, which the pacing actor
//! learns from. When a call actor ends, the retry policy decides the contact's next
//! attempt and the pacing actor's quality monitor judges the recent attempts: a success or
//! connect rate below its threshold with confidence, or a streak of carrier or agent
//! failures, pauses the campaign with the figures. The campaign completes when nobody is
//! left to call or its end time passes.
//!
//! A paused campaign opens no new lines and lets live calls finish; a stopped one does the
//! same and ends when they have.
//!
//! Lease: the supervisor runs only while its process holds the campaign's lease (see
//! [`crate::lease`]). It renews it on a heartbeat, dials only while the lease is surely
//! its own, learns from each renewal the status stored by whichever process took a
//! control request (and any edit), ends at once when another process took the lease
//! over, and releases it when it ends.
//!
//! Agent gate: no line is opened while the campaign's agent cannot be reached (probed
//! before the first dial and again when a call could not reach it; see
//! [`crate::agent_reach`]); the campaign stays `active` and says why in its snapshot.
//!
//! Supervision: a call actor that ends or fails never ends its campaign (its attempt is
//! closed with the reason and the retry policy applied); a pacing actor that fails ends
//! the campaign supervisor, which the engine supervisor restarts from the database.

mod finish;
mod lease;
mod reach;
mod tick;

use crate::agent_reach::{AgentGate, AgentReach};
use crate::call::{CallActor, CallArgs, actor_name};
use crate::lease::LeaseHold;
use crate::pacing::{PacingActor, PacingArgs, PacingMsg, PacingSnapshot, ledger_since};
use crate::runtime::Services;
use chrono::{DateTime, Utc};
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use switchboard_engine::campaign::{CampaignStatus, Cause};
use switchboard_engine::pacing::RingEnd;
use switchboard_engine::quality::PauseReason;
use switchboard_engine::store::{Audience, CampaignRecord};
use switchboard_engine::window::CallingWindow;
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
    /// A call actor's ring phase ended (sent by the call actor).
    Rang(ActorId, RingEnd),
    /// A call told as answered by a person was answered by a machine (asynchronous
    /// machine detection came after the ring end): this ring end, as told.
    Reclassified(RingEnd),
    /// The pacing actor judged the campaign's quality too low: pause it, with the figures.
    AutoPause(PauseReason, serde_json::Value),
    /// A snapshot of the supervisor, for the admin view.
    Snapshot(RpcReplyPort<CampaignSnapshot>),
    /// The campaign's configuration was edited: read it again and pace by it from the
    /// next tick (limits, caps, pacing, quality thresholds, abandonment, end time).
    Reconfigure,
    /// Renew the campaign's lease and catch up with its stored status.
    Heartbeat,
    /// Probe the agent (unless a probe is running).
    ProbeAgent,
    /// A probe of the agent answered (`Err`: why it is unreachable).
    AgentProbed(Result<(), String>),
    /// A call could not reach the agent (sent by the media path): no new lines until a
    /// probe reaches it.
    AgentUnreachable(String),
}

/// One live call as its supervisor shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LiveCall {
    /// The attempt.
    pub attempt_id: AttemptId,
    /// The contact.
    pub contact_id: ContactId,
    /// When its call actor started.
    pub started_at: DateTime<Utc>,
    /// When a person or machine answered, once known to pacing.
    pub answered_at: Option<DateTime<Utc>>,
}

/// What a campaign supervisor shows.
#[derive(Debug, Clone, Serialize)]
pub struct CampaignSnapshot {
    /// Campaign.
    pub campaign_id: CampaignId,
    /// Tenant.
    pub tenant_id: TenantId,
    /// Live calls.
    pub live_calls: usize,
    /// Live calls answered and holding an agent session.
    pub bridged_calls: usize,
    /// Whether new lines are opened.
    pub dialing: bool,
    /// Attempts reserved since the supervisor started.
    pub dialed: u64,
    /// Contacts skipped at dial time, by reason (dnc, opted_out, no_consent, window).
    pub skipped: HashMap<String, u64>,
    /// Pacing decision, quality figures and abandonment ledger (when the pacing actor
    /// answered in time).
    pub pacing: Option<PacingSnapshot>,
    /// Every live call.
    pub calls: Vec<LiveCall>,
    /// The process running this supervisor: the instance id its campaign lease names.
    pub owner: String,
    /// When the lease expires unless renewed again (the database's clock), once renewed.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Whether the agent can be reached; no new lines while it cannot.
    pub agent: AgentReach,
}

/// The campaign supervisor.
pub struct CampaignSupervisor;

/// What a campaign supervisor starts with.
pub struct CampaignArgs {
    /// Shared runtime services.
    pub services: Arc<Services>,
    /// The campaign, `active` or `paused`.
    pub campaign: CampaignRecord,
    /// The campaign's lease, held by this process.
    pub lease: LeaseHold,
}

/// A campaign supervisor's state.
pub struct CampaignState {
    services: Arc<Services>,
    tenant: TenantId,
    campaign: CampaignRecord,
    /// The configuration every call actor reads (abandonment, identification message).
    call_config: Arc<switchboard_engine::campaign::CampaignConfig>,
    window: CallingWindow,
    live: HashMap<ActorId, LiveCall>,
    /// Call actors restarted per attempt (a failed actor whose call is live at the carrier).
    call_restarts: HashMap<AttemptId, u32>,
    pacer: Option<ActorRef<PacingMsg>>,
    dialing: bool,
    stopping: bool,
    dialed: u64,
    skipped: HashMap<String, u64>,
    /// A SIP campaign without LiveKit was logged (once).
    sip_unavailable_told: bool,
    lease: LeaseHold,
    /// The campaign's last stored change this supervisor has caught up with.
    seen_update: DateTime<Utc>,
    /// The agent's reachability: the dialing gate.
    agent: AgentGate,
}

/// The registry name of a campaign's supervisor.
pub fn actor_name_for(campaign: CampaignId) -> String {
    format!("campaign:{campaign}")
}

/// The registry name of a campaign's pacing actor.
pub fn pacing_name_for(campaign: CampaignId) -> String {
    format!("pacing:{campaign}")
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
        let agent = AgentGate::new(
            args.services.settings.agent_probe,
            args.services.clock.now(),
        );
        Ok(CampaignState {
            agent,
            window: CallingWindow::for_campaign(&args.campaign.config),
            tenant: args.campaign.tenant_id,
            dialing: args.campaign.status == CampaignStatus::Active,
            call_config: Arc::new(args.campaign.config.clone()),
            seen_update: args.campaign.updated_at,
            campaign: args.campaign,
            services: args.services,
            live: HashMap::new(),
            call_restarts: HashMap::new(),
            pacer: None,
            stopping: false,
            dialed: 0,
            skipped: HashMap::new(),
            sip_unavailable_told: false,
            lease: args.lease,
        })
    }

    #[tracing::instrument(name = "campaign", skip_all, fields(campaign_id = %state.campaign.id))]
    async fn post_start(
        &self,
        myself: ActorRef<CampaignMsg>,
        state: &mut CampaignState,
    ) -> Result<(), ActorProcessingErr> {
        let now = state.services.clock.now();
        let history = state
            .services
            .store
            .abandonment_history(state.campaign.id, ledger_since(now))
            .await?;
        let args = PacingArgs {
            config: state.campaign.config.clone(),
            history,
        };
        let name = pacing_name_for(state.campaign.id);
        let (pacer, _) =
            Actor::spawn_linked(Some(name), PacingActor, args, myself.get_cell()).await?;
        state.pacer = Some(pacer);
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
        // Still the owner (materializing may take a while)? Then settle what a previous
        // owner left in flight before anything is dialed.
        if !lease::heartbeat(&myself, state).await? {
            return Ok(());
        }
        finish::reconcile(&myself, state).await?;
        // No dial before the agent answered a probe.
        reach::probe(&myself, state);
        let settings = &state.services.settings;
        myself.send_interval(settings.heartbeat(), || CampaignMsg::Heartbeat);
        myself.send_interval(settings.tick, || CampaignMsg::Tick);
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<CampaignMsg>,
        state: &mut CampaignState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(pacer) = state.pacer.take() {
            pacer.stop(Some("campaign supervisor stopped".into()));
        }
        lease::release(state).await;
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
            CampaignMsg::Tick => tick::tick(&myself, state).await?,
            CampaignMsg::Paused => state.dialing = false,
            CampaignMsg::Resumed => state.dialing = !state.stopping,
            CampaignMsg::Stopped => wind_down(&myself, state),
            CampaignMsg::Heartbeat => {
                lease::heartbeat(&myself, state).await?;
            }
            CampaignMsg::Rang(call, ring) => {
                if let Some(live) = state.live.get_mut(&call)
                    && ring.answered.is_some()
                {
                    live.answered_at = Some(ring.at);
                }
                if let Some(pacer) = &state.pacer {
                    pacer.cast(PacingMsg::Ring(ring))?;
                }
            }
            CampaignMsg::Reclassified(ring) => {
                if let Some(pacer) = &state.pacer {
                    pacer.cast(PacingMsg::Reclassified(ring))?;
                }
            }
            CampaignMsg::AutoPause(reason, figures) => auto_pause(state, reason, figures).await?,
            CampaignMsg::Snapshot(reply) => {
                let _ = reply.send(snapshot(state).await);
            }
            CampaignMsg::Reconfigure => {
                let agent = state.campaign.config.agent.clone();
                reconfigure(state).await?;
                if state.campaign.config.agent != agent {
                    state.agent.reset(state.services.clock.now());
                    reach::probe(&myself, state);
                }
            }
            CampaignMsg::ProbeAgent => reach::probe(&myself, state),
            CampaignMsg::AgentProbed(result) => reach::probed(&myself, state, result),
            CampaignMsg::AgentUnreachable(reason) => reach::call_failed(&myself, state, reason),
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
        let (cell, failure, failed) = match event {
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                (cell, reason.filter(|r| r.starts_with("dial failed")), false)
            }
            SupervisionEvent::ActorFailed(cell, error) => {
                (cell, Some(format!("call actor failed: {error}")), true)
            }
            _ => return Ok(()),
        };
        if state
            .pacer
            .as_ref()
            .is_some_and(|p| p.get_id() == cell.get_id())
        {
            // Pacing is the campaign's judgement: without it, start over from the database.
            state.pacer = None;
            return Err(format!(
                "the pacing actor ended: {}",
                failure.unwrap_or_else(|| "stopped".into())
            )
            .into());
        }
        let Some(live) = state.live.remove(&cell.get_id()) else {
            return Ok(());
        };
        if failed
            && finish::take_over(
                &myself,
                state,
                &live,
                failure.as_deref().unwrap_or_default(),
            )
            .await?
        {
            return Ok(());
        }
        state.call_restarts.remove(&live.attempt_id);
        finish::call_finished(state, live.attempt_id, live.contact_id, failure).await?;
        if state.stopping && state.live.is_empty() {
            myself.stop(Some("stopped".into()));
        }
        Ok(())
    }
}

/// The supervisor's snapshot, with its pacing actor's (asked with a timeout).
async fn snapshot(state: &CampaignState) -> CampaignSnapshot {
    let now = state.services.clock.now();
    let pacing = match &state.pacer {
        Some(pacer) => ractor::call_t!(pacer, PacingMsg::Snapshot, 1000, now).ok(),
        None => None,
    };
    let mut calls: Vec<LiveCall> = state.live.values().cloned().collect();
    calls.sort_by_key(|c| c.attempt_id);
    CampaignSnapshot {
        campaign_id: state.campaign.id,
        tenant_id: state.tenant,
        live_calls: state.live.len(),
        bridged_calls: calls.iter().filter(|c| c.answered_at.is_some()).count(),
        dialing: state.dialing,
        dialed: state.dialed,
        skipped: state.skipped.clone(),
        pacing,
        calls,
        owner: state.lease.owner.clone(),
        lease_expires_at: state.lease.expires_at(),
        agent: state.agent.reach().clone(),
    }
}

/// No new lines; the supervisor ends once its live calls are over (a stopped campaign).
fn wind_down(myself: &ActorRef<CampaignMsg>, state: &mut CampaignState) {
    state.dialing = false;
    state.stopping = true;
    if state.live.is_empty() {
        myself.stop(Some("stopped".into()));
    }
}

/// Pauses a dialing campaign on its pacing actor's request, with the figures: cause
/// `pacing` for quality, `system` for failure streaks.
async fn auto_pause(
    state: &mut CampaignState,
    reason: PauseReason,
    figures: serde_json::Value,
) -> Result<(), ActorProcessingErr> {
    if !state.dialing {
        return Ok(());
    }
    let cause = if reason == PauseReason::Quality {
        Cause::Pacing
    } else {
        Cause::System
    };
    tracing::warn!(campaign_id = %state.campaign.id, reason = reason.as_str(), %figures, "pausing the campaign");
    state
        .services
        .store
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
    Ok(())
}

/// Reads the campaign's configuration again and hands it to the pacing actor; live calls
/// keep the settings they started with.
async fn reconfigure(state: &mut CampaignState) -> Result<(), ActorProcessingErr> {
    let record = state
        .services
        .store
        .campaign(state.tenant, state.campaign.id)
        .await?;
    if record.config == state.campaign.config {
        return Ok(());
    }
    tracing::info!(campaign_id = %record.id, "configuration changed; pacing by the new one");
    state.window = CallingWindow::for_campaign(&record.config);
    if let Some(pacer) = &state.pacer {
        pacer.cast(PacingMsg::Configure(Box::new(record.config.clone())))?;
    }
    state.campaign = record;
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
    let live = LiveCall {
        attempt_id: attempt.id,
        contact_id: attempt.contact_id,
        started_at: state.services.clock.now(),
        answered_at: attempt.answered_at.map(|_| state.services.clock.now()),
    };
    let args = CallArgs {
        services: state.services.clone(),
        config: state.call_config.clone(),
        attempt,
        follow,
    };
    let (call, _) = Actor::spawn_linked(
        Some(actor_name(live.attempt_id)),
        CallActor,
        args,
        myself.get_cell(),
    )
    .await?;
    state.live.insert(call.get_id(), live);
    Ok(())
}
