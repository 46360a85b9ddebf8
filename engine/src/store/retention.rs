//! Retention: how long call records, transcripts, call events and webhook delivery logs
//! are kept, and the purge that applies it in bounded batches.
//!
//! Each kind has its own age (`None`: kept forever), measured from when a call ended (a
//! delivery: when it was delivered or given up). Only settled calls are touched: ended, and
//! not waiting for their campaign to apply the retry policy (queue entry `in_progress`).
//! Live calls, pending webhook deliveries, suppressions and their history are never touched.
//!
//! - Transcripts: the `transcript` and `notes` of a call's detail are removed; the call
//!   record stays.
//! - Call events: deleted, except the two kinds campaign statistics count (`agent.bridged`,
//!   `agent.first_audio`), which carry no personal data and go with their call record.
//! - Call records: the attempt is deleted with its events. A campaign's figures then cover
//!   the calls still kept (its queue, and so its retry and attempt limits, is not touched).
//! - Webhook deliveries: delivered or failed ones are deleted with their send attempts.
//!
//! Every batch is its own short write transaction (at most `batch` rows), so a purge never
//! holds SQLite's write lock for long; the purge yields between batches.

use super::BeginWrite as _;
use super::{Backend, Store, with_db};
use crate::error::Result;
use crate::time::to_millis;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

/// How long each kind of record is kept, in days (`None`: forever).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Call records (attempts) and their events.
    pub call_records_days: Option<u32>,
    /// Transcripts and agent notes of calls.
    pub transcripts_days: Option<u32>,
    /// Call events.
    pub events_days: Option<u32>,
    /// Webhook delivery logs (delivered or failed deliveries and their attempts).
    pub webhook_deliveries_days: Option<u32>,
    /// Most rows one batch (one transaction) touches.
    pub batch: u32,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            call_records_days: Some(400),
            transcripts_days: Some(90),
            events_days: Some(90),
            webhook_deliveries_days: Some(30),
            batch: 500,
        }
    }
}

/// What one purge removed, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    /// Calls whose transcript and notes were removed.
    pub transcripts: u64,
    /// Call events deleted (apart from those that went with their call).
    pub events: u64,
    /// Call records deleted.
    pub call_records: u64,
    /// Webhook deliveries deleted.
    pub webhook_deliveries: u64,
}

impl PurgeReport {
    /// Rows touched in all.
    pub fn total(&self) -> u64 {
        self.transcripts + self.events + self.call_records + self.webhook_deliveries
    }
}

/// The kinds, in the order a purge handles them.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Transcripts,
    Events,
    CallRecords,
    WebhookDeliveries,
}

/// SQL over attempt `a`: settled (ended, its campaign done with it) before cutoff `$1`.
const SETTLED_BEFORE: &str = "a.status = 'ended' \
     AND (a.ended_at < $1 OR (a.ended_at IS NULL AND a.reserved_at < $1)) \
     AND NOT EXISTS (SELECT 1 FROM campaign_contacts q WHERE q.campaign_id = a.campaign_id \
         AND q.contact_id = a.contact_id AND q.state = 'in_progress')";

/// SQL over attempt `a`: settled, whatever its age.
const SETTLED: &str = "a.status = 'ended' \
     AND NOT EXISTS (SELECT 1 FROM campaign_contacts q WHERE q.campaign_id = a.campaign_id \
         AND q.contact_id = a.contact_id AND q.state = 'in_progress')";

/// The statement that purges one batch of `kind` (`$1` cutoff in ms, `$2` batch size).
fn batch_sql(kind: Kind, backend: Backend) -> String {
    match kind {
        Kind::Transcripts => {
            let (strip, has) = match backend {
                Backend::Sqlite => (
                    "json_remove(detail, '$.transcript', '$.notes')",
                    "(json_type(a.detail, '$.transcript') IS NOT NULL \
                     OR json_type(a.detail, '$.notes') IS NOT NULL)",
                ),
                Backend::Postgres => (
                    "detail - 'transcript' - 'notes'",
                    "(a.detail ? 'transcript' OR a.detail ? 'notes')",
                ),
            };
            format!(
                "UPDATE call_attempts SET detail = {strip} WHERE id IN \
                 (SELECT a.id FROM call_attempts a WHERE {SETTLED_BEFORE} AND {has} LIMIT $2)"
            )
        }
        Kind::Events => format!(
            "DELETE FROM call_events WHERE id IN (SELECT e.id FROM call_events e \
             JOIN call_attempts a ON a.id = e.attempt_id WHERE e.at < $1 \
             AND e.kind NOT IN ('agent.bridged', 'agent.first_audio') AND {SETTLED} LIMIT $2)"
        ),
        Kind::CallRecords => format!(
            "DELETE FROM call_attempts WHERE id IN \
             (SELECT a.id FROM call_attempts a WHERE {SETTLED_BEFORE} LIMIT $2)"
        ),
        Kind::WebhookDeliveries => "DELETE FROM webhook_deliveries WHERE id IN \
             (SELECT id FROM webhook_deliveries WHERE status <> 'pending' AND finished_at < $1 LIMIT $2)"
            .to_owned(),
    }
}

impl Store {
    /// Applies the retention policy as of `now`: removes, batch by batch, what is older than
    /// its kind's age (see the module doc). Safe to run from several processes at once.
    pub async fn purge(&self, policy: &RetentionPolicy, now: DateTime<Utc>) -> Result<PurgeReport> {
        let mut report = PurgeReport::default();
        for (kind, days) in [
            (Kind::Transcripts, policy.transcripts_days),
            (Kind::Events, policy.events_days),
            (Kind::CallRecords, policy.call_records_days),
            (Kind::WebhookDeliveries, policy.webhook_deliveries_days),
        ] {
            let Some(days) = days.filter(|d| *d > 0) else {
                continue;
            };
            let cutoff = to_millis(now - TimeDelta::days(i64::from(days)));
            let n = self.purge_kind(kind, cutoff, policy.batch.max(1)).await?;
            match kind {
                Kind::Transcripts => report.transcripts = n,
                Kind::Events => report.events = n,
                Kind::CallRecords => report.call_records = n,
                Kind::WebhookDeliveries => report.webhook_deliveries = n,
            }
        }
        Ok(report)
    }

    /// Purges `kind` older than `cutoff` in batches of `batch` until a batch comes back short.
    async fn purge_kind(&self, kind: Kind, cutoff: i64, batch: u32) -> Result<u64> {
        let sql = batch_sql(kind, self.backend());
        let mut total = 0;
        loop {
            let n = with_db!(self, |pool| {
                let mut tx = pool.begin_write().await?;
                let n = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(cutoff)
                    .bind(i64::from(batch))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                Ok::<u64, sqlx::Error>(n)
            })?;
            total += n;
            if n < u64::from(batch) {
                return Ok(total);
            }
            tokio::task::yield_now().await;
        }
    }
}
