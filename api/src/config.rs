//! Layered configuration: built-in defaults, then an optional `switchboard.toml` (or the
//! file named by `SWITCHBOARD_CONFIG`), then `SWITCHBOARD_*` environment variables.
//! Secrets are wrapped so that they never reach a log line.

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything `switchboard serve` needs to know.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address the HTTP server binds (`SWITCHBOARD_LISTEN`, default `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// Database (`SWITCHBOARD_DATABASE_URL`): `sqlite://file.db` (default
    /// `sqlite://switchboard.db`, created on first start) or `postgres://...`.
    pub database_url: SecretString,
    /// Apply pending migrations when the server starts (default true).
    pub migrate_on_start: bool,
    /// Log format: `text` (default) or `json`.
    pub log_format: LogFormat,
    /// Log filter in `tracing` syntax (default `info`; `RUST_LOG` overrides it).
    pub log: String,
    /// Region used to read national-format numbers (ISO 3166 alpha-2, e.g. `US`).
    pub default_region: Option<String>,
    /// The URL the carrier and agents reach this server at (`https://switchboard.example.com`),
    /// used in callback and stream URLs and to check request signatures behind a proxy.
    /// Default: `http://` + the listen address.
    pub public_url: Option<String>,
    /// Twilio account SID (`AC...`).
    pub twilio_account_sid: Option<String>,
    /// Twilio auth token: signs and verifies webhooks, authenticates API calls.
    pub twilio_auth_token: Option<SecretString>,
    /// Twilio REST API base (default `https://api.twilio.com`; the simulated carrier in tests).
    pub twilio_api_base: String,
    /// The caller id calls are placed from (E.164). In the environment a value such as
    /// `+14155550123` reads as a number; it is taken back as the E.164 number it was.
    #[serde(default, deserialize_with = "phone_setting")]
    pub twilio_from: Option<String>,
    /// The Twilio account's calls-per-second limit, shared by every campaign (default 1,
    /// Twilio's starting limit; `0` for none).
    pub twilio_cps: f64,
    /// LiveKit server URL (`wss://project.livekit.cloud`), for LiveKit agents and SIP.
    pub livekit_url: Option<String>,
    /// LiveKit API key.
    pub livekit_api_key: Option<String>,
    /// LiveKit API secret: signs tokens, verifies webhooks.
    pub livekit_api_secret: Option<SecretString>,
    /// Use LiveKit Cloud's Twilio connector as the agent side of media streams for
    /// `livekit` agents (default false).
    pub livekit_twilio_connector: bool,
    /// Price of one billed call minute, in the account's currency (default 0.014). A
    /// campaign's cost is its billed minutes (each answered call rounded up to the minute)
    /// times this.
    pub call_cost_per_minute: f64,
    /// Sends of one webhook delivery before it is marked failed (default 8).
    #[serde(default = "default_webhook_max_attempts")]
    pub webhook_max_attempts: u32,
    /// Delay before a failed webhook send is retried, in ms; doubles after each failure,
    /// up to an hour (default 30000).
    #[serde(default = "default_webhook_backoff_ms")]
    pub webhook_backoff_ms: u64,
    /// How long one webhook send may take, in ms (default 10000).
    #[serde(default = "default_webhook_timeout_ms")]
    pub webhook_timeout_ms: u64,
    /// Let webhook URLs reach loopback, private (RFC 1918), link-local and other internal
    /// addresses (default false: refused at registration and at delivery). For receivers
    /// on the same network (on-premises) and tests.
    #[serde(default)]
    pub webhook_allow_private_addresses: bool,
    /// Let campaigns' agent URLs reach loopback, private, link-local and other internal
    /// addresses (default false: refused when a campaign is saved and again when a call
    /// connects). For agents on the same network (on-premises) and tests. The operator's
    /// own LiveKit URLs are not judged.
    #[serde(default)]
    pub agent_allow_private_addresses: bool,
    /// On shutdown, how long live calls may go on being relayed before their media streams
    /// are closed, in seconds (default 30). Dialing stops at once either way.
    #[serde(default = "default_shutdown_grace_secs")]
    pub shutdown_grace_secs: u64,
    /// How long a campaign lease lasts unless renewed, in seconds (default 15). Several
    /// processes on one database each run the campaigns whose lease they hold; one that
    /// dies leaves its campaigns to the others this long after its last renewal. Leases
    /// are renewed every third of it, which is also how soon the owner sees a pause,
    /// resume, stop or edit made through another process.
    #[serde(default = "default_lease_ttl_secs")]
    pub lease_ttl_secs: u64,
    /// A PEM file of extra CA certificates trusted, besides the web PKI roots, for
    /// `wss://` agents, the LiveKit Twilio connector URL and `https` webhooks (private
    /// agents behind an internal CA). Default: none.
    #[serde(default)]
    pub agent_ca_file: Option<PathBuf>,
    /// What one tenant may take of the server (`[limits]`; in the environment
    /// `SWITCHBOARD_LIMITS__RATE_PER_SEC` and so on): see [`crate::limits::Limits`].
    #[serde(default)]
    pub limits: crate::limits::Limits,
    /// Days a settled call record (attempt and its events) is kept after the call ended
    /// (default 400: a year of history and a month to compare it with; 0 keeps them
    /// forever). A campaign's figures cover the calls kept.
    #[serde(default = "default_retention_call_records_days")]
    pub retention_call_records_days: u32,
    /// Days a call's transcript and agent notes are kept after it ended (default 90; 0:
    /// forever). The call record stays.
    #[serde(default = "default_retention_transcripts_days")]
    pub retention_transcripts_days: u32,
    /// Days call events are kept (default 90; 0: forever). The two kinds campaign figures
    /// count (`agent.bridged`, `agent.first_audio`) stay with their call record.
    #[serde(default = "default_retention_events_days")]
    pub retention_events_days: u32,
    /// Days a delivered or failed webhook delivery (and its send log) is kept (default 30;
    /// 0: forever).
    #[serde(default = "default_retention_webhook_deliveries_days")]
    pub retention_webhook_deliveries_days: u32,
    /// Seconds between purges (default 3600; 0: no purge job in this process).
    #[serde(default = "default_retention_purge_interval_secs")]
    pub retention_purge_interval_secs: u64,
    /// Most rows one purge batch (one short transaction) touches (default 500).
    #[serde(default = "default_retention_purge_batch")]
    pub retention_purge_batch: u32,
}

fn default_retention_call_records_days() -> u32 {
    400
}

fn default_retention_transcripts_days() -> u32 {
    90
}

fn default_retention_events_days() -> u32 {
    90
}

fn default_retention_webhook_deliveries_days() -> u32 {
    30
}

fn default_retention_purge_interval_secs() -> u64 {
    3600
}

fn default_retention_purge_batch() -> u32 {
    500
}

fn default_shutdown_grace_secs() -> u64 {
    30
}

fn default_lease_ttl_secs() -> u64 {
    15
}

fn default_webhook_max_attempts() -> u32 {
    8
}

fn default_webhook_backoff_ms() -> u64 {
    30_000
}

fn default_webhook_timeout_ms() -> u64 {
    10_000
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, with span fields (campaign and call ids).
    Json,
}

/// A phone number setting given as text, or read as a number (the environment layer parses
/// `+14155550123` as an integer, dropping the `+`).
fn phone_setting<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Phone {
        Text(String),
        Number(u64),
    }
    Ok(match Option::<Phone>::deserialize(d)? {
        Some(Phone::Text(s)) => Some(s),
        Some(Phone::Number(n)) => Some(format!("+{n}")),
        None => None,
    })
}

/// The defaults, as a serializable layer.
#[derive(Serialize)]
struct Defaults {
    listen: &'static str,
    database_url: &'static str,
    migrate_on_start: bool,
    log_format: LogFormat,
    log: &'static str,
    twilio_api_base: &'static str,
    twilio_cps: f64,
    livekit_twilio_connector: bool,
    call_cost_per_minute: f64,
}

const DEFAULTS: Defaults = Defaults {
    listen: "127.0.0.1:8080",
    database_url: "sqlite://switchboard.db",
    migrate_on_start: true,
    log_format: LogFormat::Text,
    log: "info",
    twilio_api_base: "https://api.twilio.com",
    twilio_cps: 1.0,
    livekit_twilio_connector: false,
    call_cost_per_minute: 0.014,
};

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(String);

impl Settings {
    /// Loads the layers: defaults, the config file if present, the environment.
    pub fn load() -> Result<Settings, ConfigError> {
        let file = std::env::var_os("SWITCHBOARD_CONFIG")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("switchboard.toml"));
        Self::figment(file)
            .extract()
            .map_err(|e| ConfigError(e.to_string()))
    }

    /// The built-in defaults alone: no configuration file, no environment (what
    /// `switchboard demo` starts from, so that it never picks up a production setting).
    pub fn defaults() -> Result<Settings, ConfigError> {
        Figment::from(Serialized::defaults(DEFAULTS))
            .extract()
            .map_err(|e| ConfigError(e.to_string()))
    }

    fn figment(file: PathBuf) -> Figment {
        Figment::from(Serialized::defaults(DEFAULTS))
            .merge(Toml::file(file))
            // LiveKit's own variable names work too; SWITCHBOARD_LIVEKIT_* wins. SWITCHBOARD_URL
            // and SWITCHBOARD_API_KEY belong to the API client commands.
            .merge(Env::raw().only(&["LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"]))
            .merge(
                Env::prefixed("SWITCHBOARD_")
                    .ignore(&["CONFIG", "TEST_POSTGRES", "URL", "API_KEY"])
                    .split("__"),
            )
    }

    /// Settings for tests: defaults with this database and an ephemeral port.
    pub fn for_tests(database_url: &str) -> Settings {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: SecretString::from(database_url.to_owned()),
            migrate_on_start: true,
            log_format: LogFormat::Text,
            log: "warn".to_owned(),
            default_region: None,
            public_url: None,
            twilio_account_sid: None,
            twilio_auth_token: None,
            twilio_api_base: "https://api.twilio.com".to_owned(),
            twilio_from: None,
            twilio_cps: 0.0,
            livekit_url: None,
            livekit_api_key: None,
            livekit_api_secret: None,
            livekit_twilio_connector: false,
            call_cost_per_minute: 0.014,
            webhook_max_attempts: default_webhook_max_attempts(),
            webhook_backoff_ms: default_webhook_backoff_ms(),
            webhook_timeout_ms: default_webhook_timeout_ms(),
            webhook_allow_private_addresses: false,
            // Test agents listen on loopback.
            agent_allow_private_addresses: true,
            shutdown_grace_secs: 2,
            lease_ttl_secs: 3,
            agent_ca_file: None,
            retention_call_records_days: default_retention_call_records_days(),
            retention_transcripts_days: default_retention_transcripts_days(),
            retention_events_days: default_retention_events_days(),
            retention_webhook_deliveries_days: default_retention_webhook_deliveries_days(),
            // Tests seed calls at fixed past dates: no purge unless a test asks for one.
            retention_purge_interval_secs: 0,
            retention_purge_batch: default_retention_purge_batch(),
            // Tests poll the API as fast as they like; the rate limit has tests of its own.
            limits: crate::limits::Limits {
                rate_per_sec: 100_000,
                rate_burst: 100_000,
                ..crate::limits::Limits::default()
            },
        }
    }

    /// The retention policy (a day count of 0 keeps that kind forever), refused when the
    /// batch is 0.
    pub fn retention(&self) -> Result<switchboard_engine::store::RetentionPolicy, String> {
        if self.retention_purge_batch == 0 {
            return Err(
                "retention_purge_batch: 0 purges nothing; give at least 1 row a batch".to_owned(),
            );
        }
        if (1..=30).contains(&self.retention_call_records_days) {
            return Err(format!(
                "retention_call_records_days: {} is too short: the rolling 30-day abandonment \
                 rate is computed from call records; give 0 (forever) or at least 31",
                self.retention_call_records_days
            ));
        }
        let days = |d: u32| (d > 0).then_some(d);
        Ok(switchboard_engine::store::RetentionPolicy {
            call_records_days: days(self.retention_call_records_days),
            transcripts_days: days(self.retention_transcripts_days),
            events_days: days(self.retention_events_days),
            webhook_deliveries_days: days(self.retention_webhook_deliveries_days),
            batch: self.retention_purge_batch,
        })
    }

    /// How often the purge job runs (`None`: it does not run in this process).
    pub fn purge_interval(&self) -> Option<std::time::Duration> {
        (self.retention_purge_interval_secs > 0)
            .then(|| std::time::Duration::from_secs(self.retention_purge_interval_secs))
    }

    /// How the webhook delivery worker retries and times out.
    pub fn webhook_worker(&self) -> crate::webhook_worker::WorkerSettings {
        let schedule = switchboard_engine::webhook::RetrySchedule {
            max_attempts: self.webhook_max_attempts.max(1),
            first_backoff: std::time::Duration::from_millis(self.webhook_backoff_ms),
            ..Default::default()
        };
        crate::webhook_worker::WorkerSettings {
            schedule,
            timeout: std::time::Duration::from_millis(self.webhook_timeout_ms.max(1)),
            allow_private_addresses: self.webhook_allow_private_addresses,
            extra_roots: Vec::new(),
            ..Default::default()
        }
    }

    /// The carrier calls-per-second limit for the runtime (`None`: unlimited), refused
    /// when it is more than the shared limiter can hold.
    pub fn carrier_cps(&self) -> Result<Option<f64>, String> {
        let max = f64::from(switchboard_engine::store::MAX_DIAL_SLOTS);
        if self.twilio_cps.is_finite() && self.twilio_cps > max {
            return Err(format!(
                "twilio_cps: {} is more than the {max} calls per second the limiter holds",
                self.twilio_cps
            ));
        }
        Ok((self.twilio_cps.is_finite() && self.twilio_cps > 0.0).then_some(self.twilio_cps))
    }

    /// How long a campaign lease lasts unless renewed, refused when under a second.
    pub fn lease_ttl(&self) -> Result<std::time::Duration, String> {
        if self.lease_ttl_secs == 0 {
            return Err(
                "lease_ttl_secs: 0 is too short; a lease lasts at least 1 second".to_owned(),
            );
        }
        Ok(std::time::Duration::from_secs(self.lease_ttl_secs))
    }

    /// The LiveKit configuration, when all three LiveKit settings are given.
    pub fn livekit(&self) -> Option<switchboard_media::livekit::LiveKitConfig> {
        match (
            &self.livekit_url,
            &self.livekit_api_key,
            &self.livekit_api_secret,
        ) {
            (Some(url), Some(key), Some(secret)) => Some(
                switchboard_media::livekit::LiveKitConfig::new(url, key, secret.clone()),
            ),
            _ => None,
        }
    }

    /// The database url (the only way to read the secret).
    pub fn database_url(&self) -> &str {
        self.database_url.expose_secret()
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail API returns its own large error type
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn defaults_then_file_then_environment() {
        Jail::expect_with(|jail| {
            let s: Settings = Settings::figment("absent.toml".into()).extract()?;
            assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
            assert_eq!(s.database_url(), "sqlite://switchboard.db");

            jail.create_file(
                "sb.toml",
                "listen = \"0.0.0.0:9000\"\nlog_format = \"json\"\n",
            )?;
            let s: Settings = Settings::figment("sb.toml".into()).extract()?;
            assert_eq!(s.listen.to_string(), "0.0.0.0:9000");
            assert_eq!(s.log_format, LogFormat::Json);

            jail.set_env("SWITCHBOARD_LISTEN", "127.0.0.1:7000");
            jail.set_env("SWITCHBOARD_DATABASE_URL", "postgres://u:hunter2@db/x");
            jail.set_env("SWITCHBOARD_TWILIO_AUTH_TOKEN", "twilio-secret-token");
            let s: Settings = Settings::figment("sb.toml".into()).extract()?;
            assert_eq!(s.listen.to_string(), "127.0.0.1:7000");
            assert_eq!(s.database_url(), "postgres://u:hunter2@db/x");
            assert!(
                !format!("{s:?}").contains("hunter2"),
                "secrets must not be printed"
            );
            Ok(())
        });
    }

    #[test]
    fn the_defaults_alone_ignore_the_file_and_the_environment() {
        Jail::expect_with(|jail| {
            jail.create_file("switchboard.toml", "listen = \"0.0.0.0:9000\"\n")?;
            jail.set_env("SWITCHBOARD_DATABASE_URL", "postgres://prod/db");
            let s = Settings::defaults().unwrap();
            assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
            assert_eq!(s.database_url(), "sqlite://switchboard.db");
            assert_eq!(s.shutdown_grace_secs, 30);
            Ok(())
        });
    }

    #[test]
    fn livekits_own_environment_variables_are_read() {
        Jail::expect_with(|jail| {
            jail.set_env("LIVEKIT_URL", "wss://project.livekit.cloud");
            jail.set_env("LIVEKIT_API_KEY", "APIkey");
            jail.set_env("LIVEKIT_API_SECRET", "livekit-secret-value");
            let s: Settings = Settings::figment("absent.toml".into()).extract()?;
            let livekit = s.livekit().expect("all three are set");
            assert_eq!(
                (livekit.url.as_str(), livekit.api_key.as_str()),
                ("wss://project.livekit.cloud", "APIkey")
            );
            assert!(
                !format!("{s:?}").contains("livekit-secret-value"),
                "secrets must not be printed"
            );
            jail.set_env("SWITCHBOARD_LIVEKIT_URL", "http://127.0.0.1:7880");
            let s: Settings = Settings::figment("absent.toml".into()).extract()?;
            assert_eq!(s.livekit_url.as_deref(), Some("http://127.0.0.1:7880"));
            Ok(())
        });
    }

    #[test]
    fn a_caller_id_from_the_environment_keeps_its_plus() {
        Jail::expect_with(|jail| {
            jail.set_env("SWITCHBOARD_TWILIO_FROM", "+14155550123");
            let s: Settings = Settings::figment("absent.toml".into()).extract()?;
            assert_eq!(s.twilio_from.as_deref(), Some("+14155550123"));
            Ok(())
        });
    }

    #[test]
    fn a_lease_too_short_or_a_limit_too_high_is_refused_by_name() {
        Jail::expect_with(|jail| {
            let s: Settings = Settings::figment("absent.toml".into()).extract()?;
            assert_eq!(s.lease_ttl(), Ok(std::time::Duration::from_secs(15)));
            assert_eq!(s.carrier_cps(), Ok(Some(1.0)));
            jail.set_env("SWITCHBOARD_LEASE_TTL_SECS", "0");
            jail.set_env("SWITCHBOARD_TWILIO_CPS", "20000");
            let s: Settings = Settings::figment("absent.toml".into()).extract()?;
            let ttl = s.lease_ttl().unwrap_err();
            assert!(ttl.starts_with("lease_ttl_secs: 0"), "{ttl}");
            let cps = s.carrier_cps().unwrap_err();
            assert!(cps.starts_with("twilio_cps: 20000"), "{cps}");
            jail.set_env("SWITCHBOARD_TWILIO_CPS", "0");
            let s: Settings = Settings::figment("absent.toml".into()).extract()?;
            assert_eq!(s.carrier_cps(), Ok(None), "0: no limit");
            Ok(())
        });
    }

    #[test]
    fn retention_defaults_keep_records_longer_than_what_was_said_and_zero_keeps_forever() {
        Jail::expect_with(|jail| {
            let s: Settings = Settings::figment("absent.toml".into()).extract()?;
            let policy = s.retention().unwrap();
            assert_eq!(
                (
                    policy.call_records_days,
                    policy.transcripts_days,
                    policy.events_days,
                    policy.webhook_deliveries_days,
                    policy.batch
                ),
                (Some(400), Some(90), Some(90), Some(30), 500)
            );
            assert_eq!(
                s.purge_interval(),
                Some(std::time::Duration::from_secs(3600))
            );
            jail.set_env("SWITCHBOARD_RETENTION_TRANSCRIPTS_DAYS", "0");
            jail.set_env("SWITCHBOARD_RETENTION_PURGE_INTERVAL_SECS", "0");
            let s: Settings = Settings::figment("absent.toml".into()).extract()?;
            assert_eq!(s.retention().unwrap().transcripts_days, None);
            assert_eq!(s.purge_interval(), None);
            jail.set_env("SWITCHBOARD_RETENTION_CALL_RECORDS_DAYS", "7");
            let s: Settings = Settings::figment("absent.toml".into()).extract()?;
            let err = s.retention().unwrap_err();
            assert!(err.starts_with("retention_call_records_days: 7"), "{err}");
            jail.set_env("SWITCHBOARD_RETENTION_CALL_RECORDS_DAYS", "0");
            jail.set_env("SWITCHBOARD_RETENTION_PURGE_BATCH", "0");
            let s: Settings = Settings::figment("absent.toml".into()).extract()?;
            let err = s.retention().unwrap_err();
            assert!(err.starts_with("retention_purge_batch: 0"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn limits_come_from_their_table_or_the_environment_and_zero_is_refused() {
        Jail::expect_with(|jail| {
            let s: Settings = Settings::figment("absent.toml".into()).extract()?;
            assert_eq!(s.limits, crate::limits::Limits::default());
            jail.create_file("sb.toml", "[limits]\nrate_per_sec = 7\n")?;
            jail.set_env("SWITCHBOARD_LIMITS__RATE_BURST", "9");
            let s: Settings = Settings::figment("sb.toml".into()).extract()?;
            assert_eq!((s.limits.rate_per_sec, s.limits.rate_burst), (7, 9));
            assert_eq!(s.limits.check(), Ok(()));
            jail.set_env("SWITCHBOARD_LIMITS__MEDIA_SESSIONS", "0");
            let s: Settings = Settings::figment("sb.toml".into()).extract()?;
            assert_eq!(
                s.limits.check(),
                Err("limits.media_sessions: must be at least 1".to_owned())
            );
            jail.set_env("SWITCHBOARD_LIMITS__RATE_PER_SECOND", "9");
            let err = Settings::figment("sb.toml".into())
                .extract::<Settings>()
                .unwrap_err();
            assert!(err.to_string().contains("rate_per_second"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn an_unknown_setting_is_an_error_naming_it() {
        Jail::expect_with(|jail| {
            jail.create_file("sb.toml", "lissten = \"0.0.0.0:9000\"\n")?;
            let err = Settings::figment("sb.toml".into())
                .extract::<Settings>()
                .unwrap_err();
            assert!(err.to_string().contains("lissten"), "{err}");
            Ok(())
        });
    }
}
