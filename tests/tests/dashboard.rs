//! The dashboard in a real browser: headless Chromium loads `/` from a running server with
//! a campaign whose calls are live (the simulated carrier and a scripted agent that keeps
//! talking), signs in with the tenant's supervisor key passed in the URL fragment, and shows the
//! campaign's name, its status and its live calls. A screenshot is saved to
//! `target/dashboard.png`. Signed in with an operator key, it shows the running campaign
//! with its tenant and live calls.
//!
//! Without `chromium` on the PATH the test skips with a message, or fails under CI=true
//! (`scripts/test` installs it).

use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Command;
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

fn ok(answer: &Answer, status: u16) -> &Value {
    answer.expect(status)
}

fn chromium_present() -> bool {
    let found = Command::new("sh")
        .args(["-c", "command -v chromium"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "chromium is required under CI=true (apt-get install -y --no-install-recommends chromium)"
        );
        eprintln!("skipping the dashboard's browser test: chromium is not installed");
    }
    found
}

/// Runs headless Chromium on `url` with extra arguments (at most 90 s); returns stdout.
async fn chromium(url: String, extra: Vec<String>) -> String {
    tokio::task::spawn_blocking(move || {
        let output = Command::new("timeout")
            .args([
                "90",
                "chromium",
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
            ])
            .args(["--no-first-run", "--disable-dev-shm-usage"])
            // Virtual time stands still while requests are pending and the page opens its
            // event stream (a request that never ends) 1 s after its first views: the
            // budget ends before, once every view is drawn.
            .arg("--virtual-time-budget=600")
            .args(&extra)
            .arg(&url)
            .output()
            .expect("chromium runs");
        assert!(
            output.status.success(),
            "chromium failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dashboard_shows_a_campaign_and_its_live_calls_in_a_browser() {
    if !chromium_present() {
        return;
    }
    let db = TestDb::sqlite().await;
    let agent = ScriptedAgent::start(AgentConfig {
        greeting_delay_ms: 50,
        talk_ms: 120_000,
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
    let admin = Api::new_tenant_with_scope(&server, "acme", ApiKeyScope::Supervisor).await;

    for i in 0..3 {
        let contact = json!({"phone": format!("+29831{:04}", 7000 + i), "timezone": zone_at_noon(),
                             "name": format!("Caller {i}"), "attributes": {"segment": "demo"}});
        ok(&admin.post("/api/v1/contacts", contact).await, 201);
    }
    let config = json!({
        "name": "Autumn check-ins",
        "objective": "appointment_confirmation",
        "audience": {"query": {"segment": "demo"}},
        "agent": {"mode": "media_stream", "url": agent.ws_url()},
        "script": {"template": "Hello {name|there}."},
        "schedule": {"days": ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"], "start": "09:00", "end": "17:00"},
        "success": {"outcomes": ["interested"]},
        "max_concurrent_calls": 2,
        "max_calls_per_minute": null
    });
    let id = admin.start_new_campaign(config).await;
    let mut attempts = Vec::new();
    wait_until(
        "two calls are bridged",
        Duration::from_secs(20),
        async || {
            let calls = ok(&admin.get("/admin/calls").await, 200)["items"].clone();
            let calls = calls.as_array().unwrap();
            attempts = calls
                .iter()
                .map(|c| c["attempt_id"].as_i64().unwrap())
                .collect();
            calls.len() == 2 && calls.iter().all(|c| c["state"] == "bridged")
        },
    )
    .await;

    let url = server.url(&format!("/#key={}&campaign={id}", admin.key));
    let dom = chromium(url.clone(), vec!["--dump-dom".into()]).await;
    assert!(
        dom.contains("Autumn check-ins"),
        "the campaign's name: {dom}"
    );
    assert!(
        dom.contains(r#"<span class="badge s-active">active</span>"#),
        "the campaign's status: {dom}"
    );
    assert!(dom.contains(r#"id="live-calls""#), "the live calls: {dom}");
    for attempt in &attempts {
        assert!(
            dom.contains(&format!(r#"data-attempt="{attempt}""#)),
            "live call {attempt}: {dom}"
        );
    }
    assert!(
        dom.contains(r#"<span class="badge s-bridged">bridged</span>"#),
        "{dom}"
    );
    assert!(dom.contains(r#"id="history""#), "the call history: {dom}");
    assert!(dom.contains("Answer rate"), "the charts: {dom}");

    let shot = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/dashboard.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        url,
        vec![
            format!("--screenshot={}", shot.display()),
            "--window-size=1280,900".into(),
            "--hide-scrollbars".into(),
        ],
    )
    .await;
    let written = std::fs::metadata(&shot).expect("the screenshot is written");
    assert!(written.len() > 10_000, "a blank screenshot: {written:?}");

    // An operator key, which belongs to no tenant, sees the running campaign and its
    // live calls with the tenant they belong to.
    let (_, operator) = switchboard_api::auth::create_operator_key(server.store(), "ops")
        .await
        .unwrap();
    let url = server.url(&format!("/#key={operator}&campaign={id}"));
    let dom = chromium(url, vec!["--dump-dom".into()]).await;
    assert!(dom.contains("operator key (every tenant)"), "{dom}");
    assert!(
        dom.contains(&format!("#{id} · tenant {}", admin.tenant)),
        "the campaign and its tenant: {dom}"
    );
    assert!(dom.contains(r#"id="live-calls""#), "the live calls: {dom}");
    for attempt in &attempts {
        assert!(
            dom.contains(&format!(r#"data-attempt="{attempt}""#)),
            "live call {attempt}: {dom}"
        );
    }

    ok(
        &admin
            .post_empty(&format!("/api/v1/campaigns/{id}/stop"))
            .await,
        200,
    );
    server.stop().await;
    carrier.shutdown().await;
    agent.shutdown().await;
}
