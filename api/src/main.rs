//! `switchboard`: run the server, apply migrations, manage tenants and keys, and operate
//! contacts and campaigns through the API.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::process::ExitCode;
use switchboard_api::cli::{
    CampaignsCommand, ContactsCommand, KeysCommand, OperatorsCommand, Remote, TenantsCommand,
};
use switchboard_api::config::LogFormat;
use switchboard_api::{Application, Settings};
use switchboard_engine::store::Store;
use tracing_subscriber::EnvFilter;

/// Switchboard runs outbound voice campaigns.
#[derive(Parser)]
#[command(name = "switchboard", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (HTTP on SWITCHBOARD_LISTEN, default 127.0.0.1:8080).
    Serve,
    /// Run a campaign on this machine with nothing to configure: a simulated carrier and a
    /// scripted agent in this process, a fresh database, and the dashboard URL to watch it.
    #[cfg(feature = "demo")]
    Demo(switchboard_api::demo::DemoArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Exit 0 when the server at SWITCHBOARD_LISTEN answers /readyz with 200 (a container
    /// health check: the image has no curl).
    Healthcheck,
    /// Apply the retention policy once now (what the server's purge job does) and exit.
    Purge,
    /// Tenants (direct database access).
    #[command(subcommand)]
    Tenants(TenantsCommand),
    /// API keys of a tenant (direct database access).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Operator keys: every tenant's live view, no tenant's data (direct database access).
    #[command(subcommand)]
    Operators(OperatorsCommand),
    /// Contacts, through the API (--url, --key).
    #[command(subcommand)]
    Contacts(ContactsCommand),
    /// Campaigns, through the API (--url, --key).
    #[command(subcommand)]
    Campaigns(CampaignsCommand),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Contacts(command) => {
            return switchboard_api::cli::contacts(&cli.remote, command).await;
        }
        Command::Campaigns(command) => {
            return switchboard_api::cli::campaigns(&cli.remote, command).await;
        }
        // The demo reads no settings: it must not reach a production database or account.
        #[cfg(feature = "demo")]
        Command::Demo(args) => {
            init_demo_logging();
            return switchboard_api::demo::run(args, shutdown_signal()).await;
        }
        _ => {}
    }
    let settings = Settings::load()?;
    if matches!(
        cli.command,
        Command::Serve | Command::Migrate | Command::Purge
    ) {
        init_logging(&settings);
    }
    match cli.command {
        Command::Contacts(_) | Command::Campaigns(_) => Ok(()),
        #[cfg(feature = "demo")]
        Command::Demo(_) => Ok(()),
        Command::Tenants(command) => {
            switchboard_api::cli::tenants(&open(&settings).await?, command).await
        }
        Command::Keys(command) => {
            switchboard_api::cli::keys(&open(&settings).await?, command).await
        }
        Command::Operators(command) => {
            switchboard_api::cli::operators(&open(&settings).await?, command).await
        }
        Command::Serve => serve(settings).await,
        Command::Healthcheck => healthcheck(&settings).await,
        Command::Purge => {
            let policy = settings.retention().map_err(anyhow::Error::msg)?;
            let store = open(&settings).await?;
            let report = store
                .purge(&policy, chrono::Utc::now())
                .await
                .context("purging")?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        Command::Migrate => {
            let store = Store::connect(settings.database_url())
                .await
                .context("opening the database")?;
            store.migrate().await.context("applying migrations")?;
            tracing::info!(backend = ?store.backend(), "migrations applied");
            Ok(())
        }
    }
}

/// The database, migrated (the tenant commands may be the first thing run).
async fn open(settings: &Settings) -> anyhow::Result<Store> {
    let store = Store::connect(settings.database_url())
        .await
        .context("opening the database")?;
    store.migrate().await.context("applying migrations")?;
    Ok(store)
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(&settings).await?;
    tracing::info!(addr = %app.local_addr(), backend = ?app.state().store.backend(), "switchboard listening");
    app.run(shutdown_signal()).await.context("serving HTTP")?;
    tracing::info!("switchboard stopped");
    Ok(())
}

fn init_logging(settings: &Settings) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.log));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match settings.log_format {
        LogFormat::Json => builder.json().with_current_span(true).init(),
        LogFormat::Text => builder.init(),
    }
}

/// The demo's logs: warnings and errors (or `RUST_LOG`) on stderr, so that its stdout
/// stays the dashboard URL and the campaign's progress.
#[cfg(feature = "demo")]
fn init_demo_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

/// Asks the local server whether it is ready (an address bound to every interface is
/// asked on loopback).
async fn healthcheck(settings: &Settings) -> anyhow::Result<()> {
    let mut addr = settings.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let response = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .build()?
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .with_context(|| format!("no answer from http://{addr}/readyz"))?;
    anyhow::ensure!(
        response.status().is_success(),
        "not ready: {} {}",
        response.status(),
        response.text().await.unwrap_or_default()
    );
    println!("ready");
    Ok(())
}
