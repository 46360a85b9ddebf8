//! Runs N calls through the whole call path on this machine and prints the figures that
//! matter for a voice call: answer → agent first audio, and per-frame relay latency.
//!
//! Everything is real and on loopback: a Switchboard server on a fresh database, the
//! simulated Twilio carrier (signed callbacks, real-time 20 ms media), and the scripted
//! agent. Switchboard dials every call through the carrier's REST API.
//!
//! `cargo run --release -p switchboard-tests --bin relay-calls -- --calls 100`

use clap::Parser;
use serde_json::json;
use std::time::{Duration, Instant};
use switchboard_engine::store::AttemptStatus;
use switchboard_engine::store::testing::TestDb;
use switchboard_loadtest::{AgentConfig, ScriptedAgent, SimCarrier};
use switchboard_tests::{TestServer, answering_carrier, seed_calls};

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
    /// How long the agent talks, then listens, ms each.
    #[arg(long, default_value_t = 3000)]
    talk_ms: u64,
    /// Print the figures as JSON as well.
    #[arg(long)]
    json: bool,
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
    let server = TestServer::start(&db).await;
    let agent = ScriptedAgent::start(AgentConfig {
        greeting_delay_ms: args.greeting_ms,
        talk_ms: args.talk_ms,
        listen_ms: args.talk_ms,
        ..AgentConfig::default()
    })
    .await?;
    let config = answering_carrier(args.ring_ms).cps((args.cps > 0.0).then_some(args.cps));
    let carrier = SimCarrier::start(config).await?;

    let phones: Vec<String> = (0..args.calls)
        .map(|i| format!("+1415{}{:04}", 200 + i / 10_000, i % 10_000))
        .collect();
    let contacts: Vec<(&str, serde_json::Value)> =
        phones.iter().map(|p| (p.as_str(), json!({}))).collect();
    let (_, attempts) = seed_calls(server.store(), &agent.ws_url(), &contacts).await;
    let dialer = server.dialer(&carrier.base_url());

    let started = Instant::now();
    eprintln!(
        "dialing {} calls ({} backend)",
        args.calls,
        if args.postgres { "postgres" } else { "sqlite" }
    );
    let results =
        futures_util::future::join_all(attempts.iter().map(|a| dialer.dial(server.store(), a)))
            .await;
    let failed_dials = results.iter().filter(|r| r.is_err()).count();
    let dial_time = started.elapsed();

    let deadline = Instant::now() + Duration::from_secs(60 + args.calls as u64 / 5);
    loop {
        let totals = server.state.calls.totals.snapshot();
        let mut ended = 0;
        for a in &attempts {
            if server.store().attempt(a.id).await?.status == AttemptStatus::Ended {
                ended += 1;
            }
        }
        eprint!(
            "\r{ended}/{} calls ended, {} relayed",
            args.calls, totals.calls
        );
        if (ended == args.calls && totals.calls as usize >= args.calls - failed_dials)
            || Instant::now() > deadline
        {
            eprintln!();
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let totals = server.state.calls.totals.snapshot();
    let late_ticks: u64 = carrier.calls().iter().map(|c| c.late_ticks).sum();
    let figures = json!({
        "calls": args.calls,
        "backend": if args.postgres { "postgres" } else { "sqlite" },
        "failed_dials": failed_dials,
        "dial_seconds": dial_time.as_secs_f64(),
        "relayed": totals.calls,
        "frames_from_carrier": totals.frames_from_carrier,
        "frames_from_agent": totals.frames_from_agent,
        "late_carrier_frames": totals.gaps,
        "carrier_late_ticks": late_ticks,
        "answer_to_agent_audio_ms": {"p50": totals.first_audio_ms[0], "p99": totals.first_audio_ms[1], "max": totals.first_audio_ms[2], "calls": totals.calls_with_agent_audio},
        "relay_latency_us": {"p50": totals.latency_us[0], "p99": totals.latency_us[1], "p99.9": totals.latency_us[2], "max": totals.latency_us[3]},
        "greeting_delay_ms": args.greeting_ms,
    });
    println!(
        "calls relayed            {} of {} ({} dial failures)",
        totals.calls, args.calls, failed_dials
    );
    println!("frames carrier→agent     {}", totals.frames_from_carrier);
    println!("frames agent→carrier     {}", totals.frames_from_agent);
    println!(
        "answer → agent audio     p50 {} ms   p99 {} ms   max {} ms   (agent greets after {} ms)",
        totals.first_audio_ms[0],
        totals.first_audio_ms[1],
        totals.first_audio_ms[2],
        args.greeting_ms
    );
    println!(
        "relay latency            p50 {} µs   p99 {} µs   p99.9 {} µs   max {} µs",
        totals.latency_us[0], totals.latency_us[1], totals.latency_us[2], totals.latency_us[3]
    );
    println!(
        "late carrier frames      {} (gaps > 40 ms seen by the relay; carrier late ticks {late_ticks})",
        totals.gaps
    );
    if args.json {
        println!("{figures}");
    }
    carrier.shutdown().await;
    agent.shutdown().await;
    server.stop().await;
    Ok(())
}
