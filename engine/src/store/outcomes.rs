//! What happens to a call after it is dialed: carrier status changes (applied idempotently
//! and monotonically, since callbacks arrive twice or out of order) and the agent's
//! outcome (a `do_not_call` outcome lists the number in the same transaction).

use super::attempts::AttemptStatus;
use super::{Backend, Conn, Store, in_write_tx, with_conn};
use crate::campaign::Outcome;
use crate::error::{Error, Result};
use crate::time::{now, to_millis};
use crate::webhook::WebhookEvent;
use crate::{AttemptId, ContactId, TenantId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::types::Json;

/// A status change reported by the carrier.
#[derive(Debug, Clone)]
pub struct CarrierUpdate {
    /// The carrier's id for the call.
    pub carrier_call_id: Option<String>,
    /// Where the call is now (`None`: a status we do not know; only recorded as an event).
    pub status: Option<AttemptStatus>,
    /// How it ended, when `status` is `Ended` (`completed`, `busy`, `no_answer`, ...).
    pub result: Option<String>,
    /// Who answered (`human`, `machine_start`, ...), when known.
    pub answered_by: Option<String>,
    /// The carrier's ordering number for this callback.
    pub sequence: Option<u64>,
    /// The carrier's status name as received.
    pub carrier_status: String,
    /// When it was received.
    pub at: DateTime<Utc>,
    /// When the carrier says it happened (Twilio's `Timestamp`), if it said: the time of
    /// the call event stored for it.
    pub carrier_at: Option<DateTime<Utc>>,
    /// The carrier's error code for a failed call (Twilio `ErrorCode`).
    pub error_code: Option<i64>,
    /// The call's final SIP status (`SipResponseCode`).
    pub sip_response_code: Option<u16>,
}

/// The agent's report on a call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeReport {
    /// The call the report is for (must match the token's call when given).
    #[serde(default)]
    pub call_id: Option<String>,
    /// What came of the call.
    pub outcome: Outcome,
    /// Free-form notes.
    #[serde(default)]
    pub notes: Option<String>,
    /// When to call back (required for `callback`).
    #[serde(default)]
    pub callback_at: Option<DateTime<Utc>>,
    /// The conversation, as text or structured turns.
    #[serde(default)]
    pub transcript: Option<Value>,
}

/// Whether a report changed anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Recorded {
    /// Stored now.
    New,
    /// The same outcome was already stored (a retried report).
    Repeat,
}

/// `status` ranked along the lifecycle, in SQL.
const RANK: &str = "CASE status WHEN 'reserved' THEN 0 WHEN 'dialing' THEN 1 WHEN 'ringing' THEN 2 \
     WHEN 'answered' THEN 3 WHEN 'bridged' THEN 4 ELSE 5 END";

fn rank(s: AttemptStatus) -> i32 {
    match s {
        AttemptStatus::Reserved => 0,
        AttemptStatus::Dialing => 1,
        AttemptStatus::Ringing => 2,
        AttemptStatus::Answered => 3,
        AttemptStatus::Bridged => 4,
        AttemptStatus::Ended => 5,
    }
}

impl Store {
    /// Applies a carrier callback. The status only moves forward (a late `ringing` after
    /// `completed` changes nothing), times, who answered and the carrier's error codes are
    /// recorded the first time they are known, the first end result wins, and every
    /// callback is kept as an event, at the carrier's time when it gave one. A callback
    /// whose `SequenceNumber` is at or below the highest applied (a duplicate, or one that
    /// arrived after a later one) moves nothing and adds no event; it may only still tell
    /// what was not known yet (an answer, and who answered, reported after the end).
    /// Returns whether the status moved.
    pub async fn apply_carrier_update(
        &self,
        id: AttemptId,
        update: &CarrierUpdate,
    ) -> Result<bool> {
        in_write_tx!(self, |conn| carrier_update(conn, id, update).await)
    }

    /// Records the agent's outcome for a call. A `do_not_call` outcome puts the number on
    /// the tenant's do-not-call list and opts the contact out in the same transaction, so
    /// no later attempt of any campaign dials it. A repeated identical report is accepted;
    /// a different outcome for a call that already has one is a conflict.
    pub async fn record_outcome(&self, id: AttemptId, report: &OutcomeReport) -> Result<Recorded> {
        check_outcome(report)?;
        in_write_tx!(self, |conn| record_outcome(conn, id, report).await)
    }

    /// Records that the call reached its agent (status `bridged`, unless it already ended).
    pub async fn mark_bridged(&self, id: AttemptId, data: Value) -> Result<bool> {
        in_write_tx!(self, |conn| mark_bridged(conn, id, &data).await)
    }
}

/// See [`Store::apply_carrier_update`].
pub(super) async fn carrier_update(
    conn: Conn<'_>,
    id: AttemptId,
    update: &CarrierUpdate,
) -> Result<bool> {
    let at = to_millis(update.at);
    let answered = matches!(
        update.status,
        Some(AttemptStatus::Answered | AttemptStatus::Bridged)
    );
    let ended = update.status == Some(AttemptStatus::Ended);
    // An unknown status ranks below everything, so it never moves the call.
    let status_rank = update.status.map_or(-1, rank);
    let status_name = update.status.map(AttemptStatus::as_str);
    let sql = format!(
        "UPDATE call_attempts SET \
           carrier_seq = COALESCE($10, carrier_seq), \
           error_code = COALESCE(error_code, $11), \
           sip_response_code = COALESCE(sip_response_code, $12), \
           status = CASE WHEN {RANK} < $2 THEN COALESCE($3, status) ELSE status END, \
           carrier_call_id = COALESCE(carrier_call_id, $4), \
           answered_at = CASE WHEN $5 THEN COALESCE(answered_at, $6) ELSE answered_at END, \
           ended_at = CASE WHEN $7 THEN COALESCE(ended_at, $6) ELSE ended_at END, \
           result = CASE WHEN $7 AND {RANK} < 5 THEN $8 ELSE result END, \
           dialed_at = CASE WHEN $9 THEN COALESCE(dialed_at, $6) ELSE dialed_at END \
         WHERE id = $1"
    );
    let event = json!({
        "carrier_status": update.carrier_status,
        "sequence": update.sequence,
        "answered_by": update.answered_by,
        "error_code": update.error_code,
        "sip_response_code": update.sip_response_code,
    });
    let event_at = update.carrier_at.map_or(at, to_millis);
    let sequence = update.sequence.and_then(|n| i64::try_from(n).ok());
    let merge = match conn.backend() {
        Backend::Sqlite => {
            "UPDATE call_attempts SET detail = json_patch(detail, $2) WHERE id = $1 AND json_extract(detail, '$.answered_by') IS NULL"
        }
        Backend::Postgres => {
            "UPDATE call_attempts SET detail = detail || $2 WHERE id = $1 AND NOT detail ? 'answered_by'"
        }
    };
    with_conn!(conn, |tx| {
        let before: Option<(String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT status, tenant_id, carrier_seq FROM call_attempts WHERE id = $1",
        )
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((before, tenant, applied)) = before else {
            return Err(Error::not_found("attempt", id));
        };
        if let (Some(seq), Some(applied)) = (sequence, applied)
            && seq <= applied
        {
            if answered {
                sqlx::query(
                    "UPDATE call_attempts SET answered_at = COALESCE(answered_at, $2) WHERE id = $1",
                )
                .bind(id.0)
                .bind(event_at)
                .execute(&mut *tx)
                .await?;
            }
            if let Some(by) = &update.answered_by {
                sqlx::query(merge)
                    .bind(id.0)
                    .bind(Json(json!({ "answered_by": by })))
                    .execute(&mut *tx)
                    .await?;
            }
            return Ok(false);
        }
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.0)
            .bind(status_rank)
            .bind(status_name)
            .bind(update.carrier_call_id.as_deref())
            .bind(answered)
            .bind(at)
            .bind(ended)
            .bind(update.result.as_deref())
            .bind(update.status.is_some())
            .bind(sequence)
            .bind(update.error_code)
            .bind(update.sip_response_code.map(i32::from))
            .execute(&mut *tx)
            .await?;
        if let Some(by) = &update.answered_by {
            sqlx::query(merge)
                .bind(id.0)
                .bind(Json(json!({ "answered_by": by })))
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("INSERT INTO call_events (attempt_id, at, kind, data) VALUES ($1, $2, $3, $4)")
            .bind(id.0)
            .bind(event_at)
            .bind(format!("carrier.{}", update.carrier_status))
            .bind(Json(&event))
            .execute(&mut *tx)
            .await?;
        let after: String = sqlx::query_scalar("SELECT status FROM call_attempts WHERE id = $1")
            .bind(id.0)
            .fetch_one(&mut *tx)
            .await?;
        if before != "ended" && after == "ended" {
            super::outbox::emit_call_completed!(tx, TenantId(tenant), id, at);
        }
        Ok(after != before)
    })
}

/// Refuses a report that cannot be stored whatever the call (a callback without a time).
pub(super) fn check_outcome(report: &OutcomeReport) -> Result<()> {
    if report.outcome == Outcome::Callback && report.callback_at.is_none() {
        return Err(Error::invalid(
            "outcome",
            "callback_at",
            "is required for a callback outcome",
        ));
    }
    Ok(())
}

/// The answer to a report for a call that already has `existing`: the same outcome is a
/// repeat, another one a conflict.
fn already_recorded(id: AttemptId, existing: &str, report: &OutcomeReport) -> Result<Recorded> {
    if existing == report.outcome.as_str() {
        Ok(Recorded::Repeat)
    } else {
        Err(Error::Conflict(format!(
            "call {id} already has outcome {existing}; refusing {}",
            report.outcome.as_str()
        )))
    }
}

/// See [`Store::record_outcome`]. The outcome is claimed first (`outcome IS NULL`), so a
/// report that lost a race writes nothing and answers as if it had come second.
pub(super) async fn record_outcome(
    conn: Conn<'_>,
    id: AttemptId,
    report: &OutcomeReport,
) -> Result<Recorded> {
    check_outcome(report)?;
    let at = to_millis(now());
    // Only what the agent sent: absent values are not stored as nulls.
    let mut detail = serde_json::Map::new();
    if let Some(notes) = &report.notes {
        detail.insert("notes".into(), json!(notes));
    }
    if let Some(at) = report.callback_at {
        detail.insert("callback_at".into(), json!(at));
    }
    if let Some(transcript) = report.transcript.as_ref().filter(|t| !t.is_null()) {
        detail.insert("transcript".into(), transcript.clone());
    }
    let backend = conn.backend();
    let merge = match backend {
        Backend::Sqlite => {
            "UPDATE call_attempts SET outcome = $2, detail = json_patch(detail, $3) WHERE id = $1 AND outcome IS NULL"
        }
        Backend::Postgres => {
            "UPDATE call_attempts SET outcome = $2, detail = detail || $3 WHERE id = $1 AND outcome IS NULL"
        }
    };
    let select = "SELECT tenant_id, contact_id, phone, outcome FROM call_attempts WHERE id = $1";
    with_conn!(conn, |tx| {
        let row: Option<(i64, i64, String, Option<String>)> = sqlx::query_as(select)
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await?;
        let Some((tenant, contact, phone, existing)) = row else {
            return Err(Error::not_found("attempt", id));
        };
        if let Some(existing) = existing {
            return already_recorded(id, &existing, report);
        }
        let n = sqlx::query(merge)
            .bind(id.0)
            .bind(report.outcome.as_str())
            .bind(Json(&detail))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            // Another report won the race since the read: answer as if it had come first.
            let won: Option<(i64, i64, String, Option<String>)> = sqlx::query_as(select)
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await?;
            let existing = won.and_then(|(.., outcome)| outcome);
            return match existing {
                Some(existing) => already_recorded(id, &existing, report),
                None => Err(Error::not_found("attempt", id)),
            };
        }
        let (tenant, contact) = (TenantId(tenant), ContactId(contact));
        if report.outcome == Outcome::DoNotCall {
            sqlx::query(
                "INSERT INTO dnc_entries (tenant_id, pattern, kind, reason, source, created_at) \
                 VALUES ($1, $2, 'exact', $3, 'agent', $4) ON CONFLICT (tenant_id, kind, pattern) DO NOTHING",
            )
            .bind(tenant.0)
            .bind(&phone)
            .bind(format!("do_not_call outcome on call {id}"))
            .bind(at)
            .execute(&mut *tx)
            .await?;
            for sql in [
                "INSERT INTO suppression_events (tenant_id, phone, action, source, actor, reason, at) \
                 SELECT $1, $2, 'added', 'agent', $3, 'do_not_call outcome', $4 WHERE NOT EXISTS \
                 (SELECT 1 FROM suppressions WHERE tenant_id = $1 AND phone = $2)",
                "INSERT INTO suppressions (tenant_id, phone, source, reason, requested_by, created_at) \
                 VALUES ($1, $2, 'agent', 'do_not_call outcome', $3, $4) ON CONFLICT (tenant_id, phone) DO NOTHING",
            ] {
                sqlx::query(sql)
                    .bind(tenant.0)
                    .bind(&phone)
                    .bind(format!("call {id}"))
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
            }
            let opted_out = sqlx::query("UPDATE contacts SET opted_out_at = $2, updated_at = $2 WHERE id = $1 AND opted_out_at IS NULL")
                .bind(contact.0)
                .bind(at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if opted_out > 0 {
                let payload =
                    super::outbox::opt_out_payload(contact, &phone, at, "agent", Some(id));
                super::outbox::emit_event!(
                    tx,
                    tenant,
                    WebhookEvent::ContactOptedOut,
                    &payload,
                    None::<i64>,
                    at,
                    at
                )?;
            }
        }
        // A call.completed held for this outcome carries it and goes out now.
        sqlx::query(super::outbox::outcome_fill_sql(backend))
            .bind(id.0)
            .bind(report.outcome.as_str())
            .bind(at)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO call_events (attempt_id, at, kind, data) VALUES ($1, $2, 'agent.outcome', $3)")
            .bind(id.0)
            .bind(at)
            .bind(Json(json!({ "outcome": report.outcome.as_str() })))
            .execute(&mut *tx)
            .await?;
        Ok(Recorded::New)
    })
}

/// See [`Store::mark_bridged`].
pub(super) async fn mark_bridged(conn: Conn<'_>, id: AttemptId, data: &Value) -> Result<bool> {
    let at = to_millis(now());
    let sql = format!(
        "UPDATE call_attempts SET status = CASE WHEN {RANK} < 4 THEN 'bridged' ELSE status END, \
         answered_at = COALESCE(answered_at, $2) WHERE id = $1"
    );
    with_conn!(conn, |tx| {
        let n = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.0)
            .bind(at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(Error::not_found("attempt", id));
        }
        sqlx::query("INSERT INTO call_events (attempt_id, at, kind, data) VALUES ($1, $2, 'agent.bridged', $3)")
            .bind(id.0)
            .bind(at)
            .bind(Json(data))
            .execute(&mut *tx)
            .await?;
        Ok(true)
    })
}
