//! One tenant's abuse against a running server: every bound of `limits` tried for real,
//! over real sockets. The server answers at once with the status that names the bound,
//! its memory stays flat, and another tenant's campaign keeps dialing through the flood.

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::json;
use std::time::{Duration, Instant};
use switchboard_api::Settings;
use switchboard_api::limits::Limits;
use switchboard_engine::store::testing::TestDb;
use switchboard_engine::store::{Store, StoreOptions};
use switchboard_loadtest::{AgentConfig, ScriptedAgent, SimCarrier};
use switchboard_tests::api_client::{Api, zone_at_noon};
use switchboard_tests::campaign_run::wait_until;
use switchboard_tests::{CALLER_ID, TestServer, answering_carrier};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn settings_with(db: &TestDb, limits: Limits) -> Settings {
    let mut settings = Settings::for_tests(db.url());
    settings.limits = limits;
    settings
}

/// Resident memory of this process (the server runs in it), in bytes.
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Sends `head` and reads until the server closes the connection or `wait` passes;
/// returns what was read and whether the connection closed.
async fn read_until_closed(stream: &mut TcpStream, wait: Duration) -> (String, bool) {
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&answer).into(), true),
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&answer).into(), false),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_tenant_is_held_to_its_rate_while_another_tenants_campaign_dials() {
    let db = TestDb::sqlite().await;
    let agent = ScriptedAgent::start(AgentConfig {
        greeting_delay_ms: 20,
        talk_ms: 200,
        listen_ms: 50,
        ..AgentConfig::default()
    })
    .await
    .unwrap();
    let carrier = SimCarrier::start(answering_carrier(50)).await.unwrap();
    let mut settings = settings_with(
        &db,
        Limits {
            rate_per_sec: 20,
            rate_burst: 20,
            ..Limits::default()
        },
    );
    settings.twilio_from = Some(CALLER_ID.to_owned());
    settings.twilio_api_base = carrier.base_url();
    settings.twilio_cps = 0.0;
    let server = TestServer::start_with(settings).await;
    let flooder = Api::new_tenant(&server, "flooder").await;
    let dialer = Api::new_tenant(&server, "dialer").await;

    // The dialing tenant: 30 contacts at noon in their zone, 5 lines at a time.
    let zone = zone_at_noon();
    let rows: String = (0..30)
        .map(|i| format!("+2983{:05},{zone}\n", 10_000 + i))
        .collect();
    dialer
        .post_text(
            "/api/v1/contacts/import",
            "text/csv",
            &format!("phone,timezone\n{rows}"),
        )
        .await
        .expect(200);
    let campaign = dialer
        .start_new_campaign(json!({
            "name": "Keeps dialing",
            "audience": {"query": {}},
            "agent": {"mode": "media_stream", "url": agent.ws_url()},
            "script": {"template": "Hello"},
            "schedule": {"days": ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"], "start": "09:00", "end": "17:00"},
            "retry": {"max_attempts": 1},
            "max_concurrent_calls": 5,
            "max_calls_per_minute": null
        }))
        .await;

    // The flood: 8 clients of the other tenant as fast as they can, until the campaign
    // has called everyone.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let floods = (0..8).map(|_| {
        let api = flooder.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let (mut ok, mut limited, mut slowest) = (0u32, 0u32, Duration::ZERO);
            let mut retry_after_seen = true;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let sent = Instant::now();
                let answer = api.get("/api/v1/contacts?limit=500").await;
                slowest = slowest.max(sent.elapsed());
                match answer.status {
                    StatusCode::OK => ok += 1,
                    StatusCode::TOO_MANY_REQUESTS => {
                        limited += 1;
                        retry_after_seen &= answer.content_type == "application/problem+json";
                    }
                    other => panic!("the flood got {other}: {:#}", answer.body),
                }
            }
            (ok, limited, slowest, retry_after_seen)
        })
    });
    let floods: Vec<_> = floods.collect();
    let started = Instant::now();
    wait_until(
        "the other tenant's campaign called everyone",
        Duration::from_secs(60),
        async || {
            let status = dialer
                .get(&format!("/api/v1/campaigns/{campaign}/status"))
                .await;
            status.status == StatusCode::OK && status.body["progress"]["done"] == json!(30)
        },
    )
    .await;
    let took = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut limited, mut slowest) = (0, 0, Duration::ZERO);
    for flood in join_all(floods).await {
        let (o, l, s, problems) = flood.unwrap();
        assert!(problems, "every 429 is a problem document");
        ok += o;
        limited += l;
        slowest = slowest.max(s);
    }
    eprintln!(
        "the campaign called 30 contacts in {took:?} while the flood got {ok} answers and {limited} refusals (slowest answer {slowest:?})"
    );
    assert!(limited > 0, "the flood was never refused");
    // 20 a second and a burst of 20: nobody gets past the rate.
    let allowed = 20.0 + 20.0 * took.as_secs_f64() + 20.0;
    assert!(
        f64::from(ok) <= allowed,
        "{ok} answers in {took:?} is more than the key's rate allows ({allowed})"
    );
    assert!(
        slowest < Duration::from_secs(5),
        "an answer took {slowest:?}"
    );
    // The dialing tenant's own requests are not limited by the other's flood.
    dialer.get("/api/v1/contacts").await.expect(200);
    assert_eq!(carrier.calls().len(), 30, "every contact called once");

    carrier.shutdown().await;
    agent.shutdown().await;
    server.stop().await;
}

#[tokio::test]
async fn a_key_over_its_rate_is_told_when_to_come_back() {
    let db = TestDb::sqlite().await;
    let server = TestServer::start_with(settings_with(
        &db,
        Limits {
            rate_per_sec: 2,
            rate_burst: 3,
            ..Limits::default()
        },
    ))
    .await;
    let api = Api::new_tenant(&server, "acme").await;
    for _ in 0..3 {
        api.get("/api/v1/campaigns").await.expect(200);
    }
    let http = reqwest::Client::new();
    let refused = http
        .get(server.url("/api/v1/campaigns"))
        .bearer_auth(&api.key)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&after), "Retry-After: {after}");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("2 requests per second"),
        "{body}"
    );
    tokio::time::sleep(Duration::from_secs(after)).await;
    api.get("/api/v1/campaigns").await.expect(200);
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_sends_its_headers_slowly_is_cut_off() {
    let db = TestDb::sqlite().await;
    let server = TestServer::start_with(settings_with(
        &db,
        Limits {
            header_read_timeout_secs: 1,
            ..Limits::default()
        },
    ))
    .await;
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let (answer, closed) = read_until_closed(&mut slow, Duration::from_secs(10)).await;
    assert!(closed, "the connection stayed open");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closed only after {:?}",
        started.elapsed()
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    // A client that sends its request at once is served as ever.
    let mut quick = TcpStream::connect(server.addr).await.unwrap();
    quick
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (answer, _) = read_until_closed(&mut quick, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    server.stop().await;
}

#[tokio::test]
async fn connections_past_the_cap_wait_for_one_to_close() {
    let db = TestDb::sqlite().await;
    let server = TestServer::start_with(settings_with(
        &db,
        Limits {
            max_connections: 3,
            ..Limits::default()
        },
    ))
    .await;
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    // Three kept-alive connections hold every place.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = TcpStream::connect(server.addr).await.unwrap();
        c.write_all(request).await.unwrap();
        let mut buf = [0u8; 512];
        let n = c.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(c);
    }
    // The fourth is accepted by the kernel but not served while they stay.
    let mut waiting = TcpStream::connect(server.addr).await.unwrap();
    waiting.write_all(request).await.unwrap();
    let mut buf = [0u8; 512];
    let early = tokio::time::timeout(Duration::from_millis(500), waiting.read(&mut buf)).await;
    assert!(early.is_err(), "served past the cap");
    // One closes: the waiting one is served.
    drop(held.pop());
    let n = tokio::time::timeout(Duration::from_secs(5), waiting.read(&mut buf))
        .await
        .expect("served once a place freed")
        .unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    server.stop().await;
}

#[tokio::test]
async fn bodies_past_their_limit_are_refused_and_an_upload_is_never_held_in_memory() {
    let db = TestDb::sqlite().await;
    let server = TestServer::start_with(settings_with(
        &db,
        Limits {
            import_max_bytes: 32 * 1024 * 1024,
            ..Limits::default()
        },
    ))
    .await;
    let api = Api::new_tenant(&server, "acme").await;
    // A JSON route takes 1 MiB at most.
    let big = json!({"name": "x".repeat(2 * 1024 * 1024)});
    let refused = api.post("/api/v1/campaigns", big).await;
    assert_eq!(refused.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(refused.content_type, "application/problem+json");
    // A contact's routes take 256 KiB.
    let wide = json!({"phone": "+14155550100", "attributes": {"a": "x".repeat(300 * 1024)}});
    assert_eq!(
        api.post("/api/v1/contacts", wide).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );

    // An upload of 96 MiB against a 32 MiB limit, streamed: refused once the limit is
    // read, and the server's memory does not grow by what it read.
    let before = resident_bytes();
    let mut upload = TcpStream::connect(server.addr).await.unwrap();
    let total: usize = 96 * 1024 * 1024;
    let head = format!(
        "POST /api/v1/contacts/import HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: text/csv\r\nContent-Length: {total}\r\n\r\nphone\n",
        api.key
    );
    upload.write_all(head.as_bytes()).await.unwrap();
    let chunk = "+14155550100\n".repeat(80_000);
    let mut sent = 6;
    while sent < total {
        let piece = &chunk.as_bytes()[..chunk.len().min(total - sent)];
        if upload.write_all(piece).await.is_err() {
            break;
        }
        sent += piece.len();
    }
    let (answer, _) = read_until_closed(&mut upload, Duration::from_secs(30)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("the most one import takes"), "{answer}");
    let grew = resident_bytes().saturating_sub(before);
    eprintln!(
        "sent {} MiB; resident memory grew by {} MiB",
        sent >> 20,
        grew >> 20
    );
    assert!(
        grew < 24 * 1024 * 1024,
        "the server held the upload: grew {} MiB",
        grew >> 20
    );
    // Nothing of it was stored.
    let contacts = api.get("/api/v1/contacts").await;
    assert_eq!(contacts.expect(200)["items"], json!([]));
    server.stop().await;
}

#[tokio::test]
async fn an_import_longer_than_the_row_cap_stores_nothing_and_reports_list_their_first_errors() {
    let mut dbs = vec![TestDb::sqlite().await];
    dbs.extend(TestDb::postgres().await);
    for db in dbs {
        let server = TestServer::start_with(settings_with(
            &db,
            Limits {
                import_max_rows: 100,
                ..Limits::default()
            },
        ))
        .await;
        let api = Api::new_tenant(&server, "acme").await;
        let rows: String = (0..101).map(|i| format!("+1415555{:04}\n", i)).collect();
        let refused = api
            .post_text(
                "/api/v1/contacts/import?mode=skip_bad_rows",
                "text/csv",
                &format!("phone\n{rows}"),
            )
            .await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{:#}",
            refused.body
        );
        assert!(
            refused.body["detail"]
                .as_str()
                .unwrap()
                .contains("more than 100 data rows"),
            "{:#}",
            refused.body
        );
        assert_eq!(
            api.get("/api/v1/contacts").await.expect(200)["items"],
            json!([])
        );

        // 100 rows, 99 of them bad: the report lists them all; past 1000 it would count.
        let bad: String = (0..99).map(|i| format!("not-a-number-{i}\n")).collect();
        let report = api
            .post_text(
                "/api/v1/contacts/import?mode=skip_bad_rows",
                "text/csv",
                &format!("phone\n+14155550100\n{bad}"),
            )
            .await;
        let report = report.expect(200);
        assert_eq!(
            (
                &report["rejected"],
                &report["inserted"],
                &report["errors_omitted"]
            ),
            (&json!(99), &json!(1), &json!(0)),
            "{report:#}"
        );
        assert_eq!(report["errors"].as_array().unwrap().len(), 99);
        server.stop().await;
    }
}

#[tokio::test]
async fn a_key_holds_only_so_many_event_streams() {
    let db = TestDb::sqlite().await;
    let server = TestServer::start_with(settings_with(
        &db,
        Limits {
            event_streams_per_key: 2,
            ..Limits::default()
        },
    ))
    .await;
    let api = Api::new_tenant(&server, "acme").await;
    let other = Api::new_tenant(&server, "other").await;
    let http = reqwest::Client::new();
    let open = |key: &str| {
        http.get(server.url("/api/v1/events"))
            .bearer_auth(key.to_owned())
            .send()
    };
    let first = open(&api.key).await.unwrap();
    let second = open(&api.key).await.unwrap();
    assert_eq!(
        (first.status(), second.status()),
        (StatusCode::OK, StatusCode::OK)
    );
    let third = open(&api.key).await.unwrap();
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(third.headers().contains_key("retry-after"));
    // Another tenant's key has its own places.
    assert_eq!(open(&other.key).await.unwrap().status(), StatusCode::OK);
    // A stream closed frees its place.
    drop(first);
    wait_until(
        "the closed stream's place is free",
        Duration::from_secs(10),
        async || {
            let key = server
                .store()
                .api_key_by_hash(&switchboard_api::auth::hash_key(&api.key))
                .await
                .unwrap()
                .unwrap()
                .id;
            server.state.guards.streams_open(key) < 2
        },
    )
    .await;
    assert_eq!(open(&api.key).await.unwrap().status(), StatusCode::OK);
    drop(second);
    server.stop().await;
}

#[tokio::test]
async fn a_media_stream_past_the_cap_is_refused() {
    let db = TestDb::sqlite().await;
    let server = TestServer::start_with(settings_with(
        &db,
        Limits {
            media_sessions: 1,
            ..Limits::default()
        },
    ))
    .await;
    let upgrade = |server: &TestServer| {
        let url = server.state.calls.urls.media_stream();
        let signature =
            switchboard_media::twilio::signature::sign(switchboard_tests::AUTH_TOKEN, &url, &[]);
        let mut request =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
                .unwrap();
        request
            .headers_mut()
            .insert("x-twilio-signature", signature.parse().unwrap());
        tokio_tungstenite::connect_async(request)
    };
    // The first stream holds the only place (it never sends `start`).
    let (_first, _) = upgrade(&server)
        .await
        .expect("the first stream is accepted");
    let refused = upgrade(&server).await.unwrap_err();
    match refused {
        tokio_tungstenite::tungstenite::Error::Http(response) => {
            assert_eq!(response.status(), 503)
        }
        other => panic!("expected a 503, got {other}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn an_api_query_on_postgresql_is_cut_short_by_the_statement_timeout() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let store = Store::connect_with(
        db.url(),
        StoreOptions {
            statement_timeout: Some(Duration::from_millis(200)),
            ..StoreOptions::default()
        },
    )
    .await
    .unwrap();
    let started = Instant::now();
    let error = store
        .raw_execute_for_tests("SELECT pg_sleep(5)")
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let problem = switchboard_api::problem::Problem::from(error);
    assert_eq!(problem.status(), StatusCode::SERVICE_UNAVAILABLE);
}
