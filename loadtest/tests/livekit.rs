//! Switchboard's LiveKit client (media) against the simulated LiveKit (loadtest), over
//! real sockets: sessions create the call room and dispatch the agent with the call
//! context and the right grants, forged credentials are refused, closing deletes the room,
//! and SIP answers map to typed results; a dispatched agent reports a SIP call's outcome
//! with the call's token and hangs up.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use livekit_api::access_token::{AccessToken, VideoGrants};
use prost::Message as _;
use serde_json::json;
use switchboard_loadtest::livekit::{
    SimLiveKit, SimLiveKitConfig, SipAgentScript, SipCallState, SipScript,
};
use switchboard_media::livekit::{
    CallContact, CallContext, LiveKitAgents, LiveKitConfig, LiveKitError, LiveKitOptions,
    SipCallError, SipDialOptions,
};

const KEY: &str = "APIsimulated";
const SECRET: &str = "simulated-livekit-secret-0123456789";
const PATIENCE: Duration = Duration::from_secs(10);

fn call(call_id: i64) -> CallContext {
    CallContext {
        call_id,
        campaign_id: 3,
        agent_name: "outbound-sales".into(),
        token: format!("call-token-{call_id}"),
        outcome_url: "https://sb.example.com/api/v1/agent/outcome".into(),
        contact: CallContact {
            phone: "+14155550100".into(),
            name: Some("Ada Lovelace".into()),
            attributes: json!({"plan": "gold"}).as_object().cloned().unwrap(),
            ..CallContact::default()
        },
        script: "Hello Ada, this is Sarah from Acme.".into(),
        variables: json!({"offer": "10%"}).as_object().cloned().unwrap(),
    }
}

async fn start(config: SimLiveKitConfig) -> SimLiveKit {
    SimLiveKit::start(config)
        .await
        .expect("the simulated livekit starts")
}

fn agents(livekit: &SimLiveKit, secret: &str, options: LiveKitOptions) -> LiveKitAgents {
    let config = LiveKitConfig::new(livekit.url(), KEY, secret.to_owned().into());
    LiveKitAgents::with_options(config, options).expect("a valid configuration")
}

fn sip_options(ringing_ms: u64) -> SipDialOptions {
    SipDialOptions {
        ringing_timeout: Duration::from_millis(ringing_ms),
        max_call_duration: Duration::from_secs(60),
        ..SipDialOptions::default()
    }
}

#[tokio::test]
async fn a_session_creates_the_call_room_and_dispatches_the_agent_with_the_call_context() {
    let livekit = start(SimLiveKitConfig::new(KEY, SECRET)).await;
    let agents = agents(&livekit, SECRET, LiveKitOptions::default());
    let session = agents
        .open_session(&call(42))
        .await
        .expect("the session opens");

    assert_eq!(session.room(), "call-42");
    assert!(session.room_sid().starts_with("RM_"));
    assert!(session.dispatch_id().starts_with("AD_"));
    assert_eq!(session.connector_url(), None, "no connector configured");
    let room = livekit.room("call-42").expect("the room exists");
    assert!(room.explicit && !room.deleted);
    assert_eq!(room.room.empty_timeout, 120);
    assert_eq!(room.room.departure_timeout, 20);
    assert_eq!(room.room.max_participants, 4);

    let dispatches = livekit.dispatches();
    assert_eq!(dispatches.len(), 1);
    assert_eq!(dispatches[0].dispatch.agent_name, "outbound-sales");
    assert_eq!(dispatches[0].dispatch.room, "call-42");
    let metadata = dispatches[0].metadata_json.clone().expect("JSON metadata");
    let context: CallContext = serde_json::from_value(metadata.clone()).unwrap();
    assert_eq!(context, call(42));
    assert_eq!(metadata["token"], "call-token-42");
    assert_eq!(metadata["contact"]["attributes"]["plan"], "gold");
    assert_eq!(metadata["vars"]["offer"], "10%");

    let requests = livekit.requests();
    let names: Vec<_> = requests.iter().map(|r| r.name()).collect();
    assert_eq!(
        names,
        [
            "RoomService/CreateRoom",
            "AgentDispatchService/CreateDispatch"
        ]
    );
    let create = requests[0].claims.as_ref().expect("a verified token");
    assert!(create.video.room_create, "CreateRoom carries roomCreate");
    assert_eq!(create.iss, KEY);
    let dispatch = requests[1].claims.as_ref().expect("a verified token");
    assert!(dispatch.video.room_admin && dispatch.video.room == "call-42");
    assert!(requests.iter().all(|r| r.error.is_none()));

    let joined = livekit
        .wait_for_webhooks(
            |w| w.iter().any(|w| w.name() == "participant_joined"),
            PATIENCE,
        )
        .await
        .expect("the simulated agent joins");
    assert_eq!(joined[0].name(), "room_started");
    let participants = session
        .participants()
        .await
        .expect("participants are listed");
    assert_eq!(participants.len(), 1);
    assert_eq!(participants[0].kind, "agent");
    livekit.shutdown().await;
}

#[tokio::test]
async fn requests_signed_with_a_wrong_secret_are_refused_and_change_nothing() {
    let livekit = start(SimLiveKitConfig::new(KEY, SECRET)).await;
    let forged = agents(&livekit, "not-the-secret", LiveKitOptions::default());
    let error = forged.open_session(&call(7)).await.unwrap_err();
    assert_eq!(error.code(), Some("unauthenticated"), "{error}");
    assert!(!error.is_retryable());
    assert!(livekit.rooms().is_empty());
    assert!(livekit.dispatches().is_empty());
    let requests = livekit.requests();
    assert_eq!(requests.len(), 1, "nothing after the refused CreateRoom");
    assert!(requests[0].claims.is_none());

    let sip = forged
        .dial_sip(&call(8), "ST_trunk", "+14155550100", sip_options(1_000))
        .await
        .unwrap_err();
    assert!(matches!(&sip, SipCallError::LiveKit(e) if e.code() == Some("unauthenticated")));
    assert!(!sip.is_retryable() && !sip.is_callee_refusal());
    assert!(livekit.sip_calls().is_empty());
    livekit.shutdown().await;
}

/// A raw Twirp call with a hand-made token, for grants media's client would never send.
async fn raw_twirp(
    livekit: &SimLiveKit,
    path: &str,
    grants: VideoGrants,
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let token = AccessToken::with_api_key(KEY, SECRET)
        .with_grants(grants)
        .to_jwt()
        .unwrap();
    let response = reqwest::Client::new()
        .post(format!("{}/twirp/{path}", livekit.url()))
        .bearer_auth(token)
        .header("content-type", "application/protobuf")
        .body(body)
        .send()
        .await
        .expect("the request is sent");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test]
async fn a_token_without_the_needed_grant_is_refused_in_livekits_json_shape() {
    let livekit = start(SimLiveKitConfig::new(KEY, SECRET)).await;
    let create = livekit_protocol::CreateRoomRequest {
        name: "call-1".into(),
        ..Default::default()
    };
    let (status, body) = raw_twirp(
        &livekit,
        "livekit.RoomService/CreateRoom",
        VideoGrants::default(),
        create.encode_to_vec(),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "unauthenticated");
    assert_eq!(body["msg"], "permissions denied");

    let dispatch = livekit_protocol::CreateAgentDispatchRequest {
        agent_name: "a".into(),
        room: "call-1".into(),
        ..Default::default()
    };
    let other_room = VideoGrants {
        room_admin: true,
        room: "call-2".into(),
        ..Default::default()
    };
    let (status, _) = raw_twirp(
        &livekit,
        "livekit.AgentDispatchService/CreateDispatch",
        other_room,
        dispatch.encode_to_vec(),
    )
    .await;
    assert_eq!(status, 401, "roomAdmin for another room is not enough");
    let (status, body) = raw_twirp(
        &livekit,
        "livekit.RoomService/Nope",
        VideoGrants::default(),
        Vec::new(),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (404, Some("bad_route")));
    assert!(livekit.rooms().is_empty() && livekit.dispatches().is_empty());
    livekit.shutdown().await;
}

#[tokio::test]
async fn closing_a_session_deletes_the_room_and_closing_again_is_not_an_error() {
    let livekit = start(SimLiveKitConfig::new(KEY, SECRET)).await;
    let agents = agents(&livekit, SECRET, LiveKitOptions::default());
    let session = agents.open_session(&call(9)).await.unwrap();
    session.close().await.expect("the room is deleted");
    assert!(livekit.room("call-9").unwrap().deleted);
    let delete = livekit.requests().pop().unwrap();
    assert_eq!(delete.name(), "RoomService/DeleteRoom");
    assert!(delete.claims.unwrap().video.room_create);

    agents
        .close_call(9)
        .await
        .expect("a missing room is not an error");
    assert_eq!(
        livekit.requests().pop().unwrap().error.as_deref(),
        Some("not_found")
    );
    let error = agents.participants("call-9").await.unwrap_err();
    assert!(error.is_not_found(), "{error}");
    livekit.shutdown().await;
}

#[tokio::test]
async fn sip_failures_map_to_typed_results_and_delete_the_room() {
    let config = SimLiveKitConfig::new(KEY, SECRET)
        .sip("+15550000486", SipScript::busy(10))
        .sip("+15550000603", SipScript::declined(10))
        .sip("+15550000480", SipScript::unavailable(10))
        .sip("+15550000503", SipScript::service_unavailable(10))
        .sip("+15550000404", SipScript::rejected(404, "Not Found", 10))
        .sip("+15550000000", SipScript::no_answer())
        .sip("+15550000999", SipScript::answered(5_000));
    let livekit = start(config).await;
    let agents = agents(&livekit, SECRET, LiveKitOptions::default());
    let cases: [(&str, &str, bool, bool); 7] = [
        ("+15550000486", "busy", true, false),
        ("+15550000603", "declined", true, false),
        ("+15550000480", "carrier_capacity", false, true),
        ("+15550000503", "carrier_capacity", false, true),
        ("+15550000404", "invalid_number", false, false),
        ("+15550000000", "no_answer", false, false),
        ("+15550000999", "no_answer", false, false),
    ];
    for (i, (number, result, refusal, retryable)) in cases.into_iter().enumerate() {
        let call_id = 100 + i as i64;
        let error = agents
            .dial_sip(&call(call_id), "ST_outbound", number, sip_options(300))
            .await
            .expect_err(number);
        assert_eq!(error.result_name(), result, "{number}: {error}");
        assert_eq!(error.is_callee_refusal(), refusal, "{number}");
        assert_eq!(error.is_retryable(), retryable, "{number}");
        let room = livekit
            .room(&format!("call-{call_id}"))
            .expect("the room was created");
        assert!(
            room.deleted,
            "{number}: the room is deleted after the failure"
        );
    }
    let calls = livekit.sip_calls();
    assert_eq!(calls[0].state, SipCallState::Rejected { code: 486 });
    assert_eq!(calls[5].state, SipCallState::NoAnswer);
    assert_eq!(
        calls[6].state,
        SipCallState::NoAnswer,
        "an answer after the ringing timeout is too late"
    );
    assert_eq!(calls[0].ringing_timeout, Duration::from_millis(300));
    assert_eq!(calls[0].max_call_duration, Some(Duration::from_secs(60)));
    assert!(calls.iter().all(|c| c.request.wait_until_answered));
    assert!(
        calls
            .iter()
            .all(|c| c.request.sip_trunk_id == "ST_outbound")
    );
    let sip_requests: Vec<_> = livekit
        .requests()
        .into_iter()
        .filter(|r| r.name() == "SIP/CreateSIPParticipant")
        .collect();
    assert_eq!(sip_requests.len(), 7);
    assert!(
        sip_requests
            .iter()
            .all(|r| r.claims.as_ref().is_some_and(|c| c.sip.call))
    );
    livekit.shutdown().await;
}

#[tokio::test]
async fn an_answered_sip_call_returns_the_callee_who_is_in_the_room_until_hang_up() {
    let config = SimLiveKitConfig::new(KEY, SECRET).sip("+15550001234", SipScript::answered(30));
    let livekit = start(config).await;
    let agents = agents(&livekit, SECRET, LiveKitOptions::default());
    let answer = agents
        .dial_sip(&call(77), "ST_outbound", "+15550001234", sip_options(2_000))
        .await
        .expect("the callee answers");
    assert!(answer.answered);
    assert_eq!(answer.participant.participant_identity, "callee-77");
    assert_eq!(answer.participant.room_name, "call-77");
    assert!(answer.participant.participant_id.starts_with("PA_"));
    assert!(answer.participant.sip_call_id.starts_with("SCL_"));
    assert_eq!(answer.session.room(), "call-77");
    let request = &livekit.sip_calls()[0].request;
    assert_eq!(
        (request.sip_call_to.as_str(), request.room_name.as_str()),
        ("+15550001234", "call-77")
    );
    assert_eq!(request.participant_name, "Ada Lovelace");

    let participants = answer.session.participants().await.unwrap();
    let callee = participants
        .iter()
        .find(|p| p.kind == "sip")
        .expect("the callee is in the room");
    assert_eq!(callee.sid, answer.participant.participant_id);
    assert_eq!(callee.attributes["sip.phoneNumber"], "+15550001234");

    answer.session.close().await.unwrap();
    assert_eq!(livekit.sip_calls()[0].state, SipCallState::Ended);
    livekit.shutdown().await;
}

#[tokio::test]
async fn without_waiting_the_dial_returns_while_ringing_and_the_callee_joins_later() {
    let config = SimLiveKitConfig::new(KEY, SECRET)
        .agent_join_delay(None)
        .sip("+15550005555", SipScript::answered(100).hang_up_after(50));
    let livekit = start(config).await;
    let agents = agents(&livekit, SECRET, LiveKitOptions::default());
    let options = SipDialOptions {
        wait_until_answered: false,
        ..sip_options(2_000)
    };
    let dialing = agents
        .dial_sip(&call(5), "ST_outbound", "+15550005555", options)
        .await
        .expect("dialing starts");
    assert!(!dialing.answered);
    assert_eq!(livekit.sip_calls()[0].state, SipCallState::Ringing);
    let webhooks = livekit
        .wait_for_webhooks(
            |w| w.iter().any(|w| w.name() == "participant_left"),
            PATIENCE,
        )
        .await
        .expect("the callee answers, then hangs up");
    let names: Vec<_> = webhooks.iter().map(|w| w.name()).collect();
    assert_eq!(
        names,
        ["room_started", "participant_joined", "participant_left"]
    );
    assert_eq!(webhooks[1].participant(), Some("callee-5"));
    assert_eq!(livekit.sip_calls()[0].state, SipCallState::Ended);
    dialing.session.close().await.unwrap();
    livekit.shutdown().await;
}

#[tokio::test]
async fn the_session_yields_the_twilio_connector_url_when_enabled() {
    let connector = "wss://connector.example/twilio/stream";
    let livekit = start(SimLiveKitConfig::new(KEY, SECRET).twilio_connector(connector)).await;
    let options = LiveKitOptions {
        twilio_connector: true,
        ..LiveKitOptions::default()
    };
    let session = agents(&livekit, SECRET, options.clone())
        .open_session(&call(11))
        .await
        .unwrap();
    assert_eq!(session.connector_url(), Some(connector));
    let connect = livekit.requests().pop().unwrap();
    assert_eq!(connect.name(), "Connector/ConnectTwilioCall");
    assert!(connect.claims.unwrap().video.room_create);
    livekit.shutdown().await;

    let without = start(SimLiveKitConfig::new(KEY, SECRET)).await;
    let error = agents(&without, SECRET, options)
        .open_session(&call(12))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, LiveKitError::Api { code, .. } if code == "unimplemented"),
        "{error}"
    );
    assert!(
        without.room("call-12").unwrap().deleted,
        "a failed session leaves no room"
    );
    without.shutdown().await;
}

/// An outcome endpoint that keeps each request's `Authorization` and JSON body.
async fn outcome_receiver() -> (String, Arc<Mutex<Vec<(String, serde_json::Value)>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/agent/outcome", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let keep = seen.clone();
    let app = axum::Router::new().route(
        "/agent/outcome",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::Json<serde_json::Value>| async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                keep.lock().unwrap().push((auth, body.0));
                axum::http::StatusCode::OK
            },
        ),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

#[tokio::test]
async fn a_dispatched_agent_reports_the_sip_calls_outcome_with_its_token_and_hangs_up() {
    let number = "+15550007777";
    let config = SimLiveKitConfig::new(KEY, SECRET)
        .sip_sequence(number, vec![SipScript::busy(10), SipScript::answered(30)])
        .sip_agent(SipAgentScript {
            talk_ms: 100,
            ..SipAgentScript::default()
        });
    let livekit = start(config).await;
    let agents = agents(&livekit, SECRET, LiveKitOptions::default());
    let (url, seen) = outcome_receiver().await;
    let context = |id| {
        let mut context = call(id);
        context.outcome_url = url.clone();
        context
            .contact
            .attributes
            .insert("agent_outcome".into(), json!("callback"));
        context
    };

    let first = agents
        .dial_sip(&context(90), "ST_outbound", number, sip_options(2_000))
        .await
        .unwrap_err();
    assert_eq!(
        first,
        SipCallError::Busy { code: 486 },
        "the first call is busy"
    );
    let answer = agents
        .dial_sip(&context(91), "ST_outbound", number, sip_options(2_000))
        .await
        .expect("the second call is answered");
    let webhooks = livekit
        .wait_for_webhooks(
            |w| w.iter().filter(|w| w.name() == "room_finished").count() == 2,
            PATIENCE,
        )
        .await
        .expect("the agent hangs up by deleting the room");
    let left: Vec<_> = webhooks
        .iter()
        .filter(|w| w.name() == "participant_left")
        .filter_map(|w| w.participant())
        .collect();
    assert!(left.contains(&"callee-91"), "{left:?}");
    assert!(livekit.room("call-91").unwrap().deleted);
    assert_eq!(livekit.sip_calls()[1].state, SipCallState::Ended);

    let reports = seen.lock().unwrap().clone();
    assert_eq!(reports.len(), 1, "one report, for the answered call");
    let (auth, body) = &reports[0];
    assert_eq!(auth, "Bearer call-token-91");
    assert_eq!(body["call_id"], "91");
    assert_eq!(body["outcome"], "callback");
    assert!(body["callback_at"].is_string());
    let recorded = livekit.agent_reports();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].http_status, Some(200));
    assert_eq!(recorded[0].room, "call-91");
    answer.session.close().await.unwrap();
    livekit.shutdown().await;
}
