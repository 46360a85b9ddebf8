//! Campaigns: configuration, status, and the stored history of every status change.

use super::{Store, with_db};
use crate::campaign::{CampaignConfig, CampaignStatus, Cause};
use crate::error::{Error, Result};
use crate::time::{from_millis, now, to_millis};
use crate::{CampaignId, TenantId};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::types::Json;

/// A stored campaign.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignRecord {
    /// Id.
    pub id: CampaignId,
    /// Owner.
    pub tenant_id: TenantId,
    /// Current status.
    pub status: CampaignStatus,
    /// Why it is in this status (empty for a new draft).
    pub status_reason: String,
    /// The configuration.
    pub config: CampaignConfig,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// One stored status change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransitionRecord {
    /// Status before.
    pub from: CampaignStatus,
    /// Status after.
    pub to: CampaignStatus,
    /// Who made the change.
    pub cause: Cause,
    /// Why.
    pub reason: String,
    /// Figures behind the change (e.g. the rates that triggered a quality pause).
    pub detail: Option<Value>,
    /// When.
    pub at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
pub(super) struct CampaignRow {
    id: i64,
    tenant_id: i64,
    status: String,
    status_reason: String,
    config: Json<CampaignConfig>,
    created_at: i64,
    updated_at: i64,
}

impl CampaignRow {
    pub(super) fn into_record(self) -> Result<CampaignRecord> {
        Ok(CampaignRecord {
            id: CampaignId(self.id),
            tenant_id: TenantId(self.tenant_id),
            status: decode_status(&self.status)?,
            status_reason: self.status_reason,
            config: self.config.0,
            created_at: from_millis(self.created_at),
            updated_at: from_millis(self.updated_at),
        })
    }
}

fn decode_status(s: &str) -> Result<CampaignStatus> {
    s.parse().map_err(|_| {
        Error::Database(sqlx::Error::Decode(
            format!("unknown campaign status {s:?}").into(),
        ))
    })
}

const CAMPAIGN_SELECT: &str =
    "SELECT id, tenant_id, status, status_reason, config, created_at, updated_at FROM campaigns";

/// Which campaigns to list.
#[derive(Debug, Clone, Default)]
pub struct CampaignFilter {
    /// Only campaigns in this status.
    pub status: Option<CampaignStatus>,
    /// Case-insensitive substring of the name.
    pub search: Option<String>,
    /// Only campaigns with an id greater than this (keyset pagination).
    pub after: Option<CampaignId>,
    /// At most this many (default 50, at most 500).
    pub limit: Option<u32>,
}

impl Store {
    /// Validates a configuration: every field rule at once, then the audience query's
    /// syntax and the ownership of its contact lists.
    async fn check_campaign_config(&self, tenant: TenantId, config: &CampaignConfig) -> Result<()> {
        let mut errors = config.validate().err().unwrap_or_default();
        if let Some(query) = &config.audience.query
            && let Err(e) = crate::audience::Query::parse(query)
        {
            errors.push(crate::FieldError::new("audience.query", e.to_string()));
        }
        if !errors.is_empty() {
            return Err(Error::Invalid {
                what: "campaign",
                errors,
            });
        }
        self.check_audience_lists(tenant, &config.audience).await
    }

    /// Creates a campaign in `draft` after validating its configuration.
    pub async fn create_campaign(
        &self,
        tenant: TenantId,
        config: &CampaignConfig,
    ) -> Result<CampaignRecord> {
        self.check_campaign_config(tenant, config).await?;
        let at = to_millis(now());
        let id: i64 = with_db!(self, |pool| {
            sqlx::query_scalar(
                "INSERT INTO campaigns (tenant_id, name, status, config, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
            )
            .bind(tenant.0)
            .bind(&config.name)
            .bind(CampaignStatus::Draft.as_str())
            .bind(Json(config))
            .bind(at)
            .fetch_one(pool)
            .await
        })?;
        self.campaign(tenant, CampaignId(id)).await
    }

    /// One campaign of the tenant.
    pub async fn campaign(&self, tenant: TenantId, id: CampaignId) -> Result<CampaignRecord> {
        let sql = format!("{CAMPAIGN_SELECT} WHERE tenant_id = $1 AND id = $2");
        let row: Option<CampaignRow> = with_db!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(tenant.0)
                .bind(id.0)
                .fetch_optional(pool)
                .await
        })?;
        row.ok_or_else(|| Error::not_found("campaign", id))?
            .into_record()
    }

    /// A page of the tenant's campaigns, by id.
    pub async fn list_campaigns(
        &self,
        tenant: TenantId,
        filter: &CampaignFilter,
    ) -> Result<Vec<CampaignRecord>> {
        let sql = format!(
            "{CAMPAIGN_SELECT} WHERE tenant_id = $1 AND id > $2 AND ($3 IS NULL OR status = $3) \
             AND ($4 IS NULL OR lower(name) LIKE $4 ESCAPE '\\') ORDER BY id LIMIT $5"
        );
        let search = filter.search.as_ref().map(|s| {
            let escaped: String = s
                .to_lowercase()
                .chars()
                .flat_map(|c| {
                    if matches!(c, '%' | '_' | '\\') {
                        vec!['\\', c]
                    } else {
                        vec![c]
                    }
                })
                .collect();
            format!("%{escaped}%")
        });
        let rows: Vec<CampaignRow> = with_db!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(tenant.0)
                .bind(filter.after.map_or(0, |a| a.0))
                .bind(filter.status.map(|s| s.as_str()))
                .bind(search)
                .bind(i64::from(filter.limit.unwrap_or(50).clamp(1, 500)))
                .fetch_all(pool)
                .await
        })?;
        rows.into_iter().map(CampaignRow::into_record).collect()
    }

    /// Campaigns of every tenant in one of these statuses (for the runtime at startup).
    pub async fn campaigns_in_status(
        &self,
        statuses: &[CampaignStatus],
    ) -> Result<Vec<CampaignRecord>> {
        let mut all = Vec::new();
        for status in statuses {
            let sql = format!("{CAMPAIGN_SELECT} WHERE status = $1 ORDER BY id");
            let rows: Vec<CampaignRow> = with_db!(self, |pool| {
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(status.as_str())
                    .fetch_all(pool)
                    .await
            })?;
            for row in rows {
                all.push(row.into_record()?);
            }
        }
        all.sort_by_key(|c| c.id);
        Ok(all)
    }

    /// Replaces the configuration (validated). Only a `draft` or `scheduled` campaign may
    /// change its configuration; a running or finished one may not.
    pub async fn update_campaign_config(
        &self,
        tenant: TenantId,
        id: CampaignId,
        config: &CampaignConfig,
    ) -> Result<CampaignRecord> {
        self.check_campaign_config(tenant, config).await?;
        let current = self.campaign(tenant, id).await?;
        if !matches!(
            current.status,
            CampaignStatus::Draft | CampaignStatus::Scheduled
        ) {
            return Err(Error::Conflict(format!(
                "campaign {id} is {}: only a draft or scheduled campaign can be edited",
                current.status.as_str()
            )));
        }
        let n = with_db!(self, |pool| {
            sqlx::query(
                "UPDATE campaigns SET name = $3, config = $4, updated_at = $5 \
                 WHERE tenant_id = $1 AND id = $2 AND status = $6",
            )
            .bind(tenant.0)
            .bind(id.0)
            .bind(&config.name)
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

    /// Deletes a campaign that is not running (not `active` or `paused`).
    pub async fn delete_campaign(&self, tenant: TenantId, id: CampaignId) -> Result<()> {
        let current = self.campaign(tenant, id).await?;
        if current.status.is_running() {
            return Err(Error::Conflict(format!(
                "campaign {id} is {}: stop it before deleting it",
                current.status.as_str()
            )));
        }
        let n = with_db!(self, |pool| {
            sqlx::query("DELETE FROM campaigns WHERE tenant_id = $1 AND id = $2 AND status = $3")
                .bind(tenant.0)
                .bind(id.0)
                .bind(current.status.as_str())
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        if n == 0 {
            Err(Error::Conflict(format!(
                "campaign {id} changed status; retry"
            )))
        } else {
            Ok(())
        }
    }

    /// Every status change of a campaign, oldest first.
    pub async fn campaign_history(
        &self,
        tenant: TenantId,
        id: CampaignId,
    ) -> Result<Vec<TransitionRecord>> {
        self.campaign(tenant, id).await?;
        type Row = (String, String, String, String, Option<Json<Value>>, i64);
        let rows: Vec<Row> = with_db!(self, |pool| {
            sqlx::query_as(
                "SELECT from_status, to_status, cause, reason, detail, at FROM campaign_transitions \
                 WHERE campaign_id = $1 ORDER BY id",
            )
            .bind(id.0)
            .fetch_all(pool)
            .await
        })?;
        rows.into_iter()
            .map(|(from, to, cause, reason, detail, at)| {
                Ok(TransitionRecord {
                    from: decode_status(&from)?,
                    to: decode_status(&to)?,
                    cause: cause.parse().map_err(|_| {
                        Error::Database(sqlx::Error::Decode(
                            format!("unknown cause {cause:?}").into(),
                        ))
                    })?,
                    reason,
                    detail: detail.map(|d| d.0),
                    at: from_millis(at),
                })
            })
            .collect()
    }
}
