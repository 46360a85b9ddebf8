//! Stopping the server while calls are relayed: HTTP keeps answering through the shutdown
//! grace (carrier callbacks and agent reports still land), then the calls still live have
//! their media streams closed with reason `shutdown`, and what their relays saw is stored
//! before the database closes.

use std::time::{Duration, Instant};
use switchboard_api::config::Settings;
use switchboard_engine::AttemptId;
use switchboard_engine::store::testing::TestDb;
use switchboard_engine::store::{AttemptStatus, Store};
use switchboard_loadtest::{AgentConfig, ScriptedAgent, SimCarrier};
use switchboard_tests::{TestServer, answering_carrier, seed_calls};

const CALLS: usize = 4;

async fn all_bridged(store: &Store, ids: &[AttemptId]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut bridged = 0;
        for id in ids {
            if store.attempt(*id).await.unwrap().status == AttemptStatus::Bridged {
                bridged += 1;
            }
        }
        if bridged == ids.len() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{bridged}/{} calls bridged",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn live_calls_outliving_the_grace_are_closed_with_their_figures_stored(db: TestDb) {
    let mut settings = Settings::for_tests(db.url());
    settings.shutdown_grace_secs = 2;
    let server = TestServer::start_with(settings).await;
    let agent = ScriptedAgent::start(AgentConfig {
        greeting_delay_ms: 50,
        talk_ms: 120_000,
        ..AgentConfig::default()
    })
    .await
    .unwrap();
    let carrier = SimCarrier::start(answering_carrier(50)).await.unwrap();
    let numbers: Vec<String> = (0..CALLS)
        .map(|i| format!("+1415555{:04}", 3000 + i))
        .collect();
    let contacts: Vec<(&str, serde_json::Value)> = numbers
        .iter()
        .map(|n| (n.as_str(), serde_json::json!({})))
        .collect();
    let (_tenant, attempts) = seed_calls(server.store(), &agent.ws_url(), &contacts).await;
    let dialer = server.dialer(&carrier.base_url());
    for attempt in &attempts {
        dialer.dial(server.writer(), attempt).await.unwrap();
    }
    let ids: Vec<AttemptId> = attempts.iter().map(|a| a.id).collect();
    all_bridged(db.store(), &ids).await;
    // Let some audio flow both ways.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let health = server.url("/healthz");
    let stopping = Instant::now();
    let stop = tokio::spawn(server.stop());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = reqwest::get(&health)
        .await
        .expect("HTTP answers during the grace");
    assert!(during.status().is_success(), "{}", during.status());
    tokio::time::timeout(Duration::from_secs(20), stop)
        .await
        .expect("the server stops within the grace and the finishing time")
        .unwrap();
    let took = stopping.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "the grace was honoured: {took:?}"
    );
    assert!(reqwest::get(&health).await.is_err(), "the server is gone");

    for id in &ids {
        let attempt = db.store().attempt(*id).await.unwrap();
        let relay = attempt
            .detail
            .get("relay")
            .unwrap_or_else(|| panic!("call {id}: no relay summary in {:?}", attempt.detail));
        assert_eq!(relay["end"]["by"], "shutdown", "{relay}");
        assert!(
            relay["frames_from_carrier"].as_u64().unwrap() > 5,
            "{relay}"
        );
        assert!(relay["frames_from_agent"].as_u64().unwrap() > 5, "{relay}");
        let events = db.store().attempt_events(*id).await.unwrap();
        assert!(
            events.iter().any(|e| e.kind == "stream.ended"),
            "call {id}: {events:?}"
        );
    }
    // The carrier saw every stream close, and frames both ways.
    let on_carrier = carrier.calls();
    assert_eq!(on_carrier.len(), CALLS);
    for call in &on_carrier {
        assert!(call.stream_close_reason.is_some(), "{call:?}");
        assert!(call.frames_received > 5, "{call:?}");
    }
    carrier.shutdown().await;
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_with_live_calls_stores_their_relays_on_sqlite() {
    live_calls_outliving_the_grace_are_closed_with_their_figures_stored(TestDb::sqlite().await)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_with_live_calls_stores_their_relays_on_postgres() {
    if let Some(db) = TestDb::postgres().await {
        live_calls_outliving_the_grace_are_closed_with_their_figures_stored(db).await;
    }
}
