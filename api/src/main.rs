//! `switchboard`: run the server, or apply migrations.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::process::ExitCode;
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
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (HTTP on SWITCHBOARD_LISTEN, default 127.0.0.1:8080).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
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
    let settings = Settings::load()?;
    init_logging(&settings);
    match cli.command {
        Command::Serve => serve(settings).await,
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
