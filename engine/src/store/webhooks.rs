//! Outbound webhooks: subscriptions, the durable outbox of deliveries and the log of every
//! send.
//!
//! An event is written to the outbox in the same transaction as the change that causes it
//! (a campaign transition, a call's end, an opt-out), one row per matching subscription,
//! so a committed change always has its deliveries and a rolled-back one never does. A
//! tenant without a matching subscription pays one indexed lookup. Delivery workers claim
//! due rows with a lease (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so several processes share
//! the outbox), send them, and record each send; a failed send is rescheduled with backoff
//! until the retry schedule gives up.

use super::BeginWrite as _;
use super::{Backend, Store, with_db};
use crate::error::{Error, Result};
use crate::time::{from_millis, now, to_millis};
use crate::webhook::{NewWebhook, RetrySchedule, WebhookEvent};
use crate::{DeliveryId, TenantId, WebhookId};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::types::Json;
use std::collections::HashMap;
use std::time::Duration;

/// A tenant's subscription (its secret is shown only once, at creation).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookRecord {
    /// Id.
    pub id: WebhookId,
    /// Owner.
    pub tenant_id: TenantId,
    /// Where deliveries go.
    pub url: String,
    /// What is delivered.
    pub events: Vec<WebhookEvent>,
    /// A label for people.
    pub description: String,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its first send or a retry.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Every send failed; no more retries.
    Failed,
}

impl DeliveryStatus {
    fn parse(s: &str) -> Result<Self> {
        match s {
            "pending" => Ok(DeliveryStatus::Pending),
            "delivered" => Ok(DeliveryStatus::Delivered),
            "failed" => Ok(DeliveryStatus::Failed),
            other => Err(Error::Database(sqlx::Error::Decode(
                format!("unknown delivery status {other:?}").into(),
            ))),
        }
    }
}

/// One send of a delivery.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryAttemptRecord {
    /// 1 for the first send.
    pub attempt_no: i32,
    /// When it was sent.
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status, if it answered.
    pub status_code: Option<i32>,
    /// What went wrong (a non-2xx answer, a timeout, a refused connection).
    pub error: Option<String>,
    /// How long the send took, in milliseconds.
    pub duration_ms: i64,
}

/// One event's delivery to one subscription, with every send.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryRecord {
    /// Id (also the event id the receiver sees).
    pub id: DeliveryId,
    /// The subscription.
    pub webhook_id: WebhookId,
    /// The event.
    pub event: String,
    /// The event's data.
    pub payload: Value,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Sends so far.
    pub attempts: i32,
    /// The next send (while pending).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The last send's error.
    pub last_error: Option<String>,
    /// When the event happened.
    pub created_at: DateTime<Utc>,
    /// Delivered or given up.
    pub finished_at: Option<DateTime<Utc>>,
    /// Every send, oldest first.
    pub log: Vec<DeliveryAttemptRecord>,
}

/// A delivery claimed by a worker, with what it needs to send it.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    /// Id.
    pub id: DeliveryId,
    /// The subscription.
    pub webhook_id: WebhookId,
    /// Where to send it.
    pub url: String,
    /// The subscription's signing secret.
    pub secret: String,
    /// The event.
    pub event: String,
    /// The event's data.
    pub payload: Value,
    /// Sends before this one.
    pub attempts: i32,
    /// When the event happened.
    pub created_at: DateTime<Utc>,
}

/// What one send came to.
#[derive(Debug, Clone)]
pub struct SendReport {
    /// When it was sent.
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status, if it answered.
    pub status_code: Option<u16>,
    /// What went wrong, if anything.
    pub error: Option<String>,
    /// How long it took.
    pub duration: Duration,
    /// No retry can help (the destination is refused): a failed send fails the delivery.
    pub give_up: bool,
}

impl SendReport {
    /// Delivered: the receiver answered 2xx.
    pub fn delivered(&self) -> bool {
        self.error.is_none() && self.status_code.is_some_and(|c| (200..300).contains(&c))
    }
}

type WebhookRow = (i64, i64, String, String, String, i64);

fn webhook_from_row((id, tenant, url, events, description, created): WebhookRow) -> WebhookRecord {
    WebhookRecord {
        id: WebhookId(id),
        tenant_id: TenantId(tenant),
        url,
        events: events.split(',').filter_map(|e| e.parse().ok()).collect(),
        description,
        created_at: from_millis(created),
    }
}

type DeliveryRow = (
    i64,
    i64,
    String,
    Json<Value>,
    String,
    i32,
    i64,
    Option<String>,
    i64,
    Option<i64>,
);

type AttemptLogRow = (i64, i32, i64, Option<i32>, Option<String>, i64);

impl Store {
    /// Creates a subscription with its signing secret (validated: an http(s) URL and at
    /// least one known event).
    pub async fn create_webhook(
        &self,
        tenant: TenantId,
        hook: &NewWebhook,
        secret: &str,
    ) -> Result<WebhookRecord> {
        let events = hook.validate()?;
        let list: Vec<_> = events.iter().map(|e| e.as_str()).collect();
        let stored = format!(",{},", list.join(","));
        let at = to_millis(now());
        let id: i64 = with_db!(self, |pool| {
            sqlx::query_scalar(
                "INSERT INTO webhook_subscriptions (tenant_id, url, events, description, secret, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(tenant.0)
            .bind(hook.url.trim())
            .bind(&stored)
            .bind(&hook.description)
            .bind(secret)
            .bind(at)
            .fetch_one(pool)
            .await
        })?;
        self.webhook(tenant, WebhookId(id)).await
    }

    /// One subscription of the tenant.
    pub async fn webhook(&self, tenant: TenantId, id: WebhookId) -> Result<WebhookRecord> {
        let row: Option<WebhookRow> = with_db!(self, |pool| {
            sqlx::query_as(
                "SELECT id, tenant_id, url, events, description, created_at FROM webhook_subscriptions \
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant.0)
            .bind(id.0)
            .fetch_optional(pool)
            .await
        })?;
        row.map(webhook_from_row)
            .ok_or_else(|| Error::not_found("webhook", id))
    }

    /// The tenant's subscriptions, by id.
    pub async fn webhooks(&self, tenant: TenantId) -> Result<Vec<WebhookRecord>> {
        let rows: Vec<WebhookRow> = with_db!(self, |pool| {
            sqlx::query_as(
                "SELECT id, tenant_id, url, events, description, created_at FROM webhook_subscriptions \
                 WHERE tenant_id = $1 ORDER BY id",
            )
            .bind(tenant.0)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows.into_iter().map(webhook_from_row).collect())
    }

    /// Deletes a subscription; its pending deliveries and their log go with it.
    pub async fn delete_webhook(&self, tenant: TenantId, id: WebhookId) -> Result<()> {
        let n = with_db!(self, |pool| {
            sqlx::query("DELETE FROM webhook_subscriptions WHERE tenant_id = $1 AND id = $2")
                .bind(tenant.0)
                .bind(id.0)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        if n == 0 {
            Err(Error::not_found("webhook", id))
        } else {
            Ok(())
        }
    }

    /// A subscription's latest deliveries, newest first, each with its sends.
    pub async fn webhook_deliveries(
        &self,
        tenant: TenantId,
        id: WebhookId,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>> {
        self.webhook(tenant, id).await?;
        let limit = i64::from(limit.clamp(1, 500));
        let (rows, log): (Vec<DeliveryRow>, Vec<AttemptLogRow>) = with_db!(self, |pool| {
            let rows = sqlx::query_as(
                "SELECT id, subscription_id, event, payload, status, attempts, next_attempt_at, last_error, \
                 created_at, finished_at FROM webhook_deliveries WHERE subscription_id = $1 ORDER BY id DESC LIMIT $2",
            )
            .bind(id.0)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            let log = sqlx::query_as(
                "SELECT delivery_id, attempt_no, at, status_code, error, duration_ms FROM webhook_attempts \
                 WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE subscription_id = $1 \
                 ORDER BY id DESC LIMIT $2) ORDER BY delivery_id, attempt_no",
            )
            .bind(id.0)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            Ok::<_, sqlx::Error>((rows, log))
        })?;
        let mut by_delivery: HashMap<i64, Vec<DeliveryAttemptRecord>> = HashMap::new();
        for (delivery, attempt_no, at, status_code, error, duration_ms) in log {
            by_delivery
                .entry(delivery)
                .or_default()
                .push(DeliveryAttemptRecord {
                    attempt_no,
                    at: from_millis(at),
                    status_code,
                    error,
                    duration_ms,
                });
        }
        rows.into_iter()
            .map(
                |(id, hook, event, payload, status, attempts, next, error, created, finished)| {
                    let status = DeliveryStatus::parse(&status)?;
                    Ok(DeliveryRecord {
                        id: DeliveryId(id),
                        webhook_id: WebhookId(hook),
                        event,
                        payload: payload.0,
                        status,
                        attempts,
                        next_attempt_at: (status == DeliveryStatus::Pending)
                            .then(|| from_millis(next)),
                        last_error: error,
                        created_at: from_millis(created),
                        finished_at: finished.map(from_millis),
                        log: by_delivery.remove(&id).unwrap_or_default(),
                    })
                },
            )
            .collect()
    }

    /// Claims up to `limit` deliveries due at `at` for `lease` (no other worker takes them
    /// meanwhile; after a crash the lease runs out and another worker does).
    pub async fn claim_due_deliveries(
        &self,
        at: DateTime<Utc>,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<DueDelivery>> {
        let now = to_millis(at);
        let until = now + i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2);
        let skip_locked = match self.backend() {
            Backend::Sqlite => "",
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        };
        let claim = format!(
            "UPDATE webhook_deliveries SET locked_until = $2 WHERE id IN (\
               SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1 \
               AND (locked_until IS NULL OR locked_until <= $1) ORDER BY next_attempt_at, id LIMIT $3 {skip_locked}) \
             RETURNING id, subscription_id, event, payload, attempts, created_at"
        );
        type Claimed = (i64, i64, String, Json<Value>, i32, i64);
        let (claimed, hooks): (Vec<Claimed>, Vec<(i64, String, String)>) =
            with_db!(self, |pool| {
                let mut tx = pool.begin_write().await?;
                let claimed: Vec<Claimed> = sqlx::query_as(sqlx::AssertSqlSafe(claim))
                    .bind(now)
                    .bind(until)
                    .bind(i64::from(limit))
                    .fetch_all(&mut *tx)
                    .await?;
                let mut hooks = Vec::new();
                let mut ids: Vec<i64> = claimed.iter().map(|c| c.1).collect();
                ids.sort_unstable();
                ids.dedup();
                for id in ids {
                    let hook: (i64, String, String) = sqlx::query_as(
                        "SELECT id, url, secret FROM webhook_subscriptions WHERE id = $1",
                    )
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
                    hooks.push(hook);
                }
                tx.commit().await?;
                Ok::<_, sqlx::Error>((claimed, hooks))
            })?;
        let hooks: HashMap<i64, (String, String)> = hooks
            .into_iter()
            .map(|(id, url, secret)| (id, (url, secret)))
            .collect();
        let mut due: Vec<DueDelivery> = claimed
            .into_iter()
            .filter_map(|(id, hook, event, payload, attempts, created)| {
                let (url, secret) = hooks.get(&hook)?.clone();
                Some(DueDelivery {
                    id: DeliveryId(id),
                    webhook_id: WebhookId(hook),
                    url,
                    secret,
                    event,
                    payload: payload.0,
                    attempts,
                    created_at: from_millis(created),
                })
            })
            .collect();
        due.sort_by_key(|d| d.id);
        Ok(due)
    }

    /// Records one send of a claimed delivery: delivered, rescheduled after the schedule's
    /// backoff, or failed when the schedule or the report gives up. Returns where the
    /// delivery stands.
    pub async fn record_delivery_attempt(
        &self,
        id: DeliveryId,
        report: &SendReport,
        schedule: &RetrySchedule,
    ) -> Result<DeliveryStatus> {
        let at = to_millis(report.at);
        let duration_ms = i64::try_from(report.duration.as_millis()).unwrap_or(i64::MAX);
        let error = match (&report.error, report.status_code) {
            (Some(e), _) => Some(e.clone()),
            (None, Some(code)) if !report.delivered() => {
                Some(format!("the receiver answered {code}"))
            }
            (None, None) => Some("no answer".to_owned()),
            _ => None,
        };
        let status = with_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let attempts: Option<i32> = sqlx::query_scalar(
                "UPDATE webhook_deliveries SET attempts = attempts + 1 WHERE id = $1 AND status = 'pending' \
                 RETURNING attempts",
            )
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(attempts) = attempts else {
                return Err(Error::not_found("pending delivery", id));
            };
            sqlx::query(
                "INSERT INTO webhook_attempts (delivery_id, attempt_no, at, status_code, error, duration_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id.0)
            .bind(attempts)
            .bind(at)
            .bind(report.status_code.map(i32::from))
            .bind(error.as_deref())
            .bind(duration_ms)
            .execute(&mut *tx)
            .await?;
            let retry = schedule
                .delay_after(u32::try_from(attempts).unwrap_or(u32::MAX))
                .filter(|_| !report.give_up);
            let (status, next) = if report.delivered() {
                (DeliveryStatus::Delivered, at)
            } else if let Some(delay) = retry {
                let delay = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2);
                (DeliveryStatus::Pending, at + delay)
            } else {
                (DeliveryStatus::Failed, at)
            };
            let name = match status {
                DeliveryStatus::Pending => "pending",
                DeliveryStatus::Delivered => "delivered",
                DeliveryStatus::Failed => "failed",
            };
            sqlx::query(
                "UPDATE webhook_deliveries SET status = $2, next_attempt_at = $3, locked_until = NULL, \
                 last_error = $4, finished_at = CASE WHEN $2 = 'pending' THEN NULL ELSE $5 END WHERE id = $1",
            )
            .bind(id.0)
            .bind(name)
            .bind(next)
            .bind(error.as_deref())
            .bind(at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, Error>(status)
        })?;
        Ok(status)
    }

    /// Deletes deliveries (and their logs) delivered or given up before `before`; pending
    /// ones are kept. Returns how many went.
    pub async fn prune_deliveries(&self, before: DateTime<Utc>) -> Result<u64> {
        let n = with_db!(self, |pool| {
            sqlx::query(
                "DELETE FROM webhook_deliveries WHERE status <> 'pending' AND finished_at < $1",
            )
            .bind(to_millis(before))
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n)
    }

    /// Pending deliveries, for the metrics.
    pub async fn pending_deliveries(&self) -> Result<u64> {
        let n: i64 = with_db!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'")
                .fetch_one(pool)
                .await
        })?;
        Ok(super::count(n))
    }
}
