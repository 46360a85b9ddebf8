//! Runs N calls through the whole call path on this machine and prints the figures that
//! matter for a voice call: answer → agent first audio, one-way frame latency through the
//! relay (carrier → agent and agent → carrier, timed by the simulators), lost and late
//! frames, and what Switchboard spent in CPU and memory.
//!
//! Everything is real and on loopback: a Switchboard server on a fresh database, the
//! simulated Twilio carrier (signed callbacks, real-time 20 ms media), and the scripted
//! agent. The calls are seeded in the database and dialed through the carrier's REST API.
//! With `--spawn`, Switchboard is the `switchboard` binary in its own process (its CPU and
//! memory measured apart from the simulators'); otherwise it runs in this process.
//!
//! `cargo run --release -p switchboard-tests --bin relay-calls -- --calls 100`
//! `cargo build --release -p switchboard-api -p switchboard-tests &&
//!  target/release/relay-calls --spawn --calls 1000 --hold-secs 300`

use clap::Parser;
use secrecy::SecretString;
use serde_json::json;
use std::time::{Duration, Instant};
use switchboard_actors::dial::{DialSettings, Dialer};
use switchboard_actors::urls::PublicUrls;
use switchboard_engine::store::testing::TestDb;
use switchboard_loadtest::driver::measure::{Sampler, answer_to_agent_audio};
use switchboard_loadtest::driver::report::{FrameFigures, Latency};
use switchboard_loadtest::driver::server::{CarrierAccess, SpawnedServer, sibling_binary};
use switchboard_loadtest::probe::{Direction, FrameProbe};
use switchboard_loadtest::{AgentConfig, Finish, ScriptedAgent, SimCarrier};
use switchboard_media::{TwilioClient, twilio::client::TwilioConfig};
use switchboard_tests::{
    ACCOUNT_SID, AUTH_TOKEN, CALLER_ID, TestServer, answering_carrier, seed_calls,
};

/// Runs N calls through carrier → Switchboard relay → agent and prints latency percentiles.
#[derive(Parser, Debug)]
#[command(name = "relay-calls")]
struct Args {
    /// How many calls.
    #[arg(long, default_value_t = 100)]
    calls: usize,
    /// Use PostgreSQL (127.0.0.1:5432, a fresh database) instead of SQLite.
    #[arg(long)]
    postgres: bool,
    /// Carrier calls per second (0: no limit).
    #[arg(long, default_value_t = 0.0)]
    cps: f64,
    /// Ring time, ms.
    #[arg(long, default_value_t = 500)]
    ring_ms: u64,
    /// Agent greeting delay after the answer, ms.
    #[arg(long, default_value_t = 200)]
    greeting_ms: u64,
    /// How long the agent talks, then listens, ms each (without --hold-secs).
    #[arg(long, default_value_t = 3000)]
    talk_ms: u64,
    /// Hold every call this long with audio both ways all the time; the callee hangs up.
    #[arg(long)]
    hold_secs: Option<u64>,
    /// Run Switchboard as its own process (the switchboard binary next to this one).
    #[arg(long)]
    spawn: bool,
    /// Print the figures as JSON as well.
    #[arg(long)]
    json: bool,
}

/// Switchboard, in this process or its own.
enum Server {
    InProcess(TestServer),
    Spawned(SpawnedServer),
}

impl Server {
    fn url(&self) -> String {
        match self {
            Server::InProcess(s) => s.url(""),
            Server::Spawned(s) => s.url.clone(),
        }
    }

    fn pid(&self) -> Option<u32> {
        match self {
            Server::InProcess(_) => None,
            Server::Spawned(s) => Some(s.pid()),
        }
    }
}

/// A dialer through the simulated carrier with the server's own stream secret (the call
/// token secret it keeps in the database, created when the server first started).
fn dialer(server_url: &str, carrier_base_url: &str, stream_secret: String) -> Dialer {
    let config = TwilioConfig::new(ACCOUNT_SID, SecretString::from(AUTH_TOKEN.to_owned()))
        .with_api_base(carrier_base_url.to_owned());
    let twilio = TwilioClient::new(config).expect("a valid Twilio configuration");
    let settings = DialSettings {
        from: CALLER_ID.into(),
        ..DialSettings::default()
    };
    Dialer::new(
        twilio,
        PublicUrls::new(server_url),
        settings,
        SecretString::from(stream_secret),
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let db = if args.postgres {
        TestDb::postgres()
            .await
            .ok_or("PostgreSQL is unreachable")?
    } else {
        TestDb::sqlite().await
    };
    let probe = FrameProbe::new();
    let hold_ms = args.hold_secs.map(|s| s * 1_000);
    let agent = ScriptedAgent::start(AgentConfig {
        greeting_delay_ms: args.greeting_ms,
        talk_ms: hold_ms.map_or(args.talk_ms, |ms| ms + 60_000),
        listen_ms: hold_ms.map_or(args.talk_ms, |ms| ms + 60_000),
        finish: if hold_ms.is_some() {
            Finish::WaitForStop
        } else {
            Finish::Close
        },
        probe: Some(probe.clone()),
        ..AgentConfig::default()
    })
    .await?;
    let mut config = answering_carrier(args.ring_ms).cps((args.cps > 0.0).then_some(args.cps));
    if let Some(ms) = hold_ms {
        config.talk_ms = switchboard_loadtest::Millis::Fixed(ms);
    }
    config.probe = Some(probe.clone());
    let carrier = SimCarrier::start(config).await?;

    let phones: Vec<String> = (0..args.calls)
        .map(|i| format!("+1415{}{:04}", 200 + i / 10_000, i % 10_000))
        .collect();
    let contacts: Vec<(&str, serde_json::Value)> =
        phones.iter().map(|p| (p.as_str(), json!({}))).collect();
    let (_, attempts) = seed_calls(db.store(), &agent.ws_url(), &contacts).await;
    let server = if args.spawn {
        let dir = std::env::temp_dir().join(format!("relay-calls-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let access = CarrierAccess {
            api_base: carrier.base_url(),
            account_sid: ACCOUNT_SID.to_owned(),
            auth_token: AUTH_TOKEN.to_owned(),
            cps: None,
        };
        Server::Spawned(
            SpawnedServer::start(&sibling_binary()?, &dir, Some(db.url()), &access).await?,
        )
    } else {
        Server::InProcess(TestServer::start(&db).await)
    };
    let secret = db
        .store()
        .server_setting_or_init(switchboard_engine::call_token::SECRET_SETTING, || {
            unreachable!("the server created its call token secret when it started")
        })
        .await?;
    let dialer = dialer(&server.url(), &carrier.base_url(), secret);
    let mut sampler = Sampler::start(server.pid(), Duration::from_secs(2), &carrier).await;

    eprintln!(
        "dialing {} calls ({} backend, switchboard {})",
        args.calls,
        if args.postgres { "postgres" } else { "sqlite" },
        if args.spawn {
            "in its own process"
        } else {
            "in this process"
        }
    );
    let started = Instant::now();
    // The server may run in another process: the dials' writes go through a writer here.
    let writer = switchboard_actors::EventWriter::start(
        db.store().clone(),
        switchboard_actors::WriterSettings::default(),
    );
    let dial_writer = writer.clone();
    let dials = tokio::spawn(async move {
        let results =
            futures_util::future::join_all(attempts.iter().map(|a| dialer.dial(&writer, a))).await;
        (
            results.iter().filter(|r| r.is_err()).count(),
            started.elapsed(),
        )
    });

    let hold_secs = args.hold_secs.unwrap_or(0);
    let deadline = started + Duration::from_secs(60 + args.calls as u64 / 5 + hold_secs);
    let mut hold_end = None;
    loop {
        let tick = sampler.tick(&carrier, &agent).await;
        eprintln!("{}", tick.line());
        let (ended, streaming) = (tick.ended, tick.streaming);
        let stats = carrier.stats();
        if hold_end.is_none() && stats.streams_closed > 0 {
            // The first hang-up ends the hold window.
            hold_end = Some(sampler.timeline.len().saturating_sub(1));
        }
        let dialed_all = dials.is_finished();
        if (dialed_all && ended as usize >= args.calls && streaming == 0)
            || Instant::now() > deadline
        {
            break;
        }
    }
    let (failed_dials, dial_time) = dials.await?;
    let summary = sampler.summary(hold_end);
    let answer_to_audio = answer_to_agent_audio(&carrier).map(|h| Latency::of(&h));
    let late_ticks: u64 = carrier.calls().iter().map(|c| c.late_ticks).sum();
    let to_agent = FrameFigures::from(&probe.snapshot(Direction::CarrierToAgent));
    let to_carrier = FrameFigures::from(&probe.snapshot(Direction::AgentToCarrier));

    println!(
        "calls                    {} dialed in {:.1} s ({} dial failures), bridged {}",
        args.calls,
        dial_time.as_secs_f64(),
        failed_dials,
        agent.stats().accepted
    );
    println!(
        "concurrent calls         peak {}  held ≥ {} for {} s",
        summary.peak, summary.held, summary.hold_seconds
    );
    println!(
        "originations/s           peak {}  (carrier cps limit {})",
        summary.peak_originations,
        if args.cps > 0.0 {
            args.cps.to_string()
        } else {
            "none".into()
        }
    );
    if let Some(a) = &answer_to_audio {
        println!(
            "answer → agent audio     p50 {} ms   p99 {} ms   max {} ms   (agent greets after {} ms)",
            a.p50, a.p99, a.max, args.greeting_ms
        );
    }
    for (name, f) in [
        ("carrier → agent", &to_agent),
        ("agent → carrier", &to_carrier),
    ] {
        let l = &f.latency_us;
        println!(
            "{name:<24} p50 {} µs   p99 {} µs   p99.9 {} µs   max {} µs   frames {}/{}  lost {}  late {}",
            l.p50, l.p99, l.p999, l.max, f.received, f.sent, f.lost, f.late
        );
    }
    println!("carrier late ticks       {late_ticks} (frames the carrier itself sent > 10 ms late)");
    let mut writers = vec![("event writer (dials)", dial_writer.snapshot())];
    if let Server::InProcess(s) = &server {
        writers.push(("event writer (server)", s.writer().snapshot()));
    }
    for (name, w) in &writers {
        println!(
            "{name:<24} {} writes in {} transactions (mean {:.1}, largest {}) in {:.2} s, {} failed",
            w.writes, w.batches, w.mean_batch, w.largest_batch, w.busy_seconds, w.failed_writes
        );
    }
    let costs = if args.spawn {
        vec![
            ("switchboard", &summary.server),
            ("simulators", &summary.sims),
        ]
    } else {
        vec![("switchboard + simulators", &summary.sims)]
    };
    for (name, cost) in costs {
        if let Some(c) = cost {
            println!(
                "{name:<24} cpu idle {:.1}% hold {:.1}%  rss idle {:.1} MiB hold {:.1} MiB",
                c.idle_cores * 100.0,
                c.hold_cores * 100.0,
                c.idle_rss_kib as f64 / 1024.0,
                c.hold_rss_kib as f64 / 1024.0
            );
            if let (Some(cpu), Some(rss)) = (c.cpu_pct_per_call, c.rss_kib_per_call) {
                println!(
                    "{:<24} per live call: cpu {cpu:.3}% of a core  rss {rss:.1} KiB",
                    ""
                );
            }
        }
    }
    if args.json {
        let figures = json!({
            "calls": args.calls,
            "backend": if args.postgres { "postgres" } else { "sqlite" },
            "spawned": args.spawn,
            "failed_dials": failed_dials,
            "dial_seconds": dial_time.as_secs_f64(),
            "peak_concurrent": summary.peak,
            "held_concurrent": summary.held,
            "hold_seconds": summary.hold_seconds,
            "peak_originations_per_sec": summary.peak_originations,
            "answer_to_agent_audio_ms": answer_to_audio,
            "carrier_to_agent": to_agent,
            "agent_to_carrier": to_carrier,
            "carrier_late_ticks": late_ticks,
            "server": summary.server,
            "sims": summary.sims,
            "event_writers": writers.iter().map(|(name, w)| json!({"name": name, "snapshot": w})).collect::<Vec<_>>(),
        });
        println!("{figures}");
    }
    carrier.shutdown().await;
    agent.shutdown().await;
    match server {
        Server::InProcess(s) => s.stop().await,
        Server::Spawned(s) => s.stop().await,
    }
    Ok(())
}
