//! SIP campaigns operated, on SQLite and PostgreSQL, with the real server and the
//! simulated LiveKit: a trunk or agent name the operator did not allow the tenant is
//! refused (422 naming the field and value) at create, update, duplicate and start; a SIP
//! campaign is refused without LiveKit (503 naming the missing settings); the server's
//! own runtime starts one through the REST API and the tenant's supervisor hangs its call
//! up (the room is deleted); after a restart, SIP attempts
//! left in flight are reconciled with LiveKit (a live room is followed, a gone one
//! settled from the stored events, one never placed closed as interrupted) and no
//! attempt is ever dialed twice.

use serde_json::json;
use std::time::Duration;
use switchboard_api::Settings;
use switchboard_engine::campaign::{CampaignStatus, LivekitAllowlist};
use switchboard_engine::store::testing::TestDb;
use switchboard_engine::store::{ApiKeyScope, AttemptStatus};
use switchboard_loadtest::SimCarrier;
use switchboard_loadtest::livekit::{SimLiveKit, SimLiveKitConfig, SipAgentScript, SipScript};
use switchboard_tests::api_client::Answer;
use switchboard_tests::api_client::{Api, zone_at_noon};
use switchboard_tests::sip_world::{
    LIVEKIT_KEY, LIVEKIT_SECRET, SipWorld, allow_livekit, sip_campaign, wait_until,
};
use switchboard_tests::{CALLER_ID, TestServer, answering_carrier, reserve_for};

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

const ANSWERED: &str = "+298310601";

/// A 422 whose named fields are `fields`, each message naming `value`.
fn refused(answer: &Answer, fields: &[&str], value: &str) {
    let body = answer.expect(422);
    let errors = body["errors"].as_array().unwrap();
    let named: Vec<&str> = errors
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(named, fields, "{body:#}");
    assert!(
        errors.iter().any(|e| e["message"]
            .as_str()
            .unwrap()
            .contains(&format!("`{value}`"))),
        "{body:#}"
    );
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
    // Until the operator allows them, the tenant may name no LiveKit trunk or agent.
    let config = sip_campaign("No LiveKit", json!({}));
    refused(
        &api.post("/api/v1/campaigns", config.clone()).await,
        &["agent.agent_name", "agent.trunk_id"],
        "ST_trunk",
    );
    allow_livekit(server.store(), api.tenant).await;
    let created = api.post("/api/v1/campaigns", config).await;
    let id = created.expect(201)["id"].as_i64().unwrap();
    // Another trunk or agent than the allowed ones is refused on update, and a copy of a
    // campaign whose trunk is no longer allowed is refused too; nothing changes.
    let other_trunk = json!({"agent": {"trunk_id": "ST_shared_by_someone_else"}});
    refused(
        &api.patch(&format!("/api/v1/campaigns/{id}"), other_trunk)
            .await,
        &["agent.trunk_id"],
        "ST_shared_by_someone_else",
    );
    let mut other_agent = sip_campaign("No LiveKit", json!({}));
    other_agent["agent"]["agent_name"] = json!("their-agent");
    refused(
        &api.put(&format!("/api/v1/campaigns/{id}"), other_agent)
            .await,
        &["agent.agent_name"],
        "their-agent",
    );
    let narrowed = LivekitAllowlist {
        trunks: ["ST_other".to_owned()].into(),
        agent_names: ["outbound-sales".to_owned()].into(),
    };
    server
        .store()
        .set_livekit_allowlist(api.tenant, &narrowed)
        .await
        .unwrap();
    refused(
        &api.post_empty(&format!("/api/v1/campaigns/{id}/duplicate"))
            .await,
        &["agent.trunk_id"],
        "ST_trunk",
    );
    let listed = api.get("/api/v1/campaigns").await;
    assert_eq!(listed.expect(200)["items"].as_array().unwrap().len(), 1);
    let stored = api.get(&format!("/api/v1/campaigns/{id}")).await;
    assert_eq!(
        stored.expect(200)["config"]["agent"]["trunk_id"],
        "ST_trunk"
    );
    allow_livekit(server.store(), api.tenant).await;
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
    let supervisor = Api::for_tenant(
        server.store(),
        &server.url(""),
        api.tenant,
        ApiKeyScope::Supervisor,
    )
    .await;
    allow_livekit(server.store(), api.tenant).await;
    api.post(
        "/api/v1/contacts",
        json!({"phone": ANSWERED, "timezone": zone_at_noon()}),
    )
    .await
    .expect(201);
    // A campaign stored while its trunk was allowed does not start once it is not.
    let early = api
        .post("/api/v1/campaigns", sip_campaign("Before", json!({})))
        .await
        .expect(201)["id"]
        .as_i64()
        .unwrap();
    let narrowed = LivekitAllowlist {
        trunks: ["ST_other".to_owned()].into(),
        agent_names: ["outbound-sales".to_owned()].into(),
    };
    server
        .store()
        .set_livekit_allowlist(api.tenant, &narrowed)
        .await
        .unwrap();
    refused(
        &api.post_empty(&format!("/api/v1/campaigns/{early}/start"))
            .await,
        &["agent.trunk_id"],
        "ST_trunk",
    );
    let early = api.get(&format!("/api/v1/campaigns/{early}")).await;
    assert_eq!(early.expect(200)["status"], "draft");
    allow_livekit(server.store(), api.tenant).await;
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
    let hung = supervisor
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

const FOLLOWED: &str = "+298310701";
const NEVER_PLACED: &str = "+298310702";
const GONE: &str = "+298310703";

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
        reserved.push(reserve_for(&store, tenant, campaign.id, &e164).await);
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
