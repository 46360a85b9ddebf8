//! Campaign leases: which process runs each running campaign when several share the
//! database.
//!
//! A lease names its owner (a process's instance id) and when it expires, by the
//! database's clock. Acquiring is one statement: insert the lease, or take the row over
//! only when it is ours already or has expired; two processes acquiring at once never
//! both succeed. The owner renews it by heartbeat (and learns the campaign's stored status
//! in the same statement) and releases it when its supervisor ends. On SQLite the same
//! table and statements serve the one embedded process, so there is one code path.

use super::campaigns::CampaignRow;
use super::{Backend, CampaignRecord, Store, db_now_ms, with_db};
use crate::CampaignId;
use crate::campaign::CampaignStatus;
use crate::error::{Error, Result};
use crate::time::from_millis;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::time::Duration;

/// A campaign's lease as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CampaignLease {
    /// The campaign.
    pub campaign_id: CampaignId,
    /// The instance id of the process that runs it.
    pub owner: String,
    /// When it lapses unless renewed (the database's clock).
    pub expires_at: DateTime<Utc>,
    /// When this owner first acquired it.
    pub acquired_at: DateTime<Utc>,
}

/// What a renewal answers: the new expiry and the campaign as stored, so the owner sees a
/// pause, resume, stop or edit made through another process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRenewal {
    /// The lease's new expiry.
    pub expires_at: DateTime<Utc>,
    /// The campaign's stored status.
    pub status: CampaignStatus,
    /// When the campaign last changed (status or configuration).
    pub updated_at: DateTime<Utc>,
}

macro_rules! acquire_sql {
    ($db:ident) => {
        concat!(
            "INSERT INTO campaign_leases (campaign_id, owner, expires_at, acquired_at) \
             VALUES ($1, $2, ",
            db_now_ms!($db),
            " + $3, ",
            db_now_ms!($db),
            ") ON CONFLICT (campaign_id) DO UPDATE SET owner = excluded.owner, \
             expires_at = excluded.expires_at, acquired_at = CASE \
             WHEN campaign_leases.owner = excluded.owner THEN campaign_leases.acquired_at \
             ELSE excluded.acquired_at END \
             WHERE campaign_leases.owner = excluded.owner OR campaign_leases.expires_at <= ",
            db_now_ms!($db),
            " RETURNING owner"
        )
    };
}

macro_rules! renew_sql {
    ($db:ident) => {
        concat!(
            "UPDATE campaign_leases SET expires_at = ",
            db_now_ms!($db),
            " + $3 WHERE campaign_id = $1 AND owner = $2 RETURNING expires_at, \
             (SELECT status FROM campaigns WHERE id = $1), \
             (SELECT updated_at FROM campaigns WHERE id = $1)"
        )
    };
}

macro_rules! claimable_sql {
    ($db:ident) => {
        concat!(
            "SELECT c.id, c.tenant_id, c.status, c.status_reason, c.config, c.created_at, \
             c.updated_at FROM campaigns c LEFT JOIN campaign_leases l ON l.campaign_id = c.id \
             WHERE c.status IN ('active', 'paused') \
             AND (l.campaign_id IS NULL OR l.owner = $1 OR l.expires_at <= ",
            db_now_ms!($db),
            ") ORDER BY c.id"
        )
    };
}

macro_rules! prune_sql {
    ($db:ident) => {
        concat!(
            "DELETE FROM campaign_leases WHERE expires_at <= ",
            db_now_ms!($db),
            " AND campaign_id IN (SELECT id FROM campaigns WHERE status NOT IN ('active', 'paused'))"
        )
    };
}

/// A lease's time to live in milliseconds, refused when it is under one.
fn ttl_ms(ttl: Duration) -> Result<i64> {
    let ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    if ms < 1 {
        return Err(Error::invalid(
            "lease",
            "ttl",
            format!("must be at least 1 ms, not {ttl:?}"),
        ));
    }
    Ok(ms)
}

impl Store {
    /// Acquires the campaign's lease for `owner` for `ttl`: taken when nobody holds it,
    /// when it is `owner`'s already (then renewed) or when it has expired. Returns whether
    /// `owner` holds it now. Atomic: of several processes asking at once, one wins.
    pub async fn acquire_campaign_lease(
        &self,
        campaign: CampaignId,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool> {
        let ttl = ttl_ms(ttl)?;
        let sql = match self.backend() {
            Backend::Postgres => acquire_sql!(pg),
            Backend::Sqlite => acquire_sql!(sqlite),
        };
        let won: Option<String> = with_db!(self, |pool| {
            sqlx::query_scalar(sql)
                .bind(campaign.0)
                .bind(owner)
                .bind(ttl)
                .fetch_optional(pool)
                .await
        })?;
        Ok(won.is_some())
    }

    /// Renews `owner`'s lease of the campaign for `ttl` from now, and reads the campaign's
    /// stored status with it. `None` when the lease is no longer `owner`'s (another process
    /// took it over after it expired, or it was released): the caller must stop dialing.
    pub async fn renew_campaign_lease(
        &self,
        campaign: CampaignId,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<LeaseRenewal>> {
        let ttl = ttl_ms(ttl)?;
        let sql = match self.backend() {
            Backend::Postgres => renew_sql!(pg),
            Backend::Sqlite => renew_sql!(sqlite),
        };
        let row: Option<(i64, Option<String>, Option<i64>)> = with_db!(self, |pool| {
            sqlx::query_as(sql)
                .bind(campaign.0)
                .bind(owner)
                .bind(ttl)
                .fetch_optional(pool)
                .await
        })?;
        let Some((expires_at, status, updated_at)) = row else {
            return Ok(None);
        };
        let (Some(status), Some(updated_at)) = (status, updated_at) else {
            return Err(Error::not_found("campaign", campaign));
        };
        let status = status.parse().map_err(|_| {
            Error::Database(sqlx::Error::Decode(
                format!("unknown campaign status {status:?}").into(),
            ))
        })?;
        Ok(Some(LeaseRenewal {
            expires_at: from_millis(expires_at),
            status,
            updated_at: from_millis(updated_at),
        }))
    }

    /// Releases `owner`'s lease of the campaign (nothing if it is not `owner`'s). Returns
    /// whether there was one to release.
    pub async fn release_campaign_lease(&self, campaign: CampaignId, owner: &str) -> Result<bool> {
        let n = with_db!(self, |pool| {
            sqlx::query("DELETE FROM campaign_leases WHERE campaign_id = $1 AND owner = $2")
                .bind(campaign.0)
                .bind(owner)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(n > 0)
    }

    /// Releases every lease `owner` holds (its process is shutting down); returns how many.
    pub async fn release_campaign_leases(&self, owner: &str) -> Result<u64> {
        Ok(with_db!(self, |pool| {
            sqlx::query("DELETE FROM campaign_leases WHERE owner = $1")
                .bind(owner)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?)
    }

    /// The campaign's lease, whoever holds it and whether or not it has expired.
    pub async fn campaign_lease(&self, campaign: CampaignId) -> Result<Option<CampaignLease>> {
        let row: Option<(String, i64, i64)> = with_db!(self, |pool| {
            sqlx::query_as(
                "SELECT owner, expires_at, acquired_at FROM campaign_leases WHERE campaign_id = $1",
            )
            .bind(campaign.0)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(|(owner, expires_at, acquired_at)| CampaignLease {
            campaign_id: campaign,
            owner,
            expires_at: from_millis(expires_at),
            acquired_at: from_millis(acquired_at),
        }))
    }

    /// The running campaigns (`active` or `paused`) `owner` may run: those with no lease,
    /// an expired one, or one `owner` holds.
    pub async fn claimable_campaigns(&self, owner: &str) -> Result<Vec<CampaignRecord>> {
        let sql = match self.backend() {
            Backend::Postgres => claimable_sql!(pg),
            Backend::Sqlite => claimable_sql!(sqlite),
        };
        let rows: Vec<CampaignRow> = with_db!(self, |pool| {
            sqlx::query_as(sql).bind(owner).fetch_all(pool).await
        })?;
        rows.into_iter().map(CampaignRow::into_record).collect()
    }

    /// Deletes expired leases of campaigns that no longer run (their owner died before it
    /// could release them); returns how many.
    pub async fn prune_campaign_leases(&self) -> Result<u64> {
        let sql = match self.backend() {
            Backend::Postgres => prune_sql!(pg),
            Backend::Sqlite => prune_sql!(sqlite),
        };
        Ok(with_db!(self, |pool| {
            sqlx::query(sql)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?)
    }
}
