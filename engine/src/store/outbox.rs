//! The write side of the webhook outbox: inside the transaction of a change, the events it
//! causes are written for every subscription of the tenant to them (a tenant without one
//! pays an indexed lookup), with their data.

use super::Backend;
use crate::time::from_millis;
use crate::webhook::WebhookEvent;
use serde_json::Value;
use std::time::Duration;

/// How long a `call.completed` event of an answered call waits for the agent's outcome
/// before it is sent without one (an outcome reported sooner releases it at once).
pub(crate) const OUTCOME_HOLD: Duration = Duration::from_secs(10);

/// The `LIKE` pattern that finds subscriptions to `event` in the stored event list.
pub(crate) fn event_pattern(event: WebhookEvent) -> String {
    format!("%,{},%", event.as_str())
}

/// Writes `event` to the outbox, inside the caller's transaction, once per subscription of
/// the tenant to it (none: nothing is written). Expands to a `Result<u64, sqlx::Error>`.
macro_rules! emit_event {
    ($tx:expr, $tenant:expr, $event:expr, $payload:expr, $attempt:expr, $at:expr, $due:expr) => {
        sqlx::query(
            "INSERT INTO webhook_deliveries (subscription_id, tenant_id, event, attempt_id, payload, next_attempt_at, created_at) \
             SELECT id, tenant_id, $2, $3, $4, $5, $6 FROM webhook_subscriptions WHERE tenant_id = $1 AND events LIKE $7",
        )
        .bind($tenant.0)
        .bind($event.as_str())
        .bind($attempt)
        .bind(sqlx::types::Json($payload))
        .bind($due)
        .bind($at)
        .bind($crate::store::outbox::event_pattern($event))
        .execute(&mut *$tx)
        .await
        .map(|r| r.rows_affected())
    };
}
pub(crate) use emit_event;

/// Whether the tenant subscribes to `event`, inside the caller's transaction (so an event
/// that is costly to describe is described only when someone listens). Expands to a
/// `Result<bool, sqlx::Error>`.
macro_rules! has_subscriber {
    ($tx:expr, $tenant:expr, $event:expr) => {
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM webhook_subscriptions WHERE tenant_id = $1 AND events LIKE $2",
        )
        .bind($tenant.0)
        .bind($crate::store::outbox::event_pattern($event))
        .fetch_one(&mut *$tx)
        .await
        .map(|n| n > 0)
    };
}
pub(crate) use has_subscriber;

/// The events a campaign transition causes: always `campaign.status_changed`, and
/// `campaign.auto_paused` when the campaign paused itself (the pacer's quality pause or
/// the system's failure-streak pause).
pub(crate) fn transition_events(
    to: crate::campaign::CampaignStatus,
    cause: crate::campaign::Cause,
) -> Vec<WebhookEvent> {
    use crate::campaign::{CampaignStatus, Cause};
    let mut events = vec![WebhookEvent::CampaignStatusChanged];
    if to == CampaignStatus::Paused && cause != Cause::User {
        events.push(WebhookEvent::CampaignAutoPaused);
    }
    events
}

/// The data of a campaign transition's events.
pub(crate) fn transition_payload(
    campaign: &super::CampaignRecord,
    change: &crate::campaign::Transition,
    detail: &Option<Value>,
    at: i64,
) -> Value {
    serde_json::json!({
        "campaign_id": campaign.id,
        "name": campaign.config.name,
        "from": change.from.as_str(),
        "to": change.to.as_str(),
        "cause": change.cause.as_str(),
        "reason": change.reason,
        "detail": detail,
        "at": from_millis(at),
    })
}

/// The data of a `call.completed` event.
pub(crate) fn call_payload(attempt: &super::AttemptRecord) -> Value {
    let duration = match (attempt.answered_at, attempt.ended_at) {
        (Some(a), Some(e)) => Some((e - a).num_milliseconds().max(0) as f64 / 1000.0),
        _ => None,
    };
    serde_json::json!({
        "call_id": attempt.id,
        "campaign_id": attempt.campaign_id,
        "contact_id": attempt.contact_id,
        "attempt_no": attempt.attempt_no,
        "phone": attempt.phone,
        "result": attempt.result,
        "outcome": attempt.outcome,
        "answered_by": attempt.detail.get("answered_by"),
        "carrier_call_id": attempt.carrier_call_id,
        "reserved_at": attempt.reserved_at,
        "dialed_at": attempt.dialed_at,
        "answered_at": attempt.answered_at,
        "ended_at": attempt.ended_at,
        "talk_seconds": duration,
    })
}

/// When a `call.completed` event is first sent: at once, unless the call was answered and
/// its agent has not reported yet (then after [`OUTCOME_HOLD`], or when the outcome comes).
pub(crate) fn call_due(attempt: &super::AttemptRecord, at: i64) -> i64 {
    if attempt.answered_at.is_some() && attempt.outcome.is_none() {
        at + OUTCOME_HOLD.as_millis() as i64
    } else {
        at
    }
}

/// The statement that fills a held `call.completed` event in with the agent's outcome and
/// releases it (`$1` attempt, `$2` outcome, `$3` now).
pub(crate) fn outcome_fill_sql(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => {
            "UPDATE webhook_deliveries SET payload = json_set(payload, '$.outcome', $2), \
             next_attempt_at = MIN(next_attempt_at, $3) \
             WHERE attempt_id = $1 AND event = 'call.completed' AND status = 'pending' AND attempts = 0"
        }
        Backend::Postgres => {
            "UPDATE webhook_deliveries SET payload = jsonb_set(payload, '{outcome}', to_jsonb($2::text)), \
             next_attempt_at = LEAST(next_attempt_at, $3) \
             WHERE attempt_id = $1 AND event = 'call.completed' AND status = 'pending' AND attempts = 0"
        }
    }
}

/// The data of a `contact.opted_out` event.
pub(crate) fn opt_out_payload(
    contact: crate::ContactId,
    phone: &str,
    at: i64,
    source: &str,
    call: Option<crate::AttemptId>,
) -> Value {
    serde_json::json!({
        "contact_id": contact,
        "phone": phone,
        "opted_out_at": from_millis(at),
        "source": source,
        "call_id": call,
    })
}

/// Writes `call.completed` for an attempt that has just ended, inside the caller's
/// transaction (whose error type must take `crate::Error`), when the tenant listens.
macro_rules! emit_call_completed {
    ($tx:expr, $tenant:expr, $attempt:expr, $at:expr) => {
        if $crate::store::outbox::has_subscriber!(
            $tx,
            $tenant,
            $crate::webhook::WebhookEvent::CallCompleted
        )? {
            let sql = format!("{} WHERE id = $1", $crate::store::attempts::ATTEMPT_SELECT);
            let row: $crate::store::attempts::AttemptRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind($attempt.0)
                .fetch_one(&mut *$tx)
                .await?;
            let record = row.into_record()?;
            let payload = $crate::store::outbox::call_payload(&record);
            let due = $crate::store::outbox::call_due(&record, $at);
            $crate::store::outbox::emit_event!(
                $tx,
                $tenant,
                $crate::webhook::WebhookEvent::CallCompleted,
                &payload,
                Some($attempt.0),
                $at,
                due
            )?;
        }
    };
}
pub(crate) use emit_call_completed;
