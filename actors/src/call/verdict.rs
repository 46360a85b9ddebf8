//! The abandonment rule for one call, and what follows an abandoned call: a person who
//! answered is abandoned unless the agent's first audio came within [`ABANDON_AFTER`] of
//! the answer. An abandoned call hears the campaign's identification message and is hung
//! up, unless the campaign keeps late agents.

use super::{ABANDON_AFTER, ABANDON_SETTLE, CallState};
use chrono::{DateTime, Utc};
use serde_json::json;
use switchboard_engine::store::{AttemptRecord, CallEvent};

/// Whether a person who answered at `answered_at` was abandoned, once that is known.
/// `first_audio_at` is when the agent was first heard; `over` says the question cannot
/// wait any longer (the call ended, or the check past the window is due). Without audio,
/// a call is judged once [`ABANDON_AFTER`] and [`ABANDON_SETTLE`] have passed.
pub fn verdict(
    answered_at: DateTime<Utc>,
    first_audio_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    over: bool,
) -> Option<bool> {
    let window = chrono::Duration::from_std(ABANDON_AFTER).unwrap_or_default();
    let settle = chrono::Duration::from_std(ABANDON_SETTLE).unwrap_or_default();
    match first_audio_at {
        Some(at) => Some(at - answered_at > window),
        None if over || now - answered_at >= window + settle => Some(true),
        None => None,
    }
}

/// When the agent was first heard, as stored with the attempt by the relay (whichever
/// process ran it).
pub fn stored_first_audio(attempt: &AttemptRecord) -> Option<DateTime<Utc>> {
    attempt
        .detail
        .get("first_agent_audio_at")
        .and_then(|v| v.as_str())
        .and_then(|s| s.parse().ok())
}

/// The earlier of two optional moments.
pub fn earliest(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Ends an abandoned call: the carrier reads the campaign's identification message to
/// the callee and hangs up; if the carrier refuses the new TwiML, a plain hang-up. Both
/// are recorded as call events.
pub async fn identify_and_hang_up(state: &CallState, attempt: &AttemptRecord, sid: &str) {
    let services = &state.services;
    let dialer = &services.dialer;
    let text = match services
        .store
        .contact(attempt.tenant_id, attempt.contact_id)
        .await
    {
        Ok(contact) => state
            .config
            .abandonment_message(&contact, dialer.caller_id()),
        Err(e) => {
            tracing::warn!(call_id = %attempt.id, error = %e, "no contact for the identification message");
            format!("This call was from {}. Goodbye.", state.config.name)
        }
    };
    let event = match dialer.say_and_hangup(sid, &text).await {
        Ok(()) => CallEvent {
            attempt_id: attempt.id,
            at: switchboard_engine::time::now(),
            kind: "abandonment.message".into(),
            data: json!({ "message": text }),
        },
        Err(e) => {
            tracing::warn!(call_id = %attempt.id, error = %e, "could not play the identification message; hanging up");
            if let Err(e) = dialer.hangup(sid).await {
                tracing::warn!(call_id = %attempt.id, error = %e, "could not hang up an abandoned call");
            }
            CallEvent {
                attempt_id: attempt.id,
                at: switchboard_engine::time::now(),
                kind: "abandonment.hangup".into(),
                data: json!({ "message_error": e.to_string() }),
            }
        }
    };
    if let Err(e) = services.writer.append_events(vec![event]).await {
        tracing::warn!(call_id = %attempt.id, error = %e, "could not record the abandoned call's end");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_750_000_000, 0).unwrap_or_default()
    }

    fn ms(n: i64) -> TimeDelta {
        TimeDelta::milliseconds(n)
    }

    #[test]
    fn an_agent_heard_within_two_seconds_of_the_answer_connects_the_call() {
        let heard = Some(t0() + ms(1999));
        assert_eq!(verdict(t0(), heard, t0() + ms(1999), false), Some(false));
        let at_limit = Some(t0() + ms(2000));
        assert_eq!(verdict(t0(), at_limit, t0() + ms(2000), false), Some(false));
        let before_answer = Some(t0() - ms(50));
        assert_eq!(verdict(t0(), before_answer, t0(), false), Some(false));
    }

    #[test]
    fn an_agent_heard_later_than_two_seconds_abandons_the_call() {
        let late = Some(t0() + ms(2001));
        assert_eq!(verdict(t0(), late, t0() + ms(2001), false), Some(true));
        assert_eq!(verdict(t0(), late, t0() + ms(9000), true), Some(true));
    }

    #[test]
    fn without_audio_the_verdict_waits_for_the_window_and_its_settling_time() {
        assert_eq!(verdict(t0(), None, t0() + ms(1500), false), None);
        assert_eq!(verdict(t0(), None, t0() + ms(2100), false), None);
        assert_eq!(verdict(t0(), None, t0() + ms(2200), false), Some(true));
        assert_eq!(
            verdict(t0(), None, t0() + ms(500), true),
            Some(true),
            "a call over without agent audio is abandoned"
        );
    }

    #[test]
    fn the_earliest_report_of_first_audio_counts() {
        let (a, b) = (Some(t0()), Some(t0() + ms(10)));
        assert_eq!(earliest(a, b), a);
        assert_eq!(earliest(b, a), a);
        assert_eq!(earliest(None, b), b);
        assert_eq!(earliest(None, None), None);
    }
}
