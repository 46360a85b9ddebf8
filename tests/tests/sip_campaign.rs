//! SIP campaigns end to end, on SQLite and PostgreSQL: the real server (LiveKit's signed
//! webhooks, the agent API, the REST and admin routes), the runtime dialing through the
//! simulated LiveKit (`CreateSIPParticipant` through an outbound trunk, the agent
//! dispatched into the call's room and reporting its outcome with the call's token).
//!
//! A campaign over six contacts runs to completion: answered with the agent's outcome,
//! busy, declined, carrier capacity then answered on the retry, no answer, and answered
//! then hung up by the callee (the `participant_left` webhook ends it, the outcome is
//! derived). Retries follow the policy, every attempt is exactly one SIP call in the
//! simulator's own record, and every room is deleted at the end. A SIP campaign is
//! refused without LiveKit; the server's own runtime starts one through the REST API and
//! an administrator hangs its call up. After a restart, attempts left in flight are
//! reconciled with LiveKit and never dialed twice.

use serde_json::{Value, json};
use std::time::Duration;
use switchboard_api::Settings;
use switchboard_engine::campaign::CampaignStatus;
use switchboard_engine::store::testing::TestDb;
use switchboard_engine::store::{ApiKeyScope, AttemptStatus, NewAttempt};
use switchboard_loadtest::livekit::{SimLiveKit, SimLiveKitConfig, SipAgentScript, SipScript};
use switchboard_loadtest::{Outcome, SimCarrier};
use switchboard_tests::api_client::{Api, zone_at_noon};
use switchboard_tests::sip_world::{
    LIVEKIT_KEY, LIVEKIT_SECRET, SipWorld, sip_campaign, wait_until,
};
use switchboard_tests::{CALLER_ID, TestServer, answering_carrier};

/// Actors are named per process and every test database numbers from 1: scenarios take
/// turns, each waiting for its actors to be gone.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn actors_gone() {
    wait_until(
        "the runtime's actors are gone",
        Duration::from_secs(20),
        async || ractor::registry::registered().is_empty(),
    )
    .await;
}

const ANSWERED: &str = "+14155550601";
const BUSY: &str = "+14155550602";
const DECLINED: &str = "+14155550603";
const CAPACITY: &str = "+14155550604";
const NO_ANSWER: &str = "+14155550605";
const HANGS_UP: &str = "+14155550606";

fn retry_policy() -> Value {
    json!({"max_attempts": 3, "min_gap_minutes": 1,
           "busy": {"max_attempts": 2, "delay_minutes": 30},
           "no_answer": {"max_attempts": 1, "delay_minutes": 30},
           "failed": {"max_attempts": 1, "delay_minutes": 30}})
}

async fn a_sip_campaign_runs_to_completion(db: TestDb) {
    let _turn = TURN.lock().await;
    let config = SimLiveKitConfig::new(LIVEKIT_KEY, LIVEKIT_SECRET)
        .sip(ANSWERED, SipScript::answered(50))
        .sip(BUSY, SipScript::busy(50))
        .sip(DECLINED, SipScript::declined(50))
        .sip_sequence(
            CAPACITY,
            vec![SipScript::service_unavailable(50), SipScript::answered(50)],
        )
        .sip(NO_ANSWER, SipScript::no_answer())
        .sip(HANGS_UP, SipScript::answered(50).hang_up_after(300))
        .sip_agent(SipAgentScript::default());
    let world = SipWorld::start(&db, config).await;
    let store = world.store.clone();
    let tenant = world
        .tenant_with_contacts(&[
            (ANSWERED, json!({})),
            (BUSY, json!({})),
            (DECLINED, json!({})),
            (CAPACITY, json!({"agent_outcome": "not_interested"})),
            (NO_ANSWER, json!({})),
            (
                HANGS_UP,
                json!({"agent_no_report": "true", "agent_talk_ms": 5000}),
            ),
        ])
        .await;
    let config = sip_campaign("SIP spring", retry_policy());
    let config = switchboard_engine::campaign::CampaignConfig::from_json(config).unwrap();
    let campaign = store.create_campaign(tenant, &config).await.unwrap().id;
    let runtime = world.runtime(true).await;
    runtime.start_campaign(tenant, campaign).await.unwrap();

    // The first round: three contacts are done, three wait for their retry.
    wait_until(
        "the first round is over",
        Duration::from_secs(40),
        async || {
            let queue = store.queue_counts(campaign).await.unwrap();
            queue.in_progress == 0 && queue.done == 3 && queue.queued == 3
        },
    )
    .await;
    let first = world.attempts_to(campaign, CAPACITY).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].result.as_deref(), Some("carrier_capacity"));
    assert_eq!(first[0].detail["sip_status_code"], 503);
    assert_eq!(first[0].detail["retryable"], true);

    // Carrier capacity backs off five minutes; busy and declined wait their 30.
    world.clock.advance(chrono::Duration::minutes(6));
    wait_until(
        "the capacity retry is answered",
        Duration::from_secs(20),
        async || store.queue_counts(campaign).await.unwrap().done == 4,
    )
    .await;
    assert_eq!(
        world.attempts_to(campaign, BUSY).await.len(),
        1,
        "busy waits 30 minutes"
    );
    world.clock.advance(chrono::Duration::minutes(31));
    wait_until(
        "the campaign completes",
        Duration::from_secs(40),
        async || {
            store.campaign(tenant, campaign).await.unwrap().status == CampaignStatus::Completed
        },
    )
    .await;

    // Every contact's attempts and results.
    type Results = Vec<(Option<String>, Option<String>)>;
    let results = |attempts: &[switchboard_engine::store::AttemptRecord]| -> Results {
        attempts
            .iter()
            .map(|a| (a.result.clone(), a.outcome.clone()))
            .collect()
    };
    let s = |v: &str| Some(v.to_owned());
    let expected = [
        (ANSWERED, vec![(s("completed"), s("interested"))]),
        (BUSY, vec![(s("busy"), None), (s("busy"), None)]),
        (DECLINED, vec![(s("declined"), None), (s("declined"), None)]),
        (
            CAPACITY,
            vec![
                (s("carrier_capacity"), None),
                (s("completed"), s("not_interested")),
            ],
        ),
        (NO_ANSWER, vec![(s("no_answer"), None)]),
        (HANGS_UP, vec![(s("completed"), None)]),
    ];
    for (phone, want) in &expected {
        let attempts = world.attempts_to(campaign, phone).await;
        assert_eq!(&results(&attempts), want, "{phone}: {attempts:#?}");
    }
    for (phone, code) in [(BUSY, 486), (DECLINED, 603)] {
        for attempt in world.attempts_to(campaign, phone).await {
            assert_eq!(attempt.detail["sip_status_code"], code, "{phone}");
        }
    }

    let attempts = store.campaign_attempts(campaign, 1000).await.unwrap();
    assert_eq!(attempts.len(), 9);
    for attempt in &attempts {
        assert_eq!(attempt.status, AttemptStatus::Ended);
        assert_eq!(
            world.sip_calls_for(attempt),
            1,
            "one SIP call per attempt: {attempt:?}"
        );
        assert!(attempt.dialed_at.is_some(), "{attempt:?}");
        if attempt.answered_at.is_some() {
            // Media bypasses Switchboard: the agent's presence in the room judged it.
            assert_eq!(attempt.detail["abandoned"], false, "{attempt:?}");
            assert_eq!(attempt.detail["abandonment_basis"], "agent_presence");
            assert!(attempt.detail.contains_key("agent_joined_at"));
            assert!(attempt.ended_at.is_some());
        }
    }
    assert_eq!(world.livekit.sip_calls().len(), attempts.len());
    let ledger = store
        .abandonment_history(campaign, chrono::DateTime::UNIX_EPOCH)
        .await
        .unwrap();
    assert_eq!(ledger.len(), 3, "three people answered");
    assert!(ledger.iter().all(|(_, abandoned)| !abandoned));

    // The callee who hung up ended the call through LiveKit's webhook.
    let hung_up = &world.attempts_to(campaign, HANGS_UP).await[0];
    let events = store.attempt_events(hung_up.id).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.kind == "carrier.sip.participant_left"),
        "{events:#?}"
    );
    let reports = world.livekit.agent_reports();
    assert_eq!(reports.len(), 2, "{reports:?}");
    assert!(
        reports.iter().all(|r| r.http_status == Some(200)),
        "{reports:?}"
    );
    assert!(reports.iter().any(|r| r.outcome == Outcome::Interested));
    wait_until(
        "every room is deleted",
        Duration::from_secs(10),
        async || world.livekit.rooms().iter().all(|r| r.deleted),
    )
    .await;
    assert_eq!(world.livekit.rooms().len(), attempts.len());
    world.stop(runtime).await;
    actors_gone().await;
}

async fn sip_campaigns_start_and_hang_up_through_the_api(db: TestDb) {
    let _turn = TURN.lock().await;
    let carrier = SimCarrier::start(answering_carrier(50)).await.unwrap();
    let mut settings = Settings::for_tests(db.url());
    settings.twilio_from = Some(CALLER_ID.to_owned());
    settings.twilio_api_base = carrier.base_url();

    // Without LiveKit a SIP campaign is refused, naming what is missing; nothing changes.
    let server = TestServer::start_with(settings.clone()).await;
    let api = Api::new_tenant(&server, "no-livekit").await;
    let created = api
        .post("/api/v1/campaigns", sip_campaign("No LiveKit", json!({})))
        .await;
    let id = created.expect(201)["id"].as_i64().unwrap();
    let start = api
        .post_empty(&format!("/api/v1/campaigns/{id}/start"))
        .await;
    let body = start.expect(503);
    assert_eq!(
        body["missing_settings"],
        json!(["livekit_url", "livekit_api_key", "livekit_api_secret"])
    );
    assert!(body["detail"].as_str().unwrap().contains("sip"), "{body:#}");
    let campaign = api.get(&format!("/api/v1/campaigns/{id}")).await;
    assert_eq!(campaign.expect(200)["status"], "draft");
    server.stop().await;
    actors_gone().await;

    // With LiveKit, the server's runtime dials it; an administrator hangs the call up.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let agent = SipAgentScript {
        talk_ms: 600_000,
        ..SipAgentScript::default()
    };
    let livekit = SimLiveKit::start(
        SimLiveKitConfig::new(LIVEKIT_KEY, LIVEKIT_SECRET)
            .webhook_url(format!("http://127.0.0.1:{port}/livekit/webhook"))
            .sip_agent(agent),
    )
    .await
    .unwrap();
    settings.listen = ([127, 0, 0, 1], port).into();
    settings.livekit_url = Some(livekit.url());
    settings.livekit_api_key = Some(LIVEKIT_KEY.into());
    settings.livekit_api_secret = Some(LIVEKIT_SECRET.to_owned().into());
    let server = TestServer::start_with(settings).await;
    let api = Api::new_tenant(&server, "acme").await;
    let admin = Api::new_tenant_with_scope(&server, "operators", ApiKeyScope::Admin).await;
    api.post(
        "/api/v1/contacts",
        json!({"phone": ANSWERED, "timezone": zone_at_noon()}),
    )
    .await
    .expect(201);
    let id = api
        .start_new_campaign(sip_campaign(
            "Through the API",
            json!({"failed": {"max_attempts": 1}}),
        ))
        .await;
    let store = server.store().clone();
    let campaign = switchboard_engine::CampaignId(id);
    let mut attempt = None;
    wait_until("the callee answers", Duration::from_secs(20), async || {
        let attempts = store.campaign_attempts(campaign, 10).await.unwrap();
        attempt = attempts
            .into_iter()
            .find(|a| a.status == AttemptStatus::Bridged);
        attempt.is_some()
    })
    .await;
    let attempt = attempt.unwrap();
    let hung = admin
        .post_empty(&format!("/admin/calls/{}/hangup", attempt.id))
        .await;
    assert_eq!(
        hung.expect(202)["carrier_call_id"],
        format!("call-{}", attempt.id)
    );
    wait_until(
        "the campaign completes",
        Duration::from_secs(30),
        async || {
            let record = store.campaign(api.tenant, campaign).await.unwrap();
            record.status == CampaignStatus::Completed
        },
    )
    .await;
    let ended = store.attempt(attempt.id).await.unwrap();
    assert_eq!(ended.result.as_deref(), Some("completed"), "{ended:?}");
    let events = store.attempt_events(attempt.id).await.unwrap();
    assert!(events.iter().any(|e| e.kind == "admin.hangup"));
    assert!(
        livekit
            .room(&format!("call-{}", attempt.id))
            .unwrap()
            .deleted
    );
    assert_eq!(livekit.sip_calls().len(), 1);
    assert!(
        carrier.calls().is_empty(),
        "a SIP campaign never reaches the carrier"
    );
    server.stop().await;
    livekit.shutdown().await;
    carrier.shutdown().await;
    actors_gone().await;
}

const FOLLOWED: &str = "+14155550701";
const NEVER_PLACED: &str = "+14155550702";
const GONE: &str = "+14155550703";

async fn sip_calls_in_flight_at_a_restart_are_reconciled_with_livekit(db: TestDb) {
    let _turn = TURN.lock().await;
    let config = SimLiveKitConfig::new(LIVEKIT_KEY, LIVEKIT_SECRET)
        .sip_default(SipScript::answered(50))
        .sip_agent(SipAgentScript::default());
    let world = SipWorld::start(&db, config).await;
    let store = world.store.clone();
    let tenant = world
        .tenant_with_contacts(&[
            (FOLLOWED, json!({"agent_talk_ms": 3000})),
            (NEVER_PLACED, json!({})),
            (GONE, json!({"agent_talk_ms": 600000})),
        ])
        .await;
    let config = sip_campaign("Restart", json!({"failed": {"max_attempts": 1}}));
    let config = switchboard_engine::campaign::CampaignConfig::from_json(config).unwrap();
    let campaign = store.create_campaign(tenant, &config).await.unwrap();
    store
        .start_campaign(
            tenant,
            campaign.id,
            switchboard_engine::campaign::Cause::User,
            "go",
        )
        .await
        .unwrap();

    // A process that died: it reserved three attempts, placed two of the calls, and one
    // of those rooms is gone since (answered, then over).
    let mut reserved = Vec::new();
    for phone in [FOLLOWED, NEVER_PLACED, GONE] {
        let e164 = switchboard_engine::E164::parse(phone, None).unwrap();
        let contact = store
            .contact_by_phone(tenant, &e164)
            .await
            .unwrap()
            .unwrap();
        store
            .enqueue_contacts(campaign.id, &[contact.id], 0)
            .await
            .unwrap();
        let attempt = store
            .reserve_attempt(&NewAttempt {
                tenant_id: tenant,
                campaign_id: campaign.id,
                contact_id: contact.id,
                phone: contact.phone.clone(),
                attempts_seen: 0,
            })
            .await
            .unwrap();
        reserved.push(attempt);
    }
    let (followed, never_placed, gone) = (&reserved[0], &reserved[1], &reserved[2]);
    for attempt in [followed, gone] {
        world.dialer.record_dialing(&store, attempt).await.unwrap();
        let session = world.dialer.dial_attempt(&store, attempt).await.unwrap();
        if attempt.id == gone.id {
            session.close().await.unwrap();
        }
        // The dead process never closed the other session: its room lives on.
    }
    wait_until(
        "the gone room's end is stored",
        Duration::from_secs(10),
        async || {
            let events = store.attempt_events(gone.id).await.unwrap();
            events.iter().any(|e| e.kind == "livekit.room_finished")
        },
    )
    .await;

    let runtime = world.runtime(true).await;
    wait_until(
        "the campaign completes",
        Duration::from_secs(40),
        async || {
            store.campaign(tenant, campaign.id).await.unwrap().status == CampaignStatus::Completed
        },
    )
    .await;
    let followed_now = store.attempt(followed.id).await.unwrap();
    assert_eq!(
        (
            followed_now.result.as_deref(),
            followed_now.outcome.as_deref()
        ),
        (Some("completed"), Some("interested")),
        "the live call was followed to its outcome: {followed_now:?}"
    );
    let gone_now = store.attempt(gone.id).await.unwrap();
    assert_eq!(
        gone_now.result.as_deref(),
        Some("completed"),
        "{gone_now:?}"
    );
    let never_now = store.attempt(never_placed.id).await.unwrap();
    assert_eq!(never_now.result.as_deref(), Some("failed"));
    assert_eq!(
        never_now.detail["failure"], "interrupted before the call was placed",
        "{never_now:?}"
    );
    for attempt in &reserved {
        let expected = usize::from(attempt.id != never_placed.id);
        assert_eq!(
            world.sip_calls_for(attempt),
            expected,
            "never dialed twice: {attempt:?}"
        );
    }
    assert_eq!(
        store
            .campaign_attempts(campaign.id, 100)
            .await
            .unwrap()
            .len(),
        3,
        "no new attempt: the failed rule allows one"
    );
    assert!(world.livekit.rooms().iter().all(|r| r.deleted));
    world.stop(runtime).await;
    actors_gone().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sip_campaign_runs_to_completion_on_sqlite_and_postgres() {
    a_sip_campaign_runs_to_completion(TestDb::sqlite().await).await;
    if let Some(db) = TestDb::postgres().await {
        a_sip_campaign_runs_to_completion(db).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_campaigns_start_and_hang_up_through_the_api_on_sqlite_and_postgres() {
    sip_campaigns_start_and_hang_up_through_the_api(TestDb::sqlite().await).await;
    if let Some(db) = TestDb::postgres().await {
        sip_campaigns_start_and_hang_up_through_the_api(db).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_calls_in_flight_at_a_restart_are_reconciled_on_sqlite_and_postgres() {
    sip_calls_in_flight_at_a_restart_are_reconciled_with_livekit(TestDb::sqlite().await).await;
    if let Some(db) = TestDb::postgres().await {
        sip_calls_in_flight_at_a_restart_are_reconciled_with_livekit(db).await;
    }
}
