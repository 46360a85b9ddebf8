//! The relay's per-call probe: what one call's relay reports while it runs, passed on to
//! whoever needs it live. The agent's first audio goes to the admin live view, to the
//! call's actor in this process (which judges abandonment from it) and, off the relay's
//! task, to the database (for a call actor in another process, and for the record); the
//! latency percentiles go to the live view.

use crate::calls::CallServices;
use crate::relay::RelayProbe;
use std::sync::Arc;
use std::time::Duration;
use switchboard_actors::EventWriter;
use switchboard_engine::AttemptId;
use switchboard_engine::store::CallEvent;
use switchboard_media::streams::outbound::FrameViolation;

/// One call's probe, handed to [`crate::relay::relay`].
pub struct CallProbe {
    calls: Arc<CallServices>,
    writer: EventWriter,
    attempt: AttemptId,
}

impl CallProbe {
    /// The probe of one attempt's relay.
    pub fn new(calls: Arc<CallServices>, writer: EventWriter, attempt: AttemptId) -> Self {
        CallProbe {
            calls,
            writer,
            attempt,
        }
    }
}

impl RelayProbe for CallProbe {
    fn first_agent_audio(&mut self, after: Duration) {
        let at = switchboard_engine::time::now();
        let ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
        let attempt = self.attempt;
        self.calls.relays.first_audio(attempt, ms);
        switchboard_actors::call::agent_audio(attempt, at);
        let writer = self.writer.clone();
        // A call actor in another process learns it from the attempt.
        tokio::spawn(async move {
            if let Err(e) = writer.record_first_agent_audio(attempt, at, ms).await {
                tracing::error!(error = %e, call_id = %attempt, "could not record the agent's first audio");
            }
        });
    }

    fn latency(&mut self, p50_us: u64, p99_us: u64) {
        self.calls.relays.latency(self.attempt, p50_us, p99_us);
    }

    /// Counted in the metrics every time; stored as a call event the first time for each
    /// reason (at most one event per reason per call, however many frames follow).
    fn agent_frame_dropped(&mut self, violation: FrameViolation, count: u64) {
        crate::metrics::agent_frame_dropped(violation);
        if count > 1 {
            return;
        }
        tracing::warn!(call_id = %self.attempt, reason = violation.code(), "agent frame dropped");
        let event = CallEvent {
            attempt_id: self.attempt,
            at: switchboard_engine::time::now(),
            kind: "agent.frame_dropped".into(),
            data: serde_json::json!({ "reason": violation.code() }),
        };
        let writer = self.writer.clone();
        let attempt = self.attempt;
        tokio::spawn(async move {
            if let Err(e) = writer.append_events(vec![event]).await {
                tracing::error!(error = %e, call_id = %attempt, "could not record a dropped agent frame");
            }
        });
    }
}
