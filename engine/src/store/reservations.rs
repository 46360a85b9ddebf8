//! Reserving attempts: durably, before the carrier is asked to dial, one at a time or a
//! whole tick's worth in one transaction (one commit instead of one per call); and
//! withdrawing reservations the carrier's limit left no room for.

use super::BeginWrite as _;
use super::attempts::{ATTEMPT_SELECT, AttemptRecord, AttemptRow, NewAttempt};
use super::{Store, with_db};
use crate::AttemptId;
use crate::error::{Error, Result};
use crate::time::{now, to_millis};

/// Most attempts reserved in one transaction (bounds the statement's parameters).
pub const MAX_RESERVATIONS: usize = 500;

impl Store {
    /// Reserves the next attempt for a queued contact, durably, before anyone dials. Fails
    /// with a conflict if the contact is not queued or another reservation got there first.
    pub async fn reserve_attempt(&self, attempt: &NewAttempt) -> Result<AttemptRecord> {
        let reserved = self.reserve_attempts(std::slice::from_ref(attempt)).await?;
        reserved.into_iter().next().flatten().ok_or_else(|| {
            Error::Conflict(format!(
                "contact {} of campaign {} is not queued with {} attempts; not reserving",
                attempt.contact_id, attempt.campaign_id, attempt.attempts_seen
            ))
        })
    }

    /// Reserves several attempts in one transaction, each under the same rule as
    /// [`Store::reserve_attempt`]: in order, `Some(record)` for each one reserved and
    /// `None` for each whose contact is no longer queued with the attempts seen (another
    /// reservation got there first). All of them are durable when this returns; none is
    /// when it fails. At most [`MAX_RESERVATIONS`] at once.
    pub async fn reserve_attempts(
        &self,
        attempts: &[NewAttempt],
    ) -> Result<Vec<Option<AttemptRecord>>> {
        if attempts.len() > MAX_RESERVATIONS {
            return Err(Error::invalid(
                "reservation",
                "attempts",
                format!(
                    "at most {MAX_RESERVATIONS} reservations at once, not {}",
                    attempts.len()
                ),
            ));
        }
        if attempts.is_empty() {
            return Ok(Vec::new());
        }
        let at = to_millis(now());
        let ids: Vec<Option<i64>> = with_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let mut ids = Vec::with_capacity(attempts.len());
            for attempt in attempts {
                let n = sqlx::query(
                    "UPDATE campaign_contacts SET attempts = attempts + 1, state = 'in_progress', last_attempt_at = $3 \
                     WHERE campaign_id = $1 AND contact_id = $2 AND attempts = $4 AND state = 'queued'",
                )
                .bind(attempt.campaign_id.0)
                .bind(attempt.contact_id.0)
                .bind(at)
                .bind(attempt.attempts_seen)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if n == 0 {
                    ids.push(None);
                    continue;
                }
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO call_attempts (tenant_id, campaign_id, contact_id, attempt_no, phone, status, reserved_at) \
                     VALUES ($1, $2, $3, $4, $5, 'reserved', $6) RETURNING id",
                )
                .bind(attempt.tenant_id.0)
                .bind(attempt.campaign_id.0)
                .bind(attempt.contact_id.0)
                .bind(attempt.attempts_seen + 1)
                .bind(attempt.phone.as_str())
                .bind(at)
                .fetch_one(&mut *tx)
                .await?;
                ids.push(Some(id));
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(ids)
        })?;
        let reserved: Vec<i64> = ids.iter().flatten().copied().collect();
        let mut records = self.attempts_by_id(&reserved).await?;
        Ok(ids
            .into_iter()
            .map(|id| {
                let id = id?;
                let i = records.iter().position(|r| r.id == AttemptId(id))?;
                Some(records.swap_remove(i))
            })
            .collect())
    }

    /// Withdraws reservations nobody dialed (the carrier's limit left no room for them
    /// this time): each attempt still `reserved` with no carrier call is deleted and its
    /// contact queued again as it was before the reservation, in one transaction. Returns
    /// how many were withdrawn; an attempt that moved on meanwhile is left as it is.
    pub async fn withdraw_reservations(&self, ids: &[AttemptId]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let withdrawn = with_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let mut withdrawn = 0u64;
            for id in ids {
                let reserved: Option<(i64, i64, i32)> = sqlx::query_as(
                    "DELETE FROM call_attempts \
                     WHERE id = $1 AND status = 'reserved' AND carrier_call_id IS NULL \
                     RETURNING campaign_id, contact_id, attempt_no",
                )
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((campaign, contact, attempt_no)) = reserved else {
                    continue;
                };
                sqlx::query(
                    "UPDATE campaign_contacts SET attempts = attempts - 1, state = 'queued', \
                     last_attempt_at = (SELECT MAX(reserved_at) FROM call_attempts \
                     WHERE campaign_id = $1 AND contact_id = $2) \
                     WHERE campaign_id = $1 AND contact_id = $2 AND attempts = $3 \
                     AND state = 'in_progress'",
                )
                .bind(campaign)
                .bind(contact)
                .bind(attempt_no)
                .execute(&mut *tx)
                .await?;
                withdrawn += 1;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(withdrawn)
        })?;
        Ok(withdrawn)
    }

    /// The attempts with these ids (in no particular order; unknown ids are left out).
    async fn attempts_by_id(&self, ids: &[i64]) -> Result<Vec<AttemptRecord>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!("{ATTEMPT_SELECT} WHERE id IN ({})", placeholders.join(", "));
        let rows: Vec<AttemptRow> = with_db!(self, |pool| {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
            for id in ids {
                q = q.bind(*id);
            }
            q.fetch_all(pool).await
        })?;
        rows.into_iter().map(AttemptRow::into_record).collect()
    }
}
