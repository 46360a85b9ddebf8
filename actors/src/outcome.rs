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

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_engine::store::AttemptStatus;
    use switchboard_engine::{CampaignId, ContactId, TenantId};

    fn answered(answered_by: &str) -> AttemptRecord {
        let now = switchboard_engine::time::now();
        let mut detail = serde_json::Map::new();
        detail.insert("answered_by".into(), serde_json::json!(answered_by));
        AttemptRecord {
            id: AttemptId(1),
            tenant_id: TenantId(1),
            campaign_id: CampaignId(1),
            contact_id: ContactId(1),
            attempt_no: 1,
            phone: "+14155550100".into(),
            status: AttemptStatus::Ended,
            result: Some("completed".into()),
            outcome: None,
            carrier_call_id: Some("CA1".into()),
            reserved_at: now,
            dialed_at: Some(now),
            answered_at: Some(now),
            ended_at: Some(now),
            detail,
            error_code: None,
            sip_response_code: Some(200),
        }
    }

    #[test]
    fn every_answered_by_value_is_a_machine_or_a_person() {
        for (value, machine) in [
            ("human", false),
            ("machine_start", true),
            ("machine_end_beep", true),
            ("machine_end_silence", true),
            ("machine_end_other", true),
            ("fax", true),
            // Detection could not tell: a person, for abandonment and pacing alike.
            ("unknown", false),
            ("something_new", false),
        ] {
            let attempt = answered(value);
            assert_eq!(crate::call::by_machine(&attempt), machine, "{value}");
            assert_eq!(
                call_result(&attempt),
                CallResult::Completed {
                    answered_by_machine: machine,
                    outcome: None
                },
                "{value}"
            );
        }
    }

    #[test]
    fn carrier_codes_of_an_unanswered_call_drive_its_result() {
        let mut invalid = answered("human");
        invalid.answered_at = None;
        invalid.result = Some("failed".into());
        invalid.error_code = Some(13224);
        invalid.sip_response_code = Some(404);
        assert_eq!(call_result(&invalid), CallResult::InvalidNumber);
        let mut unavailable = invalid.clone();
        unavailable.error_code = Some(31480);
        unavailable.sip_response_code = Some(480);
        assert_eq!(
            call_result(&unavailable),
            CallResult::Failed {
                carrier_capacity: true
            }
        );
        let mut busy = invalid;
        busy.result = Some("busy".into());
        busy.error_code = None;
        busy.sip_response_code = Some(603);
        assert_eq!(call_result(&busy), CallResult::Busy);
    }
}
