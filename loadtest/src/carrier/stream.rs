//! The callee's side of a Media Stream: a WebSocket client that sends `connected`,
//! `start`, real-time `media` and scripted `dtmf`, echoes `mark`s as their audio "plays"
//! and ends with `stop`.
//!
//! Frames are paced by a tokio interval with [`MissedTickBehavior::Burst`]: when the task
//! falls behind, the missed frames are sent back to back, so the audio sent always matches
//! the time elapsed (as Twilio's jitter-buffered packets do). A tick that fires more than
//! half a frame (10 ms) after its deadline counts as late.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use switchboard_media::StreamEvent;
use switchboard_media::streams::{
    DtmfInfo, MarkInfo, MediaFormat, MediaPayload, StartInfo, StopInfo,
};
use switchboard_media::twilio::signature::sign;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use super::callbacks::SIGNATURE_HEADER;
use super::frames::{FarFrame, FrameViolation, ViolationCounts};
use super::playout::Playout;
use super::record::{CallEntry, Counters, StreamCloseReason};
use super::twiml::StreamTarget;
use crate::probe::{Direction, FrameProbe, ProbeReceiver, ProbeSender};
use crate::time::{after_ms, far_future};
use crate::ws::{self, CLOSE_NORMAL, WsIn, WsOut};

/// One media frame's duration.
const FRAME: Duration = Duration::from_millis(switchboard_media::audio::FRAME_MS as u64);
/// Longest wait for the WebSocket handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for the far side's close frame after ours.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// What a stream session needs besides its socket.
pub(crate) struct StreamSession {
    pub entry: Arc<CallEntry>,
    pub stream_sid: String,
    pub parameters: BTreeMap<String, String>,
    /// Base64 payloads of the callee's audio, looped.
    pub frames: Arc<[String]>,
    /// When the callee hangs up.
    pub deadline: Instant,
    pub shutdown: watch::Receiver<bool>,
    /// Stamps outgoing media and reads the far side's stamps, when load testing.
    pub probe: Option<FrameProbe>,
    /// The carrier's counts of refused far-side frames, per kind.
    pub violations: Arc<ViolationCounts>,
}

/// Opens the WebSocket to `target` (signed with `auth_token`) and runs the session.
pub(crate) async fn connect_and_run(
    auth_token: &str,
    target: &StreamTarget,
    session: StreamSession,
) -> StreamCloseReason {
    let connect_failed = |error: String| StreamCloseReason::ConnectFailed { error };
    let mut request = match target.url.as_str().into_client_request() {
        Ok(request) => request,
        Err(error) => return connect_failed(error.to_string()),
    };
    let signature = sign(auth_token, &target.url, &[]);
    match signature.parse() {
        Ok(value) => {
            request.headers_mut().insert(SIGNATURE_HEADER, value);
        }
        Err(error) => return connect_failed(format!("bad signature header: {error}")),
    }
    // Small read buffers (the 128 KiB default is zeroed on every read) and no Nagle delay.
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0);
    let connected = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio_tungstenite::connect_async_with_config(request, Some(config), true),
    );
    let socket = match connected.await {
        Ok(Ok((socket, _response))) => socket,
        Ok(Err(error)) => return connect_failed(error.to_string()),
        Err(_) => return connect_failed(format!("no handshake within {CONNECT_TIMEOUT:?}")),
    };
    let (sink, stream) = ws::from_tungstenite(socket);
    run(sink, stream, session).await
}

/// Runs a session over any socket; returns why it ended.
pub(crate) async fn run<S, R>(
    mut sink: S,
    mut stream: R,
    session: StreamSession,
) -> StreamCloseReason
where
    S: Sink<WsOut> + Unpin,
    S::Error: std::fmt::Display,
    R: Stream<Item = WsIn> + Unpin,
{
    let mut out = Outgoing::new(&session);
    if let Err(error) = out.open(&mut sink, &session).await {
        return StreamCloseReason::FarSideDropped { error };
    }
    let started = Instant::now();
    let mut ticker = tokio::time::interval_at(started + FRAME, FRAME);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut playout = Playout::default();
    let dtmf = session.entry.plan.dtmf.clone();
    let mut next_dtmf = 0;
    let far_future = far_future(started);
    let entry = session.entry.clone();
    let mut shutdown = session.shutdown.clone();
    let mut probe_rx = session
        .probe
        .as_ref()
        .map(|probe| probe.receiver(Direction::AgentToCarrier));
    loop {
        if let Some(reason) = entry.interruption() {
            // Hung up or given new TwiML through the REST API: the stream stops.
            return out.stop(&mut sink, &mut stream, reason).await;
        }
        let dtmf_at = dtmf.get(next_dtmf).map(|(at, _)| after_ms(started, *at));
        let mark_at = playout.next_due();
        let step = tokio::select! {
            biased;
            _ = entry.hangup.notified() => Step::Interrupted,
            _ = shutdown.wait_for(|stop| *stop) => Step::End(StreamCloseReason::Shutdown),
            _ = tokio::time::sleep_until(session.deadline) => Step::End(StreamCloseReason::TalkTimeEnded),
            incoming = stream.next() => Step::Incoming(incoming),
            _ = tokio::time::sleep_until(mark_at.unwrap_or(far_future)), if mark_at.is_some() => Step::MarksDue,
            _ = tokio::time::sleep_until(dtmf_at.unwrap_or(far_future)), if dtmf_at.is_some() => Step::Dtmf,
            scheduled = ticker.tick() => Step::Tick(scheduled),
        };
        let sent = match step {
            Step::End(reason) => return out.stop(&mut sink, &mut stream, reason).await,
            // Why is read at the top of the loop.
            Step::Interrupted => continue,
            Step::Incoming(incoming) => {
                match on_incoming(incoming, &entry, &session, &mut playout, probe_rx.as_mut()) {
                    Incoming::Continue(echo) => out.marks(&mut sink, &entry, echo).await,
                    Incoming::Closed(reason) => {
                        let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.close()).await;
                        return reason;
                    }
                }
            }
            Step::MarksDue => {
                let due = playout.take_due(Instant::now());
                out.marks(&mut sink, &entry, due).await
            }
            Step::Dtmf => {
                let digit = dtmf
                    .get(next_dtmf)
                    .map(|(_, d)| d.clone())
                    .unwrap_or_default();
                next_dtmf += 1;
                out.dtmf(&mut sink, &entry, digit).await
            }
            Step::Tick(scheduled) => {
                if Instant::now().saturating_duration_since(scheduled) > FRAME / 2 {
                    Counters::bump(&entry.counters.late_ticks);
                }
                out.media(&mut sink, &entry).await
            }
        };
        if let Err(error) = sent {
            return StreamCloseReason::FarSideDropped { error };
        }
    }
}

/// What woke the session loop.
enum Step {
    End(StreamCloseReason),
    /// The call was hung up or given new TwiML.
    Interrupted,
    Incoming(Option<WsIn>),
    MarksDue,
    Dtmf,
    Tick(Instant),
}

enum Incoming {
    /// Keep going; echo these marks now.
    Continue(Vec<String>),
    /// The far side closed or went away.
    Closed(StreamCloseReason),
}

fn on_incoming(
    incoming: Option<WsIn>,
    entry: &CallEntry,
    session: &StreamSession,
    playout: &mut Playout,
    probe: Option<&mut ProbeReceiver>,
) -> Incoming {
    let counters = &entry.counters;
    let text = match incoming {
        None => {
            let error = "connection ended without a close frame".to_owned();
            return Incoming::Closed(StreamCloseReason::FarSideDropped { error });
        }
        Some(WsIn::Error(error)) => {
            return Incoming::Closed(StreamCloseReason::FarSideDropped { error });
        }
        Some(WsIn::Close(frame)) => {
            let (code, reason) = frame.map_or((None, String::new()), |(c, r)| (Some(c), r));
            return Incoming::Closed(StreamCloseReason::FarSideClosed { code, reason });
        }
        Some(WsIn::Control) => return Incoming::Continue(Vec::new()),
        Some(WsIn::Binary(_)) => {
            refuse(session, FrameViolation::Binary);
            return Incoming::Continue(Vec::new());
        }
        Some(WsIn::Text(text)) => text,
    };
    let now = Instant::now();
    // Checked as Twilio checks it; a refused frame is dropped (warning 31951).
    match super::frames::check(&text, &session.stream_sid) {
        Err(violation) => {
            refuse(session, violation);
            Incoming::Continue(Vec::new())
        }
        Ok(FarFrame::Media) => {
            if counters.frames_received.fetch_add(1, Ordering::Relaxed) == 0 {
                entry.lock().first_far_audio_at = Some(now.into_std());
            }
            playout.on_media(now);
            if let Some(probe) = probe {
                probe.on_media(&text);
            }
            Incoming::Continue(Vec::new())
        }
        Ok(FarFrame::Mark(name)) => {
            playout.on_mark(name.into_owned(), now);
            Incoming::Continue(playout.take_due(now))
        }
        Ok(FarFrame::Clear) => {
            Counters::bump(&counters.clears_received);
            Incoming::Continue(playout.on_clear(now))
        }
    }
}

/// Counts a refused far-side frame, on the call and for the carrier.
fn refuse(session: &StreamSession, violation: FrameViolation) {
    let counters = &session.entry.counters;
    Counters::bump(&counters.protocol_errors);
    counters.violations.bump(violation);
    session.violations.bump(violation);
    tracing::debug!(call_sid = %session.entry.sid, ?violation, "refused a media stream frame");
}

/// Appends `n` in decimal without a temporary string.
fn push_number(text: &mut String, n: u64) {
    use std::fmt::Write as _;
    let _ = write!(text, "{n}");
}

/// Builds and sends the carrier's messages, numbering them as Twilio does.
struct Outgoing {
    stream_sid: String,
    account_sid: String,
    call_sid: String,
    frames: Arc<[String]>,
    sequence: u64,
    chunk: u64,
    probe: Option<ProbeSender>,
}

impl Outgoing {
    fn new(session: &StreamSession) -> Self {
        Self {
            stream_sid: session.stream_sid.clone(),
            account_sid: session.entry.account_sid.clone(),
            call_sid: session.entry.sid.clone(),
            frames: session.frames.clone(),
            sequence: 0,
            chunk: 0,
            probe: session
                .probe
                .as_ref()
                .map(|probe| probe.sender(Direction::CarrierToAgent)),
        }
    }

    fn next_sequence(&mut self) -> Option<String> {
        self.sequence += 1;
        Some(self.sequence.to_string())
    }

    async fn send<S>(&mut self, sink: &mut S, event: StreamEvent) -> Result<(), String>
    where
        S: Sink<WsOut> + Unpin,
        S::Error: std::fmt::Display,
    {
        ws::send(sink, WsOut::Text(event.to_json())).await
    }

    /// `connected`, then `start` with sequence number 1.
    async fn open<S>(&mut self, sink: &mut S, session: &StreamSession) -> Result<(), String>
    where
        S: Sink<WsOut> + Unpin,
        S::Error: std::fmt::Display,
    {
        self.send(sink, StreamEvent::connected()).await?;
        let start = StreamEvent::Start {
            sequence_number: self.next_sequence(),
            stream_sid: self.stream_sid.clone(),
            start: StartInfo {
                stream_sid: self.stream_sid.clone(),
                account_sid: self.account_sid.clone(),
                call_sid: self.call_sid.clone(),
                tracks: vec!["inbound".to_owned()],
                media_format: MediaFormat::default(),
                custom_parameters: session.parameters.clone(),
            },
        };
        self.send(sink, start).await
    }

    async fn media<S>(&mut self, sink: &mut S, entry: &CallEntry) -> Result<(), String>
    where
        S: Sink<WsOut> + Unpin,
        S::Error: std::fmt::Display,
    {
        let index = usize::try_from(self.chunk).unwrap_or(0) % self.frames.len().max(1);
        let timestamp = self.chunk * u64::from(switchboard_media::audio::FRAME_MS);
        self.chunk += 1;
        if let Some(probe) = &mut self.probe {
            // The same frame as the serializer would write, built by hand and stamped.
            self.sequence += 1;
            let mut text = String::with_capacity(400);
            text.push_str(r#"{"event":"media","sequenceNumber":""#);
            push_number(&mut text, self.sequence);
            text.push_str(r#"","streamSid":""#);
            text.push_str(&self.stream_sid);
            text.push_str(r#"","media":{"track":"inbound","chunk":""#);
            push_number(&mut text, self.chunk);
            text.push_str(r#"","timestamp":""#);
            push_number(&mut text, timestamp);
            text.push_str(r#"","payload":""#);
            let payload = self.frames.get(index).map_or("", String::as_str);
            probe.stamp_payload(payload, &mut text);
            text.push_str(r#""}}"#);
            ws::send(sink, WsOut::Text(text)).await?;
            Counters::bump(&entry.counters.frames_sent);
            return Ok(());
        }
        let payload = self.frames.get(index).cloned().unwrap_or_default();
        let event = StreamEvent::Media {
            sequence_number: self.next_sequence(),
            stream_sid: self.stream_sid.clone(),
            media: MediaPayload {
                track: Some("inbound".to_owned()),
                chunk: Some(self.chunk.to_string()),
                timestamp: Some(timestamp.to_string()),
                payload,
            },
        };
        self.send(sink, event).await?;
        Counters::bump(&entry.counters.frames_sent);
        Ok(())
    }

    async fn dtmf<S>(
        &mut self,
        sink: &mut S,
        entry: &CallEntry,
        digit: String,
    ) -> Result<(), String>
    where
        S: Sink<WsOut> + Unpin,
        S::Error: std::fmt::Display,
    {
        let event = StreamEvent::Dtmf {
            sequence_number: self.next_sequence(),
            stream_sid: self.stream_sid.clone(),
            dtmf: DtmfInfo {
                track: Some("inbound_track".to_owned()),
                digit: digit.clone(),
            },
        };
        self.send(sink, event).await?;
        entry.lock().dtmf_sent.push(digit);
        Ok(())
    }

    async fn marks<S>(
        &mut self,
        sink: &mut S,
        entry: &CallEntry,
        names: Vec<String>,
    ) -> Result<(), String>
    where
        S: Sink<WsOut> + Unpin,
        S::Error: std::fmt::Display,
    {
        for name in names {
            let event = StreamEvent::Mark {
                sequence_number: self.next_sequence(),
                stream_sid: self.stream_sid.clone(),
                mark: MarkInfo { name: name.clone() },
            };
            self.send(sink, event).await?;
            entry.lock().marks_sent_back.push(name);
        }
        Ok(())
    }

    /// Sends `stop` and a close frame, then waits briefly for the far side's close.
    async fn stop<S, R>(
        &mut self,
        sink: &mut S,
        stream: &mut R,
        reason: StreamCloseReason,
    ) -> StreamCloseReason
    where
        S: Sink<WsOut> + Unpin,
        S::Error: std::fmt::Display,
        R: Stream<Item = WsIn> + Unpin,
    {
        let stop = StreamEvent::Stop {
            sequence_number: self.next_sequence(),
            stream_sid: self.stream_sid.clone(),
            stop: StopInfo {
                account_sid: self.account_sid.clone(),
                call_sid: self.call_sid.clone(),
            },
        };
        let _ = self.send(sink, stop).await;
        let _ = ws::send(sink, WsOut::Close(CLOSE_NORMAL, String::new())).await;
        let drain = async {
            while let Some(message) = stream.next().await {
                if matches!(message, WsIn::Close(_) | WsIn::Error(_)) {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, drain).await;
        reason
    }
}
