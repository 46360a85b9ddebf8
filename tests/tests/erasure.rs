//! Erasing a contact over real HTTP, with real campaigns run through the simulated carrier
//! and the scripted agent, on both backends: a callee who said do-not-call on a call is
//! erased; no table holds their number, name or email in clear afterwards; the campaign's
//! figures are unchanged; imported again, the number is never dialed by a new campaign;
//! the route refuses a missing reason (422), an unknown or erased contact (404) and a
//! contact with a call in progress (409).

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use switchboard_actors::Runtime;
use switchboard_actors::clock::ManualClock;
use switchboard_api::Settings;
use switchboard_engine::campaign::CampaignConfig;
use switchboard_engine::contact::NewContact;
use switchboard_engine::store::testing::TestDb;
use switchboard_engine::store::{ApiKeyScope, Store};
use switchboard_engine::webhook::NewWebhook;
use switchboard_engine::{CampaignId, E164, TenantId};
use switchboard_loadtest::{AgentConfig, ScriptedAgent, SimCarrier};
use switchboard_tests::api_client::Api;
use switchboard_tests::campaign_run::wait_until;
use switchboard_tests::{TestServer, answering_carrier, fast_runtime, reserve_for};

const SAYS_NO: &str = "+12125550401";
const SAYS_NO_DIGITS: &str = "2125550401";
const NAME: &str = "Zara Quillfeather";
const EMAIL: &str = "zara.q@example.com";
const SAYS_YES: &str = "+12125550402";
const NEWCOMER: &str = "+12125550403";

/// Monday 2026-11-23 15:00 UTC: 10:00 in New York.
fn monday_morning_in_new_york() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 15, 0, 0).unwrap()
}

fn contact(phone: &str, segment: &str, outcome: &str) -> NewContact {
    let mut c = NewContact::new(E164::parse(phone, None).unwrap());
    c.timezone = Some("America/New_York".into());
    c.attributes = json!({"segment": segment, "agent_outcome": outcome})
        .as_object()
        .unwrap()
        .clone();
    c
}

async fn campaign(store: &Store, tenant: TenantId, segment: &str, agent: &str) -> CampaignId {
    let config = CampaignConfig::from_json(json!({
        "name": format!("Campaign {segment}"),
        "audience": {"query": {"segment": segment}},
        "agent": {"mode": "media_stream", "url": agent},
        "script": {"template": "Hello {name|there}"},
        "max_concurrent_calls": 4,
        "max_calls_per_minute": null
    }))
    .unwrap();
    store.create_campaign(tenant, &config).await.unwrap().id
}

async fn erase(
    api: &Api,
    id: &Value,
    body: Option<Value>,
) -> switchboard_tests::api_client::Answer {
    let path = format!("/api/v1/contacts/{id}/erase");
    match body {
        Some(body) => api.post(&path, body).await,
        None => api.post_empty(&path).await,
    }
}

async fn an_erased_callee_stays_unreachable_and_untraceable(db: TestDb) {
    let mut settings = Settings::for_tests(db.url());
    settings.webhook_allow_private_addresses = true;
    let server = TestServer::start_with(settings).await;
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
    let api = Api::for_tenant(&store, &server.url(""), tenant, ApiKeyScope::Tenant).await;
    // Webhook payloads carry the number too (the receiver is down: they stay logged).
    store
        .create_webhook(
            tenant,
            &NewWebhook {
                url: "http://127.0.0.1:9/hooks".into(),
                events: vec!["call.completed".into(), "contact.opted_out".into()],
                description: String::new(),
            },
            "whsec_test",
        )
        .await
        .unwrap();
    let mut says_no = contact(SAYS_NO, "spring", "do_not_call");
    says_no.name = Some(NAME.into());
    says_no.email = Some(EMAIL.into());
    store
        .upsert_contacts(
            tenant,
            &[says_no, contact(SAYS_YES, "spring", "interested")],
        )
        .await
        .unwrap();

    // The spring campaign calls both; one callee says do-not-call.
    let clock = Arc::new(ManualClock::new(monday_morning_in_new_york()));
    let runtime = Runtime::start(fast_runtime(
        &store,
        server.dialer(&carrier.base_url()),
        clock,
    ))
    .await
    .unwrap();
    let spring = campaign(&store, tenant, "spring", &agent.ws_url()).await;
    runtime.start_campaign(tenant, spring).await.unwrap();
    wait_until(
        "both spring calls end with their outcomes",
        Duration::from_secs(40),
        async || {
            let stats = store.call_stats(tenant, spring).await.unwrap();
            let queue = store.queue_counts(spring).await.unwrap();
            stats.outcomes.values().sum::<u64>() == 2 && queue.in_progress == 0
        },
    )
    .await;
    let number = E164::parse(SAYS_NO, None).unwrap();
    assert!(store.suppression(tenant, &number).await.unwrap().is_some());
    assert!(
        !store
            .tables_containing_for_tests(SAYS_NO_DIGITS)
            .await
            .unwrap()
            .is_empty()
    );
    let figures = store.call_stats(tenant, spring).await.unwrap();
    let status_path = format!("/api/v1/campaigns/{spring}/status");
    let status_before = api.get(&status_path).await.expect(200).clone();
    let found = api.get("/api/v1/contacts?q=2125550401").await;
    let id = found.expect(200)["items"][0]["id"].clone();

    // The erasure needs a reason, and an id.
    let missing = erase(&api, &id, None).await;
    assert_eq!(missing.status, 422, "{:#}", missing.body);
    assert_eq!(missing.body["errors"][0]["field"], "reason");
    let not_an_id = api
        .post("/api/v1/contacts/zara/erase", json!({"reason": "asked"}))
        .await;
    assert_eq!(not_an_id.status, 400, "{:#}", not_an_id.body);
    let reason = "the callee asked to be forgotten";
    let erased = erase(&api, &id, Some(json!({"reason": reason}))).await;
    let erased = erased.expect(200);
    assert_eq!(erased["calls_anonymized"], 1);
    assert_eq!(erased["suppression_kept"], true);
    let again = erase(&api, &id, Some(json!({"reason": reason}))).await;
    assert_eq!(again.status, 404, "{:#}", again.body);
    assert_eq!(api.get(&format!("/api/v1/contacts/{id}")).await.status, 404);

    // No trace in clear, the same figures, and the erasure in the number's history.
    for needle in [SAYS_NO_DIGITS, NAME, "Quillfeather", EMAIL] {
        let tables = store.tables_containing_for_tests(needle).await.unwrap();
        assert!(tables.is_empty(), "{needle:?} is still in {tables:?}");
    }
    assert_eq!(store.call_stats(tenant, spring).await.unwrap(), figures);
    let status_after = api.get(&status_path).await.expect(200).clone();
    for key in ["calls", "progress"] {
        assert_eq!(status_after[key], status_before[key], "{key}");
    }
    let history = api.get("/api/v1/suppressions/%2B12125550401").await;
    let history = history.expect(200);
    assert_eq!(history["suppressed"], true);
    let last = history["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        (last["action"].as_str(), last["reason"].as_str()),
        (Some("erased"), Some(reason))
    );
    assert!(last["actor"].as_str().unwrap().starts_with("api key "));

    // Imported again with a newcomer, the number is never dialed by the autumn campaign.
    let csv = format!(
        "phone,name,timezone,segment\n{SAYS_NO},{NAME},America/New_York,autumn\n\
         {NEWCOMER},Newcomer,America/New_York,autumn\n"
    );
    let imported = api
        .post_text("/api/v1/contacts/import", "text/csv", &csv)
        .await;
    assert_eq!(imported.status, 200, "{:#}", imported.body);
    let autumn = campaign(&store, tenant, "autumn", &agent.ws_url()).await;
    runtime.start_campaign(tenant, autumn).await.unwrap();
    wait_until(
        "the autumn queue is done",
        Duration::from_secs(40),
        async || {
            let queue = store.queue_counts(autumn).await.unwrap();
            queue.done == 2 && queue.in_progress == 0
        },
    )
    .await;
    let calls_to = |phone: &str| carrier.calls().iter().filter(|c| c.to == phone).count();
    assert_eq!(calls_to(NEWCOMER), 1, "the campaign dials");
    assert_eq!(calls_to(SAYS_NO), 1, "only the spring call, never again");
    assert_eq!(store.call_stats(tenant, autumn).await.unwrap().attempts, 1);

    // A contact with a call in progress is not erased.
    let newcomer = E164::parse(NEWCOMER, None).unwrap();
    let live = reserve_for(&store, tenant, spring, &newcomer).await;
    let found = api.get("/api/v1/contacts?q=2125550403").await;
    let newcomer_id = found.expect(200)["items"][0]["id"].clone();
    let busy = erase(&api, &newcomer_id, Some(json!({"reason": reason}))).await;
    assert_eq!(busy.status, 409, "{:#}", busy.body);
    assert_eq!(
        store.contact(tenant, live.contact_id).await.unwrap().phone,
        newcomer
    );

    runtime.shutdown();
    carrier.shutdown().await;
    agent.shutdown().await;
    server.stop().await;
}

/// One test for both backends, one after the other: actor names (`campaign:1`) are global
/// to the process, so two runtimes must not run campaigns at once here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_callee_stays_unreachable_and_untraceable_on_sqlite_and_postgres() {
    an_erased_callee_stays_unreachable_and_untraceable(TestDb::sqlite().await).await;
    if let Some(db) = TestDb::postgres().await {
        an_erased_callee_stays_unreachable_and_untraceable(db).await;
    }
}
