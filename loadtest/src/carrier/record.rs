//! What the carrier remembers about each call, and the snapshot tests assert on.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use chrono::{DateTime, Utc};
use switchboard_media::{AnsweredBy, CallStatus};
use tokio::sync::{Notify, mpsc, watch};

use super::callbacks::Pending;
use super::request::CallRequest;
use super::script::CallPlan;
use super::twiml::Twiml;

/// Why a call's media stream ended (or never began).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamCloseReason {
    /// The callee's talk time (or the request's `TimeLimit`) ran out: `stop` was sent.
    TalkTimeEnded,
    /// The call was hung up through the REST API: `stop` was sent.
    HungUp,
    /// The call was given new TwiML through the REST API: `stop` was sent, then the new
    /// document ran.
    Redirected,
    /// The far side sent a close frame first.
    FarSideClosed {
        /// Close code, when the frame had one.
        code: Option<u16>,
        /// Close reason text.
        reason: String,
    },
    /// The far side went away without a closing handshake (or the socket failed).
    FarSideDropped {
        /// What the WebSocket library said.
        error: String,
    },
    /// The WebSocket connection could not be opened.
    ConnectFailed {
        /// Why.
        error: String,
    },
    /// The TwiML could not be fetched or read, so no stream was opened.
    TwimlError {
        /// Why.
        error: String,
    },
    /// The carrier was shut down during the call.
    Shutdown,
}

/// One status callback delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentCallback {
    /// `SequenceNumber` sent.
    pub sequence_number: u64,
    /// `CallStatus` sent.
    pub status: CallStatus,
    /// HTTP status of the receiver's answer; `None` when the request failed.
    pub http_status: Option<u16>,
    /// When it was sent.
    pub sent_at: Instant,
}

/// The asynchronous machine detection result as the carrier sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentAmd {
    /// `AnsweredBy` sent.
    pub answered_by: AnsweredBy,
    /// `MachineDetectionDuration` sent, in milliseconds.
    pub detection_ms: u64,
    /// HTTP status of the receiver's answer; `None` when the request failed.
    pub http_status: Option<u16>,
    /// When it was sent.
    pub sent_at: Instant,
}

/// A snapshot of one call, for assertions.
#[derive(Debug, Clone)]
pub struct CallRecord {
    /// Call SID (`CA` + 32 hex digits).
    pub sid: String,
    /// Callee.
    pub to: String,
    /// Caller id.
    pub from: String,
    /// Current (or final) status.
    pub status: CallStatus,
    /// When the create request arrived (what the account's calls-per-second counts).
    pub requested_at: Instant,
    /// When the create request was accepted (after the carrier's answer latency).
    pub created_at: Instant,
    /// When dialling began, after queueing for the calls-per-second limit.
    pub dial_started_at: Option<Instant>,
    /// Milliseconds spent queued (`queue_time`), once dialling began.
    pub queue_time_ms: Option<u64>,
    /// When the callee answered.
    pub answered_at: Option<Instant>,
    /// When the call ended.
    pub ended_at: Option<Instant>,
    /// Machine detection result (set only when answered).
    pub answered_by: Option<AnsweredBy>,
    /// The `<Stream url>` the call connected to, if any.
    pub stream_url: Option<String>,
    /// The stream SID (`MZ…`), once a stream was opened.
    pub stream_sid: Option<String>,
    /// Media frames sent toward the far side.
    pub frames_sent: u64,
    /// Media frames received from the far side.
    pub frames_received: u64,
    /// When the first far-side media frame arrived.
    pub first_far_audio_at: Option<Instant>,
    /// Marks echoed back to the far side, in order.
    pub marks_sent_back: Vec<String>,
    /// `clear` messages received.
    pub clears_received: u64,
    /// DTMF digits sent.
    pub dtmf_sent: Vec<String>,
    /// Frame ticks that fired more than half a frame late.
    pub late_ticks: u64,
    /// Far-side messages that broke the dialect (binary, bad JSON, wrong stream SID, …).
    pub protocol_errors: u64,
    /// The same, per kind of violation.
    pub frame_violations: super::frames::FrameViolations,
    /// Why the stream ended.
    pub stream_close_reason: Option<StreamCloseReason>,
    /// Every status callback delivery, in sending order.
    pub callbacks_sent: Vec<SentCallback>,
    /// The asynchronous machine detection result, once sent (`AsyncAmd=true` only).
    pub amd_sent: Option<SentAmd>,
    /// The text of every `<Say>` the callee heard (or began to hear), in order.
    pub said: Vec<String>,
    /// TwiML documents the call was given through the REST API while live.
    pub twiml_updates: u32,
}

impl CallRecord {
    /// Seconds between answer and end, rounded up as Twilio bills (`CallDuration`).
    pub fn duration_secs(&self) -> Option<u64> {
        duration_secs(self.answered_at, self.ended_at)
    }
}

pub(crate) fn duration_secs(answered: Option<Instant>, ended: Option<Instant>) -> Option<u64> {
    let elapsed = ended?.checked_duration_since(answered?)?;
    Some(
        elapsed
            .as_millis()
            .div_ceil(1000)
            .try_into()
            .unwrap_or(u64::MAX),
    )
}

/// Counters touched on the media path: plain atomics, no lock.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub frames_sent: AtomicU64,
    pub frames_received: AtomicU64,
    pub late_ticks: AtomicU64,
    pub protocol_errors: AtomicU64,
    pub clears_received: AtomicU64,
    /// Far-side frames Twilio would refuse, per kind.
    pub violations: super::frames::ViolationCounts,
    /// Status callbacks queued but not yet delivered.
    pub callbacks_in_flight: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Mutable state of a call that changes a few times per call, behind a mutex.
#[derive(Debug)]
pub(crate) struct CallState {
    pub status: CallStatus,
    pub dial_started_at: Option<Instant>,
    pub dial_started_wall: Option<DateTime<Utc>>,
    pub answered_at: Option<Instant>,
    pub ended_at: Option<Instant>,
    pub ended_wall: Option<DateTime<Utc>>,
    pub answered_by: Option<AnsweredBy>,
    pub stream_url: Option<String>,
    pub stream_sid: Option<String>,
    pub first_far_audio_at: Option<Instant>,
    pub marks_sent_back: Vec<String>,
    pub dtmf_sent: Vec<String>,
    pub stream_close_reason: Option<StreamCloseReason>,
    pub callbacks_sent: Vec<SentCallback>,
    /// Asynchronous machine detection finished (its result may be in flight).
    pub amd_done: bool,
    pub amd_sent: Option<SentAmd>,
    /// TwiML given through the REST API, not yet run.
    pub pending_twiml: Option<Twiml>,
    pub said: Vec<String>,
    pub twiml_updates: u32,
    pub next_sequence: u64,
    /// Queue of callbacks to deliver; dropped after the terminal one to end the sender.
    pub callback_tx: Option<mpsc::UnboundedSender<Pending>>,
}

/// Everything about one call, shared by the API handlers and the call's task.
#[derive(Debug)]
pub(crate) struct CallEntry {
    pub sid: String,
    pub account_sid: String,
    pub requested_at: Instant,
    pub created_at: Instant,
    pub created_wall: DateTime<Utc>,
    pub request: CallRequest,
    pub plan: CallPlan,
    pub counters: Counters,
    pub state: Mutex<CallState>,
    /// Set by a REST hang-up, before `hangup` is notified.
    pub hangup_requested: AtomicBool,
    /// Set when new TwiML is given through the REST API (`pending_twiml`), before `hangup`
    /// is notified; cleared when the call takes the document up.
    pub redirect_requested: AtomicBool,
    /// Woken by a REST hang-up; `notify_one` keeps a permit if nobody waits yet.
    pub hangup: Notify,
    /// Becomes `true` once the call reached a final status.
    pub ended: watch::Sender<bool>,
}

impl CallEntry {
    /// Locks the state; a poisoned lock is recovered, since the state stays consistent
    /// field by field.
    pub(crate) fn lock(&self) -> MutexGuard<'_, CallState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Why the call's current verb must stop now, if it must: a REST hang-up, or new
    /// TwiML given through the REST API.
    /// Two atomic loads: the media loop asks this for every frame.
    pub(crate) fn interruption(&self) -> Option<StreamCloseReason> {
        if self.hangup_requested.load(Ordering::Acquire) {
            Some(StreamCloseReason::HungUp)
        } else if self.redirect_requested.load(Ordering::Acquire) {
            Some(StreamCloseReason::Redirected)
        } else {
            None
        }
    }

    /// The TwiML given through the REST API, if any, taken up to run next.
    pub(crate) fn take_pending_twiml(&self) -> Option<Twiml> {
        let mut state = self.lock();
        self.redirect_requested.store(false, Ordering::Release);
        state.pending_twiml.take()
    }

    /// Whether the call's `AnsweredBy` may be told: machine detection was asked for and,
    /// when asynchronous, has finished (Twilio knows nothing before that).
    pub(crate) fn answered_by_known(&self, state: &CallState) -> bool {
        self.request.machine_detection
            && (self.request.async_amd_callback.is_none() || state.amd_done)
    }

    pub(crate) fn record(&self) -> CallRecord {
        let state = self.lock();
        CallRecord {
            sid: self.sid.clone(),
            to: self.request.to.clone(),
            from: self.request.from.clone(),
            status: state.status.clone(),
            requested_at: self.requested_at,
            created_at: self.created_at,
            dial_started_at: state.dial_started_at,
            queue_time_ms: state.dial_started_at.map(|at| self.queue_ms(at)),
            answered_at: state.answered_at,
            ended_at: state.ended_at,
            answered_by: state.answered_by.clone(),
            stream_url: state.stream_url.clone(),
            stream_sid: state.stream_sid.clone(),
            frames_sent: self.counters.frames_sent.load(Ordering::Relaxed),
            frames_received: self.counters.frames_received.load(Ordering::Relaxed),
            first_far_audio_at: state.first_far_audio_at,
            marks_sent_back: state.marks_sent_back.clone(),
            clears_received: self.counters.clears_received.load(Ordering::Relaxed),
            dtmf_sent: state.dtmf_sent.clone(),
            late_ticks: self.counters.late_ticks.load(Ordering::Relaxed),
            protocol_errors: self.counters.protocol_errors.load(Ordering::Relaxed),
            frame_violations: self.counters.violations.snapshot(),
            stream_close_reason: state.stream_close_reason.clone(),
            callbacks_sent: state.callbacks_sent.clone(),
            amd_sent: state.amd_sent.clone(),
            said: state.said.clone(),
            twiml_updates: state.twiml_updates,
        }
    }

    pub(crate) fn queue_ms(&self, dial_started_at: Instant) -> u64 {
        let queued = dial_started_at.saturating_duration_since(self.created_at);
        queued.as_millis().try_into().unwrap_or(u64::MAX)
    }
}
