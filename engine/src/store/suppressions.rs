//! What callees asked for, kept by phone number per tenant (see the `0007_suppressions`
//! migration): recorded when a contact opts out or an agent reports `do_not_call`, applied
//! back to every contact with that number on each contact write, consulted before every
//! dial, and removed only by [`Store::remove_suppression`], which records who and why.

use super::{Conn, Store, in_write_tx, with_conn, with_db};
use crate::error::{Error, Result};
use crate::time::{from_millis, now, to_millis};
use crate::{E164, TenantId};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// A number the tenant may not call because its callee asked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suppression {
    /// The number, E.164.
    pub phone: String,
    /// Where the request came from: `agent`, `contact`, `sms`.
    pub source: String,
    /// Why, as recorded.
    pub reason: Option<String>,
    /// Who recorded it (a call, an API key), when known.
    pub requested_by: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// One addition or removal of a suppression.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SuppressionEvent {
    /// `added` or `removed`.
    pub action: String,
    /// Where it came from.
    pub source: String,
    /// Who did it.
    pub actor: Option<String>,
    /// Why.
    pub reason: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
}

type Row = (String, String, Option<String>, Option<String>, i64);

/// Records every opted-out contact of the tenant as a suppression (with its history event),
/// then opts out every contact whose number is suppressed. Runs inside a contact write.
pub(super) async fn sync(conn: Conn<'_>, tenant: TenantId) -> Result<()> {
    with_conn!(conn, |c| {
        sqlx::query(
            "INSERT INTO suppression_events (tenant_id, phone, action, source, actor, reason, at) \
             SELECT tenant_id, phone, 'added', 'contact', NULL, 'contact opted out', opted_out_at \
             FROM contacts c WHERE tenant_id = $1 AND opted_out_at IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM suppressions s WHERE s.tenant_id = c.tenant_id AND s.phone = c.phone)",
        )
        .bind(tenant.0)
        .execute(&mut *c)
        .await?;
        sqlx::query(
            "INSERT INTO suppressions (tenant_id, phone, source, reason, requested_by, created_at) \
             SELECT tenant_id, phone, 'contact', 'contact opted out', NULL, opted_out_at \
             FROM contacts WHERE tenant_id = $1 AND opted_out_at IS NOT NULL \
             ON CONFLICT (tenant_id, phone) DO NOTHING",
        )
        .bind(tenant.0)
        .execute(&mut *c)
        .await?;
        sqlx::query(
            "UPDATE contacts SET opted_out_at = (SELECT s.created_at FROM suppressions s \
             WHERE s.tenant_id = contacts.tenant_id AND s.phone = contacts.phone) \
             WHERE tenant_id = $1 AND opted_out_at IS NULL AND EXISTS (SELECT 1 FROM suppressions s \
             WHERE s.tenant_id = contacts.tenant_id AND s.phone = contacts.phone)",
        )
        .bind(tenant.0)
        .execute(&mut *c)
        .await?;
        Ok::<(), sqlx::Error>(())
    })?;
    Ok(())
}

/// Suppresses a number at a callee's request (no-op when already suppressed).
pub(super) async fn add(
    conn: Conn<'_>,
    tenant: TenantId,
    phone: &str,
    source: &str,
    by: Option<&str>,
    reason: Option<&str>,
    at: i64,
) -> Result<()> {
    with_conn!(conn, |c| {
        let n = sqlx::query(
            "INSERT INTO suppressions (tenant_id, phone, source, reason, requested_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, phone) DO NOTHING",
        )
        .bind(tenant.0)
        .bind(phone)
        .bind(source)
        .bind(reason)
        .bind(by)
        .bind(at)
        .execute(&mut *c)
        .await?
        .rows_affected();
        if n > 0 {
            sqlx::query(
                "INSERT INTO suppression_events (tenant_id, phone, action, source, actor, reason, at) \
                 VALUES ($1, $2, 'added', $3, $4, $5, $6)",
            )
            .bind(tenant.0)
            .bind(phone)
            .bind(source)
            .bind(by)
            .bind(reason)
            .bind(at)
            .execute(&mut *c)
            .await?;
        }
        Ok::<(), sqlx::Error>(())
    })?;
    Ok(())
}

fn from_row((phone, source, reason, requested_by, at): Row) -> Suppression {
    Suppression {
        phone,
        source,
        reason,
        requested_by,
        created_at: from_millis(at),
    }
}

impl Store {
    /// The suppression of this number, if its callee asked not to be called: kept under the
    /// number, or under its hash once its contact was erased (see `erasure`).
    pub async fn suppression(&self, tenant: TenantId, phone: &E164) -> Result<Option<Suppression>> {
        let hash = self.phone_hash(tenant, phone.as_str()).await?;
        let row: Option<Row> = with_db!(self, |pool| {
            sqlx::query_as(
                "SELECT phone, source, reason, requested_by, created_at FROM suppressions \
                 WHERE tenant_id = $1 AND phone IN ($2, $3) \
                 ORDER BY CASE WHEN phone = $2 THEN 0 ELSE 1 END LIMIT 1",
            )
            .bind(tenant.0)
            .bind(phone.as_str())
            .bind(&hash)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(from_row))
    }

    /// Suppresses a number at its callee's request, recording where the request came from
    /// (`api`, `sms`, ...), who passed it on and why, and opts out the number's contacts.
    /// Returns false when the number was already suppressed (the first request is kept).
    pub async fn suppress(
        &self,
        tenant: TenantId,
        phone: &E164,
        source: &str,
        by: Option<&str>,
        reason: Option<&str>,
    ) -> Result<bool> {
        let at = to_millis(now());
        let was = self.suppression(tenant, phone).await?.is_some();
        if !was {
            let added: Result<()> = in_write_tx!(self, |conn| {
                add(conn, tenant, phone.as_str(), source, by, reason, at).await
            });
            added?;
        }
        self.sync_suppressions(tenant).await?;
        Ok(!was)
    }

    /// A page of the tenant's suppressions, by phone.
    pub async fn list_suppressions(
        &self,
        tenant: TenantId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Suppression>> {
        let rows: Vec<Row> = with_db!(self, |pool| {
            sqlx::query_as(
                "SELECT phone, source, reason, requested_by, created_at FROM suppressions \
                 WHERE tenant_id = $1 AND phone > $2 ORDER BY phone LIMIT $3",
            )
            .bind(tenant.0)
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit.clamp(1, 1000)))
            .fetch_all(pool)
            .await
        })?;
        Ok(rows.into_iter().map(from_row).collect())
    }

    /// Every addition, removal and erasure for a number (kept under the number or its
    /// hash), oldest first.
    pub async fn suppression_history(
        &self,
        tenant: TenantId,
        phone: &E164,
    ) -> Result<Vec<SuppressionEvent>> {
        let hash = self.phone_hash(tenant, phone.as_str()).await?;
        let rows: Vec<Row> = with_db!(self, |pool| {
            sqlx::query_as(
                "SELECT action, source, actor, reason, at FROM suppression_events \
                     WHERE tenant_id = $1 AND phone IN ($2, $3) ORDER BY id",
            )
            .bind(tenant.0)
            .bind(phone.as_str())
            .bind(&hash)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(|(action, source, actor, reason, at)| SuppressionEvent {
                action,
                source,
                actor,
                reason,
                at: from_millis(at),
            })
            .collect())
    }

    /// Makes a suppressed number callable again: removes the suppression, the do-not-call
    /// entry an agent added for it and the opt-out of its contacts, and records who and why.
    /// Not found when the number is not suppressed.
    pub async fn remove_suppression(
        &self,
        tenant: TenantId,
        phone: &E164,
        actor: &str,
        reason: &str,
    ) -> Result<()> {
        let at = to_millis(now());
        let hash = self.phone_hash(tenant, phone.as_str()).await?;
        let removed: Result<u64> = in_write_tx!(self, |conn| {
            with_conn!(conn, |c| {
                // Kept under the number or its hash: the history goes on under the same key.
                let keys: Vec<String> = sqlx::query_scalar(
                    "DELETE FROM suppressions WHERE tenant_id = $1 AND phone IN ($2, $3) RETURNING phone",
                )
                .bind(tenant.0)
                .bind(phone.as_str())
                .bind(&hash)
                .fetch_all(&mut *c)
                .await?;
                let n = keys.len() as u64;
                for key in &keys {
                    sqlx::query(
                        "INSERT INTO suppression_events (tenant_id, phone, action, source, actor, reason, at) \
                         VALUES ($1, $2, 'removed', 'api', $3, $4, $5)",
                    )
                    .bind(tenant.0)
                    .bind(key)
                    .bind(actor)
                    .bind(reason)
                    .bind(at)
                    .execute(&mut *c)
                    .await?;
                    sqlx::query(
                        "DELETE FROM dnc_entries WHERE tenant_id = $1 AND kind = 'exact' \
                         AND pattern = $2 AND source = 'agent'",
                    )
                    .bind(tenant.0)
                    .bind(phone.as_str())
                    .execute(&mut *c)
                    .await?;
                    sqlx::query(
                        "UPDATE contacts SET opted_out_at = NULL, updated_at = $3 \
                         WHERE tenant_id = $1 AND phone = $2",
                    )
                    .bind(tenant.0)
                    .bind(phone.as_str())
                    .bind(at)
                    .execute(&mut *c)
                    .await?;
                }
                Ok::<u64, Error>(n)
            })
        });
        if removed? == 0 {
            return Err(Error::not_found("suppression", phone));
        }
        Ok(())
    }
}
