//! The call actor: owns one call attempt from dial to outcome. It places the call, then
//! follows the attempt as carrier callbacks, the media relay and the agent's report write
//! to it, and ends once the attempt is over and the agent had a moment to report. Its
//! supervisor then applies the retry policy.
//!
//! The actor is named `call:<attempt id>`; webhooks nudge it through [`notify`] so it
//! reacts at once, and it also re-reads its attempt on a slow timer (callbacks may reach
//! another process).
//!
//! It tells its supervisor when the ring phase ends, for pacing: unanswered (with the ring
//! time), answered by a machine, or answered by a person — then only once it is known
//! whether the person was abandoned: not connected to an agent within
//! [`ABANDON_AFTER`] of the answer. An abandoned call is hung up (the agent may still
//! arrive: kept when the campaign's `abandonment.keep_agent_if_late` says so); the
//! verdict is stored with the attempt (`detail.abandoned`) for the campaign's ledger.

use crate::campaign::CampaignMsg;
use crate::runtime::Services;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_engine::AttemptId;
use switchboard_engine::campaign::Abandonment;
use switchboard_engine::pacing::{AnsweredBy, RingEnd};
use switchboard_engine::store::{AttemptRecord, AttemptStatus, AttemptUpdate};

/// A person answered and no agent within this: the call is abandoned.
pub const ABANDON_AFTER: Duration = Duration::from_secs(2);

/// Messages to a call actor.
#[derive(Debug)]
pub enum CallMsg {
    /// Re-read the attempt: something may have happened.
    Check,
    /// [`ABANDON_AFTER`] passed since a person answered: judge abandonment.
    AbandonCheck,
}

/// The call actor.
pub struct CallActor;

/// What a call actor starts with.
pub struct CallArgs {
    /// Shared runtime services.
    pub services: Arc<Services>,
    /// The reserved attempt to dial.
    pub attempt: AttemptRecord,
    /// The call was placed before (by a process that died): follow it, never dial again.
    pub follow: bool,
    /// The campaign's abandonment settings.
    pub abandonment: Abandonment,
}

/// A call actor's state.
pub struct CallState {
    follow: bool,
    services: Arc<Services>,
    attempt: AttemptRecord,
    abandonment: Abandonment,
    started: Instant,
    ended_seen: Option<Instant>,
    /// The ring end was told to the supervisor (or an abandonment check is pending).
    ring_told: bool,
    /// A person answered and abandonment is not judged yet.
    abandon_pending: bool,
}

/// The registry name of an attempt's call actor.
pub fn actor_name(attempt: AttemptId) -> String {
    format!("call:{attempt}")
}

/// Tells an attempt's call actor, if it runs in this process, that its attempt changed.
pub fn notify(attempt: AttemptId) {
    if let Some(cell) = ractor::registry::where_is(actor_name(attempt)) {
        let actor: ActorRef<CallMsg> = cell.into();
        let _ = actor.cast(CallMsg::Check);
    }
}

impl Actor for CallActor {
    type Msg = CallMsg;
    type State = CallState;
    type Arguments = CallArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<CallMsg>,
        args: CallArgs,
    ) -> Result<CallState, ActorProcessingErr> {
        // A follower does not tell a ring end that happened before it, but judges an
        // abandonment its predecessor left unjudged.
        let answered = args.follow && args.attempt.answered_at.is_some();
        let ring_told = answered;
        let abandon_pending = answered
            && !by_machine(&args.attempt)
            && !args.attempt.detail.contains_key("abandoned");
        Ok(CallState {
            follow: args.follow,
            services: args.services,
            attempt: args.attempt,
            abandonment: args.abandonment,
            started: Instant::now(),
            ended_seen: None,
            ring_told,
            abandon_pending,
        })
    }

    #[tracing::instrument(name = "call", skip_all, fields(call_id = %state.attempt.id, campaign_id = %state.attempt.campaign_id))]
    async fn post_start(
        &self,
        myself: ActorRef<CallMsg>,
        state: &mut CallState,
    ) -> Result<(), ActorProcessingErr> {
        #[cfg(feature = "failpoints")]
        fail::fail_point!("call-actor-dial");
        if state.abandon_pending {
            myself.send_after(ABANDON_AFTER, || CallMsg::AbandonCheck);
        }
        if state.follow {
            // Placed before (by a process that died, or by this call's previous actor):
            // follow it, never dial it again.
            myself.send_interval(state.services.settings.call_poll, || CallMsg::Check);
            return Ok(());
        }
        if let Err(e) = state
            .services
            .dialer
            .dial(&state.services.store, &state.attempt)
            .await
        {
            tracing::warn!(call_id = %state.attempt.id, error = %e, "dial failed");
            myself.stop(Some(format!("dial failed: {e}")));
            return Ok(());
        }
        myself.send_interval(state.services.settings.call_poll, || CallMsg::Check);
        Ok(())
    }

    #[tracing::instrument(name = "call", skip_all, fields(call_id = %state.attempt.id, campaign_id = %state.attempt.campaign_id))]
    async fn handle(
        &self,
        myself: ActorRef<CallMsg>,
        msg: CallMsg,
        state: &mut CallState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            CallMsg::Check => {
                let attempt = state.services.store.attempt(state.attempt.id).await?;
                #[cfg(feature = "failpoints")]
                fail::fail_point!(
                    "call-actor-check",
                    matches!(
                        attempt.status,
                        AttemptStatus::Answered | AttemptStatus::Bridged
                    ),
                    |_| { Ok(()) }
                );
                if !state.ring_told {
                    ring_phase(&myself, state, &attempt)?;
                }
                let settings = &state.services.settings;
                if attempt.status == AttemptStatus::Ended {
                    let seen = *state.ended_seen.get_or_insert_with(Instant::now);
                    // An answered call's agent may report just after the hang-up.
                    let settled = attempt.outcome.is_some()
                        || attempt.answered_at.is_none()
                        || seen.elapsed() >= settings.outcome_grace;
                    if settled {
                        if state.abandon_pending {
                            // Ended before the check was due: judge it now.
                            abandon_check(&myself, state).await?;
                        }
                        myself.stop(Some("ended".into()));
                    }
                } else if state.started.elapsed() > settings.max_call {
                    tracing::warn!(call_id = %attempt.id, "call exceeded its maximum duration; hanging up");
                    if let Some(sid) = &attempt.carrier_call_id {
                        let _ = state.services.dialer.hangup(sid).await;
                    }
                    if state.started.elapsed() > settings.max_call + Duration::from_secs(60) {
                        return Err("the carrier never reported the end of the call".into());
                    }
                }
                state.attempt = attempt;
            }
            CallMsg::AbandonCheck if state.abandon_pending => abandon_check(&myself, state).await?,
            CallMsg::AbandonCheck => {}
        }
        Ok(())
    }
}

/// Whether the attempt was answered by a machine (or a fax), per machine detection.
fn by_machine(attempt: &AttemptRecord) -> bool {
    attempt
        .detail
        .get("answered_by")
        .and_then(|v| v.as_str())
        .is_some_and(|by| by.starts_with("machine") || by == "fax")
}

/// Seconds between two recorded instants, 0 when either is missing.
fn secs_between(
    from: Option<chrono::DateTime<chrono::Utc>>,
    to: Option<chrono::DateTime<chrono::Utc>>,
) -> f64 {
    match (from, to) {
        (Some(a), Some(b)) => ((b - a).num_milliseconds().max(0) as f64) / 1000.0,
        _ => 0.0,
    }
}

/// Tells the supervisor how the ring phase ended, when that is known.
fn ring_phase(
    myself: &ActorRef<CallMsg>,
    state: &mut CallState,
    attempt: &AttemptRecord,
) -> Result<(), ActorProcessingErr> {
    let ring_secs = secs_between(attempt.dialed_at, attempt.answered_at.or(attempt.ended_at));
    let answered = match (attempt.answered_at, attempt.status) {
        (Some(_), _) if by_machine(attempt) => Some(AnsweredBy::Machine),
        (Some(answered_at), _) => {
            // A person: abandonment is judged ABANDON_AFTER the answer.
            state.ring_told = true;
            state.abandon_pending = true;
            let since = (switchboard_engine::time::now() - answered_at)
                .to_std()
                .unwrap_or_default();
            myself.send_after(ABANDON_AFTER.saturating_sub(since), || {
                CallMsg::AbandonCheck
            });
            return Ok(());
        }
        (None, AttemptStatus::Ended) => None,
        (None, _) => return Ok(()),
    };
    state.ring_told = true;
    tell_supervisor(myself, state, answered, ring_secs, false)
}

/// Sends the ring end to the campaign supervisor.
fn tell_supervisor(
    myself: &ActorRef<CallMsg>,
    state: &CallState,
    answered: Option<AnsweredBy>,
    ring_secs: f64,
    abandoned: bool,
) -> Result<(), ActorProcessingErr> {
    if let Some(parent) = myself.try_get_supervisor() {
        let parent: ActorRef<CampaignMsg> = parent.into();
        parent.cast(CampaignMsg::Rang(
            myself.get_id(),
            RingEnd {
                at: state.services.clock.now(),
                answered,
                ring_secs,
                abandoned,
            },
        ))?;
    }
    Ok(())
}

/// A person answered [`ABANDON_AFTER`] ago: the call is abandoned unless its agent is
/// connected. An abandoned call is hung up unless the campaign keeps late agents.
async fn abandon_check(
    myself: &ActorRef<CallMsg>,
    state: &mut CallState,
) -> Result<(), ActorProcessingErr> {
    state.abandon_pending = false;
    let store = &state.services.store;
    let attempt = store.attempt(state.attempt.id).await?;
    let agent_connected = attempt.status == AttemptStatus::Bridged
        || attempt.detail.contains_key("relay")
        || attempt.outcome.is_some();
    let abandoned = !agent_connected;
    let mut detail = serde_json::Map::new();
    detail.insert("abandoned".into(), serde_json::json!(abandoned));
    store
        .update_attempt(
            attempt.id,
            &AttemptUpdate {
                detail: Some(detail),
                ..Default::default()
            },
        )
        .await?;
    if abandoned {
        tracing::warn!(call_id = %attempt.id, "a person answered and no agent was connected within 2 seconds");
        if !state.abandonment.keep_agent_if_late
            && attempt.status != AttemptStatus::Ended
            && let Some(sid) = &attempt.carrier_call_id
            && let Err(e) = state.services.dialer.hangup(sid).await
        {
            tracing::warn!(call_id = %attempt.id, error = %e, "could not hang up an abandoned call");
        }
    }
    let ring_secs = secs_between(attempt.dialed_at, attempt.answered_at);
    tell_supervisor(myself, state, Some(AnsweredBy::Human), ring_secs, abandoned)
}
