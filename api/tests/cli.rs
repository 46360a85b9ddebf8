//! The operator commands of the real `switchboard` binary against a real server:
//! `tenants create` prints a working key, `contacts import` prints the per-row report,
//! `campaigns create` reads TOML, `campaigns list|status|start|stop` talk to the API, and
//! refusals come back as the server's problem with exit status 1; `operators
//! create|list|revoke` make keys that reach the cross-tenant routes and nothing of a
//! tenant, and `tenants livekit` sets the trunks and agent names a tenant may name.

use std::process::{Command, Output};
use switchboard_api::{Application, Settings};
use switchboard_engine::store::testing::TestDb;

fn switchboard(db: &TestDb, url: &str, key: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    command
        .args(args)
        .env("SWITCHBOARD_DATABASE_URL", db.url())
        .env("SWITCHBOARD_URL", url)
        .env_remove("SWITCHBOARD_CONFIG")
        .env_remove("SWITCHBOARD_API_KEY");
    if let Some(key) = key {
        command.env("SWITCHBOARD_API_KEY", key);
    }
    command.output().unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn field<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .trim()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_imports_contacts_and_runs_a_campaign_from_the_command_line() {
    let db = TestDb::sqlite().await;
    let app = Application::build(&Settings::for_tests(db.url()))
        .await
        .unwrap();
    let url = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));
    let dir = std::env::temp_dir().join(format!("switchboard_cli_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let created = stdout(&switchboard(
        &db,
        &url,
        None,
        &["tenants", "create", "Acme Calls"],
    ));
    let key = field(&created, "api_key").to_owned();
    assert!(key.starts_with("sb_"));
    let listed = stdout(&switchboard(&db, &url, None, &["tenants", "list"]));
    assert!(listed.contains("Acme Calls"), "{listed}");

    let csv = dir.join("contacts.csv");
    std::fs::write(
        &csv,
        "phone,name,neighborhood\n+14155550101,Ada,mlaqa\nnot a phone,Bob,taadhi\n(415) 555-0103,Cy,taadhi\n",
    )
    .unwrap();
    let csv = csv.to_str().unwrap();

    // All or nothing (the default): the bad row is named and nothing is stored.
    let refused = switchboard(
        &db,
        &url,
        Some(&key),
        &["contacts", "import", csv, "--region", "US"],
    );
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("422") && stderr.contains("row 2 (line 3, column phone)"),
        "{stderr}"
    );

    let report = stdout(&switchboard(
        &db,
        &url,
        Some(&key),
        &[
            "contacts",
            "import",
            csv,
            "--region",
            "US",
            "--mode",
            "skip_bad_rows",
            "--list",
            "spring",
        ],
    ));
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(
        (report["inserted"].as_u64(), report["rejected"].as_u64()),
        (Some(2), Some(1)),
        "{report:#}"
    );
    assert_eq!(report["errors"][0]["row"], 2);
    assert_eq!(report["errors"][0]["line"], 3);
    assert_eq!(report["errors"][0]["column"], "phone");
    assert_eq!(report["list"]["contacts"], 2, "{report:#}");

    let toml = dir.join("campaign.toml");
    std::fs::write(
        &toml,
        r#"name = "Taadhi viewings"
objective = "bookings"
max_concurrent_calls = 3

[audience]
query = { neighborhood = "taadhi" }

[agent]
mode = "media_stream"
url = "wss://agent.example.com/stream"

[script]
template = "Hello {name|there}, about a viewing in Taadhi."
"#,
    )
    .unwrap();
    let campaign = stdout(&switchboard(
        &db,
        &url,
        Some(&key),
        &["campaigns", "create", toml.to_str().unwrap()],
    ));
    let campaign: serde_json::Value = serde_json::from_str(&campaign).unwrap();
    assert_eq!(campaign["status"], "draft");
    assert_eq!(campaign["config"]["max_concurrent_calls"], 3);
    let id = campaign["id"].to_string();

    let list = stdout(&switchboard(&db, &url, Some(&key), &["campaigns", "list"]));
    assert!(
        list.contains("Taadhi viewings") && list.contains("draft"),
        "{list}"
    );

    let status = stdout(&switchboard(
        &db,
        &url,
        Some(&key),
        &["campaigns", "status", &id],
    ));
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["campaign"]["status"], "draft");
    assert_eq!(status["calls"]["attempts"], 0);

    // No Twilio on this server: start says which settings are missing.
    let start = switchboard(&db, &url, Some(&key), &["campaigns", "start", &id]);
    assert!(!start.status.success());
    let stderr = String::from_utf8_lossy(&start.stderr);
    assert!(
        stderr.contains("503") && stderr.contains("twilio_from"),
        "{stderr}"
    );
    let stopped = stdout(&switchboard(
        &db,
        &url,
        Some(&key),
        &["campaigns", "stop", &id],
    ));
    assert!(stopped.contains("\"stopped\""), "{stopped}");

    // A wrong key is refused.
    let denied = switchboard(&db, &url, Some("sb_wrong"), &["campaigns", "list"]);
    assert!(String::from_utf8_lossy(&denied.stderr).contains("401"));

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The status of `GET path` with this bearer key.
async fn status_of(url: &str, path: &str, key: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{url}{path}"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_holds_its_own_keys_and_sets_what_livekit_a_tenant_may_use() {
    let db = TestDb::sqlite().await;
    let app = Application::build(&Settings::for_tests(db.url()))
        .await
        .unwrap();
    let url = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));

    let created = stdout(&switchboard(
        &db,
        &url,
        None,
        &["operators", "create", "Night shift"],
    ));
    let operator = field(&created, "operator_key").to_owned();
    let operator_id = field(&created, "operator_key_id").to_owned();
    assert!(operator.starts_with("sb_op_"), "{created}");
    let tenant = stdout(&switchboard(
        &db,
        &url,
        None,
        &["tenants", "create", "Acme"],
    ));
    let tenant_key = field(&tenant, "api_key").to_owned();
    let tenant_id = field(&tenant, "tenant_id").to_owned();
    // `--admin` is the supervisor scope's former name, still accepted.
    let supervisor = stdout(&switchboard(
        &db,
        &url,
        None,
        &["keys", "create", "--tenant", &tenant_id, "--admin"],
    ));
    let supervisor = field(&supervisor, "api_key").to_owned();

    // The engine view is the operator's alone; the operator reaches no tenant route.
    assert_eq!(status_of(&url, "/admin/engine", &operator).await, 200);
    assert_eq!(status_of(&url, "/admin/engine", &supervisor).await, 403);
    assert_eq!(status_of(&url, "/admin/engine", &tenant_key).await, 403);
    assert_eq!(status_of(&url, "/api/v1/campaigns", &operator).await, 403);
    assert_eq!(status_of(&url, "/api/v1/campaigns", &supervisor).await, 200);

    let listed = stdout(&switchboard(&db, &url, None, &["operators", "list"]));
    assert!(
        listed.contains("Night shift") && listed.contains("live"),
        "{listed}"
    );
    assert!(
        !listed.contains(&operator),
        "a list never shows a key: {listed}"
    );
    stdout(&switchboard(
        &db,
        &url,
        None,
        &["operators", "revoke", &operator_id],
    ));
    assert_eq!(status_of(&url, "/admin/engine", &operator).await, 401);
    let listed = stdout(&switchboard(&db, &url, None, &["operators", "list"]));
    assert!(listed.contains("revoked"), "{listed}");
    let again = switchboard(&db, &url, None, &["operators", "revoke", &operator_id]);
    assert!(!again.status.success(), "revoking twice is refused");

    // LiveKit: refused until the operator allows a trunk and an agent name.
    let dir = std::env::temp_dir().join(format!("switchboard_cli_lk_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let campaign = |trunk: &str| {
        let file = dir.join(format!("{trunk}.json"));
        let config = serde_json::json!({
            "name": format!("Through {trunk}"),
            "agent": {"mode": "sip", "agent_name": "sarah", "trunk_id": trunk}
        });
        std::fs::write(&file, config.to_string()).unwrap();
        file.to_str().unwrap().to_owned()
    };
    let refused = switchboard(
        &db,
        &url,
        Some(&tenant_key),
        &["campaigns", "create", &campaign("ST_1")],
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success()
            && stderr.contains("422")
            && stderr.contains("agent.trunk_id")
            && stderr.contains("switchboard tenants livekit"),
        "{stderr}"
    );
    let set = stdout(&switchboard(
        &db,
        &url,
        None,
        &[
            "tenants",
            "livekit",
            &tenant_id,
            "--trunk",
            "ST_1",
            "--agent-name",
            "sarah",
        ],
    ));
    assert!(
        set.contains("trunks: ST_1") && set.contains("agent_names: sarah"),
        "{set}"
    );
    let shown = stdout(&switchboard(
        &db,
        &url,
        None,
        &["tenants", "livekit", &tenant_id, "--show"],
    ));
    assert_eq!(shown, set);
    stdout(&switchboard(
        &db,
        &url,
        Some(&tenant_key),
        &["campaigns", "create", &campaign("ST_1")],
    ));
    let refused = switchboard(
        &db,
        &url,
        Some(&tenant_key),
        &["campaigns", "create", &campaign("ST_2")],
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("agent.trunk_id") && stderr.contains("`ST_2`") && stderr.contains("ST_1"),
        "{stderr}"
    );
    let unknown = switchboard(
        &db,
        &url,
        None,
        &["tenants", "livekit", "999", "--trunk", "ST_1"],
    );
    assert!(!unknown.status.success(), "an unknown tenant is refused");

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
