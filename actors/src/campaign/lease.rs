//! The campaign supervisor's side of its lease (see [`crate::lease`]): the heartbeat that
//! renews it and catches up with the campaign's stored status, and the release.

use super::{CampaignMsg, CampaignState, reconfigure, wind_down};
use ractor::{ActorProcessingErr, ActorRef};
use std::time::Instant;
use switchboard_engine::campaign::CampaignStatus;
use switchboard_engine::store::LeaseRenewal;

/// Renews the lease. Still ours: the supervisor follows the stored status (a pause,
/// resume or stop made through any process) and reads an edited configuration again.
/// Taken over: the supervisor stops at once and `false` is returned. The database did not
/// answer: it carries on, and stops dialing when its hold runs out ([`LeaseHold::may_dial`]).
///
/// [`LeaseHold::may_dial`]: crate::lease::LeaseHold::may_dial
pub(super) async fn heartbeat(
    myself: &ActorRef<CampaignMsg>,
    state: &mut CampaignState,
) -> Result<bool, ActorProcessingErr> {
    let id = state.campaign.id;
    let sent = Instant::now();
    let renewed = state
        .services
        .store
        .renew_campaign_lease(id, &state.lease.owner, state.lease.ttl())
        .await;
    match renewed {
        Ok(Some(renewal)) => {
            state.lease.renewed(sent, renewal.expires_at);
            follow_stored(myself, state, &renewal).await?;
            Ok(true)
        }
        Ok(None) => {
            tracing::warn!(campaign_id = %id, "another process took the campaign's lease over; no more dials here");
            crate::metrics::lease_lost(id);
            state.dialing = false;
            myself.stop(Some("lease lost".into()));
            Ok(false)
        }
        Err(e) => {
            let dialing = state.lease.may_dial(Instant::now());
            tracing::warn!(campaign_id = %id, error = %e, dialing, "could not renew the campaign's lease");
            Ok(true)
        }
    }
}

/// Catches up with the campaign as stored: its status, and its configuration if it changed.
async fn follow_stored(
    myself: &ActorRef<CampaignMsg>,
    state: &mut CampaignState,
    renewal: &LeaseRenewal,
) -> Result<(), ActorProcessingErr> {
    let id = state.campaign.id;
    match renewal.status {
        CampaignStatus::Active => {
            if !state.dialing && !state.stopping {
                tracing::info!(campaign_id = %id, "the campaign is active again; dialing");
                state.dialing = true;
            }
        }
        CampaignStatus::Paused => {
            if state.dialing {
                tracing::info!(campaign_id = %id, "the campaign was paused; no new dials");
                state.dialing = false;
            }
        }
        // Stopped, completed or failed (or, impossibly, back before running): no new dials,
        // and the supervisor ends when its live calls are over.
        _ => {
            if !state.stopping {
                tracing::info!(campaign_id = %id, status = renewal.status.as_str(), "the campaign no longer runs");
                wind_down(myself, state);
            }
        }
    }
    if renewal.updated_at != state.seen_update {
        state.seen_update = renewal.updated_at;
        if !state.stopping {
            reconfigure(state).await?;
        }
    }
    Ok(())
}

/// Releases the lease as the supervisor ends (nothing if it is no longer ours).
pub(super) async fn release(state: &CampaignState) {
    let (id, owner) = (state.campaign.id, &state.lease.owner);
    if let Err(e) = state.services.store.release_campaign_lease(id, owner).await {
        tracing::warn!(campaign_id = %id, error = %e, "could not release the campaign's lease");
    }
}
