//! Status callbacks: signed, in sequence, in Twilio's format; duplicated or swapped when
//! asked; and the signed TwiML fetch.

use switchboard_loadtest::{CallScript, CarrierConfig, DialResult};
use switchboard_media::twilio::call::{CreateCall, MachineDetection};
use switchboard_media::{AnsweredBy, CallStatus, StatusCallback};

use crate::support::*;

const SAY: &str = "<Response><Say>Hello</Say></Response>";

fn statuses(hits: &[Hit]) -> Vec<(u64, String)> {
    let mut seen: Vec<_> = hits
        .iter()
        .map(|h| {
            let seq = h
                .param("SequenceNumber")
                .and_then(|s| s.parse().ok())
                .unwrap_or(u64::MAX);
            (seq, h.param("CallStatus").unwrap_or_default().to_owned())
        })
        .collect();
    seen.sort();
    seen
}

#[tokio::test]
async fn an_answered_call_reports_every_event_signed_and_in_sequence() {
    let carrier =
        start_carrier(carrier_config().script("+15552220001", CallScript::answered(30, 1_100)))
            .await;
    let receiver = Receiver::start().await;
    let callback = format!("{}/status?campaign=7&attempt=1", receiver.base_url);
    let request = CreateCall::new("+15552220001", FROM)
        .twiml(SAY)
        .status_callback(&callback);
    let call = twilio(&carrier).create_call(&request).await.unwrap();

    let hits = receiver.wait_for("/status", 4).await;
    assert_eq!(hits.len(), 4, "{hits:#?}");
    assert!(
        hits.iter().all(|h| h.signature_valid),
        "every callback validates: {hits:#?}"
    );
    let arrival: Vec<_> = hits
        .iter()
        .map(|h| h.param("SequenceNumber").unwrap().to_owned())
        .collect();
    assert_eq!(arrival, ["0", "1", "2", "3"]);
    let order: Vec<_> = hits
        .iter()
        .map(|h| h.param("CallStatus").unwrap())
        .collect();
    assert_eq!(order, ["initiated", "ringing", "in-progress", "completed"]);
    for hit in &hits {
        let parsed = StatusCallback::from_form(&hit.params).expect("media parses it");
        assert_eq!(parsed.call_sid, call.sid);
        assert_eq!(parsed.account_sid.as_deref(), Some(ACCOUNT));
        assert_eq!(parsed.direction.as_deref(), Some("outbound-api"));
        assert_eq!(
            parsed.callback_source.as_deref(),
            Some("call-progress-events")
        );
        assert_eq!(hit.param("ApiVersion"), Some("2010-04-01"));
        assert_eq!(
            (hit.param("From"), hit.param("To")),
            (Some(FROM), Some("+15552220001"))
        );
        let timestamp = parsed.timestamp.expect("timestamp");
        chrono::DateTime::parse_from_rfc2822(&timestamp).expect("rfc 2822 timestamp");
        assert_eq!(
            parsed.answered_by, None,
            "no machine detection was asked for"
        );
    }
    assert_eq!(
        hits[3].param("CallDuration"),
        Some("2"),
        "1.1 s billed as 2"
    );
    assert_eq!(hits[0].param("CallDuration"), None);
    let record = carrier
        .wait_until_all_ended(PATIENCE)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(record.callbacks_sent.len(), 4);
    assert!(
        record
            .callbacks_sent
            .iter()
            .all(|c| c.http_status == Some(204))
    );
    carrier.shutdown().await;
}

#[tokio::test]
async fn a_busy_number_reports_busy_and_twilio_s_default_is_only_completed() {
    let config = carrier_config()
        .script("+15552220002", CallScript::ends(DialResult::Busy, 20))
        .script("+15552220003", CallScript::answered(20, 50));
    let carrier = start_carrier(config).await;
    let receiver = Receiver::start().await;
    let url = format!("{}/status", receiver.base_url);
    let twilio = twilio(&carrier);
    let busy = CreateCall::new("+15552220002", FROM)
        .twiml(SAY)
        .status_callback(&url);
    let busy = twilio.create_call(&busy).await.unwrap();
    let quiet = CreateCall::new("+15552220003", FROM)
        .twiml(SAY)
        .status_callback(&url)
        .status_callback_events(vec![]);
    let quiet = twilio.create_call(&quiet).await.unwrap();
    carrier.wait_until_all_ended(PATIENCE).await.unwrap();

    let hits = receiver.hits("/status");
    let of = |sid: &str| {
        hits.iter()
            .filter(|h| h.param("CallSid") == Some(sid))
            .cloned()
            .collect::<Vec<_>>()
    };
    let busy_hits = of(&busy.sid);
    assert_eq!(
        statuses(&busy_hits),
        [(0, "initiated".to_owned()), (1, "busy".to_owned())]
    );
    assert_eq!(busy_hits[1].param("CallDuration"), Some("0"));
    assert_eq!(statuses(&of(&quiet.sid)), [(0, "completed".to_owned())]);
    assert!(hits.iter().all(|h| h.signature_valid));
    carrier.shutdown().await;
}

#[tokio::test]
async fn duplicated_and_swapped_callbacks_still_carry_every_sequence_number() {
    let config = CarrierConfig {
        callbacks: switchboard_loadtest::CallbackPolicy {
            duplicate_all: true,
            swapped_pairs: true,
            ..switchboard_loadtest::CallbackPolicy::in_order()
        },
        ..carrier_config()
    }
    .script("+15552220004", CallScript::answered(20, 100));
    let carrier = start_carrier(config).await;
    let receiver = Receiver::start().await;
    let request = CreateCall::new("+15552220004", FROM)
        .twiml(SAY)
        .status_callback(format!("{}/status", receiver.base_url));
    twilio(&carrier).create_call(&request).await.unwrap();

    let hits = receiver.wait_for("/status", 8).await;
    assert_eq!(hits.len(), 8, "{hits:#?}");
    assert!(hits.iter().all(|h| h.signature_valid));
    let arrival: Vec<_> = hits
        .iter()
        .map(|h| h.param("SequenceNumber").unwrap().to_owned())
        .collect();
    assert_eq!(arrival, ["1", "1", "0", "0", "3", "3", "2", "2"]);
    let mut deduplicated = statuses(&hits);
    deduplicated.dedup();
    let names: Vec<_> = deduplicated.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(names, ["initiated", "ringing", "in-progress", "completed"]);
    carrier.shutdown().await;
}

#[tokio::test]
async fn by_default_callbacks_are_separate_requests_some_twice_each_sequence_at_least_once() {
    // Every callback delivered twice makes the duplicates certain; the rest is the default.
    let config = CarrierConfig {
        callbacks: switchboard_loadtest::CallbackPolicy {
            duplicate_share: 1.0,
            ..switchboard_loadtest::CallbackPolicy::default()
        },
        ..CarrierConfig::new(ACCOUNT, TOKEN).cps(None)
    }
    .script("+15552220006", CallScript::answered(5, 100))
    .script(
        "+15552220007",
        CallScript::fails(switchboard_loadtest::Failure::InvalidNumber, 5),
    );
    let carrier = start_carrier(config).await;
    assert!(CarrierConfig::default().callbacks.concurrent);
    let receiver = Receiver::start().await;
    for to in ["+15552220006", "+15552220007"] {
        let request = CreateCall::new(to, FROM)
            .twiml(SAY)
            .status_callback(format!("{}/status", receiver.base_url));
        twilio(&carrier).create_call(&request).await.unwrap();
    }
    let hits = receiver.wait_for("/status", 12).await;
    assert!(hits.iter().all(|h| h.signature_valid));
    let answered: Vec<_> = hits
        .iter()
        .filter(|h| h.param("To") == Some("+15552220006"))
        .cloned()
        .collect();
    let mut sequences = statuses(&answered);
    assert_eq!(sequences.len(), 8, "each of four twice: {sequences:?}");
    sequences.dedup();
    let names: Vec<_> = sequences.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(names, ["initiated", "ringing", "in-progress", "completed"]);
    let completed = answered
        .iter()
        .find(|h| h.param("CallStatus") == Some("completed"))
        .unwrap();
    assert_eq!(completed.param("SipResponseCode"), Some("200"));
    let failed = hits
        .iter()
        .find(|h| h.param("To") == Some("+15552220007") && h.param("CallStatus") == Some("failed"))
        .expect("the failed call's callback");
    assert_eq!(failed.param("ErrorCode"), Some("13224"));
    assert_eq!(failed.param("SipResponseCode"), Some("404"));
    assert!(failed.param("Timestamp").is_some());
    carrier.shutdown().await;
}

#[tokio::test]
async fn machine_detection_adds_answered_by_and_url_twiml_is_fetched_signed() {
    let script = CallScript::answered(20, 100).with_answered_by(AnsweredBy::MachineEndBeep);
    let carrier = start_carrier(carrier_config().script("+15552220005", script)).await;
    let receiver = Receiver::start().await;
    receiver.set_twiml(SAY);
    let request = CreateCall::new("+15552220005", FROM)
        .url(format!("{}/twiml?step=answer", receiver.base_url))
        .status_callback(format!("{}/status", receiver.base_url))
        .machine_detection(MachineDetection::DetectMessageEnd);
    let call = twilio(&carrier).create_call(&request).await.unwrap();

    let fetches = receiver.wait_for("/twiml", 1).await;
    assert_eq!(fetches.len(), 1);
    assert!(
        fetches[0].signature_valid,
        "the TwiML fetch is signed over its URL and form"
    );
    assert_eq!(fetches[0].param("CallSid"), Some(call.sid.as_str()));
    assert_eq!(fetches[0].param("CallStatus"), Some("in-progress"));
    assert_eq!(fetches[0].param("AnsweredBy"), Some("machine_end_beep"));

    let hits = receiver.wait_for("/status", 4).await;
    let answered_by: Vec<_> = hits.iter().map(|h| h.param("AnsweredBy")).collect();
    assert_eq!(
        answered_by,
        [
            None,
            None,
            Some("machine_end_beep"),
            Some("machine_end_beep")
        ]
    );
    let fetched = twilio(&carrier).fetch_call(&call.sid).await.unwrap();
    // The call resource only says human or machine; the detail came in the callbacks.
    assert_eq!(
        fetched.answered_by.as_ref().map(AnsweredBy::as_str),
        Some("machine")
    );
    assert_eq!(fetched.status, Some(CallStatus::Completed));
    carrier.shutdown().await;
}
