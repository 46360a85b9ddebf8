//! The campaign routes over real HTTP, with the real runtime dialing through the simulated
//! carrier to the scripted agent: create, list, read, update, start, status with live
//! figures, calls, pause, resume, stop, delete; and the refusals (illegal transitions,
//! running edits, deletes while running, missing keys), on both backends.

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use switchboard_api::Settings;
use switchboard_engine::store::testing::TestDb;
use switchboard_loadtest::{AgentConfig, ScriptedAgent, SimCarrier};
use switchboard_tests::api_client::{Answer, Api, zone_at, zone_at_noon};
use switchboard_tests::{CALLER_ID, TestServer, answering_carrier};

async fn wait_until(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Campaign and call actors are registered by name (`campaign:1`) in one registry per
/// process, and every test database numbers its campaigns from 1: the tests that run the
/// runtime take turns, each waiting for its actors to be gone before the next starts.
static RUNTIME_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn stop_and_wait_for_actors(server: TestServer) {
    server.stop().await;
    wait_until(
        "the runtime's actors are gone",
        Duration::from_secs(20),
        async || ractor::registry::registered().is_empty(),
    )
    .await;
}

fn ok(answer: &Answer, status: u16) -> &Value {
    assert_eq!(answer.status.as_u16(), status, "{:#}", answer.body);
    &answer.body
}

fn campaign(agent_url: &str) -> Value {
    json!({
        "name": "Spring renewals",
        "objective": "renewals",
        "audience": {"query": {"segment": "spring"}},
        "agent": {"mode": "media_stream", "url": agent_url},
        "script": {"template": "Hello {name|there}, about your renewal."},
        "schedule": {"days": ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"], "start": "09:00", "end": "17:00"},
        "success": {"outcomes": ["interested"]},
        "max_concurrent_calls": 2,
        "max_calls_per_minute": null
    })
}

async fn the_campaign_routes_drive_a_real_campaign(db: TestDb) {
    let _turn = RUNTIME_TURN.lock().await;
    let agent = ScriptedAgent::start(AgentConfig {
        greeting_delay_ms: 50,
        talk_ms: 200,
        listen_ms: 100,
        ..AgentConfig::default()
    })
    .await
    .unwrap();
    let carrier = SimCarrier::start(answering_carrier(50)).await.unwrap();
    let mut settings = Settings::for_tests(db.url());
    settings.twilio_from = Some(CALLER_ID.to_owned());
    settings.twilio_api_base = carrier.base_url();
    let server = TestServer::start_with(settings).await;
    let api = Api::new_tenant(&server, "acme").await;

    // Without a key nothing is served.
    let anonymous = api.with_key(None).get("/api/v1/campaigns").await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.content_type, "application/problem+json");
    assert_eq!(
        api.with_key(Some("sb_nope"))
            .get("/api/v1/campaigns")
            .await
            .status,
        401
    );

    let zone = zone_at_noon();
    for i in 0..4 {
        let outcome = if i % 2 == 0 {
            "interested"
        } else {
            "not_interested"
        };
        let created = api
            .post(
                "/api/v1/contacts",
                json!({"phone": format!("+29831{:04}", 4000 + i), "name": format!("Contact {i}"),
                       "timezone": zone, "attributes": {"segment": "spring", "agent_outcome": outcome}}),
            )
            .await;
        ok(&created, 201);
    }
    // One contact where it is the middle of the night: the campaign waits for them and
    // stays active.
    let night = api
        .post(
            "/api/v1/contacts",
            json!({"phone": "+298314999", "timezone": zone_at(0), "attributes": {"segment": "spring"}}),
        )
        .await;
    ok(&night, 201);

    // POST /campaigns
    let created = api
        .post("/api/v1/campaigns", campaign(&agent.ws_url()))
        .await;
    let body = ok(&created, 201);
    assert_eq!(body["status"], "draft");
    let id = body["id"].as_i64().unwrap();
    let path = format!("/api/v1/campaigns/{id}");

    // A bad configuration names its fields.
    let mut bad = campaign(&agent.ws_url());
    bad["max_concurrent_calls"] = json!(0);
    bad["schedule"]["days"] = json!(["funday"]);
    let refused = api.post("/api/v1/campaigns", bad).await;
    assert_eq!(refused.status, 422, "{:#}", refused.body);
    let fields: Vec<&str> = refused.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.iter().any(|f| f.starts_with("schedule.days")),
        "{fields:?}"
    );

    // GET /campaigns (with filters) and GET /campaigns/:id
    let listed = api.get("/api/v1/campaigns?status=draft&q=spring").await;
    assert_eq!(ok(&listed, 200)["items"][0]["id"], id);
    assert_eq!(
        ok(&api.get("/api/v1/campaigns?status=active").await, 200)["items"],
        json!([])
    );
    let bad_filter = api.get("/api/v1/campaigns?status=running").await;
    assert_eq!(bad_filter.status, 400);
    assert_eq!(bad_filter.body["errors"][0]["field"], "status");
    assert_eq!(
        ok(&api.get(&path).await, 200)["config"]["name"],
        "Spring renewals"
    );

    // PUT /campaigns/:id on a draft changes anything.
    let mut edited = campaign(&agent.ws_url());
    edited["name"] = json!("Spring renewals 2026");
    assert_eq!(
        ok(&api.put(&path, edited.clone()).await, 200)["config"]["name"],
        "Spring renewals 2026"
    );

    // Resuming a draft is not a legal change.
    let illegal = api.post_empty(&format!("{path}/resume")).await;
    assert_eq!(illegal.status, 409, "{:#}", illegal.body);

    // POST /campaigns/:id/start: the runtime dials through the carrier.
    let started = api
        .post(&format!("{path}/start"), json!({"reason": "go"}))
        .await;
    assert_eq!(ok(&started, 200)["status"], "active");
    wait_until(
        "every contact has an outcome",
        Duration::from_secs(60),
        async || {
            let calls = api.get(&format!("{path}/calls?status=ended")).await;
            calls.body["items"].as_array().is_some_and(|items| {
                items.len() == 4 && items.iter().all(|c| c["outcome"].is_string())
            })
        },
    )
    .await;

    // GET /campaigns/:id/status: progress, rates, cost, and live figures from the runtime.
    let status = api.get(&format!("{path}/status")).await;
    let status = ok(&status, 200);
    assert_eq!(status["calls"]["attempts"], 4, "{status:#}");
    assert_eq!(status["calls"]["successful"], 2, "{status:#}");
    assert_eq!(status["rates"]["answer"], 1.0, "{status:#}");
    assert_eq!(status["rates"]["success"], 0.5, "{status:#}");
    assert!(
        status["cost"]["billed_minutes"].as_u64().unwrap() >= 4,
        "{status:#}"
    );
    assert_eq!(status["pacing"]["max_concurrent_calls"], 2);
    assert_eq!(status["progress"]["queued"], 1, "{status:#}");
    assert!(
        status["live"]["live_calls"].is_u64(),
        "live figures from the runtime: {status:#}"
    );

    // GET /campaigns/:id/calls with filters and pages.
    let interested = api.get(&format!("{path}/calls?outcome=interested")).await;
    assert_eq!(ok(&interested, 200)["items"].as_array().unwrap().len(), 2);
    let first = api.get(&format!("{path}/calls?limit=3")).await;
    let first = ok(&first, 200).clone();
    let cursor = first["next_cursor"].as_str().expect("a second page");
    let second = api
        .get(&format!("{path}/calls?limit=3&cursor={cursor}"))
        .await;
    assert_eq!(ok(&second, 200)["items"].as_array().unwrap().len(), 1);
    let csv = api.get(&format!("{path}/calls.csv")).await;
    assert!(csv.content_type.starts_with("text/csv"));
    assert_eq!(csv.text().lines().count(), 5, "{}", csv.text());

    // A running campaign may change its pacing, not its audience.
    let mut running = ok(&api.get(&path).await, 200)["config"].clone();
    running["max_concurrent_calls"] = json!(3);
    assert_eq!(
        ok(&api.put(&path, running.clone()).await, 200)["config"]["max_concurrent_calls"],
        3
    );
    running["audience"] = json!({"query": {"segment": "autumn"}});
    let refused = api.put(&path, running).await;
    assert_eq!(refused.status, 409, "{:#}", refused.body);
    assert_eq!(refused.body["errors"][0]["field"], "audience");
    assert!(
        refused.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("active")
    );

    // DELETE while running: 409.
    assert_eq!(api.delete(&path).await.status, 409);

    // pause, resume, stop
    let paused = api
        .post(&format!("{path}/pause"), json!({"reason": "lunch"}))
        .await;
    assert_eq!(ok(&paused, 200)["status"], "paused");
    assert_eq!(
        ok(&api.get(&format!("{path}/status")).await, 200)["campaign"]["status"],
        "paused"
    );
    let resumed = api.post_empty(&format!("{path}/resume")).await;
    assert_eq!(ok(&resumed, 200)["status"], "active");
    let stopped = api.post_empty(&format!("{path}/stop")).await;
    assert_eq!(ok(&stopped, 200)["status"], "stopped");
    assert_eq!(api.post_empty(&format!("{path}/start")).await.status, 409);

    // The history says who did what.
    let history = api.get(&format!("{path}/history")).await;
    let reasons: Vec<&str> = ok(&history, 200)
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["reason"].as_str().unwrap())
        .collect();
    assert!(reasons.contains(&"lunch"), "{reasons:?}");

    // DELETE once stopped, then it is gone.
    assert_eq!(api.delete(&path).await.status, 204);
    assert_eq!(api.get(&path).await.status, 404);

    stop_and_wait_for_actors(server).await;
    carrier.shutdown().await;
    agent.shutdown().await;
}

async fn start_without_twilio_explains_the_missing_settings(db: TestDb) {
    let server = TestServer::start_with(Settings::for_tests(db.url())).await;
    let api = Api::new_tenant(&server, "acme").await;
    let created = api
        .post(
            "/api/v1/campaigns",
            json!({"name": "No carrier", "audience": {"query": {}}, "agent": {"mode": "media_stream", "url": "ws://127.0.0.1:9/agent"}, "script": {"template": "Hi"}}),
        )
        .await;
    let id = ok(&created, 201)["id"].as_i64().unwrap();
    let start = api
        .post_empty(&format!("/api/v1/campaigns/{id}/start"))
        .await;
    assert_eq!(start.status, 503, "{:#}", start.body);
    assert!(
        start.body["detail"]
            .as_str()
            .unwrap()
            .contains("twilio_from")
    );
    assert_eq!(start.body["missing_settings"], json!(["twilio_from"]));
    // Pause and stop still work through the store.
    let stopped = api
        .post_empty(&format!("/api/v1/campaigns/{id}/stop"))
        .await;
    assert_eq!(ok(&stopped, 200)["status"], "stopped");
    server.stop().await;
}

async fn concurrent_starts_within_a_tenant_limit_of_one_let_exactly_one_through(db: TestDb) {
    let _turn = RUNTIME_TURN.lock().await;
    let carrier = SimCarrier::start(answering_carrier(50)).await.unwrap();
    let mut settings = Settings::for_tests(db.url());
    settings.twilio_from = Some(CALLER_ID.to_owned());
    settings.twilio_api_base = carrier.base_url();
    let server = TestServer::start_with(settings).await;
    let api = Api::new_tenant(&server, "acme").await;
    server
        .store()
        .set_tenant_limits(api.tenant, Some(1), None)
        .await
        .unwrap();
    // One contact where it is night: an active campaign waits for them instead of completing.
    let night = api
        .post(
            "/api/v1/contacts",
            json!({"phone": "+298314998", "timezone": zone_at(0), "attributes": {"segment": "night"}}),
        )
        .await;
    ok(&night, 201);
    let mut ids = Vec::new();
    for name in ["one", "two", "three", "four", "five"] {
        let mut config = campaign("ws://127.0.0.1:9/agent");
        config["name"] = json!(name);
        config["audience"] = json!({"query": {"segment": "night"}});
        ids.push(
            ok(&api.post("/api/v1/campaigns", config).await, 201)["id"]
                .as_i64()
                .unwrap(),
        );
    }
    // Five starts at once: the limit is checked with the change, so exactly one wins.
    let paths: Vec<String> = ids
        .iter()
        .map(|id| format!("/api/v1/campaigns/{id}/start"))
        .collect();
    let answers = futures_util::future::join_all(paths.iter().map(|p| api.post_empty(p))).await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.status.as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}: {answers:#?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        4,
        "{statuses:?}"
    );
    for (id, answer) in ids.iter().zip(&answers) {
        let stored = ok(&api.get(&format!("/api/v1/campaigns/{id}")).await, 200)["status"].clone();
        if answer.status == 200 {
            assert_eq!(stored, "active");
            continue;
        }
        let detail = answer.body["detail"].as_str().unwrap();
        assert!(detail.contains("max_running_campaigns = 1"), "{detail}");
        assert_eq!(answer.body["limit"]["max_running_campaigns"], 1);
        assert_eq!(answer.body["limit"]["active"], 1);
        assert_eq!(
            stored, "draft",
            "a refused start leaves the draft as it was"
        );
    }
    stop_and_wait_for_actors(server).await;
    carrier.shutdown().await;
}

async fn a_running_campaign_paces_by_its_edited_limits(db: TestDb) {
    let _turn = RUNTIME_TURN.lock().await;
    let agent = ScriptedAgent::start(AgentConfig {
        greeting_delay_ms: 50,
        talk_ms: 60_000,
        ..AgentConfig::default()
    })
    .await
    .unwrap();
    let carrier = SimCarrier::start(answering_carrier(50)).await.unwrap();
    let mut settings = Settings::for_tests(db.url());
    settings.twilio_from = Some(CALLER_ID.to_owned());
    settings.twilio_api_base = carrier.base_url();
    let server = TestServer::start_with(settings).await;
    let api = Api::new_tenant(&server, "acme").await;
    let zone = zone_at_noon();
    for i in 0..6 {
        let created = api
            .post(
                "/api/v1/contacts",
                json!({"phone": format!("+29831{:04}", 4100 + i), "timezone": zone,
                       "attributes": {"segment": "spring"}}),
            )
            .await;
        ok(&created, 201);
    }
    let mut config = campaign(&agent.ws_url());
    config["max_concurrent_calls"] = json!(1);
    let id = api.start_new_campaign(config).await;
    wait_until("one call is live", Duration::from_secs(20), async || {
        carrier.stats().live() == 1
    })
    .await;
    // Several ticks later it is still one: the limit holds.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(carrier.stats().live(), 1);

    let edited = api
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/campaigns/{id}"),
            Some(json!({"max_concurrent_calls": 3})),
        )
        .await;
    assert_eq!(ok(&edited, 200)["config"]["max_concurrent_calls"], 3);
    wait_until(
        "the supervisor dials up to the edited limit",
        Duration::from_secs(20),
        async || carrier.stats().live() == 3,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(carrier.stats().live(), 3, "and not beyond it");
    let record = api.get(&format!("/api/v1/campaigns/{id}")).await;
    assert_eq!(ok(&record, 200)["status"], "active");
    ok(
        &api.post_empty(&format!("/api/v1/campaigns/{id}/stop"))
            .await,
        200,
    );
    carrier.shutdown().await;
    agent.shutdown().await;
    stop_and_wait_for_actors(server).await;
}

macro_rules! both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() { super::$case(switchboard_engine::store::testing::TestDb::sqlite().await).await }
        )* }
        mod postgres { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let Some(db) = switchboard_engine::store::testing::TestDb::postgres().await else { return };
                super::$case(db).await
            }
        )* }
    };
}

both_backends!(
    the_campaign_routes_drive_a_real_campaign,
    start_without_twilio_explains_the_missing_settings,
    a_running_campaign_paces_by_its_edited_limits,
    concurrent_starts_within_a_tenant_limit_of_one_let_exactly_one_through,
);
