//! The media relay: moves a call's frames between the carrier's media stream and the
//! agent's, in the Twilio Media Streams dialect on both sides.
//!
//! Per frame the relay does as little as it can: it reads the `event` name without
//! decoding the payload ([`peek_event`]), forwards the very same text frame (no re-encode,
//! no copy: the frame's bytes move from one socket to the other), and records its timing.
//! No actor or database is involved per frame. The carrier misbehaving (a binary frame,
//! text that is not an event, a stalled stream, a disconnect) ends the call with a reason.
//!
//! The agent's frames are checked before they reach the carrier, as Twilio would check
//! them ([`check_agent_frame`]): a canonical frame goes through untouched, a valid frame
//! in another shape is re-encoded with the carrier's own `streamSid`, and a frame that
//! means nothing valid is dropped and reported to the probe. A bad frame never ends the
//! call; only the agent's socket closing or failing does.
//!
//! While it runs, the relay tells a [`RelayProbe`] what the rest of the server needs live:
//! the agent's first audio the moment it is heard (once per call), and the latency
//! percentiles every [`LATENCY_REPORT_FRAMES`] frames.

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::time::{Duration, Instant};
use switchboard_media::streams::outbound::{FrameViolation, Outbound, check_agent_frame};
use switchboard_media::{EventKind, peek_event};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;

/// Limits on how long either side may stay quiet.
#[derive(Debug, Clone, Copy)]
pub struct RelayLimits {
    /// The carrier sends a frame every 20 ms; this long without one means the stream is dead.
    pub carrier_stall: Duration,
    /// How long the agent may take to send its first audio before the call is ended.
    pub agent_first_audio: Duration,
}

impl Default for RelayLimits {
    fn default() -> Self {
        RelayLimits {
            carrier_stall: Duration::from_secs(5),
            agent_first_audio: Duration::from_secs(15),
        }
    }
}

/// Why a relay ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "by", content = "detail", rename_all = "snake_case")]
pub enum EndReason {
    /// The carrier sent `stop` (the callee hung up or the call was ended).
    CarrierStopped,
    /// The carrier's socket closed.
    CarrierClosed,
    /// The agent closed its socket (normally, after its conversation).
    AgentClosed,
    /// The carrier broke the protocol or the socket failed.
    CarrierError(String),
    /// The agent broke the protocol or the socket failed.
    AgentError(String),
    /// The carrier sent nothing for too long.
    CarrierStalled,
    /// The agent never sent audio.
    AgentSilent,
    /// The server is shutting down and the call outlived the shutdown grace.
    Shutdown,
}

impl EndReason {
    /// A short code for logs and events.
    pub fn code(&self) -> &'static str {
        match self {
            EndReason::CarrierStopped => "carrier_stopped",
            EndReason::CarrierClosed => "carrier_closed",
            EndReason::AgentClosed => "agent_closed",
            EndReason::CarrierError(_) => "carrier_error",
            EndReason::AgentError(_) => "agent_error",
            EndReason::CarrierStalled => "carrier_stalled",
            EndReason::AgentSilent => "agent_silent",
            EndReason::Shutdown => "shutdown",
        }
    }
}

/// What one relay saw.
#[derive(Debug, Clone)]
pub struct RelayStats {
    /// Media frames from the carrier forwarded to the agent.
    pub frames_from_carrier: u64,
    /// Media frames from the agent forwarded to the carrier.
    pub frames_from_agent: u64,
    /// DTMF events forwarded to the agent.
    pub dtmf: u64,
    /// Marks forwarded (agent → carrier) and echoes forwarded (carrier → agent).
    pub marks: u64,
    /// `clear` events forwarded to the carrier.
    pub clears: u64,
    /// Agent frames re-encoded before they went to the carrier (another layout, extra
    /// fields, another `streamSid`).
    pub agent_frames_rewritten: u64,
    /// Agent frames dropped because they meant nothing the carrier accepts.
    pub agent_frames_dropped: u64,
    /// Time from the answer (the carrier's `start`) to the agent's first audio.
    pub first_agent_audio: Option<Duration>,
    /// Per-frame time from reading a frame to having written it to the other side, in µs
    /// (one significant digit: ~1 KiB per call; the process totals keep two).
    pub latency_us: Histogram<u32>,
    /// Carrier frames that arrived more than 40 ms after the previous one.
    pub gaps: u64,
    /// The longest wait between two carrier frames.
    pub max_gap: Duration,
    /// How long the call ran from its answer.
    pub duration: Duration,
    /// Why it ended.
    pub end: EndReason,
}

/// A serializable summary of [`RelayStats`].
#[derive(Debug, Clone, Serialize)]
pub struct RelaySummary {
    /// Media frames carrier → agent.
    pub frames_from_carrier: u64,
    /// Media frames agent → carrier.
    pub frames_from_agent: u64,
    /// DTMF events.
    pub dtmf: u64,
    /// Marks both ways.
    pub marks: u64,
    /// Clears.
    pub clears: u64,
    /// Agent frames re-encoded for the carrier.
    pub agent_frames_rewritten: u64,
    /// Agent frames dropped.
    pub agent_frames_dropped: u64,
    /// Answer (stream start) to the agent's first audio, ms.
    pub first_agent_audio_ms: Option<u64>,
    /// Relay latency p50, µs.
    pub latency_p50_us: u64,
    /// Relay latency p99, µs.
    pub latency_p99_us: u64,
    /// Relay latency max, µs.
    pub latency_max_us: u64,
    /// Late carrier frames.
    pub gaps: u64,
    /// Longest gap, ms.
    pub max_gap_ms: u64,
    /// Duration, ms.
    pub duration_ms: u64,
    /// Why it ended.
    pub end: EndReason,
}

impl RelayStats {
    /// The summary stored with the call.
    pub fn summary(&self) -> RelaySummary {
        RelaySummary {
            frames_from_carrier: self.frames_from_carrier,
            frames_from_agent: self.frames_from_agent,
            dtmf: self.dtmf,
            marks: self.marks,
            clears: self.clears,
            agent_frames_rewritten: self.agent_frames_rewritten,
            agent_frames_dropped: self.agent_frames_dropped,
            first_agent_audio_ms: self.first_agent_audio.map(|d| d.as_millis() as u64),
            latency_p50_us: self.latency_us.value_at_quantile(0.5),
            latency_p99_us: self.latency_us.value_at_quantile(0.99),
            latency_max_us: self.latency_us.max(),
            gaps: self.gaps,
            max_gap_ms: self.max_gap.as_millis() as u64,
            duration_ms: self.duration.as_millis() as u64,
            end: self.end.clone(),
        }
    }
}

/// A histogram for the process's per-frame latency: 1 µs to 1 s at 2 significant digits
/// (14 KiB, one per process).
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 1_000_000, 2).expect("static histogram bounds are valid")
}

/// A histogram for one call's per-frame latency: 1 µs to 1 s at 1 significant digit with
/// 32-bit counts (1.1 KiB; at 2 digits and 64-bit counts it was 14 KiB per call).
pub fn call_latency_histogram() -> Histogram<u32> {
    Histogram::new_with_bounds(1, 1_000_000, 1).expect("static histogram bounds are valid")
}

/// Frames relayed (both ways) between two latency reports to the probe: about 2.5 s of a
/// call with audio both ways.
pub const LATENCY_REPORT_FRAMES: u64 = 250;

/// What the relay reports while it runs; its final figures come back as [`RelayStats`].
/// Called on the relay's task, so an implementation must not block: the relay calls
/// `first_agent_audio` once per call and `latency` every [`LATENCY_REPORT_FRAMES`] frames,
/// never per frame.
pub trait RelayProbe {
    /// The agent was heard for the first time, `after` the answer (the carrier's `start`).
    fn first_agent_audio(&mut self, after: Duration);
    /// Per-frame relay latency of the call so far: median and 99th percentile, in µs.
    fn latency(&mut self, p50_us: u64, p99_us: u64);
    /// An agent frame was dropped instead of reaching the carrier; `count` is how many of
    /// this call's frames were dropped for this reason so far (1 on the first).
    fn agent_frame_dropped(&mut self, violation: FrameViolation, count: u64);
}

/// Reports nowhere.
impl RelayProbe for () {
    fn first_agent_audio(&mut self, _after: Duration) {}
    fn latency(&mut self, _p50_us: u64, _p99_us: u64) {}
    fn agent_frame_dropped(&mut self, _violation: FrameViolation, _count: u64) {}
}

/// A frame's gap to the previous carrier frame beyond which it counts as late.
const LATE: Duration = Duration::from_millis(40);

enum Flow {
    Go,
    End(EndReason),
}

/// Relays until either side ends or `stop` is cancelled, then closes both with the reason.
/// `stream_sid` is the carrier's stream: every frame sent to the carrier carries it.
/// `answered` is when the carrier's `start` arrived: the agent's first audio is measured
/// from there. `probe` hears the agent's first audio and the latency while the call runs.
#[allow(clippy::too_many_arguments)]
pub async fn relay<C, A, P>(
    mut carrier: C,
    mut agent: A,
    stream_sid: &str,
    answered: Instant,
    limits: RelayLimits,
    stop: CancellationToken,
    mut probe: P,
) -> RelayStats
where
    C: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin,
    A: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin,
    P: RelayProbe,
{
    let started = answered;
    let mut stats = RelayStats {
        frames_from_carrier: 0,
        frames_from_agent: 0,
        dtmf: 0,
        marks: 0,
        clears: 0,
        agent_frames_rewritten: 0,
        agent_frames_dropped: 0,
        first_agent_audio: None,
        latency_us: call_latency_histogram(),
        gaps: 0,
        max_gap: Duration::ZERO,
        duration: Duration::ZERO,
        end: EndReason::CarrierClosed,
    };
    let mut last_carrier = Instant::now();
    // Two timers for the whole call, not one per frame: the stall timer fires at most once
    // per `carrier_stall` and is pushed back only if frames came meanwhile.
    let stall = tokio::time::sleep_until(tokio::time::Instant::from_std(
        last_carrier + limits.carrier_stall,
    ));
    let first_audio = tokio::time::sleep_until(tokio::time::Instant::from_std(
        started + limits.agent_first_audio,
    ));
    let stopped = stop.cancelled();
    tokio::pin!(stall, first_audio, stopped);
    let mut dropped = DropCounts::default();
    let end = loop {
        let flow = tokio::select! {
            frame = carrier.next() => {
                let now = Instant::now();
                let gap = now - last_carrier;
                last_carrier = now;
                from_carrier(frame, gap, now, &mut agent, &mut stats, &mut probe).await
            }
            frame = agent.next() => {
                let to = Carrier { socket: &mut carrier, stream_sid, dropped: &mut dropped };
                from_agent(frame, started, to, &mut stats, &mut probe).await
            }
            () = &mut stall => {
                let due = last_carrier + limits.carrier_stall;
                if Instant::now() >= due {
                    Flow::End(EndReason::CarrierStalled)
                } else {
                    stall.as_mut().reset(tokio::time::Instant::from_std(due));
                    Flow::Go
                }
            }
            () = &mut first_audio, if stats.first_agent_audio.is_none() => {
                Flow::End(EndReason::AgentSilent)
            }
            () = &mut stopped => Flow::End(EndReason::Shutdown),
        };
        if let Flow::End(reason) = flow {
            break reason;
        }
    };
    stats.duration = started.elapsed();
    close(&mut carrier, &end).await;
    close(&mut agent, &end).await;
    stats.end = end;
    stats
}

async fn from_carrier<A, P>(
    frame: Option<Result<Message, WsError>>,
    gap: Duration,
    received: Instant,
    agent: &mut A,
    stats: &mut RelayStats,
    probe: &mut P,
) -> Flow
where
    A: Sink<Message, Error = WsError> + Unpin,
    P: RelayProbe,
{
    let text = match frame {
        Some(Ok(Message::Text(text))) => text,
        Some(Ok(Message::Binary(_))) => {
            return Flow::End(EndReason::CarrierError("binary frame".into()));
        }
        Some(Ok(Message::Close(_))) | None => return Flow::End(EndReason::CarrierClosed),
        Some(Ok(_)) => return Flow::Go,
        Some(Err(e)) => return Flow::End(EndReason::CarrierError(e.to_string())),
    };
    let kind = match peek_event(&text) {
        Some(kind) => kind,
        None => {
            return Flow::End(EndReason::CarrierError(
                "a frame that is not a media stream event".into(),
            ));
        }
    };
    match kind {
        EventKind::Media => {
            stats.frames_from_carrier += 1;
            if stats.frames_from_carrier > 1 && gap > LATE {
                stats.gaps += 1;
            }
            stats.max_gap = stats.max_gap.max(gap);
        }
        EventKind::Dtmf => stats.dtmf += 1,
        EventKind::Mark => stats.marks += 1,
        EventKind::Stop => {
            let _ = agent.send(Message::Text(text)).await;
            return Flow::End(EndReason::CarrierStopped);
        }
        EventKind::Connected | EventKind::Start | EventKind::Clear | EventKind::Unknown => {
            return Flow::Go;
        }
    }
    if let Err(e) = agent.send(Message::Text(text)).await {
        return Flow::End(EndReason::AgentError(e.to_string()));
    }
    record(stats, received, probe);
    Flow::Go
}

/// The carrier side as the agent's frames see it: the socket, the stream they must name,
/// and this call's dropped frames by reason.
struct Carrier<'a, C> {
    socket: &'a mut C,
    stream_sid: &'a str,
    dropped: &'a mut DropCounts,
}

/// Dropped agent frames per reason, for one call.
#[derive(Default)]
struct DropCounts([u64; FrameViolation::ALL.len()]);

impl DropCounts {
    /// Counts one more; returns this reason's count so far.
    fn add(&mut self, violation: FrameViolation) -> u64 {
        let index = FrameViolation::ALL
            .iter()
            .position(|v| *v == violation)
            .unwrap_or(0);
        self.0[index] += 1;
        self.0[index]
    }
}

async fn from_agent<C, P>(
    frame: Option<Result<Message, WsError>>,
    started: Instant,
    carrier: Carrier<'_, C>,
    stats: &mut RelayStats,
    probe: &mut P,
) -> Flow
where
    C: Sink<Message, Error = WsError> + Unpin,
    P: RelayProbe,
{
    let received = Instant::now();
    let checked = match frame {
        Some(Ok(Message::Text(text))) => match check_agent_frame(&text, carrier.stream_sid) {
            Outbound::Forward(kind) => Ok((kind, text)),
            Outbound::Rewrite(kind, canonical) => {
                stats.agent_frames_rewritten += 1;
                Ok((kind, canonical.into()))
            }
            Outbound::Drop(violation) => Err(violation),
        },
        Some(Ok(Message::Binary(_))) => Err(FrameViolation::Binary),
        Some(Ok(Message::Close(_))) | None => return Flow::End(EndReason::AgentClosed),
        Some(Ok(_)) => return Flow::Go,
        Some(Err(e)) => return Flow::End(EndReason::AgentError(e.to_string())),
    };
    let (kind, text) = match checked {
        Ok(frame) => frame,
        Err(violation) => {
            let count = carrier.dropped.add(violation);
            stats.agent_frames_dropped += 1;
            probe.agent_frame_dropped(violation, count);
            return Flow::Go;
        }
    };
    match kind {
        EventKind::Media => {
            stats.frames_from_agent += 1;
            if stats.first_agent_audio.is_none() {
                let after = received - started;
                stats.first_agent_audio = Some(after);
                probe.first_agent_audio(after);
            }
        }
        EventKind::Mark => stats.marks += 1,
        EventKind::Clear => stats.clears += 1,
        _ => {}
    }
    if let Err(e) = carrier.socket.send(Message::Text(text)).await {
        return Flow::End(EndReason::CarrierError(e.to_string()));
    }
    record(stats, received, probe);
    Flow::Go
}

/// Records one frame's latency; every [`LATENCY_REPORT_FRAMES`] frames the percentiles go
/// to the probe (reading them walks the call's small histogram, not the frames).
fn record<P: RelayProbe>(stats: &mut RelayStats, received: Instant, probe: &mut P) {
    let us = received.elapsed().as_micros().clamp(1, 1_000_000) as u64;
    stats.latency_us.saturating_record(us);
    if stats.latency_us.len().is_multiple_of(LATENCY_REPORT_FRAMES) {
        probe.latency(
            stats.latency_us.value_at_quantile(0.5),
            stats.latency_us.value_at_quantile(0.99),
        );
    }
}

async fn close<S>(side: &mut S, reason: &EndReason)
where
    S: Sink<Message, Error = WsError> + Unpin,
{
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: reason.code().into(),
    };
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        side.send(Message::Close(Some(frame))),
    )
    .await;
}

#[cfg(test)]
mod tests;
