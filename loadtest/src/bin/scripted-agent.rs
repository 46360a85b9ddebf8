//! Runs the scripted agent until Ctrl-C and prints its WebSocket URL.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use switchboard_loadtest::{AgentConfig, Finish, Outcome, ScriptedAgent};

/// A demo AI agent speaking Twilio Media Streams: greets with a tone, listens, reports an
/// outcome to Switchboard with the call's token.
#[derive(Debug, Parser)]
#[command(name = "scripted-agent", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Milliseconds from `start` to the greeting.
    #[arg(long, default_value_t = 200)]
    greeting_delay_ms: u64,
    /// Milliseconds of greeting audio.
    #[arg(long, default_value_t = 2000)]
    talk_ms: u64,
    /// Milliseconds to listen after the greeting.
    #[arg(long, default_value_t = 3000)]
    listen_ms: u64,
    /// Outcome reported when the contact does not name one.
    #[arg(long, default_value = "interested")]
    outcome: Outcome,
    /// Digit that opts the callee out.
    #[arg(long, default_value = "9")]
    opt_out_digit: String,
    /// Keep the stream open after reporting until `stop` arrives.
    #[arg(long)]
    wait_for_stop: bool,
    /// Check `X-Twilio-Signature` on upgrades with this token (logged per call on exit).
    #[arg(long, env = "SCRIPTED_AGENT_SIGNATURE_TOKEN", hide_env_values = true)]
    signature_token: Option<String>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let config = AgentConfig {
        bind: args.listen,
        greeting_delay_ms: args.greeting_delay_ms,
        talk_ms: args.talk_ms,
        listen_ms: args.listen_ms,
        outcome: args.outcome,
        opt_out_digit: args.opt_out_digit,
        finish: if args.wait_for_stop {
            Finish::WaitForStop
        } else {
            Finish::Close
        },
        signature_token: args.signature_token,
        ..AgentConfig::default()
    };
    let agent = ScriptedAgent::start(config).await?;
    println!("{}", agent.ws_url());
    tokio::signal::ctrl_c().await?;
    for call in agent.calls() {
        let outcome = call.outcome.as_ref().map(|o| (o.outcome, o.http_status));
        eprintln!(
            "call {:?}: {} frames in, {} out, outcome {outcome:?}, signature {:?}, closed {:?}",
            call.call_id,
            call.frames_received,
            call.frames_sent,
            call.signature_valid,
            call.close_reason
        );
    }
    tokio::time::timeout(Duration::from_secs(10), agent.shutdown()).await?;
    Ok(())
}
