//! The per-campaign contact queue, call attempts and their append-only events.
//!
//! An attempt is reserved durably before the carrier is asked to dial: the unique
//! `(campaign, contact, attempt_no)` key and the queue row's attempt counter make a second
//! reservation of the same attempt fail instead of dialing the contact twice.

use super::BeginWrite as _;
use super::{Store, with_db};
use crate::error::{Error, Result};
use crate::time::{from_millis, to_millis};
use crate::{AttemptId, CampaignId, ContactId, E164, TenantId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::types::Json;

/// Where one call attempt is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptStatus {
    /// Stored; the carrier has not been asked yet.
    Reserved,
    /// The carrier was asked to place the call.
    Dialing,
    /// The callee's phone is ringing.
    Ringing,
    /// Answered (by a person or a machine), not yet with the agent.
    Answered,
    /// Connected to the agent.
    Bridged,
    /// Over, with a result.
    Ended,
}

impl AttemptStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [AttemptStatus; 6] = [
        AttemptStatus::Reserved,
        AttemptStatus::Dialing,
        AttemptStatus::Ringing,
        AttemptStatus::Answered,
        AttemptStatus::Bridged,
        AttemptStatus::Ended,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptStatus::Reserved => "reserved",
            AttemptStatus::Dialing => "dialing",
            AttemptStatus::Ringing => "ringing",
            AttemptStatus::Answered => "answered",
            AttemptStatus::Bridged => "bridged",
            AttemptStatus::Ended => "ended",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                Error::Database(sqlx::Error::Decode(
                    format!("unknown attempt status {s:?}").into(),
                ))
            })
    }
}

/// A contact's place in a campaign's queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueEntry {
    /// Campaign.
    pub campaign_id: CampaignId,
    /// Contact.
    pub contact_id: ContactId,
    /// Higher is dialed first.
    pub priority: i32,
    /// `queued`, `in_progress` or `done`.
    pub state: String,
    /// Attempts made so far.
    pub attempts: i32,
    /// Not before this time (`None`: now).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The last attempt's start.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The last attempt's result.
    pub last_result: Option<String>,
}

/// What to reserve.
#[derive(Debug, Clone)]
pub struct NewAttempt {
    /// Owner.
    pub tenant_id: TenantId,
    /// Campaign.
    pub campaign_id: CampaignId,
    /// Contact.
    pub contact_id: ContactId,
    /// The number to dial.
    pub phone: E164,
    /// The queue's attempt count the caller saw; the reservation fails if it changed.
    pub attempts_seen: i32,
}

/// A stored call attempt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptRecord {
    /// Id.
    pub id: AttemptId,
    /// Owner.
    pub tenant_id: TenantId,
    /// Campaign.
    pub campaign_id: CampaignId,
    /// Contact.
    pub contact_id: ContactId,
    /// 1 for the first attempt to this contact in this campaign.
    pub attempt_no: i32,
    /// The number dialed.
    pub phone: String,
    /// Where it is.
    pub status: AttemptStatus,
    /// How the call ended (`completed`, `no_answer`, `busy`, `failed`, ...).
    pub result: Option<String>,
    /// The agent's outcome (`interested`, `do_not_call`, ...).
    pub outcome: Option<String>,
    /// The carrier's id for the call (Twilio `CallSid`).
    pub carrier_call_id: Option<String>,
    /// Reserved.
    pub reserved_at: DateTime<Utc>,
    /// Carrier asked to dial.
    pub dialed_at: Option<DateTime<Utc>>,
    /// Answered.
    pub answered_at: Option<DateTime<Utc>>,
    /// Ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Everything else known about the call (notes, timings, errors).
    pub detail: Map<String, Value>,
    /// The carrier's error code for a failed call (Twilio `ErrorCode`).
    pub error_code: Option<i64>,
    /// The call's final SIP status as the carrier reported it (`SipResponseCode`).
    pub sip_response_code: Option<u16>,
}

/// A change to an attempt; `None` fields are left as they are.
#[derive(Debug, Clone, Default)]
pub struct AttemptUpdate {
    /// New status.
    pub status: Option<AttemptStatus>,
    /// Carrier call id.
    pub carrier_call_id: Option<String>,
    /// Dial time.
    pub dialed_at: Option<DateTime<Utc>>,
    /// Answer time.
    pub answered_at: Option<DateTime<Utc>>,
    /// End time.
    pub ended_at: Option<DateTime<Utc>>,
    /// Result.
    pub result: Option<String>,
    /// Agent outcome.
    pub outcome: Option<String>,
    /// Keys merged into the detail object (null values are not stored).
    pub detail: Option<Map<String, Value>>,
}

/// One thing that happened on a call, stored append-only.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallEvent {
    /// Attempt.
    pub attempt_id: AttemptId,
    /// When.
    pub at: DateTime<Utc>,
    /// What (`carrier.ringing`, `agent.first_audio`, ...).
    pub kind: String,
    /// Figures.
    pub data: Value,
}

#[derive(sqlx::FromRow)]
pub(super) struct AttemptRow {
    id: i64,
    tenant_id: i64,
    campaign_id: i64,
    contact_id: i64,
    attempt_no: i32,
    phone: String,
    status: String,
    result: Option<String>,
    outcome: Option<String>,
    carrier_call_id: Option<String>,
    reserved_at: i64,
    dialed_at: Option<i64>,
    answered_at: Option<i64>,
    ended_at: Option<i64>,
    detail: Json<Map<String, Value>>,
    error_code: Option<i64>,
    sip_response_code: Option<i32>,
}

impl AttemptRow {
    pub(super) fn into_record(self) -> Result<AttemptRecord> {
        Ok(AttemptRecord {
            id: AttemptId(self.id),
            tenant_id: TenantId(self.tenant_id),
            campaign_id: CampaignId(self.campaign_id),
            contact_id: ContactId(self.contact_id),
            attempt_no: self.attempt_no,
            phone: self.phone,
            status: AttemptStatus::parse(&self.status)?,
            result: self.result,
            outcome: self.outcome,
            carrier_call_id: self.carrier_call_id,
            reserved_at: from_millis(self.reserved_at),
            dialed_at: self.dialed_at.map(from_millis),
            answered_at: self.answered_at.map(from_millis),
            ended_at: self.ended_at.map(from_millis),
            detail: self.detail.0,
            error_code: self.error_code,
            sip_response_code: self
                .sip_response_code
                .and_then(|code| u16::try_from(code).ok()),
        })
    }
}

pub(super) const ATTEMPT_SELECT: &str = "SELECT id, tenant_id, campaign_id, contact_id, attempt_no, phone, status, result, \
     outcome, carrier_call_id, reserved_at, dialed_at, answered_at, ended_at, detail, error_code, \
     sip_response_code FROM call_attempts";

type QueueRow = (
    i64,
    i64,
    i32,
    String,
    i32,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

fn queue_from_row(
    (campaign_id, contact_id, priority, state, attempts, next, last, result): QueueRow,
) -> QueueEntry {
    QueueEntry {
        campaign_id: CampaignId(campaign_id),
        contact_id: ContactId(contact_id),
        priority,
        state,
        attempts,
        next_attempt_at: next.map(from_millis),
        last_attempt_at: last.map(from_millis),
        last_result: result,
    }
}

impl Store {
    /// The attempt that holds this carrier call id, if one does.
    pub async fn attempt_holding_call(&self, carrier_call_id: &str) -> Result<Option<AttemptId>> {
        let id: Option<i64> = with_db!(self, |pool| {
            sqlx::query_scalar("SELECT id FROM call_attempts WHERE carrier_call_id = $1 LIMIT 1")
                .bind(carrier_call_id)
                .fetch_optional(pool)
                .await
        })?;
        Ok(id.map(AttemptId))
    }

    /// Puts contacts in a campaign's queue (contacts already queued stay as they are).
    /// Returns how many were added.
    pub async fn enqueue_contacts(
        &self,
        campaign: CampaignId,
        contacts: &[ContactId],
        priority: i32,
    ) -> Result<u64> {
        let added = with_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let mut added = 0;
            for c in contacts {
                added += sqlx::query(
                    "INSERT INTO campaign_contacts (campaign_id, contact_id, priority) VALUES ($1, $2, $3) \
                     ON CONFLICT (campaign_id, contact_id) DO NOTHING",
                )
                .bind(campaign.0)
                .bind(c.0)
                .bind(priority)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            tx.commit().await?;
            Ok::<u64, sqlx::Error>(added)
        })?;
        Ok(added)
    }

    /// Queued contacts that may be dialed at `at`, highest priority first, then the
    /// longest waiting.
    pub async fn due_contacts(
        &self,
        campaign: CampaignId,
        at: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<QueueEntry>> {
        let rows: Vec<QueueRow> = with_db!(self, |pool| {
            sqlx::query_as(
                "SELECT campaign_id, contact_id, priority, state, attempts, next_attempt_at, last_attempt_at, last_result \
                 FROM campaign_contacts WHERE campaign_id = $1 AND state = 'queued' \
                 AND (next_attempt_at IS NULL OR next_attempt_at <= $2) \
                 ORDER BY priority DESC, COALESCE(next_attempt_at, 0), contact_id LIMIT $3",
            )
            .bind(campaign.0)
            .bind(to_millis(at))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
        })?;
        Ok(rows.into_iter().map(queue_from_row).collect())
    }

    /// One contact's queue entry.
    pub async fn queue_entry(
        &self,
        campaign: CampaignId,
        contact: ContactId,
    ) -> Result<QueueEntry> {
        let row: Option<QueueRow> = with_db!(self, |pool| {
            sqlx::query_as(
                "SELECT campaign_id, contact_id, priority, state, attempts, next_attempt_at, last_attempt_at, last_result \
                 FROM campaign_contacts WHERE campaign_id = $1 AND contact_id = $2",
            )
            .bind(campaign.0)
            .bind(contact.0)
            .fetch_optional(pool)
            .await
        })?;
        row.map(queue_from_row)
            .ok_or_else(|| Error::not_found("queue entry", format!("{campaign}/{contact}")))
    }

    /// One attempt.
    pub async fn attempt(&self, id: AttemptId) -> Result<AttemptRecord> {
        let sql = format!("{ATTEMPT_SELECT} WHERE id = $1");
        let row: Option<AttemptRow> = with_db!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(id.0)
                .fetch_optional(pool)
                .await
        })?;
        row.ok_or_else(|| Error::not_found("attempt", id))?
            .into_record()
    }

    /// A campaign's attempts, newest first.
    pub async fn campaign_attempts(
        &self,
        campaign: CampaignId,
        limit: u32,
    ) -> Result<Vec<AttemptRecord>> {
        let sql = format!("{ATTEMPT_SELECT} WHERE campaign_id = $1 ORDER BY id DESC LIMIT $2");
        let rows: Vec<AttemptRow> = with_db!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(campaign.0)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
        })?;
        rows.into_iter().map(AttemptRow::into_record).collect()
    }

    /// A campaign's attempts that ended while no supervisor followed them: the newest
    /// attempt of a contact whose queue entry is still `in_progress`. A process that died
    /// mid-call leaves such attempts when the carrier's last callback (or the agent's
    /// report) lands before the next supervisor starts; that supervisor finishes them
    /// (retry policy, queue) as it finishes the ones it follows.
    pub async fn ended_unsettled_attempts(
        &self,
        campaign: crate::CampaignId,
    ) -> Result<Vec<AttemptRecord>> {
        let sql = format!(
            "{ATTEMPT_SELECT} a WHERE a.campaign_id = $1 AND a.status = 'ended' \
             AND EXISTS (SELECT 1 FROM campaign_contacts q WHERE q.campaign_id = a.campaign_id \
                 AND q.contact_id = a.contact_id AND q.state = 'in_progress') \
             AND a.id = (SELECT MAX(b.id) FROM call_attempts b \
                 WHERE b.campaign_id = a.campaign_id AND b.contact_id = a.contact_id) \
             ORDER BY a.id"
        );
        let rows: Vec<AttemptRow> = with_db!(self, |pool| sqlx::query_as(sqlx::AssertSqlSafe(
            sql.clone()
        ))
        .bind(campaign.0)
        .fetch_all(pool)
        .await)?;
        rows.into_iter().map(AttemptRow::into_record).collect()
    }

    /// Attempts that did not reach `ended` (after a crash, these are reconciled).
    pub async fn unfinished_attempts(&self) -> Result<Vec<AttemptRecord>> {
        let sql = format!("{ATTEMPT_SELECT} WHERE status <> 'ended' ORDER BY id");
        let rows: Vec<AttemptRow> =
            with_db!(self, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .fetch_all(pool)
                .await)?;
        rows.into_iter().map(AttemptRow::into_record).collect()
    }

    /// An attempt's events, in the order they were written.
    pub async fn attempt_events(&self, attempt: AttemptId) -> Result<Vec<CallEvent>> {
        let rows: Vec<(i64, i64, String, Json<Value>)> = with_db!(self, |pool| {
            sqlx::query_as("SELECT attempt_id, at, kind, data FROM call_events WHERE attempt_id = $1 ORDER BY id")
                .bind(attempt.0)
                .fetch_all(pool)
                .await
        })?;
        Ok(rows
            .into_iter()
            .map(|(a, at, kind, data)| CallEvent {
                attempt_id: AttemptId(a),
                at: from_millis(at),
                kind,
                data: data.0,
            })
            .collect())
    }
}

/// How a campaign's queue stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueCounts {
    /// Waiting for an attempt (now or later).
    pub queued: u64,
    /// With an attempt in flight.
    pub in_progress: u64,
    /// Finished with (no more attempts).
    pub done: u64,
}

impl Store {
    /// A contact's attempts in a campaign, oldest first.
    pub async fn contact_attempts(
        &self,
        campaign: CampaignId,
        contact: ContactId,
    ) -> Result<Vec<AttemptRecord>> {
        let sql = format!(
            "{ATTEMPT_SELECT} WHERE campaign_id = $1 AND contact_id = $2 ORDER BY attempt_no"
        );
        let rows: Vec<AttemptRow> = with_db!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(campaign.0)
                .bind(contact.0)
                .fetch_all(pool)
                .await
        })?;
        rows.into_iter().map(AttemptRow::into_record).collect()
    }

    /// How many attempts a campaign reserved since `since` (daily caps, calls per minute).
    pub async fn attempts_since(&self, campaign: CampaignId, since: DateTime<Utc>) -> Result<u64> {
        let n: i64 = with_db!(self, |pool| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM call_attempts WHERE campaign_id = $1 AND reserved_at >= $2",
            )
            .bind(campaign.0)
            .bind(to_millis(since))
            .fetch_one(pool)
            .await
        })?;
        Ok(super::count(n))
    }

    /// The campaign's queue by state.
    pub async fn queue_counts(&self, campaign: CampaignId) -> Result<QueueCounts> {
        let rows: Vec<(String, i64)> = with_db!(self, |pool| {
            sqlx::query_as("SELECT state, COUNT(*) FROM campaign_contacts WHERE campaign_id = $1 GROUP BY state")
                .bind(campaign.0)
                .fetch_all(pool)
                .await
        })?;
        let mut counts = QueueCounts::default();
        for (state, n) in rows {
            match state.as_str() {
                "queued" => counts.queued = super::count(n),
                "in_progress" => counts.in_progress = super::count(n),
                _ => counts.done += super::count(n),
            }
        }
        Ok(counts)
    }
}
