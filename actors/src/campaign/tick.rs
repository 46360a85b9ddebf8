//! Each tick: how many lines to open (asked of the pacing actor, within the campaign's
//! limits, the tenant's and the carrier account's), and the checks before each dial.
//! Nothing happens on a tick unless the campaign's lease is surely this process's.

use super::{CampaignMsg, CampaignState, spawn_call};
use crate::limiter::{LimiterMsg, limiter_name};
use crate::pacing::PacingMsg;
use chrono::{Duration as TimeDelta, TimeZone, Utc};
use futures_util::future::join_all;
use ractor::{ActorProcessingErr, ActorRef};
use std::time::Instant;
use switchboard_engine::campaign::{CampaignStatus, Cause};
use switchboard_engine::contact::Contact;
use switchboard_engine::pacing::PacingInput;
use switchboard_engine::store::{MAX_RESERVATIONS, NewAttempt, QueueEntry};
use switchboard_engine::window::zones_for;

/// Opens the lines the pacing actor decides, within every limit.
pub(super) async fn tick(
    myself: &ActorRef<CampaignMsg>,
    state: &mut CampaignState,
) -> Result<(), ActorProcessingErr> {
    if !state.lease.may_dial(Instant::now()) {
        // The lease may lapse before a dial would reach the carrier: another process could
        // take the campaign over by then. Wait for a renewal.
        return Ok(());
    }
    let now = state.services.clock.now();
    if !state.stopping && state.campaign.config.ends_at.is_some_and(|end| now >= end) {
        // Paused or not, a campaign past its end time is over.
        return complete(myself, state, "the end time passed").await;
    }
    if !state.dialing {
        return Ok(());
    }
    if crate::call::sip::is_sip(&state.campaign.config) && state.services.sip.is_none() {
        // Fail closed: a SIP campaign is only dialed through LiveKit.
        if !state.sip_unavailable_told {
            tracing::warn!(campaign_id = %state.campaign.id, "the campaign's agent is in sip mode and livekit is not configured; not dialing");
            state.sip_unavailable_told = true;
        }
        return Ok(());
    }
    let store = state.services.store.clone();
    // The agent gate: no new line while the agent cannot be reached (live calls go on,
    // and a campaign with nobody left to call still completes).
    if state.agent.open() {
        open_lines(myself, state, now).await?;
    }
    if state.live.is_empty() {
        let counts = store.queue_counts(state.campaign.id).await?;
        if counts.queued == 0 && counts.in_progress == 0 {
            return complete(myself, state, "every contact is done").await;
        }
    }
    Ok(())
}

/// Asks the pacing actor how many lines to open and dials that many due contacts.
async fn open_lines(
    myself: &ActorRef<CampaignMsg>,
    state: &mut CampaignState,
    now: chrono::DateTime<Utc>,
) -> Result<(), ActorProcessingErr> {
    let limiter = ractor::registry::where_is(limiter_name(state.services.dialer.account()))
        .map(ActorRef::<LimiterMsg>::from);
    let Some(limiter) = limiter else {
        // Fail closed: without the account's limiter nobody knows the carrier's room.
        tracing::warn!(campaign_id = %state.campaign.id, "the carrier rate limiter is not running; not dialing");
        return Ok(());
    };
    let input = pacing_input(state, &limiter, now).await?;
    let Some(pacer) = state.pacer.clone() else {
        return Ok(());
    };
    let decision = ractor::call_t!(pacer, PacingMsg::Decide, 2000, input)?;
    let lines = decision.lines;
    if lines > 0 {
        let most = lines.saturating_mul(3).min(MAX_RESERVATIONS as u32);
        let store = &state.services.store;
        let due = store.due_contacts(state.campaign.id, now, most).await?;
        dial_due(myself, state, &due, lines, &limiter).await?;
    }
    Ok(())
}

/// What the pacing actor needs to decide: live calls, limits and what is left of them.
async fn pacing_input(
    state: &CampaignState,
    limiter: &ActorRef<LimiterMsg>,
    now: chrono::DateTime<Utc>,
) -> Result<PacingInput, ActorProcessingErr> {
    let config = &state.campaign.config;
    let store = &state.services.store;
    let id = state.campaign.id;
    // Attempts are stamped with the wall clock when reserved; a rate is about real
    // seconds, so its windows are read on the wall clock too.
    let wall = switchboard_engine::time::now();
    let (started_last_minute, started_last_second) = match config.max_calls_per_minute {
        Some(_) => (
            store
                .attempts_since(id, wall - TimeDelta::minutes(1))
                .await?,
            store
                .attempts_since(id, wall - TimeDelta::seconds(1))
                .await?,
        ),
        None => (0, 0),
    };
    let started_today = match config.daily_cap {
        Some(_) => {
            store
                .attempts_since(id, campaign_midnight(config, now))
                .await?
        }
        None => 0,
    };
    let in_flight = state.live.len() as u32;
    let mut max_concurrent = config.max_concurrent_calls;
    if let Some(limit) = store.tenant(state.tenant).await?.max_concurrent_calls {
        // The tenant's limit covers all its campaigns: room left, plus this campaign's own.
        let tenant_live = store.tenant_live_attempts(state.tenant).await?;
        let room = u64::try_from(limit)
            .unwrap_or(0)
            .saturating_sub(tenant_live);
        max_concurrent =
            max_concurrent.min(in_flight.saturating_add(room.min(u64::from(u32::MAX)) as u32));
    }
    let carrier_tokens = ractor::call_t!(limiter, LimiterMsg::Available, 1000).unwrap_or_else(|e| {
        tracing::warn!(campaign_id = %state.campaign.id, error = %e, "the carrier rate limiter did not answer");
        0
    });
    let answered: Vec<_> = state.live.values().filter_map(|c| c.answered_at).collect();
    let bridged_secs = answered
        .iter()
        .map(|at| (now - *at).num_milliseconds().max(0) as f64 / 1000.0)
        .sum();
    let bridged = answered.len() as u32;
    let ringing_ages = state
        .live
        .values()
        .filter(|c| c.answered_at.is_none())
        .map(|c| (now - c.started_at).num_milliseconds().max(0) as f64 / 1000.0)
        .collect();
    Ok(PacingInput {
        now,
        agent_slots: config.agent_sessions(),
        bridged,
        bridged_secs,
        ringing: in_flight - bridged,
        ringing_ages,
        in_flight,
        max_concurrent,
        calls_per_minute: config.max_calls_per_minute,
        started_last_minute: started_last_minute as u32,
        started_last_second: started_last_second as u32,
        daily_cap: config.daily_cap,
        started_today: started_today as u32,
        carrier_tokens,
        rolling_abandonment: None,
    })
}

/// The start of `now`'s day in the campaign's timezone (its daily cap counts from there).
fn campaign_midnight(
    config: &switchboard_engine::campaign::CampaignConfig,
    now: chrono::DateTime<Utc>,
) -> chrono::DateTime<Utc> {
    let zone: chrono_tz::Tz = config
        .timezone
        .default_timezone
        .parse()
        .unwrap_or(chrono_tz::UTC);
    let local = now.with_timezone(&zone).date_naive();
    let midnight = local.and_hms_opt(0, 0, 0).unwrap_or_default();
    // Midnight may not exist (a DST jump at 00:00): the earliest instant of the day then.
    zone.from_local_datetime(&midnight)
        .earliest()
        .or_else(|| {
            zone.from_local_datetime(&(midnight + TimeDelta::hours(1)))
                .earliest()
        })
        .map_or(now, |t| t.with_timezone(&Utc))
}

/// Dials up to `lines` of the due contacts that nothing forbids: their contact records and
/// do-not-call state are read concurrently, their attempts are reserved in one transaction
/// (durable before any dial), carrier dials are taken for them in one request, and the
/// call actors of those that got one start and dial at once. Reservations left without a
/// dial (other processes used the account's room) are withdrawn; they wait for a later
/// tick. Taking the dials last keeps the time from a dial's grant to its request reaching
/// the carrier short: no database work lies between them.
async fn dial_due(
    myself: &ActorRef<CampaignMsg>,
    state: &mut CampaignState,
    due: &[QueueEntry],
    lines: u32,
    limiter: &ActorRef<LimiterMsg>,
) -> Result<(), ActorProcessingErr> {
    let store = state.services.store.clone();
    let tenant = state.tenant;
    let checks = join_all(due.iter().map(|entry| {
        let store = store.clone();
        async move {
            // A contact deleted or erased since the queue was read is not dialed.
            let contact = match store.contact(tenant, entry.contact_id).await {
                Ok(contact) => contact,
                Err(switchboard_engine::Error::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(e),
            };
            // A number whose callee asked not to be called is listed whatever its contact says.
            let listed = store.dnc_check(tenant, &contact.phone).await?.is_some()
                || store.suppression(tenant, &contact.phone).await?.is_some();
            Ok::<_, switchboard_engine::Error>(Some((contact, listed)))
        }
    }))
    .await;
    let mut allowed = Vec::new();
    for (entry, checked) in due.iter().zip(checks) {
        if allowed.len() >= lines as usize {
            break;
        }
        let Some((contact, listed)) = checked? else {
            continue;
        };
        if may_dial(state, &contact, listed).await? {
            allowed.push(NewAttempt {
                tenant_id: tenant,
                campaign_id: state.campaign.id,
                contact_id: contact.id,
                phone: contact.phone.clone(),
                attempts_seen: entry.attempts,
            });
        }
    }
    if allowed.is_empty() {
        return Ok(());
    }
    // Another process may have taken some of them: those are simply not dialed here.
    let mut reserved: Vec<_> = store
        .reserve_attempts(&allowed)
        .await?
        .into_iter()
        .flatten()
        .collect();
    if reserved.is_empty() {
        return Ok(());
    }
    let mut granted = ractor::call_t!(limiter, LimiterMsg::Take, 1000, reserved.len() as u32)
        .unwrap_or_else(|e| {
            tracing::warn!(campaign_id = %state.campaign.id, error = %e, "the carrier rate limiter did not answer; not dialing");
            0
        });
    if !state.lease.may_dial(Instant::now()) {
        granted = 0;
    }
    let unplaced = reserved.split_off((granted as usize).min(reserved.len()));
    for attempt in reserved {
        spawn_call(myself, state, attempt, false).await?;
        state.dialed += 1;
        crate::metrics::call_dialed(state.campaign.id);
    }
    if !unplaced.is_empty() {
        // A failure here ends the supervisor: its restart closes them as never dialed.
        let ids: Vec<_> = unplaced.iter().map(|a| a.id).collect();
        store.withdraw_reservations(&ids).await?;
    }
    Ok(())
}

/// Whether a due contact may be dialed now: not opted out, not on the do-not-call list
/// (`listed`), consented when the campaign needs it, inside its calling window. A contact
/// that may not is requeued with the reason (and the window's next opening, if any).
async fn may_dial(
    state: &mut CampaignState,
    contact: &Contact,
    listed: bool,
) -> Result<bool, ActorProcessingErr> {
    let store = &state.services.store;
    let now = state.services.clock.now();
    let campaign = state.campaign.id;
    let refusal = if contact.opted_out_at.is_some() {
        Some("opted_out")
    } else if listed {
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
    let zones = zones_for(contact, &state.campaign.config.timezone);
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
    Ok(true)
}

/// Completes the campaign (cause scheduler) and ends the supervisor once live calls are over.
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
