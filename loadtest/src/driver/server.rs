//! Switchboard driven from outside: the `switchboard` binary started as its own process
//! (or one already running), and the HTTP API of the contract.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::driver::DriverError;

/// Caller id of the load test's calls.
pub const CALLER_ID: &str = "+14155550100";

/// What the spawned server is told about the carrier.
#[derive(Debug, Clone)]
pub struct CarrierAccess {
    /// The simulated carrier's base URL.
    pub api_base: String,
    /// Account SID.
    pub account_sid: String,
    /// Auth token.
    pub auth_token: String,
    /// The account's calls per second, which Switchboard is told to keep to (`None`:
    /// unlimited).
    pub cps: Option<f64>,
}

/// A `switchboard serve` process started by the driver; killed when dropped.
#[derive(Debug)]
pub struct SpawnedServer {
    child: Child,
    binary: PathBuf,
    env: Vec<(String, String)>,
    dir: PathBuf,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

/// The `switchboard` binary next to this executable (the same target directory).
pub fn sibling_binary() -> Result<PathBuf, DriverError> {
    let exe = std::env::current_exe().map_err(|source| DriverError::Io {
        what: "finding this executable".to_owned(),
        source,
    })?;
    let binary = exe.with_file_name("switchboard");
    if binary.is_file() {
        Ok(binary)
    } else {
        Err(DriverError::Server(format!(
            "no switchboard binary at {} (build it: cargo build --release -p switchboard-api)",
            binary.display()
        )))
    }
}

impl SpawnedServer {
    /// Starts `binary serve` in `dir` on a free loopback port, pointed at the carrier,
    /// and waits until `/healthz` answers.
    pub async fn start(
        binary: &Path,
        dir: &Path,
        database_url: Option<&str>,
        carrier: &CarrierAccess,
    ) -> Result<SpawnedServer, DriverError> {
        let port = free_port()?;
        let url = format!("http://127.0.0.1:{port}");
        let database_url = database_url.map_or_else(
            || format!("sqlite://{}", dir.join("switchboard.db").display()),
            str::to_owned,
        );
        let env: Vec<(String, String)> = [
            ("SWITCHBOARD_LISTEN", format!("127.0.0.1:{port}")),
            ("SWITCHBOARD_PUBLIC_URL", url.clone()),
            ("SWITCHBOARD_DATABASE_URL", database_url),
            ("SWITCHBOARD_TWILIO_API_BASE", carrier.api_base.clone()),
            (
                "SWITCHBOARD_TWILIO_ACCOUNT_SID",
                carrier.account_sid.clone(),
            ),
            ("SWITCHBOARD_TWILIO_AUTH_TOKEN", carrier.auth_token.clone()),
            ("SWITCHBOARD_TWILIO_FROM", CALLER_ID.to_owned()),
            (
                "SWITCHBOARD_TWILIO_CPS",
                carrier
                    .cps
                    .map_or_else(|| "0".to_owned(), |cps| cps.to_string()),
            ),
            ("SWITCHBOARD_LOG", "warn".to_owned()),
            // The scripted agent listens on loopback.
            (
                "SWITCHBOARD_AGENT_ALLOW_PRIVATE_ADDRESSES",
                "true".to_owned(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let log = std::fs::File::create(dir.join("switchboard.log")).map_err(|source| {
            DriverError::Io {
                what: "creating switchboard.log".to_owned(),
                source,
            }
        })?;
        let log_err = log.try_clone().map_err(|source| DriverError::Io {
            what: "opening switchboard.log".to_owned(),
            source,
        })?;
        let child = Command::new(binary)
            .arg("serve")
            .current_dir(dir)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|source| DriverError::Io {
                what: format!("starting {}", binary.display()),
                source,
            })?;
        let mut server = SpawnedServer {
            child,
            binary: binary.to_owned(),
            env,
            dir: dir.to_owned(),
            url,
        };
        server.wait_healthy(Duration::from_secs(60)).await?;
        Ok(server)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn wait_healthy(&mut self, timeout: Duration) -> Result<(), DriverError> {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + timeout;
        let health = format!("{}/healthz", self.url);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(DriverError::Server(format!(
                    "switchboard exited with {status}; see {}",
                    self.dir.join("switchboard.log").display()
                )));
            }
            if let Ok(response) = http.get(&health).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(DriverError::Server(format!(
                    "switchboard did not answer {health} within {timeout:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `switchboard tenants create NAME --admin` on the server's database: the new API key.
    pub fn create_tenant(&self, name: &str) -> Result<String, DriverError> {
        let output = Command::new(&self.binary)
            .args(["tenants", "create", name, "--admin"])
            .current_dir(&self.dir)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .map_err(|source| DriverError::Io {
                what: "running switchboard tenants create".to_owned(),
                source,
            })?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            return Err(DriverError::Server(format!(
                "switchboard tenants create failed: {}{}",
                stdout,
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        api_key_in(&stdout).ok_or_else(|| {
            DriverError::Server(format!(
                "no api key in the output of tenants create: {stdout}"
            ))
        })
    }

    /// Asks the server to stop (SIGTERM) and waits up to 10 s, then kills it.
    pub async fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SpawnedServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The API key in `tenants create` output: the value of a `key`/`api_key` line or JSON
/// field, else the last word printed.
fn api_key_in(stdout: &str) -> Option<String> {
    if let Ok(json) = serde_json::from_str::<Value>(stdout.trim()) {
        for field in ["api_key", "key"] {
            if let Some(key) = json.get(field).and_then(Value::as_str) {
                return Some(key.to_owned());
            }
        }
    }
    let keyed = stdout.lines().find_map(|line| {
        let (name, value) = line.split_once([':', '='])?;
        let name = name.trim().to_ascii_lowercase();
        (name.contains("key")).then(|| value.trim().to_owned())
    });
    keyed
        .filter(|k| !k.is_empty())
        .or_else(|| stdout.split_whitespace().last().map(str::to_owned))
}

fn free_port() -> Result<u16, DriverError> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|source| DriverError::Io {
            what: "finding a free port".to_owned(),
            source,
        })?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|source| DriverError::Io {
            what: "finding a free port".to_owned(),
            source,
        })
}

/// The contract's HTTP API, with one tenant's key.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    /// A client of the server at `base` (`http://host:port`).
    pub fn new(base: &str, key: &str) -> Result<Api, DriverError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| DriverError::Api(e.to_string()))?;
        Ok(Api {
            http,
            base: base.trim_end_matches('/').to_owned(),
            key: key.to_owned(),
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(&str, String)>,
    ) -> Result<Value, DriverError> {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.key);
        if let Some((content_type, body)) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| DriverError::Api(format!("{method} {path}: {e}")))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| DriverError::Api(format!("{method} {path}: {e}")))?;
        if !status.is_success() {
            return Err(DriverError::Api(format!(
                "{method} {path}: {status}: {text}"
            )));
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// `POST /api/v1/contacts/import` with a CSV body.
    pub async fn import_contacts(&self, csv: String) -> Result<Value, DriverError> {
        self.call(
            reqwest::Method::POST,
            "/api/v1/contacts/import?mode=skip_bad_rows",
            Some(("text/csv", csv)),
        )
        .await
    }

    /// `POST /api/v1/campaigns`: the new campaign's id.
    pub async fn create_campaign(&self, config: &Value) -> Result<String, DriverError> {
        let created = self
            .call(
                reqwest::Method::POST,
                "/api/v1/campaigns",
                Some(("application/json", config.to_string())),
            )
            .await?;
        match created.get("id") {
            Some(Value::String(id)) => Ok(id.clone()),
            Some(Value::Number(id)) => Ok(id.to_string()),
            _ => Err(DriverError::Api(format!(
                "the created campaign has no id: {created}"
            ))),
        }
    }

    /// `POST /api/v1/campaigns/{id}/{action}` (`start`, `pause`, `stop`, …).
    pub async fn campaign_action(&self, id: &str, action: &str) -> Result<Value, DriverError> {
        let path = format!("/api/v1/campaigns/{id}/{action}");
        let body = serde_json::json!({"reason": "load test"}).to_string();
        self.call(
            reqwest::Method::POST,
            &path,
            Some(("application/json", body)),
        )
        .await
    }

    /// `GET /api/v1/campaigns/{id}/status`.
    pub async fn status(&self, id: &str) -> Result<Value, DriverError> {
        let path = format!("/api/v1/campaigns/{id}/status");
        self.call(reqwest::Method::GET, &path, None).await
    }

    /// Switchboard's own relay latency per frame (read → written to the other side), over
    /// every call it relayed since start: p50, p99, p99.9 and max in µs, from `/metrics`.
    pub async fn relay_latency_us(&self) -> Result<[u64; 4], DriverError> {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| DriverError::Api(format!("GET /metrics: {e}")))?
            .text()
            .await
            .map_err(|e| DriverError::Api(format!("GET /metrics: {e}")))?;
        relay_latency_from_metrics(&text)
            .ok_or_else(|| DriverError::Api("/metrics has no relay latency quantiles".into()))
    }
}

/// The relay latency quantiles (µs) in a `/metrics` text.
fn relay_latency_from_metrics(text: &str) -> Option<[u64; 4]> {
    let mut out = [None; 4];
    for line in text.lines() {
        let Some(rest) =
            line.strip_prefix("switchboard_relay_latency_quantile_seconds{quantile=\"")
        else {
            continue;
        };
        let (quantile, value) = rest.split_once("\"} ")?;
        let slot = ["0.5", "0.99", "0.999", "1"]
            .iter()
            .position(|q| *q == quantile)?;
        let secs: f64 = value.trim().parse().ok()?;
        out[slot] = Some((secs * 1e6).round() as u64);
    }
    Some([out[0]?, out[1]?, out[2]?, out[3]?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_latency_is_read_from_the_metrics_text() {
        let text = "# TYPE switchboard_relay_latency_quantile_seconds gauge\n\
            switchboard_relay_latency_quantile_seconds{quantile=\"0.5\"} 0.000031\n\
            switchboard_relay_latency_quantile_seconds{quantile=\"0.99\"} 0.0012\n\
            switchboard_relay_latency_quantile_seconds{quantile=\"0.999\"} 0.004\n\
            switchboard_relay_latency_quantile_seconds{quantile=\"1\"} 0.25\n\
            switchboard_relayed_calls 3\n";
        assert_eq!(
            relay_latency_from_metrics(text),
            Some([31, 1200, 4000, 250_000])
        );
        assert_eq!(
            relay_latency_from_metrics("switchboard_relayed_calls 3\n"),
            None
        );
    }

    #[test]
    fn the_api_key_is_found_in_the_usual_shapes_of_output() {
        assert_eq!(
            api_key_in("tenant 42 created\napi key: sk_abc\n").as_deref(),
            Some("sk_abc")
        );
        assert_eq!(
            api_key_in(r#"{"tenant_id": 42, "api_key": "sk_json"}"#).as_deref(),
            Some("sk_json")
        );
        assert_eq!(api_key_in("42 sk_last\n").as_deref(), Some("sk_last"));
    }
}
