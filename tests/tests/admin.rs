//! The admin live view over real HTTP, with the real runtime dialing through the simulated
//! carrier to a scripted agent that keeps talking, for two tenants at once: the running
//! campaigns and their live calls with their states, one call's detail, the event stream,
//! a hang-up that reaches the carrier, a pause, and who sees what: an operator key every
//! tenant, a tenant's supervisor key only its own tenant (another tenant's call is a 404,
//! its calls absent from lists and streams), a plain tenant key nothing (403).

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use switchboard_api::Settings;
use switchboard_engine::store::ApiKeyScope;
use switchboard_engine::store::testing::TestDb;
use switchboard_loadtest::{AgentConfig, ScriptedAgent, SimCarrier};
use switchboard_tests::api_client::{Answer, Api, zone_at_noon};
use switchboard_tests::{CALLER_ID, TestServer, answering_carrier};

async fn wait_until(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Actors are registered by name per process and every test database numbers campaigns
/// from 1: the tests that run the runtime take turns.
static RUNTIME_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn ok(answer: &Answer, status: u16) -> &Value {
    answer.expect(status)
}

/// Opens an event stream (the key in the query, as a browser's EventSource sends it, or
/// as a bearer header).
async fn open_stream(server: &TestServer, key: &str, in_query: bool) -> reqwest::Response {
    let client = reqwest::Client::new();
    let response = if in_query {
        client.get(server.url(&format!("/admin/events?key={key}")))
    } else {
        client.get(server.url("/admin/events")).bearer_auth(key)
    }
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    response
}

/// Reads an event stream until every one of `wanted` has been read; returns the text.
async fn read_until(response: &mut reqwest::Response, wanted: &[String]) -> String {
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !wanted.iter().all(|w| text.contains(w.as_str())) {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("{wanted:?} within 20 s; read: {text}"))
            .unwrap()
            .expect("the stream stays open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text
}

/// The `data:` lines of the `call` events in a stream's text, in order.
fn call_events(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line == "event: call" {
            out.extend(lines.next().map(str::to_owned));
        }
    }
    out
}

async fn an_administrator_watches_and_handles_live_calls(db: TestDb) {
    let _turn = RUNTIME_TURN.lock().await;
    let agent = ScriptedAgent::start(AgentConfig {
        greeting_delay_ms: 50,
        talk_ms: 60_000,
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
    let tenant = Api::new_tenant(&server, "acme").await;
    let supervisor = Api::for_tenant(
        server.store(),
        &server.url(""),
        tenant.tenant,
        ApiKeyScope::Supervisor,
    )
    .await;
    let (_, operator_key) = switchboard_api::auth::create_operator_key(server.store(), "ops")
        .await
        .unwrap();
    let operator = tenant.with_key(Some(&operator_key));
    let beta = Api::new_tenant(&server, "beta").await;

    let zone = zone_at_noon();
    for i in 0..2 {
        let contact = json!({"phone": format!("+29831{:04}", 6000 + i), "timezone": zone,
                             "attributes": {"segment": "live"}});
        ok(&tenant.post("/api/v1/contacts", contact).await, 201);
    }
    let contact =
        json!({"phone": "+298317000", "timezone": zone, "attributes": {"segment": "live"}});
    ok(&beta.post("/api/v1/contacts", contact).await, 201);
    let config = |name: &str| {
        json!({
            "name": name,
            "objective": "renewals",
            "audience": {"query": {"segment": "live"}},
            "agent": {"mode": "media_stream", "url": agent.ws_url()},
            "script": {"template": "Hello {name|there}."},
            "schedule": {"days": ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"], "start": "09:00", "end": "17:00"},
            "success": {"outcomes": ["interested"]},
            "max_concurrent_calls": 2,
            "max_calls_per_minute": null
        })
    };
    let id = tenant.start_new_campaign(config("Live view")).await;
    let beta_id = beta.start_new_campaign(config("Beta's")).await;

    // Every call is bridged to the agent, which keeps talking: the operator sees all three.
    let mut everything = Vec::new();
    wait_until(
        "every call is bridged",
        Duration::from_secs(20),
        async || {
            everything = ok(&operator.get("/admin/calls").await, 200)["items"]
                .as_array()
                .unwrap()
                .clone();
            everything.len() == 3 && everything.iter().all(|c| c["state"] == "bridged")
        },
    )
    .await;
    let (calls, beta_calls): (Vec<Value>, Vec<Value>) =
        everything.into_iter().partition(|c| c["campaign_id"] == id);
    assert_eq!((calls.len(), beta_calls.len()), (2, 1));
    assert_eq!(beta_calls[0]["campaign_id"], beta_id);
    assert_eq!(beta_calls[0]["tenant_id"], beta.tenant.get());
    let beta_attempt = beta_calls[0]["attempt_id"].as_i64().unwrap();
    for call in &calls {
        assert_eq!(call["campaign_id"], id);
        assert!(call["carrier_call_id"].as_str().unwrap().starts_with("CA"));
        assert!(call["secs_since_start"].as_f64().unwrap() >= 0.0);
        assert!(call["answered_at"].is_string(), "{call:#}");
        assert!(call["relay"]["bridged_at"].is_string(), "{call:#}");
    }

    // The tenant's supervisor sees its own calls and campaign only; another tenant's call
    // or campaign does not exist for it.
    let own = ok(&supervisor.get("/admin/calls").await, 200)["items"].clone();
    let mut own_ids: Vec<i64> = own
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["attempt_id"].as_i64().unwrap())
        .collect();
    own_ids.sort();
    let mut acme_ids: Vec<i64> = calls
        .iter()
        .map(|c| c["attempt_id"].as_i64().unwrap())
        .collect();
    acme_ids.sort();
    assert_eq!(own_ids, acme_ids, "{own:#}");
    let own_campaigns = ok(&supervisor.get("/admin/campaigns").await, 200)["items"].clone();
    assert_eq!(
        own_campaigns.as_array().unwrap().len(),
        1,
        "{own_campaigns:#}"
    );
    assert_eq!(own_campaigns[0]["campaign_id"], id);
    for answer in [
        supervisor
            .get(&format!("/admin/calls/{beta_attempt}"))
            .await,
        supervisor
            .post_empty(&format!("/admin/calls/{beta_attempt}/hangup"))
            .await,
        supervisor
            .post_empty(&format!("/admin/campaigns/{beta_id}/pause"))
            .await,
    ] {
        assert_eq!(answer.status, 404, "{:#}", answer.body);
    }
    let unknown = supervisor.get("/admin/calls/999999").await;
    assert_eq!(
        (unknown.status, unknown.body["title"].clone()),
        (
            reqwest::StatusCode::NOT_FOUND,
            supervisor
                .get(&format!("/admin/calls/{beta_attempt}"))
                .await
                .body["title"]
                .clone()
        ),
        "another tenant's call reads exactly like no call"
    );
    assert_eq!(
        ok(
            &operator.get(&format!("/admin/calls/{beta_attempt}")).await,
            200
        )["attempt"]["id"],
        beta_attempt
    );
    let engine_refused = supervisor.get("/admin/engine").await;
    assert_eq!(engine_refused.status, 403, "{:#}", engine_refused.body);

    // The running campaigns with their pacing figures.
    let campaigns = ok(&operator.get("/admin/campaigns").await, 200)["items"].clone();
    assert_eq!(campaigns.as_array().unwrap().len(), 2, "{campaigns:#}");
    assert_eq!(campaigns[1]["campaign_id"], beta_id);
    assert_eq!(campaigns[0]["campaign_id"], id);
    assert_eq!(campaigns[0]["name"], "Live view");
    assert_eq!(campaigns[0]["status"], "active");
    assert_eq!(campaigns[0]["live_calls"], 2);
    assert!(campaigns[0]["pacing"].is_object(), "{campaigns:#}");

    // The campaign over time, for the dashboard's charts.
    let series = ok(
        &tenant
            .get(&format!(
                "/api/v1/campaigns/{id}/timeseries?bucket_secs=3600"
            ))
            .await,
        200,
    )
    .clone();
    assert_eq!(series["items"][0]["dialed"], 2, "{series:#}");
    assert_eq!(series["items"][0]["answered"], 2, "{series:#}");
    assert_eq!(series["items"][0]["connected"], 2, "{series:#}");
    let bad = tenant
        .get(&format!("/api/v1/campaigns/{id}/timeseries?bucket_secs=0"))
        .await;
    assert!(bad.status.is_client_error(), "{:#}", bad.body);
    assert!(
        bad.body.to_string().contains("bucket_secs"),
        "{:#}",
        bad.body
    );

    // One call: its attempt, live snapshot and stored events.
    let attempt = calls[0]["attempt_id"].as_i64().unwrap();
    let detail = ok(
        &supervisor.get(&format!("/admin/calls/{attempt}")).await,
        200,
    )
    .clone();
    assert_eq!(detail["attempt"]["id"], attempt);
    assert_eq!(detail["live"]["state"], "bridged");
    assert!(
        detail["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "agent.bridged"),
        "{detail:#}"
    );

    // Two event stream clients share one producer and read the same changes.
    let started_of = |ids: &[i64]| -> Vec<String> {
        ids.iter()
            .map(|a| format!("{{\"attempt_id\":{a},"))
            .collect()
    };
    let started = started_of(&acme_ids);
    let all_started = started_of(&[acme_ids.clone(), vec![beta_attempt]].concat());
    let mut browser = open_stream(&server, &operator.key, true).await;
    let first = read_until(&mut browser, &all_started).await;
    let mut script = open_stream(&server, &operator.key, false).await;
    let second = read_until(&mut script, &all_started).await;
    assert_eq!(
        server.state.events.producer_starts(),
        1,
        "the second client joins the running producer"
    );
    assert_eq!(server.state.events.subscribers(), 2);
    for text in [&first, &second] {
        assert!(text.contains("event: campaign"), "{text}");
        assert!(text.contains("\"change\":\"started\""), "{text}");
    }
    let mut first_calls = call_events(&first);
    let mut second_calls = call_events(&second);
    first_calls.sort();
    second_calls.sort();
    assert_eq!(first_calls, second_calls, "the same live calls");
    // The supervisor's stream, on the same route, carries its own tenant's calls only.
    let mut watched = open_stream(&server, &supervisor.key, true).await;
    let mut text = read_until(&mut watched, &started).await;
    let until = Instant::now() + Duration::from_millis(500);
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(until.into(), watched.chunk()).await {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        !text.contains(&format!("\"attempt_id\":{beta_attempt},"))
            && !text.contains(&format!("\"campaign_id\":{beta_id},")),
        "another tenant's changes: {text}"
    );
    drop((browser, script, watched));
    wait_until("the producer idles", Duration::from_secs(30), async || {
        !server.state.events.producing()
    })
    .await;

    // A tenant's stream carries its own campaign's calls; another tenant's carries none.
    let tenant_stream = |key: &str| {
        reqwest::Client::new()
            .get(server.url(&format!("/api/v1/events?key={key}")))
            .send()
    };
    let mut own = tenant_stream(&tenant.key).await.unwrap();
    assert_eq!(own.status(), 200);
    read_until(&mut own, &started).await;
    let stranger = Api::new_tenant(&server, "stranger").await;
    let mut foreign = tenant_stream(&stranger.key).await.unwrap();
    let mut seen = String::new();
    let until = Instant::now() + Duration::from_millis(1500);
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(until.into(), foreign.chunk()).await {
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(!seen.contains("event:"), "another tenant's changes: {seen}");
    drop((own, foreign));

    // A plain tenant key sees none of it.
    for path in [
        "/admin/calls",
        "/admin/campaigns",
        "/admin/events",
        "/admin/engine",
    ] {
        let refused = tenant.get(path).await;
        assert_eq!(refused.status, 403, "{path}: {:#}", refused.body);
    }
    let refused = reqwest::get(server.url(&format!("/admin/events?key={}", tenant.key)))
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let refused = reqwest::get(server.url(&format!("/api/v1/events?key={operator_key}")))
        .await
        .unwrap();
    assert_eq!(
        refused.status(),
        403,
        "an operator key belongs to no tenant"
    );
    assert_eq!(
        tenant
            .post_empty(&format!("/admin/calls/{attempt}/hangup"))
            .await
            .status,
        403
    );

    // The supervisor's hang-up reaches the carrier, and the call ends.
    let sid = calls[0]["carrier_call_id"].as_str().unwrap().to_owned();
    let hung = supervisor
        .post_empty(&format!("/admin/calls/{attempt}/hangup"))
        .await;
    assert_eq!(ok(&hung, 202)["carrier_call_id"], sid);
    wait_until(
        "the carrier ends the call",
        Duration::from_secs(10),
        async || carrier.call(&sid).is_some_and(|c| c.ended_at.is_some()),
    )
    .await;
    wait_until("the attempt is over", Duration::from_secs(10), async || {
        ok(
            &supervisor.get(&format!("/admin/calls/{attempt}")).await,
            200,
        )["attempt"]["status"]
            == "ended"
    })
    .await;
    let again = supervisor
        .post_empty(&format!("/admin/calls/{attempt}/hangup"))
        .await;
    assert_eq!(again.status, 409, "{:#}", again.body);

    // The operator hangs up another tenant's call, and pauses the first tenant's campaign.
    let beta_sid = beta_calls[0]["carrier_call_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let hung = operator
        .post_empty(&format!("/admin/calls/{beta_attempt}/hangup"))
        .await;
    assert_eq!(ok(&hung, 202)["carrier_call_id"], beta_sid);
    let paused = operator
        .post_empty(&format!("/admin/campaigns/{id}/pause"))
        .await;
    assert_eq!(ok(&paused, 200)["status"], "paused");
    assert_eq!(
        ok(&tenant.get(&format!("/api/v1/campaigns/{id}")).await, 200)["status"],
        "paused"
    );

    // The calls' writes (the runtime's and the carrier callbacks') went through the event
    // writer, which the engine view shows.
    let engine = ok(&operator.get("/admin/engine").await, 200).clone();
    let writer = &engine["writer"];
    assert_eq!(
        (&writer["name"], &writer["running"]),
        (&json!("event-writer"), &json!(true))
    );
    let writes = writer["writes"].as_u64().unwrap_or_default();
    assert!(writes >= 10, "{engine:#}");
    assert!(writer["batches"].as_u64().unwrap_or(u64::MAX) <= writes);
    ok(
        &tenant
            .post_empty(&format!("/api/v1/campaigns/{id}/stop"))
            .await,
        200,
    );
    // A stream still open does not hold the server's shutdown: it is ended.
    let mut open = open_stream(&server, &operator.key, true).await;
    tokio::time::timeout(Duration::from_secs(20), server.stop())
        .await
        .expect("the server stops with an event stream open");
    let rest = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = open.chunk().await {}
    })
    .await;
    assert!(rest.is_ok(), "the stream ended with the server");
    wait_until(
        "the runtime's actors are gone",
        Duration::from_secs(20),
        async || ractor::registry::registered().is_empty(),
    )
    .await;
    carrier.shutdown().await;
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_an_administrator_watches_and_handles_live_calls() {
    an_administrator_watches_and_handles_live_calls(TestDb::sqlite().await).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_an_administrator_watches_and_handles_live_calls() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    an_administrator_watches_and_handles_live_calls(db).await
}

/// Reads the stream until it ends (within 15 s: it checks its key every 5 s); the text.
async fn read_to_end(mut stream: reqwest::Response) -> String {
    let mut text = String::new();
    let ended = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(chunk) = stream.chunk().await.unwrap() {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream outlived its key: {text}");
    text
}

#[tokio::test]
async fn an_event_stream_ends_once_its_key_is_revoked() {
    let db = TestDb::sqlite().await;
    let server = TestServer::start(&db).await;
    let tenant = Api::new_tenant(&server, "revoked").await;
    let (operator, operator_key) =
        switchboard_api::auth::create_operator_key(server.store(), "ops")
            .await
            .unwrap();
    let open = |path: String| reqwest::Client::new().get(server.url(&path)).send();
    let stream = open(format!("/api/v1/events?key={}", tenant.key))
        .await
        .unwrap();
    let watched = open(format!("/admin/events?key={operator_key}"))
        .await
        .unwrap();
    assert_eq!(
        (stream.status().as_u16(), watched.status().as_u16()),
        (200, 200)
    );
    let keys = server.store().list_api_keys(tenant.tenant).await.unwrap();
    server
        .store()
        .revoke_api_key(tenant.tenant, keys[0].id)
        .await
        .unwrap();
    server
        .store()
        .revoke_operator_key(operator.id)
        .await
        .unwrap();
    let (tenant_text, operator_text) = tokio::join!(read_to_end(stream), read_to_end(watched));
    assert!(tenant_text.contains("event: revoked"), "{tenant_text}");
    assert!(operator_text.contains("event: revoked"), "{operator_text}");
    server.stop().await;
}
