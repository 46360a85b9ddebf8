//! A carrier account's calls-per-second limit, shared by every process on the database.
//!
//! The account has `slots` rows, one per dial allowed in one window. A dial takes a slot
//! whose last use is at least a window ago and stamps it with the database's clock. A
//! slot holding a dial of the current window is never taken, so every dial of any window
//! sits in a slot of its own: no window ever holds more dials than there are slots,
//! however many processes take at once. That is the sliding-window log of the in-process
//! limiter, kept in the database; its rows never grow (one per slot).
//!
//! Taking is one statement. On PostgreSQL it locks the free slots it takes with
//! `FOR UPDATE SKIP LOCKED`: two takers never take the same slot, and a slot another
//! taker used meanwhile is checked again on its newest version and left. On SQLite a
//! writing statement holds the database's write lock from its start, so the statement is
//! atomic as it stands.
//!
//! A process with a lower limit uses only the first `slots` rows: each process keeps to its
//! own limit and all of them together to the highest configured.

use super::{Backend, Store, db_now_ms, with_db};
use crate::error::{Error, Result};
use crate::time::from_millis;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// Most slots (dials per window) an account may have.
pub const MAX_DIAL_SLOTS: u32 = 10_000;

macro_rules! take_sql {
    (pg) => {
        concat!(
            "WITH free AS (SELECT slot FROM carrier_dial_slots \
             WHERE account = $1 AND slot < $2 AND used_at <= ",
            db_now_ms!(pg),
            " - $3 ORDER BY slot LIMIT $4 FOR UPDATE SKIP LOCKED) \
             UPDATE carrier_dial_slots d SET used_at = ",
            db_now_ms!(pg),
            " FROM free WHERE d.account = $1 AND d.slot = free.slot RETURNING d.used_at"
        )
    };
    (sqlite) => {
        concat!(
            "UPDATE carrier_dial_slots SET used_at = ",
            db_now_ms!(sqlite),
            " WHERE account = $1 AND slot IN (SELECT slot FROM carrier_dial_slots \
             WHERE account = $1 AND slot < $2 AND used_at <= ",
            db_now_ms!(sqlite),
            " - $3 ORDER BY slot LIMIT $4) RETURNING used_at"
        )
    };
}

/// Checks a slot count.
fn slot_count(slots: u32) -> Result<i64> {
    if slots == 0 || slots > MAX_DIAL_SLOTS {
        return Err(Error::invalid(
            "dial limit",
            "slots",
            format!("must be between 1 and {MAX_DIAL_SLOTS}, not {slots}"),
        ));
    }
    Ok(i64::from(slots))
}

impl Store {
    /// Makes sure the account has at least `slots` dial slots (creating the missing ones,
    /// free). Idempotent; run by every process that dials through the account.
    pub async fn prepare_dial_slots(&self, account: &str, slots: u32) -> Result<()> {
        let slots = slot_count(slots)?;
        with_db!(self, |pool| {
            sqlx::query(
                "WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n + 1 < $2) \
                 INSERT INTO carrier_dial_slots (account, slot, used_at) \
                 SELECT $1, n, 0 FROM s WHERE true ON CONFLICT (account, slot) DO NOTHING",
            )
            .bind(account)
            .bind(slots)
            .execute(pool)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// Takes up to `n` dials of the account's limit of `slots` dials per `window`, now by
    /// the database's clock; returns when each dial taken was allowed (as many as were
    /// free, possibly none). Needs [`Store::prepare_dial_slots`] first.
    pub async fn take_dial_slots(
        &self,
        account: &str,
        slots: u32,
        window: Duration,
        n: u32,
    ) -> Result<Vec<DateTime<Utc>>> {
        let slots = slot_count(slots)?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let window = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        let sql = match self.backend() {
            Backend::Postgres => take_sql!(pg),
            Backend::Sqlite => take_sql!(sqlite),
        };
        let taken: Vec<i64> = with_db!(self, |pool| {
            sqlx::query_scalar(sql)
                .bind(account)
                .bind(slots)
                .bind(window)
                .bind(i64::from(n))
                .fetch_all(pool)
                .await
        })?;
        let mut at: Vec<DateTime<Utc>> = taken.into_iter().map(from_millis).collect();
        at.sort_unstable();
        Ok(at)
    }
}
