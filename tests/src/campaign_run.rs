//! A campaign run by the runtime over real sockets: the campaign supervisor dials
//! due contacts through the simulated carrier, call actors follow each call, the scripted
//! agent reports outcomes, retries follow the policy on a simulated clock, compliance holds
//! before every dial, and the campaign completes by itself.

use crate::{TestServer, answering_carrier, fast_runtime};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_actors::Runtime;
use switchboard_actors::clock::ManualClock;
use switchboard_engine::campaign::{CampaignConfig, CampaignStatus, Cause};
use switchboard_engine::contact::NewContact;
use switchboard_engine::dnc::DncPattern;
use switchboard_engine::store::Store;
use switchboard_engine::store::testing::TestDb;
use switchboard_engine::{CampaignId, E164, TenantId};
use switchboard_loadtest::{AgentConfig, CallScript, DialResult, ScriptedAgent, SimCarrier};

const BUSY: &str = "+12125550301";
const LISTED: &str = "+12125550302";
const OPTED_OUT: &str = "+12125550303";
const OPTS_OUT_ON_CALL: &str = "+12125550304";
const TOKYO: &str = "+81312345678";

/// Monday 2026-11-23 15:00 UTC: 10:00 in New York, midnight in Tokyo.
fn monday_afternoon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 15, 0, 0).unwrap()
}

async fn wait_for_status(
    store: &Store,
    tenant: TenantId,
    id: CampaignId,
    status: CampaignStatus,
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let current = store.campaign(tenant, id).await.unwrap().status;
        if current == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "campaign stayed {current:?}, expected {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn calls_to(carrier: &SimCarrier, phone: &str) -> usize {
    carrier.calls().iter().filter(|c| c.to == phone).count()
}

/// Waits until `check` holds, polling every 100 ms; fails the test past `timeout`.
pub async fn wait_until(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The scenario: see the module doc.
pub async fn a_campaign_runs_to_completion_with_retries_and_compliance(db: TestDb) {
    let server = TestServer::start(&db).await;
    let store = server.store().clone();
    let agent = ScriptedAgent::start(AgentConfig {
        greeting_delay_ms: 50,
        talk_ms: 300,
        listen_ms: 200,
        ..AgentConfig::default()
    })
    .await
    .unwrap();
    let carrier_config = answering_carrier(50).script(BUSY, CallScript::ends(DialResult::Busy, 50));
    let carrier = SimCarrier::start(carrier_config).await.unwrap();

    let tenant = store.create_tenant("acme").await.unwrap().id;
    let mut contacts: Vec<NewContact> = (0..6)
        .map(|i| {
            let mut c =
                NewContact::new(E164::parse(&format!("+1212555{:04}", 2000 + i), None).unwrap());
            c.timezone = Some("America/New_York".into());
            c.attributes = json!({"segment": "spring"}).as_object().unwrap().clone();
            c
        })
        .collect();
    for (phone, tz, extra) in [
        (BUSY, "America/New_York", json!({})),
        (LISTED, "America/New_York", json!({})),
        (OPTED_OUT, "America/New_York", json!({})),
        (
            OPTS_OUT_ON_CALL,
            "America/New_York",
            json!({"agent_outcome": "do_not_call"}),
        ),
        (TOKYO, "Asia/Tokyo", json!({})),
    ] {
        let mut c = NewContact::new(E164::parse(phone, None).unwrap());
        c.timezone = Some(tz.into());
        let mut attributes = json!({"segment": "spring"}).as_object().unwrap().clone();
        attributes.extend(extra.as_object().unwrap().clone());
        c.attributes = attributes;
        if phone == OPTED_OUT {
            c.opted_out_at = Some(switchboard_engine::time::now());
        }
        contacts.push(c);
    }
    let mut outside = NewContact::new(E164::parse("+12125550399", None).unwrap());
    outside.attributes = json!({"segment": "autumn"}).as_object().unwrap().clone();
    contacts.push(outside);
    store.upsert_contacts(tenant, &contacts).await.unwrap();
    store
        .add_dnc(
            tenant,
            &[DncPattern::parse(LISTED, None).unwrap()],
            Some("asked"),
            "api",
        )
        .await
        .unwrap();

    let config = CampaignConfig::from_json(json!({
        "name": "Spring",
        "audience": {"query": {"segment": "spring"}},
        "agent": {"mode": "media_stream", "url": agent.ws_url()},
        "script": {"template": "Hello {name|there}"},
        "schedule": {"days": ["monday", "tuesday", "wednesday", "thursday", "friday"], "start": "09:00", "end": "17:00"},
        "retry": {"max_attempts": 3, "min_gap_minutes": 30, "busy": {"max_attempts": 2, "delay_minutes": 30}},
        "max_concurrent_calls": 4,
        "max_calls_per_minute": null
    }))
    .unwrap();
    let campaign = store.create_campaign(tenant, &config).await.unwrap();

    let clock = Arc::new(ManualClock::new(monday_afternoon()));
    let dialer = server.dialer(&carrier.base_url());
    let runtime = Runtime::start(fast_runtime(&store, dialer, clock.clone()))
        .await
        .unwrap();
    runtime.start_campaign(tenant, campaign.id).await.unwrap();

    // The six plain contacts, the busy one and the one who opts out are dialed; Tokyo waits
    // for its morning; the listed and opted-out numbers are never dialed.
    wait_until(
        "the first round is done",
        Duration::from_secs(40),
        async || {
            let queue = store.queue_counts(campaign.id).await.unwrap();
            queue.in_progress == 0 && queue.done == 9
        },
    )
    .await;
    assert_eq!(
        calls_to(&carrier, LISTED).await,
        0,
        "a do-not-call number is never dialed"
    );
    assert_eq!(
        calls_to(&carrier, OPTED_OUT).await,
        0,
        "an opted-out contact is never dialed"
    );
    assert_eq!(
        calls_to(&carrier, TOKYO).await,
        0,
        "never at midnight local time"
    );
    assert_eq!(
        calls_to(&carrier, "+12125550399").await,
        0,
        "outside the audience"
    );
    assert_eq!(calls_to(&carrier, BUSY).await, 1);
    assert!(
        store
            .dnc_check(tenant, &E164::parse(OPTS_OUT_ON_CALL, None).unwrap())
            .await
            .unwrap()
            .is_some()
    );
    let snapshot = runtime.snapshots().await.unwrap();
    assert_eq!(snapshot[0].skipped.get("dnc"), Some(&1), "{snapshot:?}");

    // Half an hour later the busy number is due again; it is busy again and given up.
    clock.advance(chrono::Duration::minutes(31));
    wait_until(
        "the busy number is retried",
        Duration::from_secs(20),
        async || calls_to(&carrier, BUSY).await == 2,
    )
    .await;

    // Tokyo's morning: 09:00 JST is 00:00 UTC on Tuesday.
    clock.set(Utc.with_ymd_and_hms(2026, 11, 24, 0, 5, 0).unwrap());
    wait_for_status(
        &store,
        tenant,
        campaign.id,
        CampaignStatus::Completed,
        Duration::from_secs(40),
    )
    .await;
    assert_eq!(calls_to(&carrier, TOKYO).await, 1);
    assert_eq!(
        calls_to(&carrier, BUSY).await,
        2,
        "busy rule: at most 2 attempts"
    );
    assert_eq!(carrier.calls().len(), 6 + 2 + 1 + 1);
    let history = store.campaign_history(tenant, campaign.id).await.unwrap();
    let last = history.last().unwrap();
    assert_eq!(
        (last.to, last.cause),
        (CampaignStatus::Completed, Cause::Scheduler)
    );
    for call in carrier.calls() {
        let attempts = store.campaign_attempts(campaign.id, 100).await.unwrap();
        assert!(
            attempts
                .iter()
                .any(|a| a.carrier_call_id.as_deref() == Some(&call.sid)),
            "every call has its attempt"
        );
    }
    runtime.shutdown();
    carrier.shutdown().await;
    agent.shutdown().await;
    server.stop().await;
}

/// A campaign whose calls all fail its success definition pauses itself (cause `pacing`,
/// reason `quality`, with the figures) once the evidence is significant, and dials no more.
pub async fn a_campaign_with_poor_quality_pauses_itself(db: TestDb) {
    let server = TestServer::start(&db).await;
    let store = server.store().clone();
    let agent = ScriptedAgent::start(AgentConfig {
        greeting_delay_ms: 50,
        talk_ms: 200,
        listen_ms: 100,
        ..AgentConfig::default()
    })
    .await
    .unwrap();
    let carrier = SimCarrier::start(answering_carrier(50)).await.unwrap();
    let tenant = store.create_tenant("acme").await.unwrap().id;
    let contacts: Vec<NewContact> = (0..30)
        .map(|i| {
            let mut c =
                NewContact::new(E164::parse(&format!("+1212555{:04}", 3000 + i), None).unwrap());
            c.timezone = Some("America/New_York".into());
            c.attributes = json!({"agent_outcome": "not_interested"})
                .as_object()
                .unwrap()
                .clone();
            c
        })
        .collect();
    store.upsert_contacts(tenant, &contacts).await.unwrap();
    let config = CampaignConfig::from_json(json!({
        "name": "Poor",
        "audience": {"query": {}},
        "agent": {"mode": "media_stream", "url": agent.ws_url()},
        "script": {"template": "Hello"},
        "success": {"outcomes": ["interested"]},
        "quality": {"min_success_rate": 0.5, "window": 50, "min_sample": 5},
        "max_concurrent_calls": 2,
        "max_calls_per_minute": null
    }))
    .unwrap();
    let campaign = store.create_campaign(tenant, &config).await.unwrap();
    let clock = Arc::new(ManualClock::new(monday_afternoon()));
    let dialer = server.dialer(&carrier.base_url());
    let runtime = Runtime::start(fast_runtime(&store, dialer, clock))
        .await
        .unwrap();
    runtime.start_campaign(tenant, campaign.id).await.unwrap();
    wait_for_status(
        &store,
        tenant,
        campaign.id,
        CampaignStatus::Paused,
        Duration::from_secs(60),
    )
    .await;
    let history = store.campaign_history(tenant, campaign.id).await.unwrap();
    let pause = history.last().unwrap();
    assert_eq!(
        (pause.cause, pause.reason.as_str()),
        (Cause::Pacing, "quality")
    );
    let figures = pause.detail.clone().unwrap();
    assert!(
        figures.to_string().contains("success"),
        "the figures say why: {figures}"
    );
    let dialed = store
        .campaign_attempts(campaign.id, 100)
        .await
        .unwrap()
        .len();
    assert!(
        (5..30).contains(&dialed),
        "paused on evidence, before the whole audience: {dialed} dialed"
    );
    // Paused: live calls finish, nothing new is dialed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let settled = store
        .campaign_attempts(campaign.id, 100)
        .await
        .unwrap()
        .len();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        store
            .campaign_attempts(campaign.id, 100)
            .await
            .unwrap()
            .len(),
        settled,
        "no new dials while paused"
    );
    // Resumed by the user, it dials again.
    runtime.resume_campaign(tenant, campaign.id).await.unwrap();
    let resumed_at = settled;
    let deadline = Instant::now() + Duration::from_secs(20);
    while store
        .campaign_attempts(campaign.id, 100)
        .await
        .unwrap()
        .len()
        == resumed_at
    {
        assert!(
            Instant::now() < deadline,
            "the resumed campaign dials again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    runtime.shutdown();
    carrier.shutdown().await;
    agent.shutdown().await;
    server.stop().await;
}
