//! The call actor: owns one call attempt from dial to outcome. It places the call, then
//! follows the attempt as carrier callbacks, the media relay and the agent's report write
//! to it, and ends once the attempt is over and the agent had a moment to report. Its
//! supervisor then applies the retry policy.
//!
//! The actor is named `call:<attempt id>`; webhooks nudge it through [`notify`] so it
//! reacts at once, and it also re-reads its attempt on a slow timer (callbacks may reach
//! another process).

use crate::runtime::Services;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_engine::AttemptId;
use switchboard_engine::store::{AttemptRecord, AttemptStatus};

/// Messages to a call actor.
#[derive(Debug)]
pub enum CallMsg {
    /// Re-read the attempt: something may have happened.
    Check,
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
}

/// A call actor's state.
pub struct CallState {
    follow: bool,
    services: Arc<Services>,
    attempt: AttemptRecord,
    started: Instant,
    ended_seen: Option<Instant>,
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
        Ok(CallState {
            follow: args.follow,
            services: args.services,
            attempt: args.attempt,
            started: Instant::now(),
            ended_seen: None,
        })
    }

    #[tracing::instrument(name = "call", skip_all, fields(call_id = %state.attempt.id, campaign_id = %state.attempt.campaign_id))]
    async fn post_start(
        &self,
        myself: ActorRef<CallMsg>,
        state: &mut CallState,
    ) -> Result<(), ActorProcessingErr> {
        if state.follow {
            // Placed by a process that died: follow it, never dial it again.
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
                let settings = &state.services.settings;
                if attempt.status == AttemptStatus::Ended {
                    let seen = *state.ended_seen.get_or_insert_with(Instant::now);
                    // An answered call's agent may report just after the hang-up.
                    let settled = attempt.outcome.is_some()
                        || attempt.answered_at.is_none()
                        || seen.elapsed() >= settings.outcome_grace;
                    if settled {
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
        }
        Ok(())
    }
}
