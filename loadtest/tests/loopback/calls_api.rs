//! The Calls API: create, fetch, hang up; authentication and Twilio-shaped errors.

use switchboard_loadtest::{CallScript, DialResult};
use switchboard_media::twilio::call::CreateCall;
use switchboard_media::{CallStatus, TwilioError};

use crate::support::*;

const SAY: &str = "<Response><Say>Hello</Say></Response>";

#[tokio::test]
async fn a_call_is_created_fetched_and_hung_up_with_media_s_client() {
    let config = carrier_config().script("+15551110001", CallScript::answered(50, 60_000));
    let carrier = start_carrier(config).await;
    let twilio = twilio(&carrier);

    let created = twilio
        .create_call(&CreateCall::new("+15551110001", FROM).twiml(SAY))
        .await
        .expect("call is created");
    assert!(created.sid.starts_with("CA"), "{}", created.sid);
    assert_eq!(created.sid.len(), 34);
    assert!(created.sid[2..].bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(created.status, Some(CallStatus::Queued));
    assert_eq!(created.to.as_deref(), Some("+15551110001"));
    assert_eq!(created.from.as_deref(), Some(FROM));
    assert_eq!(created.queue_time_ms(), Some(0));

    carrier
        .wait_until(|calls| calls[0].status == CallStatus::InProgress, PATIENCE)
        .await
        .expect("the callee answers");
    let fetched = twilio
        .fetch_call(&created.sid)
        .await
        .expect("call is fetched");
    assert_eq!(fetched.status, Some(CallStatus::InProgress));
    assert!(fetched.start_time.is_some());

    let hung_up = twilio
        .hangup(&created.sid)
        .await
        .expect("hang-up is accepted");
    assert_eq!(hung_up.status, Some(CallStatus::Completed));
    assert!(hung_up.end_time.is_some());
    assert!(hung_up.duration_secs().is_some());
    let record = carrier.call(&created.sid).expect("recorded");
    assert!(record.ended_at.is_some());
    assert_eq!(
        record.stream_close_reason, None,
        "no stream in a <Say> call"
    );
    carrier.shutdown().await;
}

#[tokio::test]
async fn hanging_up_a_ringing_call_cancels_it_and_canceling_an_answered_one_does_nothing() {
    let config = carrier_config()
        .script("+15551110002", CallScript::answered(60_000, 1_000))
        .script("+15551110003", CallScript::answered(20, 60_000));
    let carrier = start_carrier(config).await;
    let twilio = twilio(&carrier);
    let ringing = twilio
        .create_call(&CreateCall::new("+15551110002", FROM).twiml(SAY))
        .await
        .unwrap();
    let answered = twilio
        .create_call(&CreateCall::new("+15551110003", FROM).twiml(SAY))
        .await
        .unwrap();
    carrier
        .wait_until(
            |calls| {
                calls.iter().any(|c| c.status == CallStatus::Ringing)
                    && calls.iter().any(|c| c.status == CallStatus::InProgress)
            },
            PATIENCE,
        )
        .await
        .expect("one rings, one is answered");

    let canceled = twilio.hangup(&ringing.sid).await.unwrap();
    assert_eq!(canceled.status, Some(CallStatus::Canceled));
    let untouched = twilio.cancel(&answered.sid).await.unwrap();
    assert_eq!(untouched.status, Some(CallStatus::InProgress));
    assert_eq!(carrier.call(&answered.sid).unwrap().ended_at, None);
    carrier.shutdown().await;
}

#[tokio::test]
async fn a_wrong_password_gets_a_twilio_shaped_401() {
    let carrier = start_carrier(carrier_config()).await;
    let form = [("To", "+15551110004"), ("From", FROM), ("Twiml", SAY)];
    let (status, body) = raw_post(&calls_url(&carrier), "wrong-token", &form).await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], 20003);
    assert_eq!(body["status"], 401);
    assert!(body["message"].is_string());
    assert!(body["more_info"].as_str().unwrap().ends_with("20003"));
    assert!(carrier.calls().is_empty());

    let wrong = twilio_with_token(&carrier, "nope");
    let error = wrong
        .fetch_call("CA00000000000000000000000000000000")
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            TwilioError::Api {
                status: 401,
                code: Some(20003),
                ..
            }
        ),
        "{error:?}"
    );
    carrier.shutdown().await;
}

#[tokio::test]
async fn invalid_requests_get_twilio_codes_and_unknown_calls_a_404() {
    let carrier = start_carrier(carrier_config()).await;
    let url = calls_url(&carrier);
    let cases: [(&[(&str, &str)], i64); 5] = [
        (&[("From", FROM), ("Twiml", SAY)], 21201),
        (&[("To", "12345"), ("From", FROM), ("Twiml", SAY)], 21211),
        (&[("To", "+15551110005"), ("Twiml", SAY)], 21213),
        (&[("To", "+15551110005"), ("From", FROM)], 21205),
        (
            &[("To", "+15551110005"), ("From", FROM), ("Url", "not a url")],
            21205,
        ),
    ];
    for (form, code) in cases {
        let (status, body) = raw_post(&url, TOKEN, form).await;
        assert_eq!(
            (status, body["code"].as_i64()),
            (400, Some(code)),
            "{form:?} -> {body}"
        );
        assert_eq!(body["status"], 400);
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
        let parsed = TwilioError::from_response(status, body.to_string().as_bytes(), None);
        assert_eq!(parsed.code(), Some(code));
        assert!(!parsed.is_retryable());
    }
    let error = twilio(&carrier).fetch_call("CA0123").await.unwrap_err();
    assert!(
        matches!(
            error,
            TwilioError::Api {
                status: 404,
                code: Some(20404),
                ..
            }
        ),
        "{error:?}"
    );
    assert!(carrier.calls().is_empty());
    carrier.shutdown().await;
}

#[tokio::test]
async fn scripted_failures_end_without_an_answer() {
    let config = carrier_config()
        .script("+15551110006", CallScript::ends(DialResult::Busy, 20))
        .script("+15551110007", CallScript::ends(DialResult::NoAnswer, 30))
        .script("+15551110008", CallScript::ends(DialResult::Failed, 10));
    let carrier = start_carrier(config).await;
    let twilio = twilio(&carrier);
    for to in ["+15551110006", "+15551110007", "+15551110008"] {
        twilio
            .create_call(&CreateCall::new(to, FROM).twiml(SAY))
            .await
            .unwrap();
    }
    let calls = carrier
        .wait_until_all_ended(PATIENCE)
        .await
        .expect("all end");
    let statuses: Vec<_> = calls.iter().map(|c| c.status.clone()).collect();
    assert_eq!(
        statuses,
        [CallStatus::Busy, CallStatus::NoAnswer, CallStatus::Failed]
    );
    assert!(
        calls
            .iter()
            .all(|c| c.answered_at.is_none() && c.frames_sent == 0)
    );
    assert!(calls.iter().all(|c| c.stream_close_reason.is_none()));
    carrier.shutdown().await;
}
