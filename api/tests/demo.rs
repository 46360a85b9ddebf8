//! `switchboard demo` for real: the built binary, on a port of its own and a temporary
//! database, prints the dashboard URL with its key, its campaign runs and calls are placed
//! and end with an agent's outcome, the dashboard answers, and SIGTERM stops it cleanly
//! and removes the temporary database. Production settings around it (a configuration
//! file, `SWITCHBOARD_*` variables) are not read.
#![cfg(feature = "demo")]

use serde_json::Value;
use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The demo's process, killed if the test ends before it does.
struct Demo {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Demo {
    fn start(dir: &Path) -> Demo {
        std::fs::write(
            dir.join("switchboard.toml"),
            "listen = \"not an address\"\n",
        )
        .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["demo", "--listen", "127.0.0.1:0"])
            .current_dir(dir)
            // A production database and settings that the demo must leave alone.
            .env(
                "SWITCHBOARD_DATABASE_URL",
                "postgres://postgres@127.0.0.1:1/production",
            )
            .env("SWITCHBOARD_TWILIO_API_BASE", "http://127.0.0.1:1")
            .env_remove("SWITCHBOARD_CONFIG")
            .env_remove("RUST_LOG")
            // The temporary database goes here, where the test can see it go.
            .env("TMPDIR", dir)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Demo {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The next line of stdout that passes `wanted`, within `timeout`.
    fn line(&mut self, timeout: Duration, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(e) => panic!(
                    "no such line within {timeout:?} ({e}); stdout so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }
}

/// `(base url, key, campaign id)` from the banner's dashboard line.
fn parse_dashboard(line: &str) -> (String, String, i64) {
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"));
    let (base, fragment) = url.split_once("/#").unwrap();
    let mut key = None;
    let mut campaign = None;
    for pair in fragment.split('&') {
        match pair.split_once('=') {
            Some(("key", v)) => key = Some(v.to_owned()),
            Some(("campaign", v)) => campaign = v.parse().ok(),
            _ => {}
        }
    }
    (
        base.to_owned(),
        key.expect("a key in the dashboard URL"),
        campaign.expect("a campaign in the dashboard URL"),
    )
}

#[tokio::test]
async fn the_demo_runs_a_campaign_through_its_own_simulators_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut demo = Demo::start(dir.path());
    let dashboard = demo.line(Duration::from_secs(30), |l| l.contains("/#key="));
    let (base, key, campaign) = parse_dashboard(&dashboard);
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    assert!(key.starts_with("sb_"), "{key}");
    let demo_dirs = || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("switchboard-demo-")
            })
            .count()
    };
    assert_eq!(demo_dirs(), 1, "the database is in a temporary directory");

    // Calls are placed, answered, bridged to the agent and end with its outcome.
    let http = reqwest::Client::new();
    let status_url = format!("{base}/api/v1/campaigns/{campaign}/status");
    let deadline = Instant::now() + Duration::from_secs(25);
    let status = loop {
        let status: Value = http
            .get(&status_url)
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(status["campaign"]["status"], "active", "{status}");
        let calls = &status["calls"];
        let outcomes: u64 = calls["outcomes"]
            .as_object()
            .map_or(0, |o| o.values().filter_map(Value::as_u64).sum());
        if calls["ended"].as_u64() >= Some(1)
            && calls["connected"].as_u64() >= Some(1)
            && outcomes >= 1
        {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "no call ended with an agent's outcome within 25 s: {status}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        status["progress"]["total"].as_u64() >= Some(20),
        "the campaign has its contacts: {status}"
    );
    demo.line(Duration::from_secs(10), |l| l.contains("contacts done"));

    // The dashboard page, and the live view its supervisor key opens.
    let page = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Switchboard"));
    let live = http
        .get(format!("{base}/admin/campaigns"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200, "a supervisor key");

    // SIGTERM: a graceful stop, exit status 0, the temporary database gone.
    let pid = demo.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = demo.child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "the demo did not stop within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let stderr = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
    assert!(
        exit.success(),
        "the demo exited with {exit}; stderr:\n{stderr}"
    );
    demo.line(Duration::from_secs(5), |l| l == "demo stopped");
    assert_eq!(demo_dirs(), 0, "the temporary database is removed");
}
