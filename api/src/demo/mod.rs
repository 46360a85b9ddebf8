//! `switchboard demo`: a whole campaign on this machine with nothing to configure.
//!
//! It starts, in this process, the simulated carrier (a Twilio-compatible API on loopback
//! that rings, answers, sends signed status callbacks and opens media streams, as strict
//! as its defaults are) and the scripted agent (it greets with a tone, listens, and reports
//! the outcome the contact's attributes name), then the server dialing through them, over
//! a fresh SQLite database in a temporary directory unless `--database` names one. Through
//! the REST API, like any client, it imports contacts whose calling window is open now
//! ([`contacts`]), creates a campaign and starts it; it prints the dashboard URL with a
//! supervisor key, and a line whenever the campaign's figures change, until Ctrl-C or
//! SIGTERM stops it as `serve` stops.
//!
//! It reads no configuration file and no `SWITCHBOARD_*` setting: a demo never dials
//! through a real account nor writes into a production database by surprise.

pub mod contacts;

/// `println!` that never panics: a closed or full stdout (`switchboard demo | head`, a full
/// disk) must not bring the demo down.
macro_rules! say {
    () => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout());
    }};
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

use crate::cli::Client;
use crate::{Application, Settings};
use anyhow::{Context, bail};
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use switchboard_engine::store::{ApiKeyScope, Store};
use switchboard_loadtest::{
    AgentConfig, AnswerMix, CarrierConfig, Millis, ScriptedAgent, SimCarrier,
};

/// `switchboard demo` options.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Address the server binds (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Database URL (default: a fresh SQLite file in a temporary directory, removed when
    /// the demo stops).
    #[arg(long)]
    pub database: Option<String>,
    /// How many contacts the campaign calls (1 to 100).
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub contacts: u32,
}

/// The caller id of the demo's calls.
const CALLER_ID: &str = "+14155550100";
/// The account's calls per second, at the carrier and in the server: Twilio's starting
/// limit, plenty for the demo's four lines.
const CPS: f64 = 1.0;
/// Lines the campaign keeps open at most.
const LINES: u32 = 4;
/// How long live calls may go on after Ctrl-C.
const SHUTDOWN_GRACE_SECS: u64 = 3;
/// How often the campaign's figures are read for the progress lines.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// The simulated carrier: most callees answer in person after a short ring; some are
/// busy, do not answer, or have a machine answer; a few calls fail. Callees stay on the
/// line longer than the scripted agent talks, so the agent ends most calls.
fn carrier_config() -> CarrierConfig {
    let mut config = CarrierConfig::new("ACde000000000000000000000000000000", "demo-auth-token");
    config.cps = Some(CPS);
    config.seed = 16;
    config.mix = AnswerMix {
        human: 0.75,
        machine: 0.08,
        busy: 0.07,
        no_answer: 0.07,
        failed: 0.03,
    };
    config.ring_ms = Millis::Uniform {
        min: 1_500,
        max: 4_000,
    };
    config.talk_ms = Millis::Uniform {
        min: 15_000,
        max: 40_000,
    };
    config.amd_ms = Millis::Uniform {
        min: 1_500,
        max: 3_000,
    };
    config
}

/// The campaign: every demo contact, the scripted agent, all week in the legal hours,
/// retries a minute apart so that they happen while one watches.
fn campaign_config(agent_url: &str) -> Value {
    json!({
        "name": "Demo renewals",
        "objective": "renewals",
        "audience": {"query": {"segment": contacts::SEGMENT}},
        "agent": {"mode": "media_stream", "url": agent_url},
        "script": {
            "template": "Hello {name|there}, this is {vars.caller_name} with a quick word about your renewal.",
            "variables": {"caller_name": "the Switchboard demo"}
        },
        "schedule": {
            "days": ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"],
            "start": "08:00",
            "end": "21:00"
        },
        "max_concurrent_calls": LINES,
        "retry": {
            "max_attempts": 3,
            "min_gap_minutes": 1,
            "no_answer": {"delay_minutes": 1},
            "busy": {"delay_minutes": 1},
            "failed": {"delay_minutes": 1},
            "voicemail": {"delay_minutes": 2}
        },
        "success": {"outcomes": ["interested"]}
    })
}

/// The server's settings: the built-in defaults, dialing through the simulators.
fn settings(args: &DemoArgs, database_url: &str, carrier: &SimCarrier) -> anyhow::Result<Settings> {
    let mut settings = Settings::defaults()?;
    settings.listen = args.listen;
    settings.database_url = SecretString::from(database_url.to_owned());
    settings.twilio_account_sid = Some(carrier.account_sid().to_owned());
    settings.twilio_auth_token = Some(SecretString::from(carrier.auth_token().to_owned()));
    settings.twilio_api_base = carrier.base_url();
    settings.twilio_from = Some(CALLER_ID.to_owned());
    settings.twilio_cps = CPS;
    // The scripted agent listens on loopback.
    settings.agent_allow_private_addresses = true;
    // Ctrl-C should not wait half a minute for the demo's calls.
    settings.shutdown_grace_secs = SHUTDOWN_GRACE_SECS;
    Ok(settings)
}

/// What the demo created.
struct Seeded {
    key: String,
    tenant: i64,
    campaign: i64,
    imported: u64,
    cities: Vec<&'static str>,
}

/// Creates the tenant and its supervisor key in the database, then imports the contacts,
/// creates the campaign and starts it through the REST API.
async fn seed(store: &Store, base: &str, agent_url: &str, count: u32) -> anyhow::Result<Seeded> {
    let tenant = store
        .create_tenant("Demo")
        .await
        .context("creating the tenant")?;
    let (_, key) = crate::auth::create_key(store, tenant.id, "demo", ApiKeyScope::Supervisor)
        .await
        .context("creating the supervisor key")?;
    let client = Client::with_key(base, key.clone());
    let mut places = contacts::daytime_places(chrono::Utc::now());
    if places.is_empty() {
        // Never so (a test checks every hour); the calls would wait for the morning.
        places = contacts::PLACES.to_vec();
    }
    let csv = contacts::csv(&places, count);
    let report = client
        .send(
            Method::POST,
            "/api/v1/contacts/import?mode=all_or_nothing",
            Some(("text/csv", csv.into_bytes())),
        )
        .await
        .context("importing the contacts")?;
    if report["committed"] != json!(true) || report["rejected"] != json!(0) {
        bail!("the demo's contacts were refused: {report}");
    }
    let imported = report["inserted"].as_u64().unwrap_or(0);
    let body = serde_json::to_vec(&campaign_config(agent_url))?;
    let created = client
        .send(
            Method::POST,
            "/api/v1/campaigns",
            Some(("application/json", body)),
        )
        .await
        .context("creating the campaign")?;
    let Some(campaign) = created["id"].as_i64() else {
        bail!("the created campaign has no id: {created}");
    };
    client
        .send(
            Method::POST,
            &format!("/api/v1/campaigns/{campaign}/start"),
            None,
        )
        .await
        .context("starting the campaign")?;
    Ok(Seeded {
        key,
        tenant: tenant.id.0,
        campaign,
        imported,
        cities: places.iter().map(|p| p.city).collect(),
    })
}

/// `http://ADDR` as a browser on this machine reaches it (an unspecified address becomes
/// loopback).
fn base_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        ip if ip.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// Runs the demo until `shutdown` completes.
pub async fn run(
    args: DemoArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Listening for Ctrl-C from the start: a stop while the demo sets up is graceful too.
    let mut shutdown = std::pin::pin!(shutdown);
    let (database_url, temporary) = match &args.database {
        Some(url) => (url.clone(), None),
        None => {
            let dir = tempfile::Builder::new()
                .prefix("switchboard-demo-")
                .tempdir()
                .context("creating a temporary directory for the database")?;
            let url = format!(
                "sqlite://{}",
                dir.path().join("switchboard-demo.db").display()
            );
            (url, Some(dir))
        }
    };
    let carrier = SimCarrier::start(carrier_config())
        .await
        .context("starting the simulated carrier")?;
    let agent = ScriptedAgent::start(AgentConfig {
        greeting_delay_ms: 300,
        ..AgentConfig::default()
    })
    .await
    .context("starting the scripted agent")?;
    let app = Application::build(&settings(&args, &database_url, &carrier)?)
        .await
        .context("starting the server")?;
    let base = base_url(app.local_addr());
    let store = app.state().store.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));
    let agent_url = agent.ws_url();
    let seeded = tokio::select! {
        seeded = seed(&store, &base, &agent_url, args.contacts) => Some(seeded),
        () = &mut shutdown => None,
    };
    let mut progress = None;
    let mut failed = None;
    if let Some(Ok(seeded)) = &seeded {
        print_banner(&base, seeded, temporary.as_ref().map(|d| d.path()));
        let client = Client::with_key(&base, seeded.key.clone());
        progress = Some(tokio::spawn(follow(client, seeded.campaign)));
        tokio::select! {
            // The server failed by itself.
            result = &mut server => failed = Some(result),
            () = &mut shutdown => {}
        }
    }
    if let Some(progress) = progress {
        progress.abort();
    }
    say!("stopping: dialing ends, live calls get {SHUTDOWN_GRACE_SECS} s to finish");
    let result = match failed {
        Some(result) => result,
        None => {
            let _ = stop.send(());
            server.await
        }
    };
    carrier.shutdown().await;
    agent.shutdown().await;
    drop(temporary);
    if let Some(seeded) = seeded {
        seeded?;
    }
    result
        .context("the server task failed")?
        .context("serving HTTP")?;
    say!("demo stopped");
    Ok(())
}

fn print_banner(base: &str, seeded: &Seeded, temporary: Option<&std::path::Path>) {
    let Seeded {
        key,
        tenant,
        campaign,
        imported,
        cities,
    } = seeded;
    say!();
    say!("Switchboard demo: campaign {campaign} is running, dialing through a simulated");
    say!("carrier to a scripted agent in this process (no Twilio account, no real phone).");
    say!();
    say!("  dashboard  {base}/#key={key}&campaign={campaign}");
    say!("  api key    {key}  (supervisor key of tenant {tenant} \"Demo\")");
    say!(
        "  status     curl -H \"Authorization: Bearer {key}\" {base}/api/v1/campaigns/{campaign}/status"
    );
    say!("  cli        switchboard campaigns status {campaign} --url {base} --key {key}");
    if let Some(dir) = temporary {
        say!(
            "  database   {} (removed when the demo stops; --database sqlite://demo.db keeps one)",
            dir.join("switchboard-demo.db").display()
        );
    }
    say!();
    say!(
        "{imported} contacts in {} where it is daytime now, {LINES} lines at most; busy, \
         unanswered and call-back contacts are called again a minute or two later.",
        cities.join(", ")
    );
    say!("Ctrl-C stops the demo.");
    say!();
}

/// One progress line of the campaign's status.
fn progress_line(status: &Value, elapsed: Duration) -> String {
    let secs = elapsed.as_secs();
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    format!(
        "{:>2}:{:02}  {:<9} {}/{} contacts done, {} live calls | {} calls: {} answered, {} with the agent, {} interested",
        secs / 60,
        secs % 60,
        status["campaign"]["status"].as_str().unwrap_or("?"),
        n(&status["progress"]["done"]),
        n(&status["progress"]["total"]),
        n(&status["live"]["live_calls"]),
        n(&status["calls"]["attempts"]),
        n(&status["calls"]["answered"]),
        n(&status["calls"]["connected"]),
        n(&status["calls"]["successful"]),
    )
}

/// Prints a line whenever the campaign's figures change, until it ends.
async fn follow(client: Client, campaign: i64) {
    let started = Instant::now();
    let path = format!("/api/v1/campaigns/{campaign}/status");
    let mut last = String::new();
    let mut every = tokio::time::interval(PROGRESS_EVERY);
    loop {
        every.tick().await;
        let status = match client.send(Method::GET, &path, None).await {
            Ok(status) => status,
            Err(e) => {
                tracing::warn!(error = %e, "reading the campaign's status");
                continue;
            }
        };
        // The figures without the clock: a line only when something moved.
        let figures = progress_line(&status, Duration::ZERO);
        if figures != last {
            say!("{}", progress_line(&status, started.elapsed()));
            last = figures;
        }
        let over = status["campaign"]["status"]
            .as_str()
            .is_some_and(|s| matches!(s, "completed" | "stopped" | "failed"));
        if over {
            let reason = status["campaign"]["status_reason"].as_str().unwrap_or("");
            say!("the campaign is over ({reason}); the dashboard keeps its figures");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unspecified_listen_address_is_reached_on_loopback() {
        assert_eq!(
            base_url("0.0.0.0:8080".parse().unwrap()),
            "http://127.0.0.1:8080"
        );
        assert_eq!(base_url("[::]:80".parse().unwrap()), "http://[::1]:80");
        assert_eq!(
            base_url("127.0.0.2:9".parse().unwrap()),
            "http://127.0.0.2:9"
        );
    }

    #[test]
    fn a_progress_line_reads_the_status_figures() {
        let status = json!({
            "campaign": {"status": "active"},
            "progress": {"done": 3, "total": 40},
            "live": {"live_calls": 4},
            "calls": {"attempts": 7, "answered": 5, "connected": 4, "successful": 2}
        });
        assert_eq!(
            progress_line(&status, Duration::from_secs(75)),
            " 1:15  active    3/40 contacts done, 4 live calls | 7 calls: 5 answered, 4 with the agent, 2 interested"
        );
    }
}
