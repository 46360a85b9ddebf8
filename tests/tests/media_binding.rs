//! A media stream is bound to the one call it was placed for. The carrier signs the
//! upgrade with a signature that is the same for every call, so a captured one (a proxy
//! log, a leaked header) must not let anyone attach to a live call's agent: the stream has
//! to carry its call's key, name the server's account and the call's own sid, and be the
//! call's first.

use futures_util::{SinkExt, StreamExt};
use secrecy::ExposeSecret;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use switchboard_engine::AttemptId;
use switchboard_engine::call_token::stream_key;
use switchboard_engine::store::AttemptUpdate;
use switchboard_engine::store::testing::TestDb;
use switchboard_media::StreamEvent;
use switchboard_media::streams::{MediaFormat, StartInfo};
use switchboard_media::twilio::signature::sign;
use switchboard_tests::{ACCOUNT_SID, AUTH_TOKEN, TestServer, seed_calls};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// An agent that counts the sessions Switchboard opens to it and holds each open.
async fn counting_agent() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/agent", listener.local_addr().unwrap());
    let sessions = Arc::new(AtomicUsize::new(0));
    let counted = sessions.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                if let Ok(mut ws) = tokio_tungstenite::accept_async(socket).await {
                    counted.fetch_add(1, Ordering::SeqCst);
                    while let Some(Ok(_)) = ws.next().await {}
                }
            });
        }
    });
    (url, sessions)
}

/// Opens a media stream with the (captured, valid) upgrade signature and sends
/// `connected` and a `start` with these identifiers and parameters.
async fn open_stream(
    server: &TestServer,
    call_sid: &str,
    account_sid: &str,
    parameters: &[(&str, &str)],
) -> Ws {
    let url = format!("ws://{}/twilio/media", server.addr);
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            url.as_str(),
        )
        .unwrap();
    request.headers_mut().insert(
        "X-Twilio-Signature",
        sign(AUTH_TOKEN, &url, &[]).parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("the signed upgrade is accepted");
    let start = StreamEvent::Start {
        sequence_number: Some("1".into()),
        stream_sid: "MZ00000000000000000000000000000001".into(),
        start: StartInfo {
            stream_sid: "MZ00000000000000000000000000000001".into(),
            account_sid: account_sid.into(),
            call_sid: call_sid.into(),
            tracks: vec!["inbound".into()],
            media_format: MediaFormat::default(),
            custom_parameters: parameters
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
        },
    };
    ws.send(Message::text(StreamEvent::connected().to_json()))
        .await
        .unwrap();
    ws.send(Message::text(start.to_json())).await.unwrap();
    ws
}

/// Whether the server closes the stream (refused) rather than keeping it open for a
/// relay, judged by the server's close within 5 s: a refused stream is closed before any
/// agent is dialed, so the agent's count after the close is final for that stream.
async fn is_refused(mut ws: Ws) -> bool {
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    closed.is_ok()
}

fn key_of(server: &TestServer, attempt: AttemptId) -> String {
    stream_key(
        server
            .state
            .calls
            .call_token_secret
            .expose_secret()
            .as_bytes(),
        attempt,
    )
}

async fn wait_for(sessions: &AtomicUsize, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while sessions.load(Ordering::SeqCst) < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the agent never got session {n}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_captured_upgrade_with_another_calls_parameters_is_refused() {
    let db = TestDb::sqlite().await;
    let server = TestServer::start(&db).await;
    let (agent_url, sessions) = counting_agent().await;
    let (_, attempts) = seed_calls(
        server.store(),
        &agent_url,
        &[
            ("+14155550001", serde_json::json!({})),
            ("+14155550002", serde_json::json!({})),
        ],
    )
    .await;
    let (mine, victim) = (attempts[0].id, attempts[1].id);
    let victim_id = victim.to_string();
    let my_key = key_of(&server, mine);

    // The attacker knows its own call's key, and names the victim's call.
    let forged = [
        vec![("attempt", victim_id.as_str())],
        vec![
            ("attempt", victim_id.as_str()),
            ("stream_key", my_key.as_str()),
        ],
        vec![("attempt", victim_id.as_str()), ("stream_key", "")],
    ];
    for parameters in &forged {
        let ws = open_stream(&server, "CA1", ACCOUNT_SID, parameters).await;
        assert!(is_refused(ws).await, "{parameters:?} must be refused");
    }
    assert_eq!(sessions.load(Ordering::SeqCst), 0, "no agent was reached");
    let events = server.store().attempt_events(victim).await.unwrap();
    assert!(
        events.is_empty(),
        "a forged stream stores nothing with the call it names: {events:?}"
    );

    // The right key for the call, but another account.
    let victim_key = key_of(&server, victim);
    let right = [
        ("attempt", victim_id.as_str()),
        ("stream_key", victim_key.as_str()),
    ];
    let ws = open_stream(
        &server,
        "CA1",
        "ACsomeoneelse0000000000000000000000",
        &right,
    )
    .await;
    assert!(is_refused(ws).await, "another account's stream");
    assert_eq!(sessions.load(Ordering::SeqCst), 0);

    // The genuine stream is bridged to the agent; it stays open while the relay runs.
    let genuine = open_stream(&server, "CA1", ACCOUNT_SID, &right).await;
    wait_for(&sessions, 1).await;

    // A second stream with the very same (genuine) parameters is refused: one call, one
    // stream.
    let replay = open_stream(&server, "CA1", ACCOUNT_SID, &right).await;
    assert!(is_refused(replay).await, "a replayed stream");
    assert_eq!(
        sessions.load(Ordering::SeqCst),
        1,
        "the agent has one session"
    );
    drop(genuine);
    server.stop().await;
}

#[tokio::test]
async fn a_stream_must_name_the_call_sid_its_attempt_placed() {
    let db = TestDb::sqlite().await;
    let server = TestServer::start(&db).await;
    let (agent_url, sessions) = counting_agent().await;
    let (_, attempts) = seed_calls(
        server.store(),
        &agent_url,
        &[("+14155550001", serde_json::json!({}))],
    )
    .await;
    let attempt = attempts[0].id;
    let update = AttemptUpdate {
        carrier_call_id: Some("CAplaced".into()),
        ..Default::default()
    };
    server
        .store()
        .update_attempt(attempt, &update)
        .await
        .unwrap();
    let id = attempt.to_string();
    let key = key_of(&server, attempt);
    let parameters = [("attempt", id.as_str()), ("stream_key", key.as_str())];
    let ws = open_stream(&server, "CAanother", ACCOUNT_SID, &parameters).await;
    assert!(is_refused(ws).await, "another call's sid");
    assert_eq!(sessions.load(Ordering::SeqCst), 0);
    let _genuine = open_stream(&server, "CAplaced", ACCOUNT_SID, &parameters).await;
    wait_for(&sessions, 1).await;
    server.stop().await;
}
