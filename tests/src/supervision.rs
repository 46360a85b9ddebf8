//! Supervision over real sockets: call actors that panic, driven by the call actor's fail
//! points (`call-actor-dial`, `call-actor-check`; the `failpoints` feature of
//! `switchboard-actors`). Fail points are global to a process: one scenario at a time.

use crate::campaign_run::wait_until;
use crate::{TestServer, answering_carrier, fast_runtime};
use chrono::{TimeZone, Utc};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_actors::Runtime;
use switchboard_actors::clock::ManualClock;
use switchboard_engine::E164;
use switchboard_engine::campaign::{CampaignConfig, CampaignStatus};
use switchboard_engine::contact::NewContact;
use switchboard_engine::store::testing::TestDb;
use switchboard_loadtest::{AgentConfig, ScriptedAgent, SimCarrier};

/// One call actor panics before it dials, another in the middle of its call. The first
/// attempt is closed as failed with the panic and retried after the policy's delay; the
/// live call is followed by a new actor and never dialed twice; the campaign carries on
/// and completes with every contact reached.
pub async fn call_actors_that_panic_do_not_end_their_campaign(db: TestDb) {
    let server = TestServer::start(&db).await;
    let store = server.store().clone();
    let agent = ScriptedAgent::start(AgentConfig {
        greeting_delay_ms: 50,
        talk_ms: 1500,
        listen_ms: 200,
        ..AgentConfig::default()
    })
    .await
    .unwrap();
    let carrier = SimCarrier::start(answering_carrier(50)).await.unwrap();
    let tenant = store.create_tenant("acme").await.unwrap().id;
    let contacts: Vec<NewContact> = (0..6)
        .map(|i| {
            let phone = format!("+1212555{:04}", 4000 + i);
            let mut c = NewContact::new(E164::parse(&phone, None).unwrap());
            c.timezone = Some("America/New_York".into());
            c
        })
        .collect();
    store.upsert_contacts(tenant, &contacts).await.unwrap();
    let config = CampaignConfig::from_json(json!({
        "name": "Sturdy",
        "audience": {"query": {}},
        "agent": {"mode": "media_stream", "url": agent.ws_url()},
        "script": {"template": "Hello"},
        "retry": {"min_gap_minutes": 5, "failed": {"max_attempts": 2, "delay_minutes": 5}},
        "max_concurrent_calls": 2,
        "max_calls_per_minute": null
    }))
    .unwrap();
    let campaign = store.create_campaign(tenant, &config).await.unwrap();
    // Monday 10:00 in New York.
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 23, 15, 0, 0).unwrap(),
    ));
    fail::cfg("call-actor-dial", "1*panic(injected before the dial)").unwrap();
    fail::cfg("call-actor-check", "1*panic(injected during the call)").unwrap();
    let dialer = server.dialer(&carrier.base_url());
    let runtime = Runtime::start(fast_runtime(&store, dialer, clock.clone()))
        .await
        .unwrap();
    runtime.start_campaign(tenant, campaign.id).await.unwrap();

    // The first round: five contacts reached, one attempt failed by the panic.
    wait_until(
        "the first round is over",
        Duration::from_secs(60),
        async || {
            let queue = store.queue_counts(campaign.id).await.unwrap();
            queue.in_progress == 0 && queue.queued == 1
        },
    )
    .await;
    let attempts = store.campaign_attempts(campaign.id, 100).await.unwrap();
    let failed: Vec<_> = attempts
        .iter()
        .filter(|a| a.result.as_deref() == Some("failed"))
        .collect();
    assert_eq!(failed.len(), 1, "{attempts:#?}");
    let reason = failed[0].detail.get("failure").unwrap().to_string();
    assert!(
        reason.contains("injected before the dial"),
        "the panic is the reason: {reason}"
    );
    assert!(failed[0].carrier_call_id.is_none(), "it never dialed");
    let mut restarted = Vec::new();
    for a in &attempts {
        let events = store.attempt_events(a.id).await.unwrap();
        if events.iter().any(|e| e.kind == "actor.restarted") {
            restarted.push(a.clone());
        }
    }
    assert_eq!(restarted.len(), 1, "one live call lost its actor");
    assert!(
        restarted[0].outcome.is_some(),
        "the followed call still ended with the agent's outcome: {:?}",
        restarted[0]
    );
    let calls_to_it = carrier
        .calls()
        .iter()
        .filter(|c| c.to == restarted[0].phone)
        .count();
    assert_eq!(calls_to_it, 1, "the followed call was never dialed again");

    // Every person who answered reached the agent: judged not abandoned, in the ledger.
    for a in attempts.iter().filter(|a| a.outcome.is_some()) {
        assert_eq!(a.detail.get("abandoned"), Some(&json!(false)), "{a:?}");
    }
    let snapshot = runtime.snapshots().await.unwrap();
    let ledger = snapshot[0].pacing.as_ref().unwrap().abandonment;
    assert_eq!((ledger.today.live_answered, ledger.today.abandoned), (5, 0));

    // Five minutes later the failed contact is retried, and the campaign completes.
    clock.advance(chrono::Duration::minutes(6));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = store.campaign(tenant, campaign.id).await.unwrap().status;
        if status == CampaignStatus::Completed {
            break;
        }
        if Instant::now() > deadline {
            let queue = store.queue_counts(campaign.id).await.unwrap();
            let attempts = store.campaign_attempts(campaign.id, 100).await.unwrap();
            let snapshots = runtime.snapshots().await;
            let history = store.campaign_history(tenant, campaign.id).await.unwrap();
            panic!(
                "never completed: {status:?} {queue:?}\n{history:#?}\n{attempts:#?}\n{snapshots:#?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let attempts = store.campaign_attempts(campaign.id, 100).await.unwrap();
    assert_eq!(attempts.len(), 7);
    assert_eq!(
        carrier.calls().len(),
        6,
        "one carrier call per reached contact"
    );
    for call in carrier.calls() {
        let mine: Vec<_> = attempts
            .iter()
            .filter(|a| a.carrier_call_id.as_deref() == Some(&call.sid))
            .collect();
        assert_eq!(mine.len(), 1, "every carrier call has exactly one attempt");
    }
    fail::remove("call-actor-dial");
    fail::remove("call-actor-check");
    runtime.shutdown();
    carrier.shutdown().await;
    agent.shutdown().await;
    server.stop().await;
}

/// A scheduled campaign waits for its start time (on the runtime's clock), then the
/// scheduler activates it (cause `scheduler`); with nobody to call it completes.
pub async fn a_scheduled_campaign_starts_at_its_start_time(db: TestDb) {
    use switchboard_engine::campaign::Cause;
    let server = TestServer::start(&db).await;
    let store = server.store().clone();
    let carrier = SimCarrier::start(answering_carrier(50)).await.unwrap();
    let tenant = store.create_tenant("acme").await.unwrap().id;
    let now = Utc.with_ymd_and_hms(2026, 11, 23, 15, 0, 0).unwrap();
    let config = CampaignConfig::from_json(json!({
        "name": "Later",
        "starts_at": (now + chrono::Duration::minutes(5)).to_rfc3339(),
        "audience": {"query": {"segment": "nobody"}},
        "agent": {"mode": "media_stream", "url": "ws://127.0.0.1:9/agent"},
        "script": {"template": "Hello"}
    }))
    .unwrap();
    let campaign = store.create_campaign(tenant, &config).await.unwrap();
    store
        .transition_campaign(
            tenant,
            campaign.id,
            CampaignStatus::Scheduled,
            Cause::User,
            "scheduled",
            None,
        )
        .await
        .unwrap();
    let clock = Arc::new(ManualClock::new(now));
    let dialer = server.dialer(&carrier.base_url());
    let runtime = Runtime::start(fast_runtime(&store, dialer, clock.clone()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        store.campaign(tenant, campaign.id).await.unwrap().status,
        CampaignStatus::Scheduled,
        "not before its start time"
    );
    clock.advance(chrono::Duration::minutes(6));
    wait_until(
        "the campaign has run",
        Duration::from_secs(20),
        async || {
            store.campaign(tenant, campaign.id).await.unwrap().status == CampaignStatus::Completed
        },
    )
    .await;
    let history = store.campaign_history(tenant, campaign.id).await.unwrap();
    let activation = history
        .iter()
        .find(|t| t.to == CampaignStatus::Active)
        .unwrap();
    assert_eq!(activation.cause, Cause::Scheduler);
    runtime.shutdown();
    carrier.shutdown().await;
    server.stop().await;
}
