//! What the carrier does with a live call after its answer: new TwiML given through the
//! REST API (the stream stops, the `<Say>` plays, the call completes), and asynchronous
//! machine detection reported in its own signed callback.

use std::time::{Duration, Instant};

use switchboard_loadtest::{
    AgentCloseReason, AgentConfig, CallScript, ScriptedAgent, SimCarrier, StreamCloseReason,
};
use switchboard_media::twilio::call::{CreateCall, MachineDetection};
use switchboard_media::twilio::twiml::{connect_stream, say_and_hangup};
use switchboard_media::{AnsweredBy, CallStatus, TwilioError};

use crate::support::*;

/// An agent that greets at once and then listens for a long time.
async fn listening_agent() -> ScriptedAgent {
    ScriptedAgent::start(AgentConfig {
        greeting_delay_ms: 20,
        talk_ms: 200,
        listen_ms: 30_000,
        ..AgentConfig::default()
    })
    .await
    .unwrap()
}

async fn place(carrier: &SimCarrier, request: CreateCall) -> String {
    twilio(carrier)
        .create_call(&request)
        .await
        .expect("call is created")
        .sid
}

#[tokio::test]
async fn new_twiml_stops_the_stream_says_the_message_and_completes_the_call() {
    let mut config = carrier_config().script("+15556660001", CallScript::answered(20, 60_000));
    config.say_ms_per_char = 20;
    let carrier = start_carrier(config).await;
    let agent = listening_agent().await;
    let receiver = Receiver::start().await;
    let request = CreateCall::new("+15556660001", FROM)
        .twiml(connect_stream(&agent.ws_url(), &[("call_id", "c1")]))
        .status_callback(format!("{}/status", receiver.base_url));
    let sid = place(&carrier, request).await;
    carrier
        .wait_until(
            |calls| calls.iter().any(|c| c.frames_received > 5),
            PATIENCE,
        )
        .await
        .expect("the agent is heard");

    let message = "This was Acme & Co. Goodbye.";
    let updated_at = Instant::now();
    let call = twilio(&carrier)
        .update_twiml(&sid, &say_and_hangup(message))
        .await
        .unwrap();
    assert_eq!(call.status, Some(CallStatus::InProgress), "still talking");

    let ended = carrier
        .wait_until(|calls| calls.iter().any(|c| c.ended_at.is_some()), PATIENCE)
        .await
        .expect("the call ends")
        .remove(0);
    assert_eq!(ended.status, CallStatus::Completed);
    assert_eq!(ended.said, [message], "the carrier says what it was given");
    assert_eq!(ended.twiml_updates, 1);
    assert_eq!(
        ended.stream_close_reason,
        Some(StreamCloseReason::Redirected)
    );
    let played = ended.ended_at.unwrap().duration_since(updated_at);
    assert!(
        played >= Duration::from_millis(20 * message.chars().count() as u64),
        "the message plays before the hang-up: {played:?}"
    );
    let agent_call = agent
        .wait_until(
            |calls| calls.first().is_some_and(|c| c.ended_at.is_some()),
            PATIENCE,
        )
        .await
        .expect("the agent's side ends")
        .remove(0);
    assert!(agent_call.stop_received, "the stream got `stop`");
    assert_eq!(
        agent_call.close_reason,
        Some(AgentCloseReason::StopReceived)
    );

    let hits = receiver.wait_for("/status", 4).await;
    let last = hits.last().unwrap();
    assert_eq!(last.param("CallStatus"), Some("completed"));
    assert!(last.param("CallDuration").is_some());
    assert!(hits.iter().all(|h| h.signature_valid));
    carrier.shutdown().await;
    agent.shutdown().await;
}

#[tokio::test]
async fn new_twiml_for_a_call_not_yet_answered_or_unreadable_is_refused() {
    let config = carrier_config()
        .script("+15556660002", CallScript::answered(10_000, 1_000))
        .script("+15556660003", CallScript::answered(20, 60_000));
    let carrier = start_carrier(config).await;
    let ringing = place(
        &carrier,
        CreateCall::new("+15556660002", FROM).twiml("<Response><Pause/></Response>"),
    )
    .await;
    let error = twilio(&carrier)
        .update_twiml(&ringing, &say_and_hangup("Too early"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            TwilioError::Api {
                code: Some(21220),
                ..
            }
        ),
        "{error:?}"
    );

    let live = place(
        &carrier,
        CreateCall::new("+15556660003", FROM).twiml("<Response><Pause/></Response>"),
    )
    .await;
    carrier
        .wait_until(
            |calls| {
                calls
                    .iter()
                    .any(|c| c.sid == live && c.answered_at.is_some())
            },
            PATIENCE,
        )
        .await
        .expect("answered");
    let error = twilio(&carrier)
        .update_twiml(&live, "<Response><Say>unclosed")
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            TwilioError::Api {
                code: Some(12100),
                ..
            }
        ),
        "{error:?}"
    );
    let call = carrier.call(&live).unwrap();
    assert!(call.said.is_empty() && call.ended_at.is_none());
    carrier.shutdown().await;
}

#[tokio::test]
async fn async_machine_detection_reports_who_answered_in_its_own_callback_after_the_answer() {
    let script = CallScript::answered(20, 1_000)
        .with_answered_by(AnsweredBy::MachineStart)
        .with_amd_ms(300);
    let carrier = start_carrier(carrier_config().script("+15556660004", script)).await;
    let receiver = Receiver::start().await;
    let mut request = CreateCall::new("+15556660004", FROM)
        .twiml("<Response><Pause/></Response>")
        .status_callback(format!("{}/status", receiver.base_url))
        .machine_detection(MachineDetection::Enable)
        .async_amd(true)
        .async_amd_status_callback(format!("{}/amd", receiver.base_url));
    request.status_callback_events = vec![
        switchboard_media::twilio::CallbackEvent::Answered,
        switchboard_media::twilio::CallbackEvent::Completed,
    ];
    let sid = place(&carrier, request).await;

    let answered = receiver.wait_for("/status", 1).await;
    assert_eq!(answered[0].param("CallStatus"), Some("in-progress"));
    assert_eq!(
        answered[0].param("AnsweredBy"),
        None,
        "nobody knows who answered yet: the call connects at once"
    );
    let amd = receiver.wait_for("/amd", 1).await;
    assert_eq!(amd.len(), 1);
    assert!(amd[0].signature_valid);
    assert_eq!(amd[0].param("CallSid"), Some(sid.as_str()));
    assert_eq!(amd[0].param("AnsweredBy"), Some("machine_start"));
    assert_eq!(amd[0].param("MachineDetectionDuration"), Some("300"));
    assert_eq!(amd[0].param("CallStatus"), None);

    let hits = receiver.wait_for("/status", 2).await;
    assert_eq!(hits[1].param("CallStatus"), Some("completed"));
    assert_eq!(hits[1].param("AnsweredBy"), Some("machine_start"));
    let call = carrier.call(&sid).unwrap();
    let sent = call.amd_sent.expect("the result was sent");
    assert_eq!(
        (sent.answered_by, sent.detection_ms, sent.http_status),
        (AnsweredBy::MachineStart, 300, Some(204))
    );
    assert!(sent.sent_at >= call.answered_at.unwrap() + Duration::from_millis(300));
    carrier.shutdown().await;
}
