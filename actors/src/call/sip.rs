//! The call actor in SIP mode (LiveKit SIP, mode 2 of DESIGN "Calls, media and agents"):
//! LiveKit creates the call's room, the agent is dispatched into it and LiveKit dials the
//! callee through the campaign's outbound trunk (`CreateSIPParticipant`). Media never
//! passes through Switchboard.
//!
//! - **Dial.** The attempt is recorded `dialing` (durably, before LiveKit is asked
//!   anything: recovery then knows a room may exist), then a task places the call and
//!   waits for the answer. The task reports back by the actor's registry name
//!   ([`CallMsg::SipDialed`]), so the actor stays responsive while the phone rings and an
//!   actor restarted meanwhile (a follower) gets the answer. A refusal (486 busy, 603
//!   declined, 480/503 carrier capacity, no answer) is recorded with its result and SIP
//!   status, and the actor ends like any unanswered call: the retry policy applies
//!   (`carrier_capacity` retries without spending the callee's budget).
//! - **Follow.** LiveKit's webhooks are stored as call events by whichever process
//!   receives them and nudge the call actor when it runs in that process; the actor reads
//!   its stored events at every check and, in case a webhook is lost, asks LiveKit who is
//!   in the room every [`LIVEKIT_POLL_EVERY`] checks (every check for a follower). The
//!   callee (the `sip` participant) leaving, or the room finishing, ends an answered call
//!   (`completed`). Once the call is over and the agent had [`outcome_grace`] to report,
//!   the room is deleted (the agent leaves with it). The outcome is the agent's report
//!   through the agent API; without one it is derived from the result as for any call.
//! - **Abandonment.** Switchboard cannot hear the agent in this mode, so the first-audio
//!   rule is judged by the agent's *presence*: an agent in the room at the answer (it is
//!   dispatched before the callee is dialed) connects the callee at once. The moment the
//!   agent was known to be there (its `participant_joined` webhook, or LiveKit's list of
//!   participants when the callee answered) stands in for its first audio, and the 2 s
//!   rule applies to it; the verdict is stored with `abandonment_basis: agent_presence`.
//!   An abandoned SIP call cannot be read the identification message (nothing of
//!   Switchboard's is in the media path): it is hung up, and the event says so.
//! - **Pacing** gets the ring end (answered or not, ring time from `dialing`) and the
//!   handle time (answer to end) exactly as for carrier calls.
//! - **Hang-up** is deleting the room: operator, maximum duration, abandonment, an actor
//!   that keeps failing, a dial whose answer could not be recorded.
//! - **Recovery** ([`reconcile`]): an attempt left unfinished by a dead process is asked
//!   of LiveKit. A room that exists is followed by an actor that never dials; a room that
//!   does not is settled from the stored events (answered → `completed`, else failed as
//!   interrupted); when LiveKit cannot say, the call is followed until it can.
//!
//! [`outcome_grace`]: crate::RuntimeSettings::outcome_grace

mod observed;

pub use observed::Observed;

use super::{CallMsg, CallState, local_actor};
use crate::dial::{DialError, SipDialer};
use crate::runtime::Services;
use chrono::{DateTime, Utc};
use ractor::{ActorProcessingErr, ActorRef};
use serde_json::json;
use std::time::Duration;
use switchboard_engine::AttemptId;
use switchboard_engine::campaign::{AgentConfig, CampaignConfig};
use switchboard_engine::store::{
    AttemptRecord, AttemptStatus, AttemptUpdate, CallEvent, CarrierUpdate,
};
use switchboard_media::livekit::{LiveKitError, LiveKitParticipant, LiveKitSession, room_name};

/// A call actor asks LiveKit who is in its room once every this many checks (a follower
/// at every check); webhooks tell it sooner.
pub const LIVEKIT_POLL_EVERY: u32 = 15;

/// How long past the ringing timeout an unanswered call a follower found may stay
/// unresolved before it is given up (the dial, if still in flight, has ended by then).
const DIAL_SLACK: Duration = Duration::from_secs(5);

/// Whether a campaign's calls go through LiveKit SIP.
pub fn is_sip(config: &CampaignConfig) -> bool {
    matches!(config.agent, Some(AgentConfig::Sip { .. }))
}

/// The SIP side of a call actor's state.
#[derive(Debug, Default)]
pub struct SipCall {
    /// The session the dial returned (a follower has none: it deletes the room by name).
    session: Option<LiveKitSession>,
    /// This actor's dial is in flight: its answer decides, not what LiveKit shows.
    dialing: bool,
    /// Checks so far (LiveKit is asked every [`LIVEKIT_POLL_EVERY`]).
    checks: u32,
}

/// Starts the dial: records `dialing`, then places the call in a task that reports back
/// with [`CallMsg::SipDialed`]. Without LiveKit the actor stops as a failed dial.
pub(super) async fn dial(
    myself: &ActorRef<CallMsg>,
    state: &mut CallState,
) -> Result<(), ActorProcessingErr> {
    let Some(dialer) = state.services.sip.clone() else {
        myself.stop(Some(format!("dial failed: {}", DialError::SipUnavailable)));
        return Ok(());
    };
    let store = state.services.store.clone();
    let attempt = state.attempt.clone();
    if let Err(e) = dialer.record_dialing(&store, &attempt).await {
        myself.stop(Some(format!("dial failed: {e}")));
        return Ok(());
    }
    if let Some(sip) = state.sip.as_mut() {
        sip.dialing = true;
    }
    tokio::spawn(async move {
        let result = dialer.dial_attempt(&store, &attempt).await;
        match local_actor(attempt.id) {
            Some(actor) => {
                let _ = actor.cast(CallMsg::SipDialed(Box::new(result)));
            }
            // The runtime is shutting down: the call is left to LiveKit, and the next
            // start follows it (see `reconcile`).
            None => {
                tracing::warn!(call_id = %attempt.id, "a sip dial answered after its call actor ended")
            }
        }
    });
    Ok(())
}

/// The dial's answer. A refusal is already recorded; an answer's session is kept (and
/// who is in the room asked at once: the agent's presence at the answer); any other
/// failure hangs up whatever LiveKit may have connected and stops the actor as a failed
/// dial. Returns whether the actor carries on.
pub(super) async fn dialed(
    myself: &ActorRef<CallMsg>,
    state: &mut CallState,
    result: Result<LiveKitSession, DialError>,
) -> Result<bool, ActorProcessingErr> {
    if let Some(sip) = state.sip.as_mut() {
        sip.dialing = false;
    }
    match result {
        Ok(session) => {
            let room = session.participants().await;
            apply_presence(state, room).await?;
            if let Some(sip) = state.sip.as_mut() {
                sip.session = Some(session);
            }
            Ok(true)
        }
        Err(DialError::Sip(refusal)) => {
            tracing::debug!(call_id = %state.attempt.id, result = refusal.result_name(), "the sip call did not connect");
            Ok(true)
        }
        Err(e) => {
            tracing::warn!(call_id = %state.attempt.id, error = %e, "sip dial failed");
            hang_up(&state.services, state.attempt.id).await;
            myself.stop(Some(format!("dial failed: {e}")));
            Ok(false)
        }
    }
}

/// Asks LiveKit whether an agent is in the room (before an abandonment verdict).
pub(super) async fn agent_check(state: &mut CallState) -> Result<(), ActorProcessingErr> {
    let Some(dialer) = state.services.sip.clone() else {
        return Ok(());
    };
    let room = dialer
        .livekit()
        .participants(&room_name(state.attempt.id.0))
        .await;
    apply_presence(state, room).await
}

async fn apply_presence(
    state: &mut CallState,
    room: Result<Vec<LiveKitParticipant>, LiveKitError>,
) -> Result<(), ActorProcessingErr> {
    let mut observed = Observed::default();
    observed.room(switchboard_engine::time::now(), room);
    if let Some(at) = observed.agent_at {
        agent_present(state, at).await?;
    }
    Ok(())
}

/// The agent was in the room by `at`: it stands in for the first audio of the
/// abandonment rule, and is stored with the attempt (`agent_joined_at`) for other
/// processes and the quality monitor.
async fn agent_present(state: &mut CallState, at: DateTime<Utc>) -> Result<(), ActorProcessingErr> {
    state.first_audio_at = super::verdict::earliest(state.first_audio_at, Some(at));
    if !state.attempt.detail.contains_key("agent_joined_at") {
        let mut detail = serde_json::Map::new();
        detail.insert("agent_joined_at".into(), json!(at.to_rfc3339()));
        state.attempt = state
            .services
            .store
            .update_attempt(
                state.attempt.id,
                &AttemptUpdate {
                    detail: Some(detail),
                    ..Default::default()
                },
            )
            .await?;
    }
    Ok(())
}

/// Follows the call from what LiveKit told (stored webhooks, and now and then the room's
/// participants): records an answer nobody recorded, the end of an answered call, and
/// gives up an unanswered call a follower found once its dial is surely over. Returns the
/// attempt as stored after that.
pub(super) async fn follow(
    state: &mut CallState,
    mut attempt: AttemptRecord,
) -> Result<AttemptRecord, ActorProcessingErr> {
    let Some(sip) = state.sip.as_mut() else {
        return Ok(attempt);
    };
    if attempt.status == AttemptStatus::Ended || sip.dialing {
        return Ok(attempt);
    }
    sip.checks += 1;
    let poll = state.follow || sip.checks.is_multiple_of(LIVEKIT_POLL_EVERY);
    let services = state.services.clone();
    let store = &services.store;
    let mut observed = Observed::from_events(&store.attempt_events(attempt.id).await?);
    if poll && let Some(dialer) = &services.sip {
        let room = dialer
            .livekit()
            .participants(&room_name(attempt.id.0))
            .await;
        observed.room(switchboard_engine::time::now(), room);
    }
    state.attempt = attempt.clone();
    if let Some(at) = observed.agent_at {
        agent_present(state, at).await?;
    }
    let now = switchboard_engine::time::now();
    let answered = attempt.answered_at.is_some() || observed.answered_at.is_some();
    let changed = if attempt.answered_at.is_none()
        && let Some(at) = observed.answered_at
    {
        record_answer(&services, &attempt, at, observed.sip_call_id.clone()).await?;
        true
    } else {
        false
    };
    let over = observed
        .ended
        .clone()
        .or_else(|| observed.room_gone.then(|| (now, "room_gone".to_owned())))
        .or_else(|| (answered && observed.callee_absent).then(|| (now, "callee_gone".to_owned())));
    if answered && let Some((at, how)) = over {
        record_end(&services, attempt.id, at, &how, true, None).await?;
    } else if !answered
        && (over.is_some() || observed.callee_absent)
        && dial_window_over(&services, &attempt, now)
    {
        hang_up(&services, attempt.id).await;
        let failure = "interrupted before the callee answered";
        record_end(
            &services,
            attempt.id,
            now,
            "unresolved",
            false,
            Some(failure),
        )
        .await?;
    } else if !changed {
        return Ok(attempt);
    }
    attempt = store.attempt(attempt.id).await?;
    Ok(attempt)
}

/// Whether an unanswered attempt's dial is surely over (ringing timeout and some slack
/// since it was dialed).
fn dial_window_over(services: &Services, attempt: &AttemptRecord, now: DateTime<Utc>) -> bool {
    let ringing = services
        .sip
        .as_ref()
        .map_or(Duration::from_secs(60), |d| d.options().ringing_timeout);
    let window = chrono::Duration::from_std(ringing + DIAL_SLACK).unwrap_or_default();
    attempt.dialed_at.is_none_or(|at| now - at > window)
}

async fn record_answer(
    services: &Services,
    attempt: &AttemptRecord,
    at: DateTime<Utc>,
    sip_call_id: Option<String>,
) -> Result<(), ActorProcessingErr> {
    let update = CarrierUpdate {
        carrier_call_id: sip_call_id,
        status: Some(AttemptStatus::Answered),
        result: None,
        answered_by: None,
        sequence: None,
        carrier_status: "sip.participant_joined".to_owned(),
        at,
        carrier_at: None,
        error_code: None,
        sip_response_code: None,
    };
    services
        .store
        .apply_carrier_update(attempt.id, &update)
        .await?;
    let room = json!({ "room": room_name(attempt.id.0), "seen": "livekit" });
    services.store.mark_bridged(attempt.id, room).await?;
    Ok(())
}

/// Ends the attempt at `at` (`completed` when answered, else `failed` with `failure`).
async fn record_end(
    services: &Services,
    attempt: AttemptId,
    at: DateTime<Utc>,
    how: &str,
    answered: bool,
    failure: Option<&str>,
) -> Result<(), ActorProcessingErr> {
    let update = CarrierUpdate {
        carrier_call_id: None,
        status: Some(AttemptStatus::Ended),
        result: Some(if answered { "completed" } else { "failed" }.to_owned()),
        answered_by: None,
        sequence: None,
        carrier_status: format!("sip.{how}"),
        at,
        carrier_at: None,
        error_code: None,
        sip_response_code: None,
    };
    services
        .store
        .apply_carrier_update(attempt, &update)
        .await?;
    if let Some(failure) = failure {
        let mut detail = serde_json::Map::new();
        detail.insert("failure".into(), json!(failure));
        let update = AttemptUpdate {
            detail: Some(detail),
            ..Default::default()
        };
        services.store.update_attempt(attempt, &update).await?;
    }
    Ok(())
}

/// Ends the LiveKit side of a call that is over: the session is closed, or the room
/// deleted by name (a follower holds no session). A call this actor dialed and LiveKit
/// refused has no room left (the dial deleted it).
pub(super) async fn tear_down(state: &mut CallState) {
    let session = state.sip.as_mut().and_then(|sip| sip.session.take());
    let room_left =
        state.attempt.dialed_at.is_some() && (state.follow || state.attempt.answered_at.is_some());
    let closed = match session {
        Some(session) => session.close().await,
        None if room_left => match &state.services.sip {
            Some(dialer) => dialer.livekit().close_call(state.attempt.id.0).await,
            None => Ok(()),
        },
        None => Ok(()),
    };
    if let Err(e) = closed {
        tracing::warn!(call_id = %state.attempt.id, error = %e, "could not delete the call's room");
    }
}

/// Hangs up a SIP call: deletes its room (the callee and the agent leave with it; a call
/// still ringing is canceled). A room already gone is not an error.
pub async fn hang_up(services: &Services, attempt: AttemptId) {
    if let Err(e) = delete_room(services, attempt).await {
        tracing::warn!(call_id = %attempt, error = %e, "could not hang up the sip call");
    }
}

/// Deletes a SIP call's room; the error says why it could not be.
pub async fn delete_room(services: &Services, attempt: AttemptId) -> Result<(), DialError> {
    let dialer: &SipDialer = services.sip.as_ref().ok_or(DialError::SipUnavailable)?;
    dialer
        .livekit()
        .close_call(attempt.0)
        .await
        .map_err(|e| DialError::Sip(e.into()))
}

/// An abandoned SIP call: no identification message can be played (Switchboard is not in
/// the media path), so it is hung up, and the event says why no message was played.
pub(super) async fn hang_up_abandoned(state: &CallState, attempt: &AttemptRecord) {
    hang_up(&state.services, attempt.id).await;
    let event = CallEvent {
        attempt_id: attempt.id,
        at: switchboard_engine::time::now(),
        kind: "abandonment.hangup".into(),
        data: json!({ "message_error": "sip mode: switchboard is not in the media path, no identification message was played" }),
    };
    if let Err(e) = state.services.store.append_events(&[event]).await {
        tracing::warn!(call_id = %attempt.id, error = %e, "could not record the abandoned call's end");
    }
}

/// After a restart, what an attempt a dead process left unfinished is: `true` when its
/// call may be live (a follower must follow it, never dialing again), `false` when it is
/// over (an answered call's end is recorded here; an unanswered one is left for the
/// caller to close as interrupted).
pub async fn reconcile(
    services: &Services,
    attempt: &AttemptRecord,
) -> Result<bool, ActorProcessingErr> {
    if attempt.dialed_at.is_none() {
        // Never handed to LiveKit: `dialing` is recorded before any request.
        return Ok(false);
    }
    let Some(dialer) = &services.sip else {
        tracing::warn!(call_id = %attempt.id, "a sip call is in flight and livekit is not configured; following it");
        return Ok(true);
    };
    let now = switchboard_engine::time::now();
    let mut observed = Observed::from_events(&services.store.attempt_events(attempt.id).await?);
    observed.room(
        now,
        dialer
            .livekit()
            .participants(&room_name(attempt.id.0))
            .await,
    );
    if !observed.room_gone {
        // The room exists, or LiveKit cannot say: follow.
        return Ok(true);
    }
    let answered = attempt.answered_at.is_some() || observed.answered_at.is_some();
    if answered {
        if attempt.answered_at.is_none()
            && let Some(at) = observed.answered_at
        {
            record_answer(services, attempt, at, observed.sip_call_id.clone()).await?;
        }
        let (at, how) = observed.ended.unwrap_or((now, "room_gone".to_owned()));
        let how = format!("reconciled.{how}");
        record_end(services, attempt.id, at, &how, true, None).await?;
    }
    Ok(false)
}
