//! Running counts of the carrier's calls, cheap to read every second while under load.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters bumped as calls move on.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub created: AtomicU64,
    pub dialed: AtomicU64,
    pub answered: AtomicU64,
    pub streams_opened: AtomicU64,
    pub streams_closed: AtomicU64,
    pub ended: AtomicU64,
    pub throttled: AtomicU64,
    pub api_in_flight_max: AtomicU64,
    pub frame_violations: std::sync::Arc<super::frames::ViolationCounts>,
}

impl Tally {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> CarrierStats {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CarrierStats {
            created: read(&self.created),
            dialed: read(&self.dialed),
            answered: read(&self.answered),
            streams_opened: read(&self.streams_opened),
            streams_closed: read(&self.streams_closed),
            ended: read(&self.ended),
            throttled: read(&self.throttled),
            api_in_flight_max: read(&self.api_in_flight_max),
            frame_violations: self.frame_violations.snapshot(),
        }
    }
}

/// How many calls reached each step so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CarrierStats {
    /// Calls created through the REST API.
    pub created: u64,
    /// Calls whose dialling began (after the calls-per-second queue).
    pub dialed: u64,
    /// Calls answered.
    pub answered: u64,
    /// Media streams opened.
    pub streams_opened: u64,
    /// Media streams closed.
    pub streams_closed: u64,
    /// Dialled calls with a final status (calls canceled while queued are not counted).
    pub ended: u64,
    /// Create-call requests refused with 429 / 20429 (API concurrency used up).
    pub throttled: u64,
    /// Most create-call requests that were in flight at once (accepted ones).
    pub api_in_flight_max: u64,
    /// Frames from the far side of media streams that Twilio would refuse, per kind.
    pub frame_violations: super::frames::FrameViolations,
}

impl CarrierStats {
    /// Calls dialled and not yet ended (ringing or talking).
    pub fn live(&self) -> u64 {
        self.dialed.saturating_sub(self.ended)
    }

    /// Media streams open now.
    pub fn streaming(&self) -> u64 {
        self.streams_opened.saturating_sub(self.streams_closed)
    }
}
