//! LiveKit webhooks over real sockets: the simulated LiveKit signs room and participant
//! events the way LiveKit does, media's `WebhookVerifier` (livekit-api's receiver) accepts
//! them and names their call, and forged ones are refused with nothing recorded.
//!
//! The receiver here does what `api`'s `/livekit/webhook` handler does, so these tests
//! hold without the HTTP app; the handler's own tests live next to it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use serde_json::json;
use switchboard_loadtest::livekit::{SimLiveKit, SimLiveKitConfig, SipScript, sign_webhook};
use switchboard_media::livekit::{
    CallContact, CallContext, LiveKitAgents, LiveKitCallEvent, LiveKitConfig, LiveKitEventKind,
    SipDialOptions, WEBHOOK_CONTENT_TYPE, WebhookVerifier,
};

const KEY: &str = "APIwebhooks";
const SECRET: &str = "webhook-signing-secret-0123456789";
const PATIENCE: Duration = Duration::from_secs(10);

fn config() -> LiveKitConfig {
    LiveKitConfig::new("http://127.0.0.1:7880", KEY, SECRET.to_owned().into())
}

/// A webhook endpoint verifying with media's verifier; keeps what it accepted.
struct Receiver {
    url: String,
    accepted: Arc<Mutex<Vec<(i64, LiveKitCallEvent)>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/livekit/webhook", listener.local_addr().unwrap());
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let state = (Arc::new(WebhookVerifier::new(&config())), accepted.clone());
        let app = axum::Router::new()
            .route("/livekit/webhook", post(receive))
            .with_state(state);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, accepted }
    }

    fn accepted(&self) -> Vec<(i64, LiveKitCallEvent)> {
        self.accepted.lock().unwrap().clone()
    }
}

type ReceiverState = (
    Arc<WebhookVerifier>,
    Arc<Mutex<Vec<(i64, LiveKitCallEvent)>>>,
);

async fn receive(
    State((verifier, accepted)): State<ReceiverState>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match verifier.verify(&body, authorization) {
        Ok(event) => {
            if let Some(call_id) = event.call_id() {
                accepted.lock().unwrap().push((call_id, event));
            }
            StatusCode::NO_CONTENT
        }
        Err(error) if error.is_forged() => StatusCode::FORBIDDEN,
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

fn call(call_id: i64) -> CallContext {
    CallContext {
        call_id,
        campaign_id: 1,
        agent_name: "outbound-sales".into(),
        token: "t".into(),
        outcome_url: "https://sb.example.com/api/v1/agent/outcome".into(),
        contact: CallContact {
            phone: "+15550002222".into(),
            ..CallContact::default()
        },
        script: "Hello".into(),
        variables: json!({}).as_object().cloned().unwrap(),
    }
}

#[tokio::test]
async fn the_simulators_webhooks_verify_and_name_the_call_of_their_room() {
    let receiver = Receiver::start().await;
    let sim = SimLiveKitConfig::new(KEY, SECRET)
        .webhook_url(&receiver.url)
        .sip("+15550002222", SipScript::answered(20));
    let livekit = SimLiveKit::start(sim).await.unwrap();
    let agents = LiveKitAgents::new(LiveKitConfig::new(
        livekit.url(),
        KEY,
        SECRET.to_owned().into(),
    ))
    .unwrap();
    let options = SipDialOptions {
        ringing_timeout: Duration::from_secs(2),
        ..SipDialOptions::default()
    };
    let answer = agents
        .dial_sip(&call(31), "ST_outbound", "+15550002222", options)
        .await
        .expect("answered");
    livekit
        .wait_for_webhooks(
            |w| {
                w.iter()
                    .filter(|w| w.name() == "participant_joined")
                    .count()
                    == 2
            },
            PATIENCE,
        )
        .await
        .expect("the agent and the callee join");
    answer.session.close().await.unwrap();
    let webhooks = livekit
        .wait_for_webhooks(|w| w.iter().any(|w| w.name() == "room_finished"), PATIENCE)
        .await
        .expect("the room finishes");

    assert!(
        webhooks.iter().all(|w| w.status == Some(204)),
        "{webhooks:#?}"
    );
    let accepted = receiver.accepted();
    assert_eq!(
        accepted.len(),
        webhooks.len(),
        "every signed webhook is accepted"
    );
    assert!(accepted.iter().all(|(call_id, _)| *call_id == 31));
    let kinds: Vec<_> = accepted.iter().map(|(_, e)| e.kind.clone()).collect();
    assert_eq!(kinds.first(), Some(&LiveKitEventKind::RoomStarted));
    assert_eq!(kinds.last(), Some(&LiveKitEventKind::RoomFinished));
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == LiveKitEventKind::ParticipantLeft)
            .count(),
        2,
        "the agent and the callee leave when the room is deleted"
    );
    let callee = accepted
        .iter()
        .filter_map(|(_, e)| e.participant.as_ref())
        .find(|p| p.kind == "sip")
        .expect("the callee's events");
    assert_eq!(callee.identity, "callee-31");
    assert!(
        accepted
            .iter()
            .all(|(_, e)| !e.id.is_empty() && e.created_at > 0)
    );
    assert_eq!(accepted[0].1.event_kind(), "livekit.room_started");
    livekit.shutdown().await;
}

async fn post_webhook(url: &str, body: &str, authorization: Option<&str>) -> u16 {
    let mut request = reqwest::Client::new()
        .post(url)
        .header(header::CONTENT_TYPE, WEBHOOK_CONTENT_TYPE)
        .body(body.to_owned());
    if let Some(value) = authorization {
        request = request.header(header::AUTHORIZATION, value);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn forged_webhooks_are_refused_and_nothing_is_recorded() {
    let receiver = Receiver::start().await;
    let body = r#"{"event":"participant_joined","room":{"sid":"RM_1","name":"call-5"},"participant":{"sid":"PA_1","identity":"callee-5","kind":"SIP"},"id":"EV_1","createdAt":"1700000000"}"#;
    let url = receiver.url.as_str();
    assert_eq!(post_webhook(url, body, None).await, 403, "no authorization");
    assert_eq!(
        post_webhook(url, body, Some("garbage")).await,
        403,
        "not a jwt"
    );
    let other_secret = sign_webhook(KEY, "another-secret", body.as_bytes());
    assert_eq!(
        post_webhook(url, body, Some(&other_secret)).await,
        403,
        "another secret"
    );
    let other_key = sign_webhook("APIother", SECRET, body.as_bytes());
    assert_eq!(
        post_webhook(url, body, Some(&other_key)).await,
        403,
        "another key"
    );
    let signed = sign_webhook(KEY, SECRET, body.as_bytes());
    let tampered = body.replace("call-5", "call-6");
    assert_eq!(
        post_webhook(url, &tampered, Some(&signed)).await,
        403,
        "a body it does not sign"
    );
    assert!(
        receiver.accepted().is_empty(),
        "nothing forged was recorded"
    );

    assert_eq!(
        post_webhook(url, body, Some(&signed)).await,
        204,
        "the genuine one"
    );
    let accepted = receiver.accepted();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].0, 5);
    assert_eq!(accepted[0].1.kind, LiveKitEventKind::ParticipantJoined);
}
