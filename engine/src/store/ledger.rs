//! What the runtime reads back after a restart to pace a campaign: its abandonment history
//! and the calls a tenant has live.

use super::{Backend, Store, with_db};
use crate::error::Result;
use crate::time::{from_millis, to_millis};
use crate::{CampaignId, TenantId};
use chrono::{DateTime, Utc};

impl Store {
    /// Every call of the campaign a person answered since `since` whose abandonment was
    /// judged (`detail.abandoned`), oldest first: when it was answered and whether it
    /// was abandoned. A call that machine detection later found to be a machine
    /// (`detail.answered_by` `machine_*` or `fax`) is left out, whatever its verdict.
    pub async fn abandonment_history(
        &self,
        campaign: CampaignId,
        since: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, bool)>> {
        let sql = match self.backend() {
            Backend::Sqlite => {
                "SELECT answered_at, json_extract(detail, '$.abandoned') = 1 FROM call_attempts \
                 WHERE campaign_id = $1 AND answered_at >= $2 \
                 AND json_type(detail, '$.abandoned') IN ('true', 'false') \
                 AND COALESCE(json_extract(detail, '$.answered_by'), 'human') NOT LIKE 'machine%' \
                 AND COALESCE(json_extract(detail, '$.answered_by'), 'human') <> 'fax' \
                 ORDER BY answered_at"
            }
            Backend::Postgres => {
                "SELECT answered_at, (detail->>'abandoned')::boolean FROM call_attempts \
                 WHERE campaign_id = $1 AND answered_at >= $2 \
                 AND jsonb_typeof(detail->'abandoned') = 'boolean' \
                 AND COALESCE(detail->>'answered_by', 'human') NOT LIKE 'machine%' \
                 AND COALESCE(detail->>'answered_by', 'human') <> 'fax' \
                 ORDER BY answered_at"
            }
        };
        let rows: Vec<(i64, bool)> = with_db!(self, |pool| {
            sqlx::query_as(sql)
                .bind(campaign.0)
                .bind(to_millis(since))
                .fetch_all(pool)
                .await
        })?;
        Ok(rows
            .into_iter()
            .map(|(at, abandoned)| (from_millis(at), abandoned))
            .collect())
    }

    /// Calls of the tenant, every campaign together, reserved and not yet ended.
    pub async fn tenant_live_attempts(&self, tenant: TenantId) -> Result<u64> {
        let n: i64 = with_db!(self, |pool| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM call_attempts WHERE tenant_id = $1 AND status <> 'ended'",
            )
            .bind(tenant.0)
            .fetch_one(pool)
            .await
        })?;
        Ok(super::count(n))
    }
}
