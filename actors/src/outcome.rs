//! Reading a finished attempt as the retry policy's [`CallResult`].

use switchboard_engine::AttemptId;
use switchboard_engine::campaign::Outcome;
use switchboard_engine::retry::{AttemptHistory, CallResult, carrier_failure};
use switchboard_engine::store::AttemptRecord;

/// How an attempt ended, for the retry policy. An unanswered call's carrier codes come
/// first (an invalid number is not retried; SIP 480/503 is the carrier's capacity).
pub fn call_result(attempt: &AttemptRecord) -> CallResult {
    let machine = crate::call::by_machine(attempt);
    let outcome = attempt
        .outcome
        .as_deref()
        .and_then(|o| o.parse::<Outcome>().ok());
    if outcome.is_none()
        && attempt.answered_at.is_none()
        && let Some(result) = carrier_failure(attempt.error_code, attempt.sip_response_code)
    {
        return result;
    }
    match attempt.result.as_deref() {
        _ if outcome.is_some() => CallResult::Completed {
            answered_by_machine: machine,
            outcome,
        },
        Some("completed") if attempt.answered_at.is_some() => CallResult::Completed {
            answered_by_machine: machine,
            outcome: None,
        },
        Some("no_answer") => CallResult::NoAnswer,
        Some("busy" | "declined") => CallResult::Busy,
        Some("carrier_capacity") => CallResult::Failed {
            carrier_capacity: true,
        },
        Some("canceled") => CallResult::Canceled,
        _ => CallResult::Failed {
            carrier_capacity: false,
        },
    }
}

/// The retry budget's view of a contact's earlier attempts (all but `current`).
pub fn history(attempts: &[AttemptRecord], current: AttemptId) -> AttemptHistory {
    let mut history = AttemptHistory::default();
    for attempt in attempts.iter().filter(|a| a.id != current) {
        history.record(&call_result(attempt));
    }
    history
}
