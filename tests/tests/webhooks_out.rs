//! Outbound webhooks from end to end, on SQLite and PostgreSQL: a tenant subscribes through
//! the API, campaign changes are delivered signed to a real receiver on loopback, a failing
//! receiver gets retries with growing backoff (each send logged and visible through the
//! API), a delivery pending when the server stops is delivered by the next server on the
//! same database, and calls placed by the runtime are announced once each, with the agent's
//! outcome.

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchboard_api::Settings;
use switchboard_engine::E164;
use switchboard_engine::campaign::{CampaignConfig, CampaignStatus, Cause};
use switchboard_engine::contact::NewContact;
use switchboard_engine::store::testing::TestDb;
use switchboard_engine::store::{ApiKeyScope, Store};
use switchboard_engine::{CampaignId, TenantId};
use switchboard_loadtest::{AgentConfig, ScriptedAgent, SimCarrier};
use switchboard_tests::{CALLER_ID, TestServer, answering_carrier};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Hit {
    at: Instant,
    signature: String,
    event: String,
    body: Vec<u8>,
    answered: u16,
}

/// A webhook receiver on a loopback port that answers 500 to its first `fail_first`
/// requests and 200 afterwards.
struct Receiver {
    url: String,
    hits: Arc<Mutex<Vec<Hit>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(fail_first: usize) -> Receiver {
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let seen = Arc::new(AtomicUsize::new(0));
        let record = hits.clone();
        let handler = move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let record = record.clone();
            let seen = seen.clone();
            async move {
                let n = seen.fetch_add(1, Ordering::SeqCst);
                let answered = if n < fail_first { 500 } else { 200 };
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                record.lock().unwrap().push(Hit {
                    at: Instant::now(),
                    signature: header("switchboard-signature"),
                    event: header("switchboard-event"),
                    body: body.to_vec(),
                    answered,
                });
                axum::http::StatusCode::from_u16(answered).unwrap()
            }
        };
        let app = axum::Router::new().route("/hooks", axum::routing::post(handler));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver { url, hits, task }
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    async fn wait_for(&self, what: &str, n: usize, timeout: Duration) -> Vec<Hit> {
        let deadline = Instant::now() + timeout;
        loop {
            let hits = self.hits();
            if hits.len() >= n {
                return hits;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {} requests so far",
                hits.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The signature checked as a receiver would: HMAC-SHA256 of `"<t>.<body>"` with the
/// secret, and a timestamp within a minute of now.
fn verify(secret: &str, hit: &Hit) {
    let (t, v1) = hit
        .signature
        .split_once(',')
        .and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v1=")?)))
        .unwrap_or_else(|| panic!("malformed signature header {:?}", hit.signature));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&hit.body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(v1, expected, "the signature verifies with the secret");
    let sent: i64 = t.parse().unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!(
        (now - sent).abs() <= 60,
        "the timestamp {sent} is fresh (now {now})"
    );
}

fn settings(db: &TestDb, backoff_ms: u64) -> Settings {
    let mut settings = Settings::for_tests(db.url());
    settings.webhook_backoff_ms = backoff_ms;
    settings.webhook_max_attempts = 6;
    settings.webhook_timeout_ms = 2000;
    // The receivers listen on loopback.
    settings.webhook_allow_private_addresses = true;
    settings
}

/// A tenant and its API key.
async fn tenant_with_key(store: &Store) -> (TenantId, String) {
    let tenant = store.create_tenant("acme").await.unwrap().id;
    let key = format!("sb_test_{}", tenant.0);
    let hash: String = Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    store
        .create_api_key(tenant, "ops", "sb_test", &hash, ApiKeyScope::Tenant)
        .await
        .unwrap();
    (tenant, key)
}

/// Subscribes through the API; returns the webhook's id and its secret.
async fn subscribe(server: &TestServer, key: &str, url: &str, events: &[&str]) -> (i64, String) {
    let response = reqwest::Client::new()
        .post(server.url("/api/v1/webhooks"))
        .bearer_auth(key)
        .json(&json!({"url": url, "events": events, "description": "crm"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{created}");
    (created["id"].as_i64().unwrap(), secret)
}

async fn deliveries(server: &TestServer, key: &str, webhook: i64) -> Vec<Value> {
    let answer: Value = reqwest::Client::new()
        .get(server.url(&format!("/api/v1/webhooks/{webhook}/deliveries")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["items"].as_array().unwrap().clone()
}

async fn campaign(store: &Store, tenant: TenantId) -> CampaignId {
    let config = CampaignConfig::from_json(json!({
        "name": "Spring",
        "audience": {"query": {}},
        "agent": {"mode": "media_stream", "url": "wss://agent.example.com/stream"},
        "script": {"template": "Hello"}
    }))
    .unwrap();
    store.create_campaign(tenant, &config).await.unwrap().id
}

async fn move_to(store: &Store, t: TenantId, c: CampaignId, to: CampaignStatus, cause: Cause) {
    let reason = if cause == Cause::Pacing {
        "quality"
    } else {
        "user"
    };
    store
        .transition_campaign(t, c, to, cause, reason, None)
        .await
        .unwrap();
}

async fn a_failing_receiver_gets_retries_with_growing_backoff_until_it_accepts(db: TestDb) {
    let backoff = Duration::from_millis(300);
    let server = TestServer::start_with(settings(&db, backoff.as_millis() as u64)).await;
    let store = server.store().clone();
    let receiver = Receiver::start(3).await;
    let (tenant, key) = tenant_with_key(&store).await;
    let (webhook, secret) =
        subscribe(&server, &key, &receiver.url, &["campaign.auto_paused"]).await;

    let c = campaign(&store, tenant).await;
    move_to(&store, tenant, c, CampaignStatus::Scheduled, Cause::User).await;
    move_to(&store, tenant, c, CampaignStatus::Active, Cause::User).await;
    move_to(&store, tenant, c, CampaignStatus::Paused, Cause::Pacing).await;

    let hits = receiver
        .wait_for("three failures and a success", 4, Duration::from_secs(20))
        .await;
    let answered: Vec<u16> = hits.iter().map(|h| h.answered).collect();
    assert_eq!(answered, [500, 500, 500, 200]);
    for hit in &hits {
        verify(&secret, hit);
        assert_eq!(hit.event, "campaign.auto_paused");
        assert_eq!(hit.body, hits[0].body, "every retry sends the same event");
    }
    let event: Value = serde_json::from_slice(&hits[0].body).unwrap();
    assert_eq!(event["type"], "campaign.auto_paused");
    assert_eq!(event["data"]["campaign_id"], json!(c));
    assert_eq!(event["data"]["cause"], "pacing");
    // Backoff: 300 ms, then 600, then 1200 (give or take the worker's poll).
    let gaps: Vec<Duration> = hits.windows(2).map(|w| w[1].at - w[0].at).collect();
    for (i, gap) in gaps.iter().enumerate() {
        // Less the first send's own time on the wire (its time is taken before sending).
        let floor = backoff * (1 << i) - Duration::from_millis(50);
        assert!(
            *gap >= floor,
            "retry {} came after {gap:?}, before its backoff {floor:?}",
            i + 1
        );
    }
    assert!(gaps[2] > gaps[0], "the backoff grows: {gaps:?}");

    // Every send is logged and visible through the API.
    let deadline = Instant::now() + Duration::from_secs(5);
    let delivery = loop {
        let list = deliveries(&server, &key, webhook).await;
        if list.len() == 1 && list[0]["status"] == "delivered" {
            break list[0].clone();
        }
        assert!(
            Instant::now() < deadline,
            "the delivery is recorded as delivered: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(delivery["attempts"], 4);
    let log = delivery["log"].as_array().unwrap();
    let codes: Vec<_> = log.iter().map(|a| a["status_code"].clone()).collect();
    assert_eq!(codes, [json!(500), json!(500), json!(500), json!(200)]);
    assert_eq!(log[0]["error"], "the receiver answered 500");
    assert_eq!(log[3]["error"], Value::Null);
    assert!(log.iter().all(|a| a["duration_ms"].as_i64().is_some()));
    server.stop().await;
}

async fn campaign_changes_are_delivered_only_to_the_tenant_that_subscribed(db: TestDb) {
    let server = TestServer::start_with(settings(&db, 200)).await;
    let store = server.store().clone();
    let receiver = Receiver::start(0).await;
    let (tenant, key) = tenant_with_key(&store).await;
    let (other, other_key) = tenant_with_key(&store).await;
    let events = ["campaign.status_changed", "campaign.auto_paused"];
    subscribe(&server, &key, &receiver.url, &events).await;

    let mine = campaign(&store, tenant).await;
    let theirs = campaign(&store, other).await;
    for (t, c) in [(tenant, mine), (other, theirs)] {
        move_to(&store, t, c, CampaignStatus::Scheduled, Cause::User).await;
        move_to(&store, t, c, CampaignStatus::Active, Cause::User).await;
        move_to(&store, t, c, CampaignStatus::Paused, Cause::User).await;
        move_to(&store, t, c, CampaignStatus::Active, Cause::User).await;
        move_to(&store, t, c, CampaignStatus::Paused, Cause::Pacing).await;
    }
    let hits = receiver
        .wait_for("six events", 6, Duration::from_secs(10))
        .await;
    let mut events: Vec<Value> = hits
        .iter()
        .map(|h| serde_json::from_slice(&h.body).unwrap())
        .collect();
    events.sort_by_key(|e| e["id"].as_i64());
    let seen: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            let to = e["data"]["to"].as_str().unwrap().to_owned();
            (e["type"].as_str().unwrap().to_owned(), to)
        })
        .collect();
    let expected = [
        ("campaign.status_changed", "scheduled"),
        ("campaign.status_changed", "active"),
        ("campaign.status_changed", "paused"),
        ("campaign.status_changed", "active"),
        ("campaign.status_changed", "paused"),
        ("campaign.auto_paused", "paused"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(seen, expected, "the user's pause is not an auto-pause");
    assert!(
        events
            .iter()
            .all(|e| e["data"]["campaign_id"] == json!(mine))
    );
    // Nothing more arrives: the other tenant has no subscription.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(receiver.hits().len(), 6);
    // And it cannot see or delete this tenant's webhook.
    let listed: Value = reqwest::Client::new()
        .get(server.url("/api/v1/webhooks"))
        .bearer_auth(&other_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"], json!([]));
    let unauthorized = reqwest::get(server.url("/api/v1/webhooks")).await.unwrap();
    assert_eq!(unauthorized.status(), 401);
    server.stop().await;
}

async fn a_delivery_pending_when_the_server_stops_is_delivered_after_the_restart(db: TestDb) {
    let first = TestServer::start_with(settings(&db, 1500)).await;
    let store = first.store().clone();
    let receiver = Receiver::start(1).await;
    let (tenant, key) = tenant_with_key(&store).await;
    let (webhook, secret) =
        subscribe(&first, &key, &receiver.url, &["campaign.status_changed"]).await;
    let c = campaign(&store, tenant).await;
    move_to(&store, tenant, c, CampaignStatus::Scheduled, Cause::User).await;
    receiver
        .wait_for("the first, failed send", 1, Duration::from_secs(10))
        .await;
    first.stop().await;
    assert_eq!(
        receiver.hits().len(),
        1,
        "nothing more while the server is down"
    );

    let second = TestServer::start_with(settings(&db, 1500)).await;
    let hits = receiver
        .wait_for("the retry after the restart", 2, Duration::from_secs(15))
        .await;
    assert_eq!(
        hits.iter().map(|h| h.answered).collect::<Vec<_>>(),
        [500, 200]
    );
    verify(&secret, &hits[1]);
    assert_eq!(hits[0].body, hits[1].body);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let list = deliveries(&second, &key, webhook).await;
        if list[0]["status"] == "delivered" {
            assert_eq!(list[0]["attempts"], 2);
            break;
        }
        assert!(Instant::now() < deadline, "recorded as delivered: {list:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    second.stop().await;
}

macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(switchboard_engine::store::testing::TestDb::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(db) = switchboard_engine::store::testing::TestDb::postgres().await else { return };
                    super::$case(db).await;
                }
            )*
        }
    };
}

on_both_backends!(
    a_failing_receiver_gets_retries_with_growing_backoff_until_it_accepts,
    campaign_changes_are_delivered_only_to_the_tenant_that_subscribed,
    a_delivery_pending_when_the_server_stops_is_delivered_after_the_restart,
);

/// A zone where it is about noon now, so the calling window is open whenever this runs.
fn midday_zone() -> String {
    use chrono::Timelike;
    match 12 - chrono::Utc::now().hour() as i32 {
        0 => "Etc/GMT".to_owned(),
        o if o > 0 => format!("Etc/GMT-{o}"),
        o => format!("Etc/GMT+{}", -o),
    }
}

/// The runtime's calls through the simulated carrier and the scripted agent (SQLite only:
/// actor names are global to a process, so one runtime per test binary).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_is_announced_once_with_its_outcome_and_an_opt_out_too() {
    let db = TestDb::sqlite().await;
    let agent = ScriptedAgent::start(AgentConfig {
        greeting_delay_ms: 50,
        talk_ms: 300,
        listen_ms: 100,
        ..AgentConfig::default()
    })
    .await
    .unwrap();
    let carrier = SimCarrier::start(answering_carrier(50)).await.unwrap();
    let mut settings = settings(&db, 200);
    settings.twilio_from = Some(CALLER_ID.to_owned());
    settings.twilio_api_base = carrier.base_url();
    let server = TestServer::start_with(settings).await;
    let runtime = server.state.runtime.clone().expect("Twilio is configured");
    let store = server.store().clone();
    let receiver = Receiver::start(0).await;
    let (tenant, key) = tenant_with_key(&store).await;
    let (_, secret) = subscribe(
        &server,
        &key,
        &receiver.url,
        &["call.completed", "contact.opted_out"],
    )
    .await;
    let zone = midday_zone();
    let contacts: Vec<NewContact> = ["+298316001", "+298316002"]
        .iter()
        .enumerate()
        .map(|(i, phone)| {
            let mut c = NewContact::new(E164::parse(phone, None).unwrap());
            c.timezone = Some(zone.clone());
            if i == 1 {
                let stop = json!({"agent_outcome": "do_not_call"});
                c.attributes = stop.as_object().unwrap().clone();
            }
            c
        })
        .collect();
    store.upsert_contacts(tenant, &contacts).await.unwrap();
    let days = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    let config = CampaignConfig::from_json(json!({
        "name": "Announced",
        "audience": {"query": {}},
        "agent": {"mode": "media_stream", "url": agent.ws_url()},
        "script": {"template": "Hello"},
        "schedule": {"days": days, "start": "09:00", "end": "17:00"},
        "max_calls_per_minute": null
    }))
    .unwrap();
    let campaign = store.create_campaign(tenant, &config).await.unwrap();
    runtime.start_campaign(tenant, campaign.id).await.unwrap();

    let hits = receiver
        .wait_for("two calls and an opt-out", 3, Duration::from_secs(40))
        .await;
    // The calls' actors have ended and the campaign completed: nothing more comes.
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.campaign(tenant, campaign.id).await.unwrap().status != CampaignStatus::Completed {
        assert!(Instant::now() < deadline, "the campaign completes");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        receiver.hits().len(),
        3,
        "one event per call and one opt-out"
    );
    let mut calls = Vec::new();
    let mut opt_outs = Vec::new();
    for hit in &hits {
        verify(&secret, hit);
        let event: Value = serde_json::from_slice(&hit.body).unwrap();
        match event["type"].as_str().unwrap() {
            "call.completed" => calls.push(event["data"].clone()),
            "contact.opted_out" => opt_outs.push(event["data"].clone()),
            other => panic!("unexpected event {other}"),
        }
    }
    calls.sort_by_key(|c| c["phone"].as_str().unwrap().to_owned());
    let seen: Vec<_> = calls
        .iter()
        .map(|c| {
            (
                c["phone"].clone(),
                c["result"].clone(),
                c["outcome"].clone(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (json!("+298316001"), json!("completed"), json!("interested")),
            (
                json!("+298316002"),
                json!("completed"),
                json!("do_not_call")
            ),
        ]
    );
    assert!(calls.iter().all(|c| c["campaign_id"] == json!(campaign.id)));
    assert_eq!(opt_outs.len(), 1);
    assert_eq!(opt_outs[0]["phone"], "+298316002");
    assert_eq!(opt_outs[0]["source"], "agent");
    assert_eq!(opt_outs[0]["call_id"], calls[1]["call_id"]);

    runtime.shutdown();
    carrier.shutdown().await;
    agent.shutdown().await;
    server.stop().await;
}
