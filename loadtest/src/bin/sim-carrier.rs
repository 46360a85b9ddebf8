//! Runs the simulated Twilio carrier until Ctrl-C and prints its base URL.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use switchboard_loadtest::{AnswerMix, CallbackPolicy, CarrierConfig, Millis, SimCarrier};

/// A Twilio-compatible Calls API on loopback that rings, answers, sends signed status
/// callbacks and opens real media streams.
#[derive(Debug, Parser)]
#[command(name = "sim-carrier", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Account SID accepted in paths and Basic auth.
    #[arg(
        long,
        env = "SIM_TWILIO_ACCOUNT_SID",
        default_value = "AC00000000000000000000000000000000"
    )]
    account_sid: String,
    /// Auth token: Basic auth password and signature key.
    #[arg(
        long,
        env = "SIM_TWILIO_AUTH_TOKEN",
        default_value = "sim-auth-token",
        hide_env_values = true
    )]
    auth_token: String,
    /// Calls per second that start dialling (0 for no limit).
    #[arg(long, default_value_t = 1.0)]
    cps: f64,
    /// Dial starts allowed back to back before pacing applies.
    #[arg(long, default_value_t = 1)]
    burst: u32,
    /// Seed of the random draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Ring time range in milliseconds, `MIN..MAX` or a single value.
    #[arg(long, default_value = "2000..8000", value_parser = parse_millis)]
    ring_ms: Millis,
    /// Talk time in milliseconds, `MIN..MAX`, a single value or `exp:MEAN`.
    #[arg(long, default_value = "exp:30000", value_parser = parse_millis)]
    talk_ms: Millis,
    /// Time asynchronous machine detection takes, in milliseconds (`MIN..MAX` or a value).
    #[arg(long, default_value = "1500..4000", value_parser = parse_millis)]
    amd_ms: Millis,
    /// Milliseconds a `<Say>` plays per character of its text.
    #[arg(long, default_value_t = 60)]
    say_ms_per_char: u64,
    /// Longest a `<Say>` plays, in milliseconds.
    #[arg(long, default_value_t = 20_000)]
    say_max_ms: u64,
    /// Weight of calls answered by a person.
    #[arg(long, default_value_t = 0.55)]
    human: f64,
    /// Weight of calls answered by a machine.
    #[arg(long, default_value_t = 0.15)]
    machine: f64,
    /// Weight of busy calls.
    #[arg(long, default_value_t = 0.10)]
    busy: f64,
    /// Weight of unanswered calls.
    #[arg(long, default_value_t = 0.15)]
    no_answer: f64,
    /// Weight of failed calls.
    #[arg(long, default_value_t = 0.05)]
    failed: f64,
    /// Deliver every status callback twice.
    #[arg(long)]
    duplicate_callbacks: bool,
    /// Deliver status callbacks in swapped pairs.
    #[arg(long)]
    out_of_order_callbacks: bool,
    /// Share of status callbacks delivered twice (Twilio retries; seeded).
    #[arg(long, default_value_t = 0.1)]
    duplicate_share: f64,
    /// Deliver a call's status callbacks one after the other, in order (friendlier than
    /// Twilio).
    #[arg(long)]
    callbacks_in_order: bool,
    /// Create-call requests allowed in flight at once (429 / 20429 past it); 0: no limit.
    #[arg(long, default_value_t = switchboard_loadtest::DEFAULT_API_CONCURRENCY)]
    api_concurrency: u32,
}

/// `N`, `MIN..MAX` or `exp:MEAN` (exponential, cut at ten times the mean).
fn parse_millis(text: &str) -> Result<Millis, String> {
    let number = |t: &str| t.trim().parse::<u64>().map_err(|e| format!("{t:?}: {e}"));
    if let Some(mean) = text.strip_prefix("exp:") {
        let mean = number(mean)?;
        return Ok(Millis::Exponential {
            mean,
            max: mean.saturating_mul(10),
        });
    }
    match text.split_once("..") {
        Some((min, max)) => Ok(Millis::Uniform {
            min: number(min)?,
            max: number(max)?,
        }),
        None => Ok(Millis::Fixed(number(text)?)),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let config = CarrierConfig {
        bind: args.listen,
        cps: (args.cps > 0.0).then_some(args.cps),
        burst: args.burst,
        seed: args.seed,
        mix: AnswerMix {
            human: args.human,
            machine: args.machine,
            busy: args.busy,
            no_answer: args.no_answer,
            failed: args.failed,
        },
        ring_ms: args.ring_ms,
        talk_ms: args.talk_ms,
        amd_ms: args.amd_ms,
        say_ms_per_char: args.say_ms_per_char,
        say_max_ms: args.say_max_ms,
        callbacks: {
            let mut policy = if args.callbacks_in_order {
                CallbackPolicy::in_order()
            } else {
                CallbackPolicy::default()
            };
            policy.duplicate_share = args.duplicate_share;
            policy.duplicate_all = args.duplicate_callbacks;
            policy.swapped_pairs = args.out_of_order_callbacks;
            policy
        },
        api_concurrency: (args.api_concurrency > 0).then_some(args.api_concurrency),
        ..CarrierConfig::new(args.account_sid, args.auth_token)
    };
    let carrier = SimCarrier::start(config).await?;
    println!("{}", carrier.base_url());
    tokio::signal::ctrl_c().await?;
    let calls = carrier.calls();
    let ended = calls.iter().filter(|c| c.ended_at.is_some()).count();
    eprintln!(
        "{} calls created, {ended} ended; shutting down",
        calls.len()
    );
    tokio::time::timeout(Duration::from_secs(10), carrier.shutdown()).await?;
    Ok(())
}
