//! Runs a load scenario against Switchboard: starts the simulated carrier and the scripted
//! agent here, starts `switchboard serve` as its own process (or uses `--url`), runs a
//! campaign through the HTTP API, prints a line a second and ends with a report.
//!
//! `cargo build --release -p switchboard-api -p switchboard-loadtest &&
//!  target/release/loadtest --contacts 1000 --concurrency 1000 --ramp-secs 20 --duration-secs 300`

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use switchboard_loadtest::driver::{RunOptions, Scenario, run};

/// Load test: a campaign through Switchboard with simulated callees and agents.
#[derive(Debug, Parser)]
#[command(name = "loadtest", version)]
struct Args {
    /// Scenario file (.toml or .json); flags below override its values.
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Contacts to import and call.
    #[arg(long)]
    contacts: Option<u64>,
    /// Answer mix as shares: human,machine,busy,no_answer,failed (e.g. 0.7,0.1,0.1,0.1,0).
    #[arg(long, value_delimiter = ',', num_args = 5)]
    mix: Option<Vec<f64>>,
    /// Ring time range, ms: MIN,MAX.
    #[arg(long, value_delimiter = ',', num_args = 2)]
    ring_ms: Option<Vec<u64>>,
    /// Callee talk time range, ms: MIN,MAX (default: held for the whole run).
    #[arg(long, value_delimiter = ',', num_args = 2)]
    talk_ms: Option<Vec<u64>>,
    /// Agent greeting delay, ms.
    #[arg(long)]
    greeting_delay_ms: Option<u64>,
    /// How long the agent streams audio, ms (default: the whole run).
    #[arg(long)]
    agent_talk_ms: Option<u64>,
    /// Carrier calls per second (0: unlimited).
    #[arg(long)]
    cps: Option<f64>,
    /// Seconds to reach the target concurrency (0: as fast as Switchboard dials).
    #[arg(long)]
    ramp_secs: Option<u64>,
    /// Target concurrent calls (the campaign's max_concurrent_calls).
    #[arg(long)]
    concurrency: Option<u32>,
    /// Seconds the run lasts after the campaign starts.
    #[arg(long)]
    duration_secs: Option<u64>,
    /// Database of the started server (sqlite://FILE or postgres://…/DB).
    #[arg(long)]
    database_url: Option<String>,
    /// A running Switchboard to use instead of starting one.
    #[arg(long)]
    url: Option<String>,
    /// API key for --url.
    #[arg(long, env = "SWITCHBOARD_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Switchboard's pid (with --url), to read its CPU and memory.
    #[arg(long)]
    pid: Option<u32>,
    /// The switchboard binary (default: next to this one).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Directory for the started server's database and log.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Where to write the JSON report.
    #[arg(long, default_value = "loadtest-report.json")]
    out: PathBuf,
    /// No progress lines.
    #[arg(long)]
    quiet: bool,
}

impl Args {
    fn scenario(&self) -> Result<Scenario, String> {
        let mut s = match &self.scenario {
            Some(path) => Scenario::load(path).map_err(|e| e.to_string())?,
            None => Scenario::default(),
        };
        if let Some(v) = self.contacts {
            s.contacts = v;
        }
        if let Some(mix) = &self.mix {
            (s.human, s.machine, s.busy, s.no_answer, s.failed) =
                (mix[0], mix[1], mix[2], mix[3], mix[4]);
        }
        if let Some(r) = &self.ring_ms {
            s.ring_ms = [r[0], r[1]];
        }
        if let Some(t) = &self.talk_ms {
            s.talk_ms = Some([t[0], t[1]]);
        }
        if let Some(v) = self.greeting_delay_ms {
            s.greeting_delay_ms = v;
        }
        if let Some(v) = self.agent_talk_ms {
            s.agent_talk_ms = Some(v);
        }
        if let Some(v) = self.cps {
            s.cps = Some(v);
        }
        if let Some(v) = self.ramp_secs {
            s.ramp_secs = v;
        }
        if let Some(v) = self.concurrency {
            s.concurrency = v;
        }
        if let Some(v) = self.duration_secs {
            s.duration_secs = v;
        }
        if let Some(v) = &self.database_url {
            s.database_url = Some(v.clone());
        }
        s.check().map_err(|e| format!("scenario: {e}"))?;
        Ok(s)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let scenario = match args.scenario() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = RunOptions {
        url: args.url.clone(),
        api_key: args.api_key.clone(),
        pid: args.pid,
        binary: args.binary.clone(),
        dir: args.dir.clone(),
        progress: !args.quiet,
    };
    let report = match run(&scenario, &options).await {
        Ok(report) => report,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", report.text());
    match serde_json::to_string_pretty(&report) {
        Ok(json) => {
            if let Err(e) = std::fs::write(&args.out, json) {
                eprintln!("error: writing {}: {e}", args.out.display());
                return ExitCode::FAILURE;
            }
            println!("report written to {}", args.out.display());
        }
        Err(e) => eprintln!("error: encoding the report: {e}"),
    }
    ExitCode::SUCCESS
}
