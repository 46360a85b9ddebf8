//! Group commit for the writes a call makes: many callers' writes applied in one
//! transaction (one commit, one fsync), each inside a savepoint of its own so that a write
//! that fails is rolled back alone and reported to its caller, while the others in the
//! batch are stored. A write in a batch runs the very statements of its single-write
//! method and gives the same result.

use super::attempts::{AttemptRecord, AttemptUpdate, CallEvent};
use super::outcomes::{CarrierUpdate, OutcomeReport, Recorded};
use super::{BeginWrite as _, Conn, Store, with_db};
use crate::error::{Error, Result};
use crate::{AttemptId, CampaignId, ContactId};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::HashSet;

/// Most writes applied in one batch (bounds how long one transaction holds the database).
pub const MAX_BATCH: usize = 256;

/// One write of the call path, as a value that can be queued and applied in a batch.
/// Each variant is one of the `Store` methods of the same name.
#[derive(Debug, Clone)]
pub enum Write {
    /// [`Store::append_events`].
    AppendEvents(Vec<CallEvent>),
    /// [`Store::apply_carrier_update`].
    CarrierUpdate(AttemptId, CarrierUpdate),
    /// [`Store::mark_bridged`].
    MarkBridged(AttemptId, Value),
    /// [`Store::update_attempt`].
    UpdateAttempt(AttemptId, AttemptUpdate),
    /// [`Store::record_outcome`].
    RecordOutcome(AttemptId, OutcomeReport),
    /// [`Store::record_first_agent_audio`].
    FirstAgentAudio {
        /// The call.
        attempt: AttemptId,
        /// When the agent was first heard.
        at: DateTime<Utc>,
        /// Milliseconds from the media stream's start.
        ms: u64,
    },
    /// [`Store::record_machine_detection`].
    MachineDetection {
        /// The call.
        attempt: AttemptId,
        /// Who answered, as the carrier's detection says.
        answered_by: String,
        /// How long detection took.
        detection_ms: Option<u64>,
        /// When it was received.
        at: DateTime<Utc>,
    },
    /// [`Store::requeue_contact`].
    RequeueContact {
        /// The campaign.
        campaign: CampaignId,
        /// The contact.
        contact: ContactId,
        /// The next attempt's time (`None`: the contact is done).
        next_attempt_at: Option<DateTime<Utc>>,
        /// The last attempt's result.
        last_result: String,
    },
}

impl Write {
    /// The attempt whose row the write updates (events only reference theirs).
    fn updates(&self) -> Option<AttemptId> {
        match self {
            Write::CarrierUpdate(id, _)
            | Write::MarkBridged(id, _)
            | Write::UpdateAttempt(id, _)
            | Write::RecordOutcome(id, _) => Some(*id),
            Write::FirstAgentAudio { attempt, .. } | Write::MachineDetection { attempt, .. } => {
                Some(*attempt)
            }
            Write::AppendEvents(_) | Write::RequeueContact { .. } => None,
        }
    }

    /// Every attempt the write is about (its order matters among their writes).
    fn attempts(&self) -> Vec<AttemptId> {
        match self {
            Write::AppendEvents(events) => events.iter().map(|e| e.attempt_id).collect(),
            other => other.updates().into_iter().collect(),
        }
    }

    /// The id whose writes must keep their order: the attempt's (an event list's first
    /// event's), or the contact's for a requeue. Writes with the same key are never
    /// reordered; writes with different keys may be applied in parallel.
    pub fn ordered_by(&self) -> i64 {
        match self {
            Write::RequeueContact { contact, .. } => contact.0,
            other => other.attempts().first().map_or(0, |a| a.0),
        }
    }

    /// The write's name (`carrier_update`, ...), for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Write::AppendEvents(_) => "append_events",
            Write::CarrierUpdate(..) => "carrier_update",
            Write::MarkBridged(..) => "mark_bridged",
            Write::UpdateAttempt(..) => "update_attempt",
            Write::RecordOutcome(..) => "record_outcome",
            Write::FirstAgentAudio { .. } => "first_agent_audio",
            Write::MachineDetection { .. } => "machine_detection",
            Write::RequeueContact { .. } => "requeue_contact",
        }
    }
}

/// What a write returned: the result of its single-write method.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// Nothing to return (events appended, first audio recorded, contact requeued).
    Done,
    /// Whether the attempt's status moved (carrier update, bridge).
    Moved(bool),
    /// The attempt after the change.
    Attempt(Box<AttemptRecord>),
    /// Whether an outcome report was new or a repeat.
    Recorded(Recorded),
    /// Who answered according to what was stored before (machine detection).
    PreviousAnsweredBy(Option<String>),
}

impl Applied {
    /// The result of a write with nothing to return.
    pub fn done(self) -> Result<()> {
        match self {
            Applied::Done => Ok(()),
            other => Err(other.mismatch("nothing")),
        }
    }

    /// Whether the status moved (a carrier update, a bridge).
    pub fn moved(self) -> Result<bool> {
        match self {
            Applied::Moved(moved) => Ok(moved),
            other => Err(other.mismatch("whether the status moved")),
        }
    }

    /// The attempt after an update.
    pub fn attempt(self) -> Result<AttemptRecord> {
        match self {
            Applied::Attempt(record) => Ok(*record),
            other => Err(other.mismatch("the attempt")),
        }
    }

    /// Whether an outcome report was new.
    pub fn recorded(self) -> Result<Recorded> {
        match self {
            Applied::Recorded(recorded) => Ok(recorded),
            other => Err(other.mismatch("whether the outcome was new")),
        }
    }

    /// Who answered according to what was stored before a machine detection.
    pub fn previous_answered_by(self) -> Result<Option<String>> {
        match self {
            Applied::PreviousAnsweredBy(previous) => Ok(previous),
            other => Err(other.mismatch("who answered before")),
        }
    }

    /// A result of another write than the caller's (a bug in whoever paired them).
    fn mismatch(&self, expected: &str) -> Error {
        Error::Database(sqlx::Error::Protocol(format!(
            "a write answered {self:?} where {expected} was expected"
        )))
    }
}

impl Write {
    /// The error of a caller whose write was handed to a writer that stopped before it
    /// answered: whether the write was stored is unknown.
    /// `kind` is the write's [`Write::kind`].
    pub fn lost(kind: &str) -> Error {
        Error::Database(sqlx::Error::Io(std::io::Error::other(format!(
            "the event writer stopped before answering; the {kind} write may not be stored"
        ))))
    }
}

/// Runs one write against a connection inside a transaction.
async fn apply(conn: Conn<'_>, write: &Write) -> Result<Applied> {
    use super::{attempt_writes as a, call_signals as s, outcomes as o};
    Ok(match write {
        Write::AppendEvents(events) => {
            a::append_events(conn, events).await?;
            Applied::Done
        }
        Write::CarrierUpdate(id, update) => {
            Applied::Moved(o::carrier_update(conn, *id, update).await?)
        }
        Write::MarkBridged(id, data) => Applied::Moved(o::mark_bridged(conn, *id, data).await?),
        Write::UpdateAttempt(id, update) => {
            Applied::Attempt(Box::new(a::update_attempt(conn, *id, update).await?))
        }
        Write::RecordOutcome(id, report) => {
            Applied::Recorded(o::record_outcome(conn, *id, report).await?)
        }
        Write::FirstAgentAudio { attempt, at, ms } => {
            s::first_agent_audio(conn, *attempt, *at, *ms).await?;
            Applied::Done
        }
        Write::MachineDetection {
            attempt,
            answered_by,
            detection_ms,
            at,
        } => Applied::PreviousAnsweredBy(
            s::machine_detection(conn, *attempt, answered_by, *detection_ms, *at).await?,
        ),
        Write::RequeueContact {
            campaign,
            contact,
            next_attempt_at,
            last_result,
        } => {
            a::requeue_contact(conn, *campaign, *contact, *next_attempt_at, last_result).await?;
            Applied::Done
        }
    })
}

/// The error every write of a batch gets when the batch itself failed (its transaction
/// could not begin or commit): none of them is stored.
fn batch_failed(e: &Error, writes: usize) -> Error {
    match e {
        Error::Database(sqlx::Error::PoolClosed) => Error::Database(sqlx::Error::PoolClosed),
        Error::Database(sqlx::Error::PoolTimedOut) => Error::Database(sqlx::Error::PoolTimedOut),
        e => Error::Database(sqlx::Error::Io(std::io::Error::other(format!(
            "the batch of {writes} writes holding this one was not stored: {e}"
        )))),
    }
}

impl Store {
    /// Applies one write in a transaction of its own (what its single-write method does).
    pub async fn apply_write(&self, write: &Write) -> Result<Applied> {
        super::in_write_tx!(self, |conn| apply(conn, write).await)
    }

    /// Applies writes in order, in one transaction, each in a savepoint of its own: the
    /// results come back in the same order, each exactly what its single-write method
    /// would have returned. A write that fails is rolled back alone and its error is its
    /// own; the others are stored. Every write reported `Ok` is durable when this returns;
    /// when the transaction itself fails, every write gets an error and none is stored.
    /// At most [`MAX_BATCH`] writes at once.
    ///
    /// Batches of several writers (several processes) touch the same calls: on PostgreSQL
    /// the transaction first locks every attempt it will update, in id order, so that two
    /// batches never wait on each other in a cycle. A write that still loses a lock race
    /// (deadlock, serialization failure) is applied again after the commit, alone, with
    /// the later writes of its calls, in their order.
    pub async fn apply_writes(&self, writes: &[Write]) -> Vec<Result<Applied>> {
        if writes.len() > MAX_BATCH {
            let refused = || {
                Error::invalid(
                    "batch",
                    "writes",
                    format!("at most {MAX_BATCH} writes at once, not {}", writes.len()),
                )
            };
            return writes.iter().map(|_| Err(refused())).collect();
        }
        if writes.is_empty() {
            return Vec::new();
        }
        let mut updated: Vec<i64> = writes
            .iter()
            .filter_map(Write::updates)
            .map(|a| a.0)
            .collect();
        updated.sort_unstable();
        updated.dedup();
        // `None`: put off until after the commit.
        let mut results: Vec<Option<Result<Applied>>> = Vec::with_capacity(writes.len());
        let stored: Result<()> = with_db!(self, |pool| {
            async {
                let mut tx = pool.begin_write().await?;
                lock_attempts(Conn::from(&mut *tx), &updated).await?;
                let mut put_off = HashSet::new();
                for write in writes {
                    if write.attempts().iter().any(|a| put_off.contains(a)) {
                        results.push(None);
                        continue;
                    }
                    let mut savepoint = sqlx::Connection::begin(&mut *tx).await?;
                    let result = apply(Conn::from(&mut *savepoint), write).await;
                    match &result {
                        Ok(_) => savepoint.commit().await?,
                        Err(_) => savepoint.rollback().await?,
                    }
                    if result.as_ref().is_err_and(lost_a_lock_race) {
                        put_off.extend(write.attempts());
                        results.push(None);
                    } else {
                        results.push(Some(result));
                    }
                }
                tx.commit().await?;
                Ok(())
            }
            .await
        });
        if let Err(e) = stored {
            return writes
                .iter()
                .map(|_| Err(batch_failed(&e, writes.len())))
                .collect();
        }
        let mut answers = Vec::with_capacity(writes.len());
        for (write, result) in writes.iter().zip(results) {
            answers.push(match result {
                Some(result) => result,
                None => {
                    tracing::debug!(
                        kind = write.kind(),
                        "a write lost a lock race; applying it alone"
                    );
                    self.apply_write(write).await
                }
            });
        }
        answers
    }
}

/// Locks the attempts a batch updates, in id order, before any of its writes runs. On
/// SQLite the whole database is the batch's since `BEGIN IMMEDIATE`.
async fn lock_attempts(conn: Conn<'_>, ids: &[i64]) -> Result<(), sqlx::Error> {
    match conn {
        Conn::Sqlite(_) => Ok(()),
        Conn::Postgres(_) if ids.is_empty() => Ok(()),
        Conn::Postgres(c) => {
            sqlx::query(
                "SELECT id FROM call_attempts WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
            )
            .bind(ids)
            .fetch_all(&mut *c)
            .await?;
            Ok(())
        }
    }
}

/// Whether a write failed only because a concurrent transaction held what it needed
/// (PostgreSQL's deadlock and serialization failures): applied again, it succeeds.
fn lost_a_lock_race(e: &Error) -> bool {
    matches!(e, Error::Database(sqlx::Error::Database(d))
        if matches!(d.code().as_deref(), Some("40P01" | "40001")))
}
