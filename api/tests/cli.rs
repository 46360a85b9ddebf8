//! The operator commands of the real `switchboard` binary against a real server:
//! `tenants create` prints a working key, `contacts import` prints the per-row report,
//! `campaigns create` reads TOML, `campaigns list|status|start|stop` talk to the API, and
//! refusals come back as the server's problem with exit status 1.

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
