//! A campaign's attempts over time, in fixed buckets by reservation time: how many were
//! dialed, answered, reached the agent and were abandoned (same definitions as
//! [`super::CallStats`]), for the dashboard's charts.

use super::call_history::{ABANDON_AFTER_MS, abandoned_sql};
use super::{Store, count, with_db};
use crate::error::{Error, Result};
use crate::time::{from_millis, now, to_millis};
use crate::{CampaignId, TenantId};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// One bucket of a campaign's attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimeBucket {
    /// The bucket's start (attempts reserved in `[start, start + bucket)`).
    pub start: DateTime<Utc>,
    /// Attempts reserved (dialed or about to be).
    pub dialed: u64,
    /// Attempts answered (by a person or a machine).
    pub answered: u64,
    /// Attempts that reached the agent.
    pub connected: u64,
    /// Attempts answered by a person whose agent was not heard within 2 seconds.
    pub abandoned: u64,
}

/// Shortest and longest bucket, in seconds.
pub const BUCKET_SECS: std::ops::RangeInclusive<u32> = 1..=86_400;

impl Store {
    /// The campaign's attempts in buckets of `bucket_secs` seconds, oldest first; buckets
    /// without attempts are left out. Scoped to the tenant: another tenant's campaign
    /// yields nothing.
    pub async fn campaign_timeseries(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
        bucket_secs: u32,
    ) -> Result<Vec<TimeBucket>> {
        if !BUCKET_SECS.contains(&bucket_secs) {
            return Err(Error::invalid(
                "timeseries",
                "bucket_secs",
                format!(
                    "{bucket_secs} is out of range: expected {} to {}",
                    BUCKET_SECS.start(),
                    BUCKET_SECS.end()
                ),
            ));
        }
        let bridged = "EXISTS (SELECT 1 FROM call_events e WHERE e.attempt_id = a.id AND e.kind = 'agent.bridged')";
        let sum = |cond: &str| {
            format!("CAST(COALESCE(SUM(CASE WHEN {cond} THEN 1 ELSE 0 END), 0) AS BIGINT)")
        };
        let sql = format!(
            "SELECT CAST((a.reserved_at / $3) * $3 AS BIGINT) AS bucket, COUNT(*), {}, {}, {} \
             FROM call_attempts a WHERE a.tenant_id = $1 AND a.campaign_id = $2 \
             GROUP BY bucket ORDER BY bucket",
            sum("a.answered_at IS NOT NULL"),
            sum(bridged),
            sum(&abandoned_sql(self.backend(), "$4")),
        );
        let settled = to_millis(now()) - ABANDON_AFTER_MS;
        let rows: Vec<(i64, i64, i64, i64, i64)> = with_db!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(tenant.0)
                .bind(campaign.0)
                .bind(i64::from(bucket_secs) * 1000)
                .bind(settled)
                .fetch_all(pool)
                .await
        })?;
        Ok(rows
            .into_iter()
            .map(
                |(start, dialed, answered, connected, abandoned)| TimeBucket {
                    start: from_millis(start),
                    dialed: count(dialed),
                    answered: count(answered),
                    connected: count(connected),
                    abandoned: count(abandoned),
                },
            )
            .collect())
    }
}
