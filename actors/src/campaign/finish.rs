//! What follows a call: settling the attempts a dead process left unfinished, and the
//! retry policy and pacing feed after each call.

use super::{CampaignMsg, CampaignState, spawn_call};
use crate::outcome::{call_result, history};
use crate::pacing::PacingMsg;
use ractor::{ActorProcessingErr, ActorRef};
use switchboard_engine::pacing::CallEnd;
use switchboard_engine::quality::{AttemptFailure, QualitySample};
use switchboard_engine::retry::{NextStep, next_step};
use switchboard_engine::store::AttemptStatus;
use switchboard_engine::{AttemptId, ContactId};

/// When the supervisor starts (after a restart, or taking the campaign over from another
/// process whose lease lapsed): every attempt of this campaign left unfinished is settled
/// with the carrier before anything new is dialed. A call the carrier ended is
/// closed with its result and goes through the retry policy; a live call is followed by a
/// call actor that does not dial; an attempt whose call was never recorded is looked for
/// in the carrier's list of calls to its number (the process may have died between the
/// create and storing its answer) and, found, settled or followed the same way; one the
/// carrier never placed is closed as interrupted and retried only after the policy's
/// delay, as a new attempt. No attempt is ever dialed twice. A SIP
/// campaign's attempts are settled with LiveKit instead ([`crate::call::sip::reconcile`]).
pub(super) async fn reconcile(
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
    let sip = crate::call::sip::is_sip(&state.campaign.config);
    for attempt in unfinished {
        if sip {
            if crate::call::sip::reconcile(&state.services, &attempt).await? {
                tracing::info!(call_id = %attempt.id, "following a sip call placed before the restart");
                spawn_call(myself, state, attempt, true).await?;
            } else {
                let failure = attempt.answered_at.is_none().then(|| {
                    if attempt.dialed_at.is_none() {
                        "interrupted before the call was placed".to_owned()
                    } else {
                        "interrupted before the callee answered".to_owned()
                    }
                });
                call_finished(state, attempt.id, attempt.contact_id, failure).await?;
            }
            continue;
        }
        let live = state
            .services
            .dialer
            .settle_with_carrier(&store, &attempt, state.services.clock.now())
            .await?;
        // Settling may have found and stored the call of an attempt that had none.
        let attempt = store.attempt(attempt.id).await?;
        if live {
            tracing::info!(call_id = %attempt.id, "following a call placed before this supervisor started");
            spawn_call(myself, state, attempt, true).await?;
        } else {
            let failure = attempt
                .carrier_call_id
                .is_none()
                .then(|| "interrupted before the carrier confirmed the call".to_owned());
            call_finished(state, attempt.id, attempt.contact_id, failure).await?;
        }
    }
    // Calls that ended while nobody followed them (their last callback landed between
    // the old process's death and this start) still owe their contact its next step.
    for attempt in store.ended_unsettled_attempts(state.campaign.id).await? {
        tracing::info!(call_id = %attempt.id, "settling a call that ended before this supervisor started");
        call_finished(state, attempt.id, attempt.contact_id, None).await?;
    }
    Ok(())
}

/// Most times a live call's actor is restarted before the call is hung up and closed.
const MAX_CALL_RESTARTS: u32 = 3;

/// A call actor failed. If its call is live at the carrier, a new actor follows it (never
/// dialing again), at most [`MAX_CALL_RESTARTS`] times; past that the call is hung up and
/// closed as failed. Returns whether a new actor took over.
pub(super) async fn take_over(
    myself: &ActorRef<CampaignMsg>,
    state: &mut CampaignState,
    live: &super::LiveCall,
    error: &str,
) -> Result<bool, ActorProcessingErr> {
    let attempt = state.services.store.attempt(live.attempt_id).await?;
    // A SIP call may be live (ringing, even) once LiveKit was asked to dial.
    let sip = crate::call::sip::is_sip(&state.call_config);
    let placed = if sip {
        attempt.dialed_at.is_some()
    } else {
        attempt.carrier_call_id.is_some()
    };
    if !placed || attempt.status == AttemptStatus::Ended {
        return Ok(false);
    }
    let restarts = state.call_restarts.entry(attempt.id).or_default();
    *restarts += 1;
    if *restarts > MAX_CALL_RESTARTS {
        tracing::error!(call_id = %attempt.id, "call actor keeps failing; hanging up the call");
        if sip {
            crate::call::sip::hang_up(&state.services, attempt.id).await;
        } else if let Some(sid) = &attempt.carrier_call_id
            && let Err(e) = state.services.dialer.hangup(sid).await
        {
            tracing::warn!(call_id = %attempt.id, error = %e, "could not hang up the call");
        }
        return Ok(false);
    }
    tracing::warn!(call_id = %attempt.id, "call actor failed with its call live; following it with a new actor");
    let event = switchboard_engine::store::CallEvent {
        attempt_id: attempt.id,
        at: state.services.clock.now(),
        kind: "actor.restarted".into(),
        data: serde_json::json!({ "error": error, "restarts": *restarts }),
    };
    state.services.writer.append_events(vec![event]).await?;
    spawn_call(myself, state, attempt, true).await?;
    Ok(true)
}

/// Decides what follows a finished call.
pub(super) async fn call_finished(
    state: &mut CampaignState,
    attempt_id: AttemptId,
    contact: ContactId,
    failure: Option<String>,
) -> Result<(), ActorProcessingErr> {
    let store = &state.services.store;
    let writer = &state.services.writer;
    let now = state.services.clock.now();
    let mut attempt = match store.attempt(attempt_id).await {
        Ok(attempt) => attempt,
        // Withdrawn (the carrier was full before it was placed): its contact is queued
        // again as before it, and nothing was attempted.
        Err(switchboard_engine::Error::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if attempt.status != switchboard_engine::store::AttemptStatus::Ended {
        // The actor died with its call unfinished: close the record with the reason.
        let mut detail = serde_json::Map::new();
        detail.insert(
            "failure".into(),
            serde_json::json!(failure.clone().unwrap_or_else(|| "call actor ended".into())),
        );
        attempt = writer
            .update_attempt(
                attempt_id,
                switchboard_engine::store::AttemptUpdate {
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
    let call_end = match (attempt.answered_at, attempt.ended_at) {
        (Some(answered), Some(ended)) => Some(CallEnd {
            at: now,
            handle_secs: (ended - answered).num_milliseconds().max(0) as f64 / 1000.0,
        }),
        _ => None,
    };
    if let Some(pacer) = &state.pacer {
        pacer.cast(PacingMsg::Finished(
            call_end,
            (!agent_unreachable(&attempt)).then(|| quality_sample(&attempt, failure.as_deref())),
        ))?;
    }
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
            writer
                .requeue_contact(state.campaign.id, contact, Some(at), &label)
                .await?
        }
        NextStep::Done(_) => {
            writer
                .requeue_contact(state.campaign.id, contact, None, &label)
                .await?
        }
    }
    Ok(())
}

/// Whether the call ended because its agent could not be reached (the media path records
/// `end_reason` `agent_unreachable`).
fn agent_unreachable(attempt: &switchboard_engine::store::AttemptRecord) -> bool {
    attempt.detail.get("end_reason").and_then(|v| v.as_str()) == Some("agent_unreachable")
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
    } else if matches!(attempt.result.as_deref(), Some("failed" | "livekit_error"))
        && attempt.answered_at.is_none()
    {
        Some(AttemptFailure::Carrier(
            "the call failed before an answer".to_owned(),
        ))
    } else if matches!(relay_end, Some("agent_error" | "agent_silent")) {
        Some(AttemptFailure::Agent(format!(
            "the agent side ended with {}",
            relay_end.unwrap_or_default()
        )))
    } else if human
        && outcome.is_none()
        && !attempt.detail.contains_key("relay")
        && !attempt.detail.contains_key("agent_joined_at")
    {
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
