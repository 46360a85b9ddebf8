//! The supervisor's side of the agent gate ([`crate::agent_reach`]): probes run in their
//! own task and answer by message (a LiveKit trunk or agent name the operator does not
//! allow the tenant fails the probe, with the reason, before LiveKit is asked anything); a failed probe asks for the next one with `send_after`;
//! every opening and closing of the gate is logged and counted
//! (`switchboard_campaign_agent_gate_total`).

use super::{CampaignMsg, CampaignState};
use crate::agent_reach::GateChange;
use ractor::ActorRef;

/// Starts a probe of the campaign's agent unless one is running.
pub(super) fn probe(myself: &ActorRef<CampaignMsg>, state: &mut CampaignState) {
    if !state.agent.start_probe() {
        return;
    }
    let prober = state.services.agents.clone();
    let store = state.services.store.clone();
    let tenant = state.tenant;
    let agent = state.campaign.config.agent.clone();
    let myself = myself.clone();
    tokio::spawn(async move {
        // An agent the operator does not allow this tenant is no agent to dial into.
        let result = match crate::call::livekit_refusal(&store, tenant, agent.as_ref()).await {
            Ok(None) => prober.probe(agent.as_ref()).await,
            Ok(Some(refusal)) => Err(refusal),
            Err(e) => Err(format!(
                "the tenant's livekit allowlist could not be read: {e}"
            )),
        };
        let _ = myself.cast(CampaignMsg::AgentProbed(result));
    });
}

/// A probe answered: open or keep the gate closed, and schedule the next probe.
pub(super) fn probed(
    myself: &ActorRef<CampaignMsg>,
    state: &mut CampaignState,
    result: Result<(), String>,
) {
    let now = state.services.clock.now();
    let (change, retry) = state.agent.probed(result, now);
    if let Some(change) = change {
        told(state, &change);
    }
    if let Some(delay) = retry {
        myself.send_after(delay, || CampaignMsg::ProbeAgent);
    }
}

/// A call could not reach the agent: close the gate and probe at once.
pub(super) fn call_failed(
    myself: &ActorRef<CampaignMsg>,
    state: &mut CampaignState,
    reason: String,
) {
    let now = state.services.clock.now();
    let (change, probe_now) = state.agent.call_failed(reason, now);
    if let Some(change) = change {
        told(state, &change);
    }
    if probe_now {
        probe(myself, state);
    }
}

fn told(state: &CampaignState, change: &GateChange) {
    let campaign = state.campaign.id;
    match change {
        GateChange::Opened => {
            tracing::info!(campaign_id = %campaign, "the agent answers; dialing");
        }
        GateChange::Closed(reason) => {
            tracing::warn!(campaign_id = %campaign, %reason, "the agent is unreachable; no new lines until it answers");
        }
    }
    crate::metrics::agent_gate(campaign, matches!(change, GateChange::Opened));
}
