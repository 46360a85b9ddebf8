//! The purge job: a task started with the server that applies the retention policy
//! ([`switchboard_engine::store::RetentionPolicy`]) at start and then every interval, and
//! counts what it removed (`switchboard_retention_purged_rows_total{kind}`).
//!
//! The purge itself works in short batches (see the store's `retention` module), so the job
//! never holds a long write lock; a failed run is logged and tried again at the next
//! interval. Several processes on one database may each run it: purging is idempotent.

use std::time::Duration;
use switchboard_engine::store::{PurgeReport, RetentionPolicy, Store};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The handle to a running purge job.
pub struct PurgeJob {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl PurgeJob {
    /// Starts the job: a purge now, then one every `interval`.
    pub fn start(store: Store, policy: RetentionPolicy, interval: Duration) -> PurgeJob {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut every = tokio::time::interval(interval);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    _ = stopped.changed() => return,
                }
                tokio::select! {
                    _ = run_once(&store, &policy) => {}
                    // Safe to abandon: committed batches stay, the one in flight rolls back.
                    _ = stopped.changed() => return,
                }
            }
        });
        PurgeJob { stop, task }
    }

    /// Stops the job (a purge under way stops at once; its committed batches stay) and waits
    /// for it.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// One purge as of now, logged and counted.
pub async fn run_once(store: &Store, policy: &RetentionPolicy) -> Option<PurgeReport> {
    match store.purge(policy, chrono::Utc::now()).await {
        Ok(report) => {
            crate::metrics::retention_purged(&report);
            if report.total() > 0 {
                tracing::info!(
                    transcripts = report.transcripts,
                    events = report.events,
                    call_records = report.call_records,
                    webhook_deliveries = report.webhook_deliveries,
                    "retention purge"
                );
            }
            Some(report)
        }
        Err(e) => {
            tracing::warn!(error = %e, "retention purge failed; trying again at the next interval");
            None
        }
    }
}
