//! The event writer: the writes every call makes (carrier callbacks, attempt updates, call
//! events, outcomes, requeues) go to the database in batches. A caller hands its write to
//! the writer and gets its own answer once the transaction holding it has committed, so a
//! write is still durable before anyone acts on it. The writer takes whatever is queued
//! (up to a bound) into one transaction; while it commits, new writes queue up for the
//! next one. Under load many writes share one commit; when idle a write goes alone at
//! once (no timer). Writes are applied in the order they were queued.
//!
//! The writer is plain tasks (not actors) so that the HTTP handlers, which also write
//! through it, work with or without the campaign runtime. [`EventWriter`] is its handle.
//! On PostgreSQL it runs several lanes, each a task with its own queue and connection: a
//! call's writes always go to the same lane (so they keep their order), and lanes commit
//! in parallel. SQLite has one writer at a time anyway, so it runs one lane.

use serde::Serialize;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use switchboard_engine::error::Result;
use switchboard_engine::store::{
    Applied, AttemptRecord, AttemptUpdate, Backend, CallEvent, CarrierUpdate, MAX_BATCH,
    OutcomeReport, Recorded, Store, Write,
};
use switchboard_engine::{AttemptId, CampaignId, ContactId};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::Instrument as _;

/// The writer's name in logs and snapshots.
pub const WRITER_NAME: &str = "event-writer";

/// How the event writer batches.
#[derive(Debug, Clone)]
pub struct WriterSettings {
    /// Most writes in one transaction (at most [`MAX_BATCH`]).
    pub max_batch: usize,
    /// Most writes waiting for a transaction, per lane; a caller past it waits for room.
    pub queue: usize,
    /// How many lanes (`None`: one on SQLite, [`POSTGRES_LANES`] on PostgreSQL).
    pub lanes: Option<usize>,
}

/// The lanes of a writer over PostgreSQL, unless configured.
pub const POSTGRES_LANES: usize = 4;

impl Default for WriterSettings {
    fn default() -> Self {
        WriterSettings {
            max_batch: MAX_BATCH,
            queue: 8 * MAX_BATCH,
            lanes: None,
        }
    }
}

/// One lane: its queue, and whether its task has stopped.
struct Lane {
    queue: mpsc::Sender<Request>,
    stopped: watch::Receiver<bool>,
}

/// What the writer is asked to do.
enum Request {
    /// Apply a write and answer with its result.
    Write(Write, oneshot::Sender<Result<Applied>>),
    /// Apply everything queued so far, then stop.
    Stop,
}

/// What the writer counts, shared by its task and its handles.
#[derive(Default)]
struct Counters {
    queued: AtomicU64,
    batches: AtomicU64,
    writes: AtomicU64,
    failed: AtomicU64,
    largest: AtomicU64,
    busy_micros: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// What the event writer has done since it started (the admin view shows it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WriterSnapshot {
    /// The writer's name.
    pub name: &'static str,
    /// Whether it takes writes (false once shut down: writes then go to the store alone).
    pub running: bool,
    /// Lanes committing in parallel.
    pub lanes: usize,
    /// Writes waiting for a transaction.
    pub queued: u64,
    /// Transactions committed or attempted.
    pub batches: u64,
    /// Writes applied (stored or refused).
    pub writes: u64,
    /// Writes that failed (each caller got its error).
    pub failed_writes: u64,
    /// Writes per transaction, on average.
    pub mean_batch: f64,
    /// The most writes one transaction held.
    pub largest_batch: u64,
    /// Seconds spent applying batches (near the time since start: the writer is saturated).
    pub busy_seconds: f64,
    /// The last failure, with the write's kind.
    pub last_error: Option<String>,
}

/// The handle to the event writer. Cheap to clone; the writer runs until
/// [`EventWriter::shutdown`] or until every handle is dropped.
#[derive(Clone)]
pub struct EventWriter {
    lanes: Arc<[Lane]>,
    store: Store,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for EventWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventWriter")
            .field("snapshot", &self.snapshot())
            .finish()
    }
}

impl EventWriter {
    /// Starts the writer's tasks over this store (inside a Tokio runtime).
    pub fn start(store: Store, settings: WriterSettings) -> EventWriter {
        let counters = Arc::new(Counters::default());
        let max_batch = settings.max_batch.clamp(1, MAX_BATCH);
        let lanes = settings.lanes.unwrap_or(match store.backend() {
            Backend::Sqlite => 1,
            Backend::Postgres => POSTGRES_LANES,
        });
        let lanes: Vec<Lane> = (0..lanes.clamp(1, 64))
            .map(|lane| {
                let (queue, requests) = mpsc::channel(settings.queue.max(1));
                let (done, stopped) = watch::channel(false);
                let task = run(store.clone(), requests, counters.clone(), max_batch);
                tokio::spawn(
                    async move {
                        task.await;
                        let _ = done.send(true);
                    }
                    .instrument(tracing::info_span!(
                        "event_writer",
                        name = WRITER_NAME,
                        lane
                    )),
                );
                Lane { queue, stopped }
            })
            .collect();
        EventWriter {
            lanes: lanes.into(),
            store,
            counters,
        }
    }

    /// The lane of a write: the same for every write of one call.
    fn lane(&self, write: &Write) -> &Lane {
        let n = self.lanes.len() as u64;
        let i = usize::try_from(write.ordered_by().unsigned_abs() % n).unwrap_or(0);
        &self.lanes[i]
    }

    /// Hands a write to the writer and waits until the transaction holding it has
    /// committed (or the write failed). After a shutdown, the write goes to the store alone.
    pub async fn submit(&self, write: Write) -> Result<Applied> {
        let (reply, answer) = oneshot::channel();
        let kind = write.kind();
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        let lane = self.lane(&write);
        match lane.queue.send(Request::Write(write, reply)).await {
            Ok(()) => match answer.await {
                Ok(result) => result,
                // The task ended without answering (it panicked mid-batch).
                Err(_) => Err(Write::lost(kind)),
            },
            Err(mpsc::error::SendError(request)) => {
                self.counters.queued.fetch_sub(1, Ordering::Relaxed);
                let Request::Write(write, _) = request else {
                    return Err(Write::lost(kind));
                };
                tracing::debug!(kind, "the event writer is stopped; writing alone");
                self.store.apply_write(&write).await
            }
        }
    }

    /// [`Store::append_events`] through the writer.
    pub async fn append_events(&self, events: Vec<CallEvent>) -> Result<()> {
        self.submit(Write::AppendEvents(events)).await?.done()
    }

    /// [`Store::apply_carrier_update`] through the writer.
    pub async fn apply_carrier_update(&self, id: AttemptId, update: CarrierUpdate) -> Result<bool> {
        self.submit(Write::CarrierUpdate(id, update)).await?.moved()
    }

    /// [`Store::mark_bridged`] through the writer.
    pub async fn mark_bridged(&self, id: AttemptId, data: Value) -> Result<bool> {
        self.submit(Write::MarkBridged(id, data)).await?.moved()
    }

    /// [`Store::update_attempt`] through the writer.
    pub async fn update_attempt(
        &self,
        id: AttemptId,
        update: AttemptUpdate,
    ) -> Result<AttemptRecord> {
        self.submit(Write::UpdateAttempt(id, update))
            .await?
            .attempt()
    }

    /// [`Store::record_outcome`] through the writer.
    pub async fn record_outcome(&self, id: AttemptId, report: OutcomeReport) -> Result<Recorded> {
        self.submit(Write::RecordOutcome(id, report))
            .await?
            .recorded()
    }

    /// [`Store::record_first_agent_audio`] through the writer.
    pub async fn record_first_agent_audio(
        &self,
        attempt: AttemptId,
        at: chrono::DateTime<chrono::Utc>,
        ms: u64,
    ) -> Result<()> {
        self.submit(Write::FirstAgentAudio { attempt, at, ms })
            .await?
            .done()
    }

    /// [`Store::record_machine_detection`] through the writer.
    pub async fn record_machine_detection(
        &self,
        attempt: AttemptId,
        answered_by: &str,
        detection_ms: Option<u64>,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<String>> {
        let write = Write::MachineDetection {
            attempt,
            answered_by: answered_by.to_owned(),
            detection_ms,
            at,
        };
        self.submit(write).await?.previous_answered_by()
    }

    /// [`Store::requeue_contact`] through the writer.
    pub async fn requeue_contact(
        &self,
        campaign: CampaignId,
        contact: ContactId,
        next_attempt_at: Option<chrono::DateTime<chrono::Utc>>,
        last_result: &str,
    ) -> Result<()> {
        let write = Write::RequeueContact {
            campaign,
            contact,
            next_attempt_at,
            last_result: last_result.to_owned(),
        };
        self.submit(write).await?.done()
    }

    /// The writer's counters now.
    pub fn snapshot(&self) -> WriterSnapshot {
        let c = &self.counters;
        let batches = c.batches.load(Ordering::Relaxed);
        let writes = c.writes.load(Ordering::Relaxed);
        WriterSnapshot {
            name: WRITER_NAME,
            running: self.lanes.iter().all(|lane| !*lane.stopped.borrow()),
            lanes: self.lanes.len(),
            queued: c.queued.load(Ordering::Relaxed),
            batches,
            writes,
            failed_writes: c.failed.load(Ordering::Relaxed),
            mean_batch: if batches == 0 {
                0.0
            } else {
                writes as f64 / batches as f64
            },
            largest_batch: c.largest.load(Ordering::Relaxed),
            busy_seconds: c.busy_micros.load(Ordering::Relaxed) as f64 / 1e6,
            last_error: c.last_error.lock().map(|e| e.clone()).unwrap_or_default(),
        }
    }

    /// Stops taking writes, applies every write queued before, and returns once they are
    /// stored (call it before closing the store). Writes handed over afterwards go to the
    /// store alone.
    pub async fn shutdown(&self) {
        for lane in self.lanes.iter() {
            let _ = lane.queue.send(Request::Stop).await;
        }
        for lane in self.lanes.iter() {
            let mut stopped = lane.stopped.clone();
            // An error here means the task is gone: nothing is left to wait for.
            let _ = stopped.wait_for(|stopped| *stopped).await;
        }
    }
}

/// A lane's task: one transaction per turn for whatever is queued (up to
/// `max_batch`), until stopped or until every handle is gone.
async fn run(
    store: Store,
    mut requests: mpsc::Receiver<Request>,
    counters: Arc<Counters>,
    max_batch: usize,
) {
    let mut taken = Vec::with_capacity(max_batch);
    while requests.recv_many(&mut taken, max_batch).await > 0 {
        let mut writes = Vec::with_capacity(taken.len());
        let mut replies = Vec::with_capacity(taken.len());
        for request in taken.drain(..) {
            match request {
                Request::Write(write, reply) => {
                    writes.push(write);
                    replies.push(reply);
                }
                // No new writes; those already queued are still applied below.
                Request::Stop => requests.close(),
            }
        }
        if writes.is_empty() {
            continue;
        }
        let n = writes.len() as u64;
        let left = counters
            .queued
            .fetch_sub(n, Ordering::Relaxed)
            .saturating_sub(n);
        let started = Instant::now();
        let results = store.apply_writes(&writes).await;
        record_batch(&counters, &writes, &results, started, left);
        for (reply, result) in replies.into_iter().zip(results) {
            // A caller that gave up waiting still has its write stored.
            let _ = reply.send(result);
        }
    }
    tracing::info!(
        batches = counters.batches.load(Ordering::Relaxed),
        writes = counters.writes.load(Ordering::Relaxed),
        "event writer stopped"
    );
}

/// Counts one batch and its failures, and records its metrics.
fn record_batch(
    counters: &Counters,
    writes: &[Write],
    results: &[Result<Applied>],
    started: Instant,
    left: u64,
) {
    let n = writes.len() as u64;
    counters.batches.fetch_add(1, Ordering::Relaxed);
    counters.writes.fetch_add(n, Ordering::Relaxed);
    counters.largest.fetch_max(n, Ordering::Relaxed);
    metrics::histogram!("switchboard_writer_batch_size").record(n as f64);
    let took = started.elapsed();
    let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
    counters.busy_micros.fetch_add(micros, Ordering::Relaxed);
    metrics::histogram!("switchboard_writer_batch_seconds").record(took.as_secs_f64());
    metrics::gauge!("switchboard_writer_queued").set(left as f64);
    let mut failed = 0;
    for (write, result) in writes.iter().zip(results) {
        if let Err(e) = result {
            failed += 1;
            tracing::debug!(kind = write.kind(), error = %e, "a write failed");
            if let Ok(mut last) = counters.last_error.lock() {
                *last = Some(format!("{}: {e}", write.kind()));
            }
        }
    }
    counters.failed.fetch_add(failed, Ordering::Relaxed);
    metrics::counter!("switchboard_writer_writes_total", "result" => "stored")
        .increment(n - failed);
    if failed > 0 {
        metrics::counter!("switchboard_writer_writes_total", "result" => "failed")
            .increment(failed);
    }
}
