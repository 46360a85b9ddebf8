//! What the agent remembers about each call, and the snapshot tests assert on.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use super::config::Outcome;

/// Why the agent's side of a stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentCloseReason {
    /// The script ran to its end; the agent closed the socket.
    Finished,
    /// The callee pressed the opt-out digit; the agent reported `do_not_call` and closed.
    OptedOut,
    /// `agent_drop_after_ms`: the agent vanished without a closing handshake or report.
    Dropped,
    /// The far side sent `stop` (the callee hung up).
    StopReceived,
    /// The far side closed or lost the socket without `stop`.
    FarSideClosed {
        /// What was seen: the close frame's code and reason, or the error.
        detail: String,
    },
    /// No `start` arrived in time, or it was malformed.
    NoStart {
        /// Why.
        detail: String,
    },
    /// Sending to the socket failed.
    SendFailed {
        /// The error.
        error: String,
    },
    /// The agent was shut down.
    Shutdown,
}

/// The outcome report sent for a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeReport {
    /// The outcome reported.
    pub outcome: Outcome,
    /// `callback_at` sent, for a callback.
    pub callback_at: Option<String>,
    /// HTTP status of the last attempt; `None` if no attempt got an answer.
    pub http_status: Option<u16>,
    /// Attempts made.
    pub attempts: u32,
    /// The last transport error, if any.
    pub error: Option<String>,
    /// When the last attempt finished.
    pub finished_at: Instant,
}

/// A snapshot of one agent call, for assertions.
#[derive(Debug, Clone)]
pub struct AgentCallRecord {
    /// `call_id` from the custom parameters.
    pub call_id: Option<String>,
    /// Stream SID from `start`.
    pub stream_sid: Option<String>,
    /// Call SID from `start`.
    pub call_sid: Option<String>,
    /// All custom parameters received.
    pub custom_parameters: BTreeMap<String, String>,
    /// Whether the upgrade's `X-Twilio-Signature` was valid (`None` when not checked).
    pub signature_valid: Option<bool>,
    /// When the WebSocket opened.
    pub connected_at: Instant,
    /// When `start` arrived.
    pub started_at: Option<Instant>,
    /// When the first inbound media frame arrived.
    pub first_frame_received_at: Option<Instant>,
    /// When the first greeting frame was sent.
    pub first_frame_sent_at: Option<Instant>,
    /// Inbound media frames.
    pub frames_received: u64,
    /// Outbound media frames.
    pub frames_sent: u64,
    /// Inbound frames at or below the silence threshold.
    pub silent_frames_received: u64,
    /// Mean level of inbound frames in dBFS.
    pub inbound_energy_dbfs: Option<f32>,
    /// DTMF digits received.
    pub dtmf_received: Vec<String>,
    /// Marks the agent sent.
    pub marks_sent: Vec<String>,
    /// Marks echoed back by the far side, with their arrival time.
    pub marks_received: Vec<(String, Instant)>,
    /// Whether `stop` arrived.
    pub stop_received: bool,
    /// Inbound messages that broke the dialect.
    pub protocol_errors: u64,
    /// The outcome report, once sent.
    pub outcome: Option<OutcomeReport>,
    /// Why the stream ended.
    pub close_reason: Option<AgentCloseReason>,
    /// When the agent's side ended.
    pub ended_at: Option<Instant>,
}

/// Mutable per-call state behind a mutex; frame counters are atomics.
#[derive(Debug)]
pub(crate) struct AgentEntry {
    pub frames_received: AtomicU64,
    pub frames_sent: AtomicU64,
    pub silent_frames: AtomicU64,
    pub state: Mutex<AgentCallRecord>,
}

impl AgentEntry {
    pub(crate) fn new(signature_valid: Option<bool>) -> Self {
        Self {
            frames_received: AtomicU64::new(0),
            frames_sent: AtomicU64::new(0),
            silent_frames: AtomicU64::new(0),
            state: Mutex::new(AgentCallRecord {
                call_id: None,
                stream_sid: None,
                call_sid: None,
                custom_parameters: BTreeMap::new(),
                signature_valid,
                connected_at: Instant::now(),
                started_at: None,
                first_frame_received_at: None,
                first_frame_sent_at: None,
                frames_received: 0,
                frames_sent: 0,
                silent_frames_received: 0,
                inbound_energy_dbfs: None,
                dtmf_received: Vec::new(),
                marks_sent: Vec::new(),
                marks_received: Vec::new(),
                stop_received: false,
                protocol_errors: 0,
                outcome: None,
                close_reason: None,
                ended_at: None,
            }),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, AgentCallRecord> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn record(&self) -> AgentCallRecord {
        let mut record = self.lock().clone();
        record.frames_received = self.frames_received.load(Ordering::Relaxed);
        record.frames_sent = self.frames_sent.load(Ordering::Relaxed);
        record.silent_frames_received = self.silent_frames.load(Ordering::Relaxed);
        record
    }
}
