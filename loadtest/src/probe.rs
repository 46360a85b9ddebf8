//! One-way frame latency through whatever sits between the simulated carrier and the
//! scripted agent (Switchboard's relay).
//!
//! When a [`FrameProbe`] is configured, each side stamps the first 12 bytes of every media
//! frame's audio with the time it was sent (nanoseconds since the probe's epoch) and a
//! per-stream sequence number. The receiving side reads the stamp back from the first 16
//! base64 characters of the payload, records the one-way latency in HDR histograms and
//! counts frames missing from the sequence. Both sides run in one process, so they share
//! one clock. The stamp replaces audio bytes (any byte is a valid mu-law sample), so the
//! frame stays in the Media Streams dialect and a relay that forwards it unchanged keeps it.
//!
//! Recording goes to one of a few mutex-guarded histograms picked per stream, so streams
//! on different threads rarely meet on a lock.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hdrhistogram::Histogram;

/// Bytes of audio the stamp takes: 8 of time, 4 of sequence (a multiple of 3, so its
/// base64 form is exactly [`STAMP_CHARS`] characters that splice into a longer payload).
pub const STAMP_BYTES: usize = 12;
/// Base64 characters of the stamp.
pub const STAMP_CHARS: usize = 16;
/// A frame that arrives later than this after it was sent counts as late.
pub const LATE: Duration = Duration::from_millis(40);
/// Histograms per direction.
const SHARDS: usize = 16;

/// Which way a frame travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Sent by the carrier, received by the agent.
    CarrierToAgent,
    /// Sent by the agent, received by the carrier.
    AgentToCarrier,
}

/// Shared latency recorder of both directions; cheap to clone.
#[derive(Clone)]
pub struct FrameProbe {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FrameProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameProbe").finish_non_exhaustive()
    }
}

struct Inner {
    epoch: Instant,
    next_shard: AtomicUsize,
    to_agent: Way,
    to_carrier: Way,
}

struct Way {
    shards: Vec<Mutex<Histogram<u64>>>,
    sent: AtomicU64,
    received: AtomicU64,
    lost: AtomicU64,
    late: AtomicU64,
    unstamped: AtomicU64,
}

impl Way {
    fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(histogram())).collect(),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            late: AtomicU64::new(0),
            unstamped: AtomicU64::new(0),
        }
    }
}

/// 1 µs to 60 s at 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("static histogram bounds are valid")
}

impl Default for FrameProbe {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameProbe {
    /// A probe whose clock starts now.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                epoch: Instant::now(),
                next_shard: AtomicUsize::new(0),
                to_agent: Way::new(),
                to_carrier: Way::new(),
            }),
        }
    }

    fn way(&self, direction: Direction) -> &Way {
        match direction {
            Direction::CarrierToAgent => &self.inner.to_agent,
            Direction::AgentToCarrier => &self.inner.to_carrier,
        }
    }

    /// The stamping state of one stream's outgoing frames.
    pub fn sender(&self, direction: Direction) -> ProbeSender {
        ProbeSender {
            probe: self.clone(),
            direction,
            sequence: 0,
        }
    }

    /// The reading state of one stream's incoming frames.
    pub fn receiver(&self, direction: Direction) -> ProbeReceiver {
        let shard = self.inner.next_shard.fetch_add(1, Ordering::Relaxed) % SHARDS;
        ProbeReceiver {
            probe: self.clone(),
            direction,
            shard,
            next_sequence: None,
        }
    }

    /// What was recorded so far in one direction.
    pub fn snapshot(&self, direction: Direction) -> ProbeSnapshot {
        let way = self.way(direction);
        let mut merged = histogram();
        for shard in &way.shards {
            let shard = shard
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let _ = merged.add(&*shard);
        }
        ProbeSnapshot {
            sent: way.sent.load(Ordering::Relaxed),
            received: way.received.load(Ordering::Relaxed),
            lost: way.lost.load(Ordering::Relaxed),
            late: way.late.load(Ordering::Relaxed),
            unstamped: way.unstamped.load(Ordering::Relaxed),
            latency_us: merged,
        }
    }

    fn now_nanos(&self) -> u64 {
        u64::try_from(self.inner.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// Figures of one direction.
#[derive(Debug, Clone)]
pub struct ProbeSnapshot {
    /// Stamped frames sent.
    pub sent: u64,
    /// Stamped frames received.
    pub received: u64,
    /// Frames missing from a stream's sequence (a later frame arrived first).
    pub lost: u64,
    /// Frames that arrived more than [`LATE`] after they were sent.
    pub late: u64,
    /// Media frames received without a readable stamp.
    pub unstamped: u64,
    /// One-way latency, µs.
    pub latency_us: Histogram<u64>,
}

/// Stamps one stream's outgoing frames.
#[derive(Debug)]
pub struct ProbeSender {
    probe: FrameProbe,
    direction: Direction,
    sequence: u32,
}

impl ProbeSender {
    /// Appends `"<stamp><rest>"` to `out`, where `payload` is the frame's base64 audio
    /// (at least [`STAMP_CHARS`] long) and its first characters are replaced by the stamp.
    pub fn stamp_payload(&mut self, payload: &str, out: &mut String) {
        let mut bytes = [0u8; STAMP_BYTES];
        bytes[..8].copy_from_slice(&self.probe.now_nanos().to_be_bytes());
        bytes[8..].copy_from_slice(&self.sequence.to_be_bytes());
        self.sequence = self.sequence.wrapping_add(1);
        let mut encoded = [0u8; STAMP_CHARS];
        let written = base64::engine::general_purpose::STANDARD
            .encode_slice(bytes, &mut encoded)
            .unwrap_or(0);
        out.push_str(std::str::from_utf8(&encoded[..written]).unwrap_or_default());
        out.push_str(payload.get(STAMP_CHARS..).unwrap_or_default());
        self.probe
            .way(self.direction)
            .sent
            .fetch_add(1, Ordering::Relaxed);
    }
}

/// Reads one stream's incoming stamps.
#[derive(Debug)]
pub struct ProbeReceiver {
    probe: FrameProbe,
    direction: Direction,
    shard: usize,
    next_sequence: Option<u32>,
}

impl ProbeReceiver {
    /// Reads the stamp of a media frame's JSON text and records it.
    pub fn on_media(&mut self, frame: &str) {
        let way = self.probe.way(self.direction);
        let Some((sent_nanos, sequence)) = read_stamp(frame) else {
            way.unstamped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let now = self.probe.now_nanos();
        if sent_nanos > now {
            way.unstamped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let micros = now.saturating_sub(sent_nanos) / 1_000;
        way.received.fetch_add(1, Ordering::Relaxed);
        if let Some(expected) = self.next_sequence
            && sequence > expected
        {
            way.lost
                .fetch_add(u64::from(sequence - expected), Ordering::Relaxed);
        }
        self.next_sequence = Some(sequence.wrapping_add(1));
        if micros > LATE.as_micros() as u64 {
            way.late.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(shard) = way.shards.get(self.shard) {
            let mut histogram = shard
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            histogram.saturating_record(micros.max(1));
        }
    }
}

/// The (sent nanos, sequence) in a media frame's payload, if it carries a stamp.
fn read_stamp(frame: &str) -> Option<(u64, u32)> {
    const KEY: &str = "\"payload\":\"";
    let start = frame.find(KEY)? + KEY.len();
    let chars = frame.get(start..start + STAMP_CHARS)?;
    let mut bytes = [0u8; STAMP_BYTES];
    let n = base64::engine::general_purpose::STANDARD
        .decode_slice(chars, &mut bytes)
        .ok()?;
    if n != STAMP_BYTES {
        return None;
    }
    let nanos = u64::from_be_bytes(bytes[..8].try_into().ok()?);
    let sequence = u32::from_be_bytes(bytes[8..].try_into().ok()?);
    Some((nanos, sequence))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &str) -> String {
        format!(r#"{{"event":"media","streamSid":"MZ1","media":{{"payload":"{payload}"}}}}"#)
    }

    #[test]
    fn a_stamped_frame_is_read_back_with_its_latency_and_sequence() {
        let probe = FrameProbe::new();
        let audio = base64::engine::general_purpose::STANDARD.encode([0xFFu8; 160]);
        let mut tx = probe.sender(Direction::CarrierToAgent);
        let mut rx = probe.receiver(Direction::CarrierToAgent);
        for _ in 0..3 {
            let mut payload = String::new();
            tx.stamp_payload(&audio, &mut payload);
            assert_eq!(payload.len(), audio.len(), "the payload keeps its length");
            rx.on_media(&frame(&payload));
        }
        let seen = probe.snapshot(Direction::CarrierToAgent);
        assert_eq!((seen.sent, seen.received, seen.lost), (3, 3, 0));
        assert_eq!(seen.latency_us.len(), 3);
        assert_eq!(probe.snapshot(Direction::AgentToCarrier).received, 0);
    }

    #[test]
    fn a_gap_in_the_sequence_counts_the_missing_frames_as_lost() {
        let probe = FrameProbe::new();
        let audio = base64::engine::general_purpose::STANDARD.encode([0u8; 160]);
        let mut tx = probe.sender(Direction::AgentToCarrier);
        let mut rx = probe.receiver(Direction::AgentToCarrier);
        let mut frames = Vec::new();
        for _ in 0..5 {
            let mut payload = String::new();
            tx.stamp_payload(&audio, &mut payload);
            frames.push(frame(&payload));
        }
        for index in [0, 1, 4] {
            rx.on_media(&frames[index]);
        }
        assert_eq!(probe.snapshot(Direction::AgentToCarrier).lost, 2);
    }

    #[test]
    fn a_frame_without_a_stamp_is_counted_apart() {
        let probe = FrameProbe::new();
        let mut rx = probe.receiver(Direction::CarrierToAgent);
        rx.on_media(r#"{"event":"media","media":{"payload":"AAA="}}"#);
        let seen = probe.snapshot(Direction::CarrierToAgent);
        assert_eq!((seen.received, seen.unstamped), (0, 1));
    }
}
