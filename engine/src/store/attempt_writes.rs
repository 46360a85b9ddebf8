//! The writes a call makes to its attempt and its queue entry: changes to the attempt,
//! appended events, and the contact's place in the queue afterwards. Each is written once
//! against a [`Conn`], so that it runs alone (the `Store` methods here) or in a batch with
//! others ([`Store::apply_writes`]) with the same statements and the same result.

use super::attempts::{ATTEMPT_SELECT, AttemptRecord, AttemptRow, AttemptStatus, AttemptUpdate};
use super::{Backend, CallEvent, Conn, Store, in_write_tx, with_conn};
use crate::error::{Error, Result};
use crate::time::{now, to_millis};
use crate::{AttemptId, CampaignId, ContactId, TenantId};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::types::Json;

impl Store {
    /// Applies a change to an attempt; returns the attempt as it stands after it.
    pub async fn update_attempt(
        &self,
        id: AttemptId,
        update: &AttemptUpdate,
    ) -> Result<AttemptRecord> {
        in_write_tx!(self, |conn| update_attempt(conn, id, update).await)
    }

    /// Puts a contact back in the queue for a later attempt, or marks it done.
    pub async fn requeue_contact(
        &self,
        campaign: CampaignId,
        contact: ContactId,
        next_attempt_at: Option<DateTime<Utc>>,
        last_result: &str,
    ) -> Result<()> {
        in_write_tx!(self, |conn| requeue_contact(
            conn,
            campaign,
            contact,
            next_attempt_at,
            last_result
        )
        .await)
    }

    /// Appends events to their attempts' histories in one transaction.
    pub async fn append_events(&self, events: &[CallEvent]) -> Result<()> {
        in_write_tx!(self, |conn| append_events(conn, events).await)
    }
}

/// See [`Store::update_attempt`].
pub(super) async fn update_attempt(
    conn: Conn<'_>,
    id: AttemptId,
    update: &AttemptUpdate,
) -> Result<AttemptRecord> {
    // The detail merge happens in SQL so that concurrent writers (the relay, the agent's
    // outcome, carrier callbacks) never overwrite each other's keys.
    let merge = match conn.backend() {
        Backend::Sqlite => "json_patch(detail, $9)",
        Backend::Postgres => "detail || $9",
    };
    let sql = format!(
        "UPDATE call_attempts SET status = COALESCE($2, status), carrier_call_id = COALESCE($3, carrier_call_id), \
         dialed_at = COALESCE($4, dialed_at), answered_at = COALESCE($5, answered_at), \
         ended_at = COALESCE($6, ended_at), result = COALESCE($7, result), outcome = COALESCE($8, outcome), \
         detail = {merge} WHERE id = $1"
    );
    // Null values are left out: SQLite's json_patch would delete the key where
    // PostgreSQL's || would store a null, and both backends must agree.
    let extra: Map<String, Value> = update
        .detail
        .iter()
        .flatten()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let at = to_millis(now());
    let select = format!("{ATTEMPT_SELECT} WHERE id = $1");
    with_conn!(conn, |tx| {
        let before: Option<(String, i64)> =
            sqlx::query_as("SELECT status, tenant_id FROM call_attempts WHERE id = $1")
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((before, tenant)) = before else {
            return Err(Error::not_found("attempt", id));
        };
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.0)
            .bind(update.status.map(AttemptStatus::as_str))
            .bind(update.carrier_call_id.as_deref())
            .bind(update.dialed_at.map(to_millis))
            .bind(update.answered_at.map(to_millis))
            .bind(update.ended_at.map(to_millis))
            .bind(update.result.as_deref())
            .bind(update.outcome.as_deref())
            .bind(Json(&extra))
            .execute(&mut *tx)
            .await?;
        // The one place besides carrier updates where a call ends: tell the tenant.
        if before != "ended" && update.status == Some(AttemptStatus::Ended) {
            super::outbox::emit_call_completed!(tx, TenantId(tenant), id, at);
        }
        let row: AttemptRow = sqlx::query_as(sqlx::AssertSqlSafe(select))
            .bind(id.0)
            .fetch_one(&mut *tx)
            .await?;
        row.into_record()
    })
}

/// See [`Store::requeue_contact`].
pub(super) async fn requeue_contact(
    conn: Conn<'_>,
    campaign: CampaignId,
    contact: ContactId,
    next_attempt_at: Option<DateTime<Utc>>,
    last_result: &str,
) -> Result<()> {
    let state = if next_attempt_at.is_some() {
        "queued"
    } else {
        "done"
    };
    let n = with_conn!(conn, |tx| {
        sqlx::query(
            "UPDATE campaign_contacts SET state = $3, next_attempt_at = $4, last_result = $5 \
             WHERE campaign_id = $1 AND contact_id = $2",
        )
        .bind(campaign.0)
        .bind(contact.0)
        .bind(state)
        .bind(next_attempt_at.map(to_millis))
        .bind(last_result)
        .execute(&mut *tx)
        .await?
        .rows_affected()
    });
    if n == 0 {
        Err(Error::not_found(
            "queue entry",
            format!("{campaign}/{contact}"),
        ))
    } else {
        Ok(())
    }
}

/// See [`Store::append_events`].
pub(super) async fn append_events(conn: Conn<'_>, events: &[CallEvent]) -> Result<()> {
    with_conn!(conn, |tx| {
        for e in events {
            sqlx::query(
                "INSERT INTO call_events (attempt_id, at, kind, data) VALUES ($1, $2, $3, $4)",
            )
            .bind(e.attempt_id.0)
            .bind(to_millis(e.at))
            .bind(&e.kind)
            .bind(Json(&e.data))
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    })
}
