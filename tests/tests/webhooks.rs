//! Carrier webhooks (status callbacks, machine detection results, TwiML) and the agent API
//! over a real socket: signed requests are applied, unsigned or forged ones are refused
//! with 403 and change nothing.

use serde_json::json;
use switchboard_engine::store::AttemptStatus;
use switchboard_engine::store::testing::TestDb;
use switchboard_media::twilio::signature::sign;
use switchboard_tests::{ACCOUNT_SID, AUTH_TOKEN, TestServer, seed_calls};

fn callback(sid: &str, status: &str, seq: u64) -> Vec<(String, String)> {
    [
        ("CallSid", sid.to_owned()),
        ("AccountSid", ACCOUNT_SID.to_owned()),
        ("CallStatus", status.to_owned()),
        ("SequenceNumber", seq.to_string()),
        ("Direction", "outbound-api".to_owned()),
        ("AnsweredBy", "human".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

async fn post_form(
    url: &str,
    params: &[(String, String)],
    signature: Option<&str>,
) -> reqwest::StatusCode {
    let body: String = params
        .iter()
        .map(|(k, v)| format!("{}={}", k, v.replace('+', "%2B")))
        .collect::<Vec<_>>()
        .join("&");
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(sig) = signature {
        req = req.header("X-Twilio-Signature", sig);
    }
    req.send().await.unwrap().status()
}

async fn status_callbacks_must_be_signed(db: TestDb) {
    let server = TestServer::start(&db).await;
    let (_, attempts) = seed_calls(
        server.store(),
        "ws://127.0.0.1:9/agent",
        &[("+14155550001", json!({}))],
    )
    .await;
    let attempt = &attempts[0];
    let url = server.url(&format!("/twilio/status?attempt={}", attempt.id));

    let params = callback("CA0001", "ringing", 1);
    assert_eq!(post_form(&url, &params, None).await, 403, "no signature");
    assert_eq!(
        post_form(&url, &params, Some("bm90IGEgc2lnbmF0dXJl")).await,
        403,
        "wrong signature"
    );
    let forged = sign("another-token", &url, &params);
    assert_eq!(
        post_form(&url, &params, Some(&forged)).await,
        403,
        "signed with another token"
    );
    let signed = sign(AUTH_TOKEN, &url, &params);
    let tampered = callback("CA0001", "in-progress", 1);
    assert_eq!(
        post_form(&url, &tampered, Some(&signed)).await,
        403,
        "tampered parameters"
    );
    let other_attempt = server.url(&format!("/twilio/status?attempt={}", attempt.id.0 + 1));
    assert_eq!(
        post_form(&other_attempt, &params, Some(&signed)).await,
        403,
        "signature for another URL"
    );
    let unchanged = server.store().attempt(attempt.id).await.unwrap();
    assert_eq!(
        unchanged.status,
        AttemptStatus::Reserved,
        "refused callbacks change nothing"
    );
    assert!(
        server
            .store()
            .attempt_events(attempt.id)
            .await
            .unwrap()
            .is_empty()
    );

    assert_eq!(post_form(&url, &params, Some(&signed)).await, 204);
    let ringing = server.store().attempt(attempt.id).await.unwrap();
    assert_eq!(
        (ringing.status, ringing.carrier_call_id.as_deref()),
        (AttemptStatus::Ringing, Some("CA0001"))
    );

    let done = callback("CA0001", "completed", 3);
    assert_eq!(
        post_form(&url, &done, Some(&sign(AUTH_TOKEN, &url, &done))).await,
        204
    );
    let late = callback("CA0001", "in-progress", 2);
    assert_eq!(
        post_form(&url, &late, Some(&sign(AUTH_TOKEN, &url, &late))).await,
        204
    );
    let ended = server.store().attempt(attempt.id).await.unwrap();
    assert_eq!(
        (ended.status, ended.result.as_deref()),
        (AttemptStatus::Ended, Some("completed"))
    );
    assert!(ended.answered_at.is_some());

    let other_call = callback("CA9999", "completed", 4);
    assert_eq!(
        post_form(
            &url,
            &other_call,
            Some(&sign(AUTH_TOKEN, &url, &other_call))
        )
        .await,
        409,
        "another call's sid"
    );
    server.stop().await;
}

async fn twiml_connects_the_call_to_the_media_stream(db: TestDb) {
    let server = TestServer::start(&db).await;
    let (_, attempts) = seed_calls(
        server.store(),
        "ws://127.0.0.1:9/agent",
        &[("+14155550001", json!({}))],
    )
    .await;
    let url = server.url(&format!("/twilio/twiml?attempt={}", attempts[0].id));
    let client = reqwest::Client::new();
    let refused = client.get(&url).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    let ok = client
        .get(&url)
        .header("X-Twilio-Signature", sign(AUTH_TOKEN, &url, &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let xml = ok.text().await.unwrap();
    let expected = format!("<Stream url=\"ws://{}/twilio/media\">", server.addr);
    assert!(xml.contains(&expected), "{xml}");
    assert!(
        xml.contains(&format!(
            "<Parameter name=\"attempt\" value=\"{}\"/>",
            attempts[0].id
        )),
        "{xml}"
    );
    server.stop().await;
}

async fn outcomes_need_the_calls_own_token(db: TestDb) {
    let server = TestServer::start(&db).await;
    let (tenant, attempts) = seed_calls(
        server.store(),
        "ws://127.0.0.1:9/agent",
        &[("+14155550001", json!({})), ("+14155550002", json!({}))],
    )
    .await;
    let secret = {
        use secrecy::ExposeSecret;
        server
            .state
            .calls
            .call_token_secret
            .expose_secret()
            .to_owned()
    };
    let token = switchboard_engine::call_token::issue(secret.as_bytes(), attempts[0].id);
    let url = server.url("/api/v1/agent/outcome");
    let client = reqwest::Client::new();
    let report = json!({"outcome": "do_not_call", "notes": "asked to stop"});
    let status = |resp: reqwest::Response| resp.status().as_u16();
    assert_eq!(
        status(client.post(&url).json(&report).send().await.unwrap()),
        401,
        "no token"
    );
    assert_eq!(
        status(
            client
                .post(&url)
                .bearer_auth("1.abc")
                .json(&report)
                .send()
                .await
                .unwrap()
        ),
        401,
        "forged token"
    );
    let wrong_call = json!({"call_id": attempts[1].id.to_string(), "outcome": "interested"});
    assert_eq!(
        status(
            client
                .post(&url)
                .bearer_auth(&token)
                .json(&wrong_call)
                .send()
                .await
                .unwrap()
        ),
        422,
        "token of another call"
    );
    assert!(
        server
            .store()
            .dnc_check(
                tenant,
                &switchboard_engine::E164::parse("+14155550001", None).unwrap()
            )
            .await
            .unwrap()
            .is_none()
    );

    let bad = json!({"outcome": "maybe"});
    let resp = client
        .post(&url)
        .bearer_auth(&token)
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("maybe"));

    let ok = client
        .post(&url)
        .bearer_auth(&token)
        .json(&report)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let repeat = client
        .post(&url)
        .bearer_auth(&token)
        .json(&report)
        .send()
        .await
        .unwrap();
    assert_eq!(
        repeat.json::<serde_json::Value>().await.unwrap()["recorded"],
        "repeat"
    );
    let hit = server
        .store()
        .dnc_check(
            tenant,
            &switchboard_engine::E164::parse("+14155550001", None).unwrap(),
        )
        .await
        .unwrap();
    assert!(hit.is_some(), "do_not_call lists the number at once");

    // The other call ended twenty minutes ago: its token no longer opens anything.
    let ended = switchboard_engine::store::AttemptUpdate {
        status: Some(AttemptStatus::Ended),
        ended_at: Some(switchboard_engine::time::now() - chrono::TimeDelta::minutes(20)),
        result: Some("completed".into()),
        ..Default::default()
    };
    server
        .store()
        .update_attempt(attempts[1].id, &ended)
        .await
        .unwrap();
    let old = switchboard_engine::call_token::issue(secret.as_bytes(), attempts[1].id);
    let late = client
        .post(&url)
        .bearer_auth(&old)
        .json(&json!({"outcome": "interested"}))
        .send()
        .await
        .unwrap();
    assert_eq!(late.status(), 401);
    assert!(late.text().await.unwrap().contains("expired call token"));
    server.stop().await;
}

async fn machine_detection_results_must_be_signed_and_name_the_call(db: TestDb) {
    let server = TestServer::start(&db).await;
    let (_, attempts) = seed_calls(
        server.store(),
        "ws://127.0.0.1:9/agent",
        &[("+14155550001", json!({}))],
    )
    .await;
    let attempt = &attempts[0];
    let status_url = server.url(&format!("/twilio/status?attempt={}", attempt.id));
    let answered = callback("CA0001", "in-progress", 2)
        .into_iter()
        .filter(|(k, _)| k != "AnsweredBy")
        .collect::<Vec<_>>();
    let signed = sign(AUTH_TOKEN, &status_url, &answered);
    assert_eq!(post_form(&status_url, &answered, Some(&signed)).await, 204);

    let url = server.url(&format!("/twilio/amd?attempt={}", attempt.id));
    let result = |sid: &str| -> Vec<(String, String)> {
        [
            ("CallSid", sid),
            ("AccountSid", ACCOUNT_SID),
            ("AnsweredBy", "machine_end_silence"),
            ("MachineDetectionDuration", "3400"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    };
    let params = result("CA0001");
    assert_eq!(post_form(&url, &params, None).await, 403, "no signature");
    let forged = sign("another-token", &url, &params);
    assert_eq!(post_form(&url, &params, Some(&forged)).await, 403);
    let before = server.store().attempt(attempt.id).await.unwrap();
    assert!(!before.detail.contains_key("answered_by"), "{before:?}");

    let other = result("CA9999");
    let signed_other = sign(AUTH_TOKEN, &url, &other);
    assert_eq!(
        post_form(&url, &other, Some(&signed_other)).await,
        409,
        "another call's sid"
    );
    assert_eq!(
        post_form(&url, &params, Some(&sign(AUTH_TOKEN, &url, &params))).await,
        204
    );
    let detected = server.store().attempt(attempt.id).await.unwrap();
    assert_eq!(detected.detail["answered_by"], json!("machine_end_silence"));
    assert_eq!(detected.detail["machine_detection_ms"], json!(3400));
    assert_eq!(detected.status, AttemptStatus::Answered, "the call goes on");
    let events = server.store().attempt_events(attempt.id).await.unwrap();
    assert!(events.iter().any(|e| e.kind == "carrier.amd"), "{events:?}");
    server.stop().await;
}

macro_rules! both_backends {
    ($($case:ident),*) => {
        mod sqlite { $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { super::$case(switchboard_engine::store::testing::TestDb::sqlite().await).await })* }
        mod postgres { $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { if let Some(db) = switchboard_engine::store::testing::TestDb::postgres().await { super::$case(db).await } })* }
    };
}

both_backends!(
    status_callbacks_must_be_signed,
    machine_detection_results_must_be_signed_and_name_the_call,
    twiml_connects_the_call_to_the_media_stream,
    outcomes_need_the_calls_own_token
);

#[tokio::test]
async fn an_unsigned_media_stream_is_refused() {
    let db = TestDb::sqlite().await;
    let server = TestServer::start(&db).await;
    let url = format!("ws://{}/twilio/media", server.addr);
    let err = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect_err("must be refused");
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 403),
        other => panic!("expected an HTTP 403, got {other}"),
    }
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            url.as_str(),
        )
        .unwrap();
    request.headers_mut().insert(
        "X-Twilio-Signature",
        sign("wrong-token", &url, &[]).parse().unwrap(),
    );
    let err = tokio_tungstenite::connect_async(request)
        .await
        .expect_err("must be refused");
    assert!(
        matches!(err, tokio_tungstenite::tungstenite::Error::Http(ref r) if r.status() == 403),
        "{err}"
    );
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            url.as_str(),
        )
        .unwrap();
    request.headers_mut().insert(
        "X-Twilio-Signature",
        sign(AUTH_TOKEN, &url, &[]).parse().unwrap(),
    );
    let (ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("a signed upgrade is accepted");
    drop(ws);
    server.stop().await;
}
