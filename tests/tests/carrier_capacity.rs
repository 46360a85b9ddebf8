//! A campaign against a carrier whose account allows only 5 create-call requests in
//! flight at once, as Twilio's API concurrency does: the creates past it are refused with
//! 429 / 20429. Switchboard withdraws those reservations (no attempt is spent), slows its
//! dialing for the account and still calls every contact exactly once.

use chrono::{TimeZone, Utc};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_actors::Runtime;
use switchboard_actors::clock::ManualClock;
use switchboard_engine::E164;
use switchboard_engine::campaign::CampaignConfig;
use switchboard_engine::contact::NewContact;
use switchboard_engine::store::testing::TestDb;
use switchboard_loadtest::{AgentConfig, Millis, ScriptedAgent, SimCarrier};
use switchboard_tests::campaign_run::wait_until;
use switchboard_tests::{TestServer, answering_carrier, fast_runtime};

const CONTACTS: usize = 100;
const API_CONCURRENCY: u32 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_carrier_slows_the_dialer_and_burns_no_attempt() {
    let db = TestDb::sqlite().await;
    let server = TestServer::start(&db).await;
    let store = server.store().clone();
    let agent = ScriptedAgent::start(AgentConfig {
        greeting_delay_ms: 20,
        talk_ms: 100,
        listen_ms: 50,
        ..AgentConfig::default()
    })
    .await
    .unwrap();
    let mut carrier_config = answering_carrier(50);
    carrier_config.api_concurrency = Some(API_CONCURRENCY);
    // Twilio answers a create in a few hundred milliseconds: long enough for a burst of
    // creates to overlap.
    carrier_config.api_latency_ms = Millis::Fixed(200);
    let carrier = SimCarrier::start(carrier_config).await.unwrap();

    let tenant = store.create_tenant("acme").await.unwrap().id;
    let contacts: Vec<NewContact> = (0..CONTACTS)
        .map(|i| {
            let mut c =
                NewContact::new(E164::parse(&format!("+1212556{:04}", 1000 + i), None).unwrap());
            c.timezone = Some("America/New_York".into());
            c.attributes = json!({"segment": "busy-day"}).as_object().unwrap().clone();
            c
        })
        .collect();
    store.upsert_contacts(tenant, &contacts).await.unwrap();
    // One attempt each: a 429 that spent one would leave its contact never called.
    let config = CampaignConfig::from_json(json!({
        "name": "Busy day",
        "audience": {"query": {"segment": "busy-day"}},
        "agent": {"mode": "media_stream", "url": agent.ws_url()},
        "script": {"template": "Hello {name|there}"},
        "schedule": {"days": ["monday", "tuesday", "wednesday", "thursday", "friday"], "start": "09:00", "end": "17:00"},
        "retry": {"max_attempts": 1},
        "max_concurrent_calls": 40,
        "max_calls_per_minute": null
    }))
    .unwrap();
    let campaign = store.create_campaign(tenant, &config).await.unwrap();

    // Monday 2026-11-23 15:00 UTC: 10:00 in New York.
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 23, 15, 0, 0).unwrap(),
    ));
    let dialer = server.dialer(&carrier.base_url());
    let runtime = Runtime::start(fast_runtime(&store, dialer, clock.clone()))
        .await
        .unwrap();
    let started = Instant::now();
    runtime.start_campaign(tenant, campaign.id).await.unwrap();

    wait_until(
        "every contact is done",
        Duration::from_secs(60),
        async || {
            let queue = store.queue_counts(campaign.id).await.unwrap();
            queue.in_progress == 0 && queue.done == CONTACTS as u64
        },
    )
    .await;
    let took = started.elapsed();

    // The carrier did refuse creates: the test means something.
    let stats = carrier.stats();
    assert!(stats.throttled > 0, "no 429 was sent: {stats:?}");
    assert!(stats.api_in_flight_max <= u64::from(API_CONCURRENCY));

    // Every contact was called exactly once, on its first and only attempt.
    let calls = carrier.calls();
    let mut called: Vec<_> = calls.iter().map(|c| c.to.clone()).collect();
    called.sort();
    called.dedup();
    assert_eq!(called.len(), CONTACTS, "every contact was called");
    assert_eq!(calls.len(), CONTACTS, "nobody was called twice");
    let attempts = store.campaign_attempts(campaign.id, 1000).await.unwrap();
    assert_eq!(attempts.len(), CONTACTS, "one stored attempt per contact");
    for attempt in &attempts {
        assert_eq!(attempt.attempt_no, 1, "{attempt:?}");
        assert!(attempt.carrier_call_id.is_some(), "{attempt:?}");
        assert_ne!(attempt.result.as_deref(), Some("failed"), "{attempt:?}");
        assert!(!attempt.detail.contains_key("dial_error"), "{attempt:?}");
    }

    // The dialer slowed down: refusals bunch up early, when the first burst met the
    // limit, and grow rarer once the rate settled under it.
    let first = calls.iter().map(|c| c.created_at).min().unwrap();
    let last = calls.iter().map(|c| c.created_at).max().unwrap();
    let middle = first + (last - first) / 2;
    let refused = carrier.throttled_at();
    let early = refused.iter().filter(|at| **at <= middle).count();
    let late = refused.len() - early;
    eprintln!(
        "{} calls in {took:?}; {} refused with 429 ({early} in the first half of dialing, {late} in the second)",
        calls.len(),
        refused.len()
    );
    assert!(
        late <= early,
        "refusals did not settle: {early} early, {late} late"
    );
    assert!(
        refused.len() < CONTACTS,
        "the dialer kept running into the limit: {} refusals for {CONTACTS} calls",
        refused.len()
    );

    runtime.shutdown();
    carrier.shutdown().await;
    agent.shutdown().await;
    server.stop().await;
}
