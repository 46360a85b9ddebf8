//! The `switchboard` binary on a fresh machine: `switchboard serve` with no configuration
//! creates its SQLite database, answers `/healthz`, and stops cleanly on SIGTERM.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn serve_starts_on_sqlite_with_no_configuration_and_answers_healthz() {
    let dir = std::env::temp_dir().join(format!("switchboard_serve_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("serve")
        .current_dir(&dir)
        .env_remove("SWITCHBOARD_DATABASE_URL")
        .env_remove("SWITCHBOARD_CONFIG")
        .env("SWITCHBOARD_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let url = format!("http://127.0.0.1:{port}/healthz");
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        match reqwest::get(&url).await {
            Ok(resp) if resp.status().is_success() => break resp.text().await.unwrap(),
            _ if Instant::now() > deadline => {
                let _ = child.kill();
                panic!("switchboard serve did not answer {url} within 30 s");
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["status"],
        "ok"
    );
    let ready = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .unwrap();
    assert!(ready.status().is_success());
    assert!(
        dir.join("switchboard.db").exists(),
        "the default SQLite database is created on first start"
    );

    // SIGTERM: graceful shutdown, exit status 0.
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "switchboard exited with {status}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_setting_is_refused_with_its_name() {
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("migrate")
        .env("SWITCHBOARD_DATABASE_URL", "mysql://localhost/x")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unsupported scheme \"mysql\""), "{stderr}");
}
