//! The tenant's do-not-call list in the database.

use super::BeginWrite as _;
use super::{Store, with_db};
use crate::dnc::{DncEntry, DncPattern, prefixes};
use crate::error::{Error, Result};
use crate::time::{from_millis, now, to_millis};
use crate::{DncEntryId, E164, TenantId};

type DncRow = (i64, i64, String, String, Option<String>, String, i64);

fn entry_from_row((id, tenant_id, pattern, kind, reason, source, created_at): DncRow) -> DncEntry {
    DncEntry {
        id: DncEntryId(id),
        tenant_id: TenantId(tenant_id),
        pattern: DncPattern::from_stored(&kind, pattern),
        reason,
        source,
        created_at: from_millis(created_at),
    }
}

const DNC_SELECT: &str =
    "SELECT id, tenant_id, pattern, kind, reason, source, created_at FROM dnc_entries";

impl Store {
    /// Adds patterns to the tenant's list in one transaction. Patterns already present are
    /// left as they are. Returns how many were new.
    pub async fn add_dnc(
        &self,
        tenant: TenantId,
        patterns: &[DncPattern],
        reason: Option<&str>,
        source: &str,
    ) -> Result<u64> {
        let at = to_millis(now());
        let added = with_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let mut added = 0;
            for p in patterns {
                added += sqlx::query(
                    "INSERT INTO dnc_entries (tenant_id, pattern, kind, reason, source, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, kind, pattern) DO NOTHING",
                )
                .bind(tenant.0)
                .bind(p.digits())
                .bind(p.kind().as_str())
                .bind(reason)
                .bind(source)
                .bind(at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            tx.commit().await?;
            Ok::<u64, sqlx::Error>(added)
        })?;
        Ok(added)
    }

    /// Removes a pattern. Errors if it was not on the list.
    pub async fn remove_dnc(&self, tenant: TenantId, pattern: &DncPattern) -> Result<()> {
        let n = with_db!(self, |pool| {
            sqlx::query(
                "DELETE FROM dnc_entries WHERE tenant_id = $1 AND kind = $2 AND pattern = $3",
            )
            .bind(tenant.0)
            .bind(pattern.kind().as_str())
            .bind(pattern.digits())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        if n == 0 {
            Err(Error::not_found("do-not-call entry", pattern))
        } else {
            Ok(())
        }
    }

    /// The entry that blocks this number, if any (an exact entry before a prefix one).
    pub async fn dnc_check(&self, tenant: TenantId, number: &E164) -> Result<Option<DncEntry>> {
        let candidates = prefixes(number);
        let sql = format!(
            "{DNC_SELECT} WHERE tenant_id = $1 AND ((kind = 'exact' AND pattern = $2) OR \
             (kind = 'prefix' AND pattern IN ({}))) ORDER BY kind, length(pattern) DESC LIMIT 1",
            (0..candidates.len())
                .map(|i| format!("${}", i + 3))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let row: Option<DncRow> = with_db!(self, |pool| {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(tenant.0)
                .bind(number.as_str());
            for p in &candidates {
                q = q.bind(*p);
            }
            q.fetch_optional(pool).await
        })?;
        Ok(row.map(entry_from_row))
    }

    /// A page of the tenant's list, by id.
    pub async fn list_dnc(
        &self,
        tenant: TenantId,
        after: Option<DncEntryId>,
        limit: u32,
    ) -> Result<Vec<DncEntry>> {
        let sql = format!("{DNC_SELECT} WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3");
        let rows: Vec<DncRow> = with_db!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(tenant.0)
                .bind(after.map_or(0, |a| a.0))
                .bind(i64::from(limit.clamp(1, 1000)))
                .fetch_all(pool)
                .await
        })?;
        Ok(rows.into_iter().map(entry_from_row).collect())
    }
}
