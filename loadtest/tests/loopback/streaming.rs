//! The carrier streaming straight to the scripted agent: audio both ways, marks, DTMF
//! opt-out, outcome reports with the bearer token, dropped agents and REST hang-ups.

use std::time::Duration;

use switchboard_loadtest::agent::GREETING_MARK;
use switchboard_loadtest::{
    AgentCallRecord, AgentCloseReason, AgentConfig, CallRecord, CallScript, Outcome, ScriptedAgent,
    SimCarrier, StreamCloseReason,
};
use switchboard_media::CallStatus;
use switchboard_media::twilio::call::CreateCall;
use switchboard_media::twilio::twiml::connect_stream;

use crate::support::*;

const BEARER: &str = "per-call-token-123";

fn agent_config() -> AgentConfig {
    AgentConfig {
        greeting_delay_ms: 50,
        talk_ms: 400,
        listen_ms: 10_000,
        signature_token: Some(TOKEN.to_owned()),
        ..AgentConfig::default()
    }
}

/// TwiML connecting to the agent with the agent contract's parameters.
fn twiml(
    agent: &ScriptedAgent,
    receiver: &Receiver,
    call_id: &str,
    attributes: serde_json::Value,
) -> String {
    let contact = serde_json::json!({
        "name": "Ada Lovelace",
        "phone": "+15554440000",
        "email": "ada@example.com",
        "company": "Analytical & Co <ltd>",
        "timezone": "Europe/London",
        "attributes": attributes,
    });
    let outcome_url = format!("{}/outcome", receiver.base_url);
    let contact = contact.to_string();
    connect_stream(
        &agent.ws_url(),
        &[
            ("call_id", call_id),
            ("token", BEARER),
            ("outcome_url", &outcome_url),
            ("campaign_id", "campaign-1"),
            (
                "script",
                "Hi {{name}}, this is \"Switchboard\".\nPress 9 to opt out.",
            ),
            ("contact", &contact),
            ("vars", r#"{"offer":"10% off"}"#),
        ],
    )
}

async fn place(carrier: &SimCarrier, to: &str, twiml: String) -> String {
    let request = CreateCall::new(to, FROM).twiml(twiml);
    twilio(carrier)
        .create_call(&request)
        .await
        .expect("call is created")
        .sid
}

async fn ended_call(carrier: &SimCarrier, sid: &str) -> CallRecord {
    carrier
        .wait_until(
            |calls| calls.iter().any(|c| c.sid == sid && c.ended_at.is_some()),
            PATIENCE,
        )
        .await
        .expect("the call ends")
        .into_iter()
        .find(|c| c.sid == sid)
        .unwrap()
}

async fn ended_agent_call(agent: &ScriptedAgent) -> AgentCallRecord {
    agent
        .wait_until(
            |calls| calls.first().is_some_and(|c| c.ended_at.is_some()),
            PATIENCE,
        )
        .await
        .expect("the agent's side ends")
        .remove(0)
}

#[tokio::test]
async fn audio_flows_both_ways_the_mark_comes_back_and_dtmf_9_opts_out() {
    let script = CallScript::answered(50, 20_000).with_dtmf(1_500, "9");
    let carrier = start_carrier(carrier_config().script("+15554440001", script)).await;
    let agent = ScriptedAgent::start(agent_config()).await.unwrap();
    let receiver = Receiver::start().await;
    let sid = place(
        &carrier,
        "+15554440001",
        twiml(&agent, &receiver, "call-1", serde_json::json!({})),
    )
    .await;

    let call = ended_call(&carrier, &sid).await;
    let agent_call = ended_agent_call(&agent).await;

    // The agent got the contract, and the carrier's upgrade signature checks out.
    assert_eq!(agent_call.signature_valid, Some(true));
    assert_eq!(agent_call.call_id.as_deref(), Some("call-1"));
    assert_eq!(agent_call.call_sid.as_deref(), Some(sid.as_str()));
    assert_eq!(agent_call.stream_sid, call.stream_sid);
    let params = &agent_call.custom_parameters;
    assert_eq!(params["campaign_id"], "campaign-1");
    assert!(params["script"].contains("\"Switchboard\".\nPress 9"));
    let contact: serde_json::Value = serde_json::from_str(&params["contact"]).unwrap();
    assert_eq!(contact["company"], "Analytical & Co <ltd>");

    // Audio both ways: 400 ms of greeting is 20 frames; the callee streamed ~1.5 s.
    assert_eq!(agent_call.frames_sent, 20);
    assert_eq!(call.frames_received, 20);
    assert!(
        call.frames_sent >= 60,
        "{} frames in 1.5 s",
        call.frames_sent
    );
    assert!(
        call.frames_sent.abs_diff(agent_call.frames_received) <= 3,
        "carrier sent {}, agent heard {}",
        call.frames_sent,
        agent_call.frames_received
    );
    assert!(agent_call.inbound_energy_dbfs.is_some_and(|db| db > -40.0));
    assert_eq!(agent_call.silent_frames_received, 0);
    assert!(call.first_far_audio_at.is_some());
    // Ticks run on a timer: on a loaded machine a few are late, not most.
    assert!(
        call.late_ticks * 4 <= call.frames_sent,
        "{} of {} ticks late",
        call.late_ticks,
        call.frames_sent
    );

    // The mark is echoed once the 400 ms greeting has played.
    assert_eq!(call.marks_sent_back, [GREETING_MARK]);
    let (name, echoed_at) = agent_call
        .marks_received
        .first()
        .expect("mark echoed")
        .clone();
    assert_eq!(name, GREETING_MARK);
    let first_sent = agent_call.first_frame_sent_at.unwrap();
    assert!(
        echoed_at - first_sent >= Duration::from_millis(380),
        "{:?}",
        echoed_at - first_sent
    );

    // DTMF 9 makes the agent report do_not_call with the bearer token and hang up.
    assert_eq!(call.dtmf_sent, ["9"]);
    assert_eq!(agent_call.dtmf_received, ["9"]);
    assert_eq!(agent_call.close_reason, Some(AgentCloseReason::OptedOut));
    let report = agent_call.outcome.clone().expect("reported");
    assert_eq!(
        (report.outcome, report.http_status, report.attempts),
        (Outcome::DoNotCall, Some(200), 1)
    );
    let outcomes = receiver.hits("/outcome");
    assert_eq!(outcomes.len(), 1);
    assert_eq!(
        outcomes[0].authorization.as_deref(),
        Some("Bearer per-call-token-123")
    );
    let body = outcomes[0].json.clone().unwrap();
    assert_eq!(
        (body["call_id"].as_str(), body["outcome"].as_str()),
        (Some("call-1"), Some("do_not_call"))
    );
    assert!(body.get("callback_at").is_none());
    assert!(
        body["transcript"]
            .as_str()
            .is_some_and(|t| t.contains("Switchboard"))
    );

    // The agent closed first, so the call completed then (well before its 20 s talk time).
    assert_eq!(call.status, CallStatus::Completed);
    assert!(
        matches!(
            call.stream_close_reason,
            Some(StreamCloseReason::FarSideClosed {
                code: Some(1000),
                ..
            })
        ),
        "{:?}",
        call.stream_close_reason
    );
    let talked = call.ended_at.unwrap() - call.answered_at.unwrap();
    assert!(talked < Duration::from_secs(5), "{talked:?}");
    assert_eq!(call.protocol_errors, 0);
    assert_eq!(agent_call.protocol_errors, 0);
    carrier.shutdown().await;
    agent.shutdown().await;
}

#[tokio::test]
async fn a_dropped_agent_ends_the_call_and_nothing_is_reported() {
    let carrier =
        start_carrier(carrier_config().script("+15554440002", CallScript::answered(20, 20_000)))
            .await;
    let agent = ScriptedAgent::start(agent_config()).await.unwrap();
    let receiver = Receiver::start().await;
    let attributes = serde_json::json!({"agent_drop_after_ms": 300});
    let sid = place(
        &carrier,
        "+15554440002",
        twiml(&agent, &receiver, "call-2", attributes),
    )
    .await;

    let call = ended_call(&carrier, &sid).await;
    let agent_call = ended_agent_call(&agent).await;
    assert_eq!(agent_call.close_reason, Some(AgentCloseReason::Dropped));
    assert_eq!(agent_call.outcome, None);
    assert_eq!(call.status, CallStatus::Completed);
    assert!(
        matches!(
            call.stream_close_reason,
            Some(StreamCloseReason::FarSideDropped { .. })
        ),
        "{:?}",
        call.stream_close_reason
    );
    let talked = call.ended_at.unwrap() - call.answered_at.unwrap();
    assert!(
        talked >= Duration::from_millis(300) && talked < Duration::from_secs(3),
        "{talked:?}"
    );
    assert!(receiver.hits("/outcome").is_empty());
    carrier.shutdown().await;
    agent.shutdown().await;
}

#[tokio::test]
async fn the_script_s_end_reports_the_contact_s_outcome_after_a_retry() {
    let carrier =
        start_carrier(carrier_config().script("+15554440003", CallScript::answered(20, 20_000)))
            .await;
    let agent = ScriptedAgent::start(agent_config()).await.unwrap();
    let receiver = Receiver::start().await;
    receiver.fail_outcomes(1);
    let attributes = serde_json::json!({
        "agent_outcome": "callback",
        "agent_callback_in_minutes": "30",
        "agent_talk_ms": 100,
        "agent_listen_ms": 200
    });
    let sid = place(
        &carrier,
        "+15554440003",
        twiml(&agent, &receiver, "call-3", attributes),
    )
    .await;

    let agent_call = ended_agent_call(&agent).await;
    let call = ended_call(&carrier, &sid).await;
    assert_eq!(agent_call.close_reason, Some(AgentCloseReason::Finished));
    assert_eq!(agent_call.frames_sent, 5);
    let report = agent_call.outcome.expect("reported");
    assert_eq!(
        (report.outcome, report.http_status, report.attempts),
        (Outcome::Callback, Some(200), 2)
    );
    let hits = receiver.hits("/outcome");
    assert_eq!(hits.len(), 2, "one 503, one retry");
    let callback_at = hits[1].json.as_ref().unwrap()["callback_at"]
        .as_str()
        .unwrap()
        .to_owned();
    let at = chrono::DateTime::parse_from_rfc3339(&callback_at).expect("rfc 3339");
    let ahead = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    assert!((29..=30).contains(&ahead.num_minutes()), "{ahead:?}");
    assert!(matches!(
        call.stream_close_reason,
        Some(StreamCloseReason::FarSideClosed { .. })
    ));
    carrier.shutdown().await;
    agent.shutdown().await;
}

#[tokio::test]
async fn a_rest_hang_up_sends_stop_and_the_agent_still_reports() {
    let carrier =
        start_carrier(carrier_config().script("+15554440004", CallScript::answered(20, 60_000)))
            .await;
    let agent = ScriptedAgent::start(agent_config()).await.unwrap();
    let receiver = Receiver::start().await;
    let attributes = serde_json::json!({"agent_outcome": "not_interested"});
    let sid = place(
        &carrier,
        "+15554440004",
        twiml(&agent, &receiver, "call-4", attributes),
    )
    .await;
    agent
        .wait_until(
            |calls| calls.first().is_some_and(|c| c.frames_received >= 10),
            PATIENCE,
        )
        .await
        .expect("media flows");

    let hung_up = twilio(&carrier).hangup(&sid).await.unwrap();
    assert_eq!(hung_up.status, Some(CallStatus::Completed));
    let call = ended_call(&carrier, &sid).await;
    assert_eq!(call.stream_close_reason, Some(StreamCloseReason::HungUp));
    let agent_call = ended_agent_call(&agent).await;
    assert!(agent_call.stop_received);
    assert_eq!(
        agent_call.close_reason,
        Some(AgentCloseReason::StopReceived)
    );
    let report = agent_call.outcome.expect("reported on stop");
    assert_eq!(
        (report.outcome, report.http_status),
        (Outcome::NotInterested, Some(200))
    );
    carrier.shutdown().await;
    agent.shutdown().await;
}
