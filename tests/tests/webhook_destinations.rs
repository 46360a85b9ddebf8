//! Webhook URLs must reach public addresses, on SQLite and PostgreSQL: registering one
//! that names or resolves to a loopback, private or link-local address is refused with a
//! 422 naming `url` and why; `webhook_allow_private_addresses` lets it through; and a
//! delivery whose URL reaches such an address anyway (stored before, or a name that now
//! resolves there) is not sent, but failed at once with the reason, with no retries.

use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use switchboard_api::Settings;
use switchboard_engine::campaign::{CampaignConfig, CampaignStatus, Cause};
use switchboard_engine::store::testing::TestDb;
use switchboard_engine::store::{DeliveryRecord, DeliveryStatus};
use switchboard_engine::webhook::NewWebhook;
use switchboard_tests::TestServer;
use switchboard_tests::api_client::Api;

/// A receiver on loopback that counts what reaches it.
async fn receiver() -> (String, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("127.0.0.1:{port}"), hits, task)
}

fn subscription(url: &str) -> Value {
    json!({"url": url, "events": ["campaign.status_changed"]})
}

async fn internal_urls_are_refused_at_registration_unless_allowed(db: TestDb) {
    let server = TestServer::start_with(Settings::for_tests(db.url())).await;
    let api = Api::new_tenant(&server, "acme").await;
    let (addr, _, task) = receiver().await;
    let port = addr.rsplit(':').next().unwrap().to_owned();
    for (url, says) in [
        (format!("http://{addr}/hooks"), "is a loopback address"),
        (format!("http://localhost:{port}/hooks"), "resolves to"),
        (
            "http://169.254.169.254/latest/meta-data/".into(),
            "link-local",
        ),
        ("http://10.1.2.3/hooks".into(), "a private address"),
        ("http://[fd00::1]/hooks".into(), "unique-local"),
        ("http://0.0.0.0/hooks".into(), "unspecified"),
        ("gopher://8.8.8.8/hooks".into(), "http:// or https://"),
    ] {
        let refused = api.post("/api/v1/webhooks", subscription(&url)).await;
        assert_eq!(refused.status, 422, "{url}: {:#}", refused.body);
        assert_eq!(refused.content_type, "application/problem+json");
        let errors = refused.body["errors"].as_array().unwrap();
        assert_eq!(errors[0]["field"], "url", "{url}: {:#}", refused.body);
        let message = errors[0]["message"].as_str().unwrap();
        assert!(message.contains(says), "{url}: {message}");
    }
    let loopback = api
        .post(
            "/api/v1/webhooks",
            subscription(&format!("http://{addr}/hooks")),
        )
        .await;
    assert!(
        loopback.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("webhook_allow_private_addresses"),
        "the refusal names the setting that allows it"
    );
    assert_eq!(api.get("/api/v1/webhooks").await.body["items"], json!([]));
    server.stop().await;

    let mut settings = Settings::for_tests(db.url());
    settings.webhook_allow_private_addresses = true;
    let server = TestServer::start_with(settings).await;
    let api = Api::new_tenant(&server, "on-premises").await;
    let created = api
        .post(
            "/api/v1/webhooks",
            subscription(&format!("http://{addr}/hooks")),
        )
        .await;
    assert_eq!(created.status, 201, "{:#}", created.body);
    server.stop().await;
    task.abort();
}

async fn wait_for_failure(server: &TestServer, api: &Api, webhook: i64) -> DeliveryRecord {
    let store = server.store();
    let id = switchboard_engine::WebhookId(webhook);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let deliveries = store.webhook_deliveries(api.tenant, id, 10).await.unwrap();
        if let Some(d) = deliveries.first()
            && d.status != DeliveryStatus::Pending
        {
            return d.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the delivery is decided: {deliveries:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_delivery_to_an_internal_address_fails_at_once_without_a_send(db: TestDb) {
    let mut settings = Settings::for_tests(db.url());
    settings.webhook_backoff_ms = 100;
    let server = TestServer::start_with(settings).await;
    let api = Api::new_tenant(&server, "acme").await;
    let store = server.store().clone();
    let (addr, hits, task) = receiver().await;
    let port = addr.rsplit(':').next().unwrap().to_owned();
    // Stored directly: as if registered while allowed, or while the name pointed elsewhere.
    let mut webhooks = Vec::new();
    for url in [
        format!("http://{addr}/hooks"),
        format!("http://localhost:{port}/hooks"),
    ] {
        let hook = NewWebhook {
            url,
            events: vec!["campaign.status_changed".into()],
            description: String::new(),
        };
        let record = store
            .create_webhook(api.tenant, &hook, "whsec_test")
            .await
            .unwrap();
        webhooks.push(record.id.0);
    }
    let config = CampaignConfig::from_json(json!({"name": "Spring", "audience": {"query": {}}}));
    let campaign = store
        .create_campaign(api.tenant, &config.unwrap())
        .await
        .unwrap();
    store
        .transition_campaign(
            api.tenant,
            campaign.id,
            CampaignStatus::Stopped,
            Cause::User,
            "never mind",
            None,
        )
        .await
        .unwrap();

    for (webhook, says) in webhooks
        .iter()
        .zip(["127.0.0.1 is", "localhost resolves to"])
    {
        let delivery = wait_for_failure(&server, &api, *webhook).await;
        assert_eq!(delivery.status, DeliveryStatus::Failed);
        assert_eq!(delivery.attempts, 1, "no retries: {delivery:?}");
        let error = delivery.last_error.clone().unwrap_or_default();
        assert!(
            error.starts_with("refused destination: ") && error.contains(says),
            "{error}"
        );
        assert!(error.contains("a loopback address"), "{error}");
        assert_eq!(delivery.log[0].status_code, None);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "nothing reached the receiver"
    );
    server.stop().await;
    task.abort();
}

macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case(switchboard_engine::store::testing::TestDb::sqlite().await).await;
            }
        )* }
        mod postgres { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(db) = switchboard_engine::store::testing::TestDb::postgres().await else { return };
                super::$case(db).await;
            }
        )* }
    };
}

on_both_backends!(
    internal_urls_are_refused_at_registration_unless_allowed,
    a_delivery_to_an_internal_address_fails_at_once_without_a_send,
);
