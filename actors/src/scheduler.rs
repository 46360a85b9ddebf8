//! The engine supervisor's rounds: activating scheduled campaigns whose start time has
//! come (every tick), and claiming running campaigns nobody holds (every lease heartbeat,
//! see [`crate::lease`]). A database error skips a round; it never stops the runtime.

use crate::runtime::{EngineMsg, EngineState, spawn_campaign};
use ractor::ActorRef;
use switchboard_engine::campaign::{CampaignStatus, Cause};

/// A scheduled campaign whose start time has come becomes active (cause scheduler) and its
/// supervisor starts here, if this process gets its lease. One without a start time waits
/// for the user. Of several processes, one activates it (the others' transitions fail).
pub(crate) async fn activate_due(myself: &ActorRef<EngineMsg>, state: &mut EngineState) {
    let now = state.services.clock.now();
    let store = state.services.store.clone();
    let scheduled = match store
        .campaigns_in_status(&[CampaignStatus::Scheduled])
        .await
    {
        Ok(scheduled) => scheduled,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the scheduled campaigns");
            return;
        }
    };
    for record in scheduled {
        if record.config.starts_at.is_none_or(|at| at > now) {
            continue;
        }
        if crate::call::sip::is_sip(&record.config) && state.services.sip.is_none() {
            if state.sip_waiting.insert(record.id) {
                tracing::warn!(campaign_id = %record.id, "a scheduled sip campaign waits: livekit is not configured");
            }
            continue;
        }
        let activated = store
            .transition_campaign(
                record.tenant_id,
                record.id,
                CampaignStatus::Active,
                Cause::Scheduler,
                "the start time came",
                None,
            )
            .await;
        match activated {
            Ok(record) => {
                let id = record.id;
                if let Err(e) = spawn_campaign(myself, state, record).await {
                    // Active and unheld: the next claim round runs it.
                    tracing::warn!(campaign_id = %id, error = %e, "could not start an activated campaign");
                }
            }
            // Changed meanwhile (started by hand, stopped): nothing to do.
            Err(
                switchboard_engine::Error::Conflict(_) | switchboard_engine::Error::Transition(_),
            ) => {}
            // The tenant runs as many campaigns as it may: this one waits for a free slot.
            Err(e @ switchboard_engine::Error::LimitReached { .. }) => {
                tracing::debug!(campaign_id = %record.id, error = %e, "a scheduled campaign waits for the tenant's limit")
            }
            Err(e) => {
                tracing::warn!(campaign_id = %record.id, error = %e, "could not activate a scheduled campaign")
            }
        }
    }
}

/// Runs here every running campaign (`active` or `paused`) whose lease is free, expired or
/// already this process's and which has no supervisor here yet; tidies leases left by
/// campaigns that no longer run.
pub(crate) async fn claim(myself: &ActorRef<EngineMsg>, state: &mut EngineState) {
    let store = state.services.store.clone();
    let claimable = match store
        .claimable_campaigns(&state.services.settings.instance)
        .await
    {
        Ok(claimable) => claimable,
        Err(e) => {
            tracing::warn!(error = %e, "could not look for campaigns to run");
            return;
        }
    };
    for record in claimable {
        let id = record.id;
        if state.campaigns.contains_key(&id) {
            continue;
        }
        match spawn_campaign(myself, state, record).await {
            Ok(true) => tracing::info!(campaign_id = %id, "running the campaign here"),
            // Another process got there first.
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(campaign_id = %id, error = %e, "could not start the campaign's supervisor")
            }
        }
    }
    if let Err(e) = store.prune_campaign_leases().await {
        tracing::debug!(error = %e, "could not prune old campaign leases");
    }
}
