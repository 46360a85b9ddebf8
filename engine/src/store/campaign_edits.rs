//! What operators change on campaigns beyond the lifecycle: the pacing and caps of a
//! running campaign, and the counts that tenant limits are checked against.

use super::campaigns::CampaignRecord;
use super::{Store, with_db};
use crate::campaign::{CampaignConfig, CampaignStatus};
use crate::error::{Error, FieldError, Result};
use crate::time::{now, to_millis};
use crate::{CampaignId, TenantId};
use sqlx::types::Json;

/// The configuration fields a running (`active` or `paused`) campaign may change: its
/// pacing, caps, end time, budget and quality and abandonment thresholds. Everything
/// else (audience, agent, script, schedule, retry policy, ...) is fixed once it runs.
pub const RUNNING_EDITABLE: &[&str] = &[
    "max_concurrent_calls",
    "max_calls_per_minute",
    "daily_cap",
    "priority",
    "ends_at",
    "budget",
    "quality",
    "abandonment",
];

/// The top-level fields that differ between two configurations.
pub fn changed_fields(old: &CampaignConfig, new: &CampaignConfig) -> Vec<String> {
    let (Ok(serde_json::Value::Object(old)), Ok(serde_json::Value::Object(new))) =
        (serde_json::to_value(old), serde_json::to_value(new))
    else {
        return Vec::new();
    };
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| old.get(*k) != new.get(*k))
        .cloned()
        .collect()
}

impl Store {
    /// How many of the tenant's campaigns are in this status.
    pub async fn count_campaigns(&self, tenant: TenantId, status: CampaignStatus) -> Result<u64> {
        let n: i64 = with_db!(self, |pool| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM campaigns WHERE tenant_id = $1 AND status = $2",
            )
            .bind(tenant.0)
            .bind(status.as_str())
            .fetch_one(pool)
            .await
        })?;
        Ok(super::count(n))
    }

    /// Replaces the configuration of a campaign in any non-terminal status, with what the
    /// status allows: a `draft` or `scheduled` campaign anything (validated), a running one
    /// only the [`RUNNING_EDITABLE`] fields. A refused change is a validation error naming
    /// every refused field; a finished campaign cannot change at all (a conflict).
    pub async fn edit_campaign(
        &self,
        tenant: TenantId,
        id: CampaignId,
        config: &CampaignConfig,
    ) -> Result<CampaignRecord> {
        let current = self.campaign(tenant, id).await?;
        if !current.status.is_running() {
            if current.status.is_terminal() {
                return Err(Error::Conflict(format!(
                    "campaign {id} is {}: a finished campaign cannot change (duplicate it instead)",
                    current.status
                )));
            }
            return self.update_campaign_config(tenant, id, config).await;
        }
        let refused: Vec<FieldError> = changed_fields(&current.config, config)
            .into_iter()
            .filter(|f| !RUNNING_EDITABLE.contains(&f.as_str()))
            .map(|f| {
                FieldError::new(
                    f,
                    format!(
                        "cannot change while the campaign is {}: only {} may change on a running campaign",
                        current.status,
                        RUNNING_EDITABLE.join(", ")
                    ),
                )
            })
            .collect();
        if !refused.is_empty() {
            return Err(Error::Invalid {
                what: "campaign change",
                errors: refused,
            });
        }
        if let Err(errors) = config.validate() {
            return Err(Error::Invalid {
                what: "campaign",
                errors,
            });
        }
        let n = with_db!(self, |pool| {
            sqlx::query(
                "UPDATE campaigns SET config = $3, updated_at = $4 \
                 WHERE tenant_id = $1 AND id = $2 AND status = $5",
            )
            .bind(tenant.0)
            .bind(id.0)
            .bind(Json(config))
            .bind(to_millis(now()))
            .bind(current.status.as_str())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        if n == 0 {
            return Err(Error::Conflict(format!(
                "campaign {id} changed status while being edited; retry"
            )));
        }
        self.campaign(tenant, id).await
    }
}
