//! LiveKit webhooks over a real socket: a webhook signed with the project's key and
//! secret is recorded on its call; unsigned, wrongly signed or tampered ones get 403 and
//! record nothing.

use secrecy::SecretString;
use serde_json::json;
use std::time::{Duration, Instant};
use switchboard_api::Settings;
use switchboard_engine::store::testing::TestDb;
use switchboard_loadtest::livekit::sign_webhook;
use switchboard_tests::{TestServer, seed_calls};

const KEY: &str = "APIkey123";
const SECRET: &str = "livekit-test-secret-that-is-long-enough";

#[tokio::test]
async fn livekit_webhooks_are_verified_and_recorded_on_their_call() {
    let db = TestDb::sqlite().await;
    let mut settings = Settings::for_tests(db.url());
    settings.livekit_url = Some("http://127.0.0.1:9".into());
    settings.livekit_api_key = Some(KEY.into());
    settings.livekit_api_secret = Some(SecretString::from(SECRET.to_owned()));
    let server = TestServer::start_with(settings).await;
    let (_, attempts) = seed_calls(
        server.store(),
        "ws://127.0.0.1:9/agent",
        &[("+14155550001", json!({}))],
    )
    .await;
    let id = attempts[0].id;
    let body = json!({
        "event": "participant_joined",
        "id": "EV_1",
        "createdAt": "1700000000",
        "room": {"sid": "RM_1", "name": format!("call-{id}")},
        "participant": {"sid": "PA_1", "identity": "agent-1", "kind": "AGENT"}
    })
    .to_string();
    let url = server.url("/livekit/webhook");
    let client = reqwest::Client::new();
    let post = |auth: Option<String>, body: String| {
        let mut req = client
            .post(&url)
            .header("content-type", "application/webhook+json")
            .body(body);
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        req.send()
    };
    let genuine = sign_webhook(KEY, SECRET, body.as_bytes());
    let forged = sign_webhook(
        KEY,
        "some-other-secret-that-is-long-enough",
        body.as_bytes(),
    );
    assert_eq!(
        post(None, body.clone()).await.unwrap().status(),
        403,
        "unsigned"
    );
    assert_eq!(
        post(Some(forged), body.clone()).await.unwrap().status(),
        403,
        "wrong secret"
    );
    let tampered = body.replace("agent-1", "agent-2");
    assert_eq!(
        post(Some(genuine.clone()), tampered)
            .await
            .unwrap()
            .status(),
        403,
        "body changed after signing"
    );
    assert!(
        server.store().attempt_events(id).await.unwrap().is_empty(),
        "refused webhooks record nothing"
    );

    assert_eq!(post(Some(genuine), body).await.unwrap().status(), 204);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let kinds: Vec<String> = server
            .store()
            .attempt_events(id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        if kinds.contains(&"livekit.participant_joined".to_owned()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the event was not recorded: {kinds:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await;
}
