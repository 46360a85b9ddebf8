//! A campaign never dials into a dead agent: the scripted agent on a fixed port is stopped
//! and started again while the server's runtime runs a campaign through the simulated
//! carrier. Down at start, the campaign dials nobody and says why; once the agent comes up
//! it dials. Down in the middle of a 50-line campaign: no new dial after the first call
//! that could not reach it, no more calls lost than lines already placed, and dialing
//! resumes by itself when the agent is back.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use switchboard_api::Settings;
use switchboard_engine::CampaignId;
use switchboard_engine::store::testing::TestDb;
use switchboard_engine::store::{AttemptRecord, Store};
use switchboard_loadtest::{AgentConfig, ScriptedAgent, SimCarrier};
use switchboard_tests::api_client::{Api, zone_at_noon};
use switchboard_tests::{CALLER_ID, TestServer, answering_carrier};

/// Actor names are global in a process (`campaign:1` in both tests' databases): one
/// runtime at a time.
static RUNTIME_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn wait_until(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A loopback port nothing listens on (yet).
fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

async fn agent_on(addr: SocketAddr) -> ScriptedAgent {
    ScriptedAgent::start(AgentConfig {
        bind: addr,
        greeting_delay_ms: 50,
        talk_ms: 300,
        listen_ms: 300,
        ..AgentConfig::default()
    })
    .await
    .unwrap()
}

async fn server_through(db: &TestDb, carrier: &SimCarrier) -> TestServer {
    let mut settings = Settings::for_tests(db.url());
    settings.twilio_from = Some(CALLER_ID.to_owned());
    settings.twilio_api_base = carrier.base_url();
    TestServer::start_with(settings).await
}

async fn campaign(api: &Api, contacts: usize, lines: u32, agent: SocketAddr) -> i64 {
    let zone = zone_at_noon();
    let rows: Vec<Value> = (0..contacts)
        .map(|i| json!({"phone": format!("+29832{:04}", i), "timezone": zone, "attributes": {"segment": "reach"}}))
        .collect();
    for row in rows {
        api.post("/api/v1/contacts", row).await.expect(201);
    }
    api.start_new_campaign(json!({
        "name": "Reach",
        "audience": {"query": {"segment": "reach"}},
        "agent": {"mode": "media_stream", "url": format!("ws://{agent}/agent")},
        "script": {"template": "Hello {name|there}."},
        "schedule": {"days": ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"], "start": "09:00", "end": "17:00"},
        "retry": {"max_attempts": 1},
        "max_concurrent_calls": lines,
        "max_calls_per_minute": null
    }))
    .await
}

async fn agent_status(api: &Api, id: i64) -> Value {
    api.get(&format!("/api/v1/campaigns/{id}/status"))
        .await
        .expect(200)["agent"]
        .clone()
}

async fn attempts(store: &Store, id: i64) -> Vec<AttemptRecord> {
    store.campaign_attempts(CampaignId(id), 1000).await.unwrap()
}

fn unreachable(a: &AttemptRecord) -> bool {
    a.detail.get("end_reason").and_then(|v| v.as_str()) == Some("agent_unreachable")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_campaign_whose_agent_is_down_at_start_dials_nobody_until_it_answers() {
    let _turn = RUNTIME_TURN.lock().await;
    let db = TestDb::sqlite().await;
    let carrier = SimCarrier::start(answering_carrier(100)).await.unwrap();
    let server = server_through(&db, &carrier).await;
    let api = Api::new_tenant(&server, "acme").await;
    let addr = free_port();
    let id = campaign(&api, 3, 3, addr).await;

    // Probed before the first dial: refused, said in the status, nobody dialed.
    let mut agent = Value::Null;
    wait_until(
        "the status says the agent is unreachable",
        Duration::from_secs(10),
        async || {
            agent = agent_status(&api, id).await;
            agent["status"] == "unreachable" && agent["failed_probes"].as_u64() >= Some(2)
        },
    )
    .await;
    assert_eq!(agent["reachable"], false, "{agent:#}");
    let reason = agent["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("connection refused by {addr}")),
        "{reason}"
    );
    assert!(
        agent["since"].is_string() && agent["next_probe_at"].is_string(),
        "{agent:#}"
    );
    assert_eq!(
        carrier.calls().len(),
        0,
        "nobody is dialed into a dead agent"
    );
    let campaign = api
        .get(&format!("/api/v1/campaigns/{id}"))
        .await
        .expect(200)
        .clone();
    assert_eq!(campaign["status"], "active", "a gate, not a pause");

    // The agent comes up: the next probe reaches it and every contact is called.
    let scripted = agent_on(addr).await;
    let store = server.store().clone();
    wait_until(
        "every contact's outcome is stored",
        Duration::from_secs(30),
        async || {
            let all = attempts(&store, id).await;
            all.len() == 3 && all.iter().all(|a| a.outcome.is_some())
        },
    )
    .await;
    let agent = agent_status(&api, id).await;
    assert!(agent.is_null() || agent["reachable"] == true, "{agent:#}");
    server.stop().await;
    carrier.shutdown().await;
    scripted.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_that_goes_down_mid_campaign_stops_new_dials_until_it_is_back() {
    const LINES: u32 = 50;
    let _turn = RUNTIME_TURN.lock().await;
    let started = Instant::now();
    let db = TestDb::sqlite().await;
    let carrier = SimCarrier::start(answering_carrier(800)).await.unwrap();
    let server = server_through(&db, &carrier).await;
    let store = server.store().clone();
    let api = Api::new_tenant(&server, "acme").await;
    let addr = free_port();
    let scripted = agent_on(addr).await;
    let id = campaign(&api, 250, LINES, addr).await;

    wait_until(
        "40 calls have their outcome",
        Duration::from_secs(30),
        async || {
            attempts(&store, id)
                .await
                .iter()
                .filter(|a| a.outcome.is_some())
                .count()
                >= 40
        },
    )
    .await;
    let went_down = Utc::now();
    scripted.shutdown().await;

    // The first call that cannot reach the agent closes the gate.
    let mut agent = Value::Null;
    wait_until(
        "the campaign sees the agent down",
        Duration::from_secs(15),
        async || {
            agent = agent_status(&api, id).await;
            agent["status"] == "unreachable"
        },
    )
    .await;
    let closed_at: DateTime<Utc> = agent["since"].as_str().unwrap().parse().unwrap();
    let dialed_at_close = carrier.calls().len();
    wait_until(
        "the agent failed two more probes",
        Duration::from_secs(15),
        async || {
            agent = agent_status(&api, id).await;
            agent["failed_probes"].as_u64() >= Some(2)
        },
    )
    .await;
    assert_eq!(
        carrier.calls().len(),
        dialed_at_close,
        "no new dial while the agent is down"
    );
    assert!(
        agent["reason"]
            .as_str()
            .unwrap()
            .contains("connection refused"),
        "{agent:#}"
    );
    let campaign = api
        .get(&format!("/api/v1/campaigns/{id}"))
        .await
        .expect(200)
        .clone();
    assert_eq!(campaign["status"], "active", "a gate, not a pause");

    // Back on the same port: dialing resumes by itself.
    let scripted = agent_on(addr).await;
    wait_until("dialing resumes", Duration::from_secs(40), async || {
        carrier.calls().len() > dialed_at_close
    })
    .await;
    wait_until(
        "calls after the outage reach the agent",
        Duration::from_secs(20),
        async || {
            attempts(&store, id)
                .await
                .iter()
                .any(|a| a.reserved_at > closed_at && a.outcome.is_some())
        },
    )
    .await;

    // Lost to the outage: at most the lines placed before the gate closed and still
    // ringing when the agent went down.
    let all = attempts(&store, id).await;
    let lost: Vec<_> = all.iter().filter(|a| unreachable(a)).collect();
    let ringing_at_down = all
        .iter()
        .filter(|a| a.reserved_at <= closed_at && a.answered_at.is_none_or(|t| t >= went_down))
        .count();
    assert!(!lost.is_empty(), "the outage was seen by a call");
    assert!(
        lost.len() <= LINES as usize && lost.len() <= ringing_at_down,
        "{} calls lost, {ringing_at_down} ringing when the agent went down",
        lost.len()
    );
    assert!(
        lost.iter().all(|a| a.reserved_at <= closed_at),
        "no call placed after the gate closed lost its agent"
    );
    api.post_empty(&format!("/api/v1/campaigns/{id}/stop"))
        .await
        .expect(200);
    server.stop().await;
    carrier.shutdown().await;
    scripted.shutdown().await;
    eprintln!("mid-campaign outage scenario took {:?}", started.elapsed());
}
