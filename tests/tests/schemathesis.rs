//! The OpenAPI document is a contract, checked by a tool we did not write: Schemathesis
//! reads `/openapi.json` from the real server (a fresh SQLite database, the simulated
//! carrier on loopback) and runs every check it has on every operation: no server error,
//! only documented statuses, content types, headers and bodies, schema-valid requests
//! accepted and schema-invalid ones refused, authentication not ignored, undocumented
//! methods refused, and created objects readable and deleted ones gone.
//!
//! Schemathesis runs from the virtual environment `scripts/test` builds
//! (`SCHEMATHESIS_BIN`, else `target/venv-schemathesis`), with the settings of
//! `tests/schemathesis/schemathesis.toml`, a fixed seed and a bounded number of examples
//! per operation. Without it the test skips with a message, and fails under `CI=true`.

use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;
use switchboard_api::Settings;
use switchboard_engine::store::testing::TestDb;
use switchboard_loadtest::SimCarrier;
use switchboard_tests::api_client::Api;
use switchboard_tests::{TestServer, answering_carrier, seed_calls};

/// Examples per operation and phase: enough to reach each rule, few enough for the suite.
const MAX_EXAMPLES: &str = "10";
/// One seed, so that a failure reproduces (`SCHEMATHESIS_SEED` runs another).
const SEED: &str = "20261204";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// The `schemathesis` command of the virtual environment, or `None` (skip) when there is
/// none outside CI.
fn schemathesis() -> Option<PathBuf> {
    let candidates = std::env::var_os("SCHEMATHESIS_BIN")
        .map(PathBuf::from)
        .into_iter()
        .chain(
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .map(|t| t.join("venv-schemathesis/bin/schemathesis")),
        )
        .chain([workspace_root().join("target/venv-schemathesis/bin/schemathesis")]);
    let found = candidates.into_iter().find(|p| p.is_file());
    if found.is_none() {
        let why = "no Schemathesis: run scripts/test (it builds target/venv-schemathesis \
                   from tests/schemathesis/requirements.txt) or set SCHEMATHESIS_BIN";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        eprintln!("skipping the Schemathesis run: {why}");
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_the_server_true_to_its_openapi_document() {
    let Some(schemathesis) = schemathesis() else {
        return;
    };
    let db = TestDb::sqlite().await;
    let carrier = SimCarrier::start(answering_carrier(50)).await.unwrap();
    let mut settings = Settings::for_tests(db.url());
    settings.twilio_api_base = carrier.base_url();
    settings.twilio_from = Some(switchboard_tests::CALLER_ID.to_owned());
    // LiveKit "configured" at a closed loopback port: SIP campaigns may start (and fail
    // to dial) without anything leaving the machine.
    settings.livekit_url = Some("http://127.0.0.1:9".into());
    settings.livekit_api_key = Some("devkey".into());
    settings.livekit_api_secret = Some(secrecy::SecretString::from("devsecret".to_owned()));
    let server = TestServer::start_with(settings).await;
    let api = Api::new_tenant(&server, "acme").await;
    // The live view takes an operator key (every tenant) or a supervisor key; the
    // operator's routes only an operator key.
    let (_, operator_key) = switchboard_api::auth::create_operator_key(server.store(), "ops")
        .await
        .unwrap();

    // A few real objects, so that generated ids sometimes name one.
    api.post(
        "/api/v1/contacts",
        json!({"phone": "+14155550101", "name": "Ada"}),
    )
    .await
    .expect(201);
    api.post("/api/v1/lists", json!({"name": "vip"}))
        .await
        .expect(201);
    api.post(
        "/api/v1/campaigns",
        json!({"name": "Spring", "audience": {"query": {}}}),
    )
    .await
    .expect(201);
    let (_, attempts) = seed_calls(
        server.store(),
        "ws://127.0.0.1:9/agent",
        &[("+14155550102", json!({}))],
    )
    .await;
    let call_token = {
        use secrecy::ExposeSecret;
        let secret = server.state.calls.call_token_secret.expose_secret();
        switchboard_engine::call_token::issue(secret.as_bytes(), attempts[0].id)
    };

    let work = std::env::temp_dir().join(format!("schemathesis-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let config = workspace_root().join("tests/schemathesis/schemathesis.toml");
    let seed = std::env::var("SCHEMATHESIS_SEED").unwrap_or_else(|_| SEED.to_owned());
    let started = Instant::now();
    let mut command = std::process::Command::new(&schemathesis);
    command
        .arg("--no-color")
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(server.url("/openapi.json"))
        .args(["--checks", "all"])
        .args(["--max-examples", MAX_EXAMPLES])
        .args(["--seed", &seed])
        // One worker: Python 3.11's parser is not safe to call from two threads at once
        // (Hypothesis parses lambdas as it builds strategies).
        .args(["--workers", "1"])
        .args(["--request-timeout", "10"])
        .args(["--generation-database", "none"])
        .args(["--max-failures", "50"])
        .arg("--report-dir")
        .arg(work.join("report"))
        .current_dir(&work)
        .env("ST_TENANT_KEY", &api.key)
        .env("ST_ADMIN_KEY", &operator_key)
        .env("ST_OPERATOR_KEY", &operator_key)
        .env("ST_CALL_TOKEN", &call_token)
        .stdin(Stdio::null());
    // The server answers on this runtime's threads while the run blocks another.
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("schemathesis runs");
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let _ = std::fs::remove_dir_all(&work);
    assert!(
        output.status.success(),
        "schemathesis failed ({}, seed {seed}):\n{stdout}\n{stderr}",
        output.status
    );
    eprintln!("{stdout}\nschemathesis passed in {took:.0?} (seed {seed})");
    server.stop().await;
    carrier.shutdown().await;
}
