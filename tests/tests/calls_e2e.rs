//! A call from end to end over real sockets: Switchboard dials through the simulated
//! carrier, the carrier streams the answered call to Switchboard's media endpoint, the
//! relay connects the scripted agent, and the agent reports its outcome with its call
//! token. Many calls run at once.

use serde_json::json;
use std::time::{Duration, Instant};
use switchboard_engine::store::testing::TestDb;
use switchboard_engine::store::{AttemptRecord, AttemptStatus, Store};
use switchboard_engine::{AttemptId, E164};
use switchboard_loadtest::{AgentCloseReason, AgentConfig, CallScript, ScriptedAgent, SimCarrier};
use switchboard_tests::{TestServer, answering_carrier, seed_calls};

const NORMAL_CALLS: usize = 24;
const DTMF: &str = "+14155550901";
const DROP: &str = "+14155550902";

/// Waits until every attempt has ended and its relay summary is stored.
async fn settled(store: &Store, ids: &[AttemptId], timeout: Duration) -> Vec<AttemptRecord> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut all = Vec::new();
        for id in ids {
            all.push(store.attempt(*id).await.unwrap());
        }
        let done = all
            .iter()
            .all(|a| a.status == AttemptStatus::Ended && a.detail.contains_key("relay"));
        if done {
            return all;
        }
        if Instant::now() > deadline {
            let mut report = Vec::new();
            for a in all.iter().filter(|a| !a.detail.contains_key("relay")) {
                let events: Vec<(String, serde_json::Value)> = store
                    .attempt_events(a.id)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|e| (e.kind, e.data))
                    .collect();
                report.push((
                    a.id,
                    a.phone.clone(),
                    a.status,
                    a.result.clone(),
                    a.detail.clone(),
                    events,
                ));
            }
            panic!("calls did not settle: {report:#?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn calls_run_end_to_end_through_carrier_relay_and_agent(db: TestDb) {
    let server = TestServer::start(&db).await;
    let agent = ScriptedAgent::start(AgentConfig {
        greeting_delay_ms: 100,
        talk_ms: 600,
        listen_ms: 800,
        ..AgentConfig::default()
    })
    .await
    .unwrap();

    let mut numbers: Vec<String> = (0..NORMAL_CALLS)
        .map(|i| format!("+1415555{:04}", 1000 + i))
        .collect();
    numbers.push(DTMF.to_owned());
    numbers.push(DROP.to_owned());
    let config =
        answering_carrier(100).script(DTMF, CallScript::answered(100, 20_000).with_dtmf(500, "9"));
    let carrier = SimCarrier::start(config).await.unwrap();

    let contacts: Vec<(&str, serde_json::Value)> = numbers
        .iter()
        .map(|n| {
            let attributes = match n.as_str() {
                DROP => json!({"agent_drop_after_ms": 400}),
                DTMF => json!({"agent_listen_ms": 3000}),
                _ => json!({"agent_outcome": "interested"}),
            };
            (n.as_str(), attributes)
        })
        .collect();
    let (tenant, attempts) = seed_calls(server.store(), &agent.ws_url(), &contacts).await;

    let dialer = server.dialer(&carrier.base_url());
    let dials = attempts.iter().map(|a| dialer.dial(server.writer(), a));
    for result in futures_like_join(dials).await {
        result.unwrap();
    }

    let ids: Vec<AttemptId> = attempts.iter().map(|a| a.id).collect();
    let ended = settled(server.store(), &ids, Duration::from_secs(60)).await;
    let by_phone = |p: &str| ended.iter().find(|a| a.phone == p).unwrap().clone();

    // Every normal call: frames both ways, the greeting mark round-tripped, outcome stored.
    let agent_calls = agent.calls();
    let carrier_calls = carrier
        .wait_until_all_ended(Duration::from_secs(20))
        .await
        .unwrap();
    for attempt in ended.iter().filter(|a| a.phone != DTMF && a.phone != DROP) {
        let relay = &attempt.detail["relay"];
        assert_eq!(relay["end"]["by"], "agent_closed", "{relay}");
        assert!(
            relay["frames_from_carrier"].as_u64().unwrap() > 20,
            "{relay}"
        );
        assert!(
            relay["frames_from_agent"].as_u64().unwrap() >= 25,
            "{relay}"
        );
        assert!(
            relay["first_agent_audio_ms"].as_u64().unwrap() >= 100,
            "{relay}"
        );
        assert_eq!(attempt.outcome.as_deref(), Some("interested"));
        assert_eq!(attempt.result.as_deref(), Some("completed"));
        let on_agent = agent_calls
            .iter()
            .find(|c| c.call_id.as_deref() == Some(&attempt.id.to_string()))
            .unwrap();
        assert!(
            on_agent
                .marks_received
                .iter()
                .any(|(m, _)| m == "greeting-done"),
            "the mark came back"
        );
        assert_eq!(on_agent.outcome.as_ref().unwrap().http_status, Some(200));
        assert_eq!(
            on_agent.custom_parameters["script"],
            format!("Hello Contact {}, this is Sarah from Acme.", attempt.phone)
        );
        let on_carrier = carrier_calls
            .iter()
            .find(|c| c.to == attempt.phone)
            .unwrap();
        assert_eq!(
            on_carrier.frames_received,
            relay["frames_from_agent"].as_u64().unwrap(),
            "agent frames reach the callee"
        );
        assert_eq!(
            on_agent.frames_received,
            relay["frames_from_carrier"].as_u64().unwrap(),
            "callee frames reach the agent"
        );
    }

    // The callee pressed 9: the digit reached the agent, which opted the number out.
    let dtmf = by_phone(DTMF);
    let on_agent = agent_calls
        .iter()
        .find(|c| c.call_id.as_deref() == Some(&dtmf.id.to_string()))
        .unwrap();
    assert_eq!(on_agent.dtmf_received, vec!["9"]);
    assert_eq!(on_agent.close_reason, Some(AgentCloseReason::OptedOut));
    assert_eq!(dtmf.outcome.as_deref(), Some("do_not_call"));
    assert_eq!(dtmf.detail["relay"]["dtmf"], 1);
    let listed = server
        .store()
        .dnc_check(tenant, &E164::parse(DTMF, None).unwrap())
        .await
        .unwrap();
    assert!(listed.is_some(), "do_not_call lists the number");

    // The agent vanished: the relay ended the call and closed the carrier's stream.
    let dropped = by_phone(DROP);
    assert_eq!(
        dropped.detail["relay"]["end"]["by"], "agent_error",
        "{}",
        dropped.detail["relay"]
    );
    assert!(dropped.outcome.is_none());
    let on_carrier = carrier_calls.iter().find(|c| c.to == DROP).unwrap();
    assert!(on_carrier.ended_at.is_some());
    assert!(
        on_carrier.ended_at.unwrap() - on_carrier.answered_at.unwrap() < Duration::from_secs(5),
        "the call ended when the agent dropped, not at the callee's talk time"
    );

    let totals = server.state.calls.totals.snapshot();
    assert_eq!(totals.calls, numbers.len() as u64);
    // Every frame Switchboard relayed to the carrier was one Twilio accepts.
    let refused = carrier.stats().frame_violations;
    assert_eq!(
        refused.total(),
        0,
        "frames Twilio would refuse: {refused:?}"
    );
    carrier.shutdown().await;
    agent.shutdown().await;
    server.stop().await;
}

/// Runs the futures concurrently and collects their results in order.
async fn futures_like_join<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futures {
        set.push(f);
    }
    let mut out = Vec::with_capacity(set.len());
    let joined = futures_util::future::join_all(set).await;
    out.extend(joined);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_run_end_to_end_on_sqlite() {
    calls_run_end_to_end_through_carrier_relay_and_agent(TestDb::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_run_end_to_end_on_postgres() {
    if let Some(db) = TestDb::postgres().await {
        calls_run_end_to_end_through_carrier_relay_and_agent(db).await;
    }
}
