//! One call on the agent's side of a Media Stream: wait for `start`, greet with a tone,
//! place the `greeting-done` mark, listen, report the outcome and hang up. Written over
//! any `Sink`/`Stream` of frames, so it runs on a real socket or on channels.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::Engine as _;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use switchboard_media::audio::{FRAME_BYTES, energy_dbfs, tone};
use switchboard_media::streams::StartInfo;
use switchboard_media::{EventKind, StreamEvent, peek_event};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use super::config::{AgentConfig, Behaviour, CallContext, Finish, Outcome};
use super::record::{AgentCloseReason, AgentEntry, OutcomeReport};
use super::report;
use crate::probe::{Direction, ProbeReceiver, ProbeSender};
use crate::time::{after_ms, far_future};
use crate::ws::{self, CLOSE_NORMAL, WsIn, WsOut};

/// Name of the mark placed after the greeting.
pub const GREETING_MARK: &str = "greeting-done";
/// One media frame's duration.
const FRAME: Duration = Duration::from_millis(switchboard_media::audio::FRAME_MS as u64);
/// Longest wait for the far side's close frame after ours.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// What a session needs besides its socket.
pub(crate) struct Session {
    pub config: Arc<AgentConfig>,
    pub http: reqwest::Client,
    pub entry: Arc<AgentEntry>,
    pub shutdown: watch::Receiver<bool>,
}

/// What woke the session loop.
enum Step {
    Shutdown,
    Drop,
    Incoming(Option<WsIn>),
    Tick,
    ListenOver,
}

/// How the loop goes on after handling a step.
enum Next {
    Continue,
    /// Report (unless already done or disabled), close and end with this reason.
    Finish(AgentCloseReason, Option<Outcome>),
    /// End at once; the socket is dropped as it is.
    End(AgentCloseReason),
}

/// Runs the agent's side of one stream and returns why it ended.
pub(crate) async fn run<S, R>(mut sink: S, mut stream: R, session: Session) -> AgentCloseReason
where
    S: Sink<WsOut> + Unpin,
    S::Error: std::fmt::Display,
    R: Stream<Item = WsIn> + Unpin,
{
    let start = match wait_for_start(&mut stream, &session).await {
        Ok(start) => start,
        Err(reason) => return reason,
    };
    let started = Instant::now();
    let context = CallContext::from_parameters(&start.custom_parameters);
    let behaviour = Behaviour::resolve(&session.config, context.contact.as_ref());
    {
        let mut record = session.entry.lock();
        record.started_at = Some(started.into_std());
        record.call_id = context.call_id.clone();
        record.stream_sid = Some(start.stream_sid.clone());
        record.call_sid = Some(start.call_sid.clone());
        record.custom_parameters = start.custom_parameters.clone();
    }
    let probe = session.config.probe.as_ref();
    let mut call = Call {
        greeting_total: greeting_len(behaviour.talk_ms),
        greeting: greeting_frames(&session.config, behaviour.talk_ms),
        next_frame: 0,
        probe_tx: probe.map(|p| p.sender(Direction::AgentToCarrier)),
        probe_rx: probe.map(|p| p.receiver(Direction::CarrierToAgent)),
        greeting_done: false,
        listen_until: None,
        reported: false,
        energy_sum: 0.0,
        stream_sid: start.stream_sid,
        context,
        behaviour,
        session,
    };
    let greet_at = after_ms(started, call.behaviour.greeting_delay_ms);
    let mut ticker = tokio::time::interval_at(greet_at, FRAME);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let drop_at = call.behaviour.drop_after_ms.map(|ms| after_ms(started, ms));
    let far_future = far_future(started);
    let mut shutdown = call.session.shutdown.clone();
    loop {
        let listen_at = call.listen_until.filter(|_| !call.reported);
        let step = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => Step::Shutdown,
            _ = tokio::time::sleep_until(drop_at.unwrap_or(far_future)), if drop_at.is_some() => Step::Drop,
            incoming = stream.next() => Step::Incoming(incoming),
            _ = ticker.tick(), if !call.greeting_done => Step::Tick,
            _ = tokio::time::sleep_until(listen_at.unwrap_or(far_future)), if listen_at.is_some() => Step::ListenOver,
        };
        let next = match step {
            Step::Shutdown => Next::Finish(AgentCloseReason::Shutdown, None),
            Step::Drop => Next::End(AgentCloseReason::Dropped),
            Step::Incoming(incoming) => call.on_incoming(incoming),
            Step::Tick => match call.tick(&mut sink).await {
                Ok(()) => Next::Continue,
                Err(error) => Next::End(AgentCloseReason::SendFailed { error }),
            },
            Step::ListenOver => {
                call.report(None).await;
                match call.session.config.finish {
                    Finish::Close => Next::Finish(AgentCloseReason::Finished, None),
                    Finish::WaitForStop => Next::Continue,
                }
            }
        };
        match next {
            Next::Continue => {}
            Next::End(reason) => {
                call.save_energy();
                return reason;
            }
            Next::Finish(reason, outcome) => {
                if !matches!(reason, AgentCloseReason::Shutdown) {
                    call.report(outcome).await;
                }
                call.save_energy();
                let closing = !matches!(reason, AgentCloseReason::FarSideClosed { .. });
                if closing {
                    close(&mut sink, &mut stream, &call.session.entry).await;
                }
                return reason;
            }
        }
    }
}

/// Reads until `start`; `connected` may come first.
async fn wait_for_start<R>(stream: &mut R, session: &Session) -> Result<StartInfo, AgentCloseReason>
where
    R: Stream<Item = WsIn> + Unpin,
{
    let timeout = Duration::from_millis(session.config.start_timeout_ms);
    let deadline = Instant::now() + timeout;
    let no_start = |detail: String| AgentCloseReason::NoStart { detail };
    loop {
        let incoming = tokio::time::timeout_at(deadline, stream.next())
            .await
            .map_err(|_| no_start(format!("no start within {timeout:?}")))?;
        let text = match incoming {
            Some(WsIn::Text(text)) => text,
            Some(WsIn::Control) => continue,
            Some(WsIn::Binary(_)) => {
                session.entry.lock().protocol_errors += 1;
                continue;
            }
            Some(WsIn::Close(_) | WsIn::Error(_)) | None => {
                return Err(no_start("socket closed before start".to_owned()));
            }
        };
        match StreamEvent::parse(&text) {
            Ok(StreamEvent::Start { start, .. }) => return Ok(start),
            Ok(StreamEvent::Connected { .. }) => {}
            Ok(_) | Err(_) => session.entry.lock().protocol_errors += 1,
        }
    }
}

/// Longest stretch of greeting audio generated; a longer greeting loops it (a whole
/// second of a tone with a whole number of hertz loops seamlessly).
const GREETING_LOOP_MS: u64 = 1_000;

/// How many frames a greeting of `talk_ms` lasts.
fn greeting_len(talk_ms: u64) -> usize {
    let bytes = talk_ms.saturating_mul(u64::from(switchboard_media::audio::SAMPLE_RATE)) / 1000;
    usize::try_from(bytes.div_ceil(FRAME_BYTES as u64)).unwrap_or(usize::MAX)
}

/// The greeting tone, cut into base64 frame payloads (at most [`GREETING_LOOP_MS`]).
fn greeting_frames(config: &AgentConfig, talk_ms: u64) -> Vec<String> {
    let ms = u32::try_from(talk_ms.min(GREETING_LOOP_MS)).unwrap_or(u32::MAX);
    let audio = tone(config.tone_hz, ms, config.tone_amplitude);
    let engine = base64::engine::general_purpose::STANDARD;
    audio
        .chunks(FRAME_BYTES)
        .map(|frame| engine.encode(frame))
        .collect()
}

/// Sends a close frame and waits briefly for the answer, still counting media frames
/// that were in flight so the counts match the far side's.
async fn close<S, R>(sink: &mut S, stream: &mut R, entry: &AgentEntry)
where
    S: Sink<WsOut> + Unpin,
    S::Error: std::fmt::Display,
    R: Stream<Item = WsIn> + Unpin,
{
    let _ = ws::send(
        sink,
        WsOut::Close(CLOSE_NORMAL, "agent finished".to_owned()),
    )
    .await;
    let drain = async {
        while let Some(message) = stream.next().await {
            match message {
                WsIn::Close(_) | WsIn::Error(_) => break,
                WsIn::Text(text) if peek_event(&text) == Some(EventKind::Media) => {
                    entry.frames_received.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, drain).await;
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.close()).await;
}

/// The state of one call once `start` has arrived.
struct Call {
    session: Session,
    context: CallContext,
    behaviour: Behaviour,
    stream_sid: String,
    /// The greeting's frames, looped until `greeting_total` were sent.
    greeting: Vec<String>,
    greeting_total: usize,
    next_frame: usize,
    probe_tx: Option<ProbeSender>,
    probe_rx: Option<ProbeReceiver>,
    greeting_done: bool,
    listen_until: Option<Instant>,
    reported: bool,
    energy_sum: f64,
}

impl Call {
    /// Sends the next greeting frame, or the mark once the greeting is over.
    async fn tick<S>(&mut self, sink: &mut S) -> Result<(), String>
    where
        S: Sink<WsOut> + Unpin,
        S::Error: std::fmt::Display,
    {
        let entry = &self.session.entry;
        let looped = self
            .greeting
            .get(self.next_frame % self.greeting.len().max(1))
            .filter(|_| self.next_frame < self.greeting_total);
        if let (Some(payload), Some(probe)) = (looped, &mut self.probe_tx) {
            // The same frame as the serializer would write, built by hand and stamped.
            let mut text = String::with_capacity(payload.len() + 96);
            text.push_str(r#"{"event":"media","streamSid":""#);
            text.push_str(&self.stream_sid);
            text.push_str(r#"","media":{"payload":""#);
            probe.stamp_payload(payload, &mut text);
            text.push_str(r#""}}"#);
            ws::send(sink, WsOut::Text(text)).await?;
            self.next_frame += 1;
            if entry.frames_sent.fetch_add(1, Ordering::Relaxed) == 0 {
                entry.lock().first_frame_sent_at = Some(std::time::Instant::now());
            }
            return Ok(());
        }
        if let Some(payload) = looped {
            let frame = StreamEvent::Media {
                sequence_number: None,
                stream_sid: self.stream_sid.clone(),
                media: switchboard_media::streams::MediaPayload {
                    track: None,
                    chunk: None,
                    timestamp: None,
                    payload: payload.clone(),
                },
            };
            ws::send(sink, WsOut::Text(frame.to_json())).await?;
            self.next_frame += 1;
            if entry.frames_sent.fetch_add(1, Ordering::Relaxed) == 0 {
                entry.lock().first_frame_sent_at = Some(std::time::Instant::now());
            }
            return Ok(());
        }
        let mark = StreamEvent::mark(self.stream_sid.clone(), GREETING_MARK);
        ws::send(sink, WsOut::Text(mark.to_json())).await?;
        entry.lock().marks_sent.push(GREETING_MARK.to_owned());
        self.greeting_done = true;
        self.listen_until = Some(after_ms(Instant::now(), self.behaviour.listen_ms));
        Ok(())
    }

    fn on_incoming(&mut self, incoming: Option<WsIn>) -> Next {
        let entry = &self.session.entry;
        let text = match incoming {
            Some(WsIn::Text(text)) => text,
            Some(WsIn::Control) => return Next::Continue,
            Some(WsIn::Binary(_)) => {
                entry.lock().protocol_errors += 1;
                return Next::Continue;
            }
            Some(WsIn::Close(frame)) => {
                let detail = frame.map_or_else(
                    || "close without code".to_owned(),
                    |(c, r)| format!("{c} {r}"),
                );
                return Next::Finish(AgentCloseReason::FarSideClosed { detail }, None);
            }
            Some(WsIn::Error(detail)) => {
                return Next::Finish(AgentCloseReason::FarSideClosed { detail }, None);
            }
            None => {
                let detail = "connection ended without a close frame".to_owned();
                return Next::Finish(AgentCloseReason::FarSideClosed { detail }, None);
            }
        };
        if let Some(probe) = &mut self.probe_rx
            && peek_event(&text) == Some(EventKind::Media)
        {
            // Load testing: count and time the frame, leave its audio undecoded.
            probe.on_media(&text);
            if entry.frames_received.fetch_add(1, Ordering::Relaxed) == 0 {
                entry.lock().first_frame_received_at = Some(std::time::Instant::now());
            }
            return Next::Continue;
        }
        let event = match StreamEvent::parse(&text) {
            Ok(event) => event,
            Err(_) => {
                entry.lock().protocol_errors += 1;
                return Next::Continue;
            }
        };
        let now = std::time::Instant::now();
        match event {
            StreamEvent::Media { media, .. } => {
                let Ok(audio) = media.audio() else {
                    entry.lock().protocol_errors += 1;
                    return Next::Continue;
                };
                let level = energy_dbfs(&audio);
                self.energy_sum += f64::from(level);
                if level <= self.session.config.silence_dbfs {
                    entry.silent_frames.fetch_add(1, Ordering::Relaxed);
                }
                let count = entry.frames_received.fetch_add(1, Ordering::Relaxed) + 1;
                if count == 1 {
                    entry.lock().first_frame_received_at = Some(now);
                }
                if count.is_multiple_of(50) {
                    self.save_energy();
                }
                Next::Continue
            }
            StreamEvent::Dtmf { dtmf, .. } => {
                entry.lock().dtmf_received.push(dtmf.digit.clone());
                if dtmf.digit == self.session.config.opt_out_digit && !self.reported {
                    return Next::Finish(AgentCloseReason::OptedOut, Some(Outcome::DoNotCall));
                }
                Next::Continue
            }
            StreamEvent::Mark { mark, .. } => {
                entry.lock().marks_received.push((mark.name, now));
                Next::Continue
            }
            StreamEvent::Stop { .. } => {
                entry.lock().stop_received = true;
                Next::Finish(AgentCloseReason::StopReceived, None)
            }
            _ => {
                entry.lock().protocol_errors += 1;
                Next::Continue
            }
        }
    }

    fn save_energy(&self) {
        let entry = &self.session.entry;
        let frames = entry.frames_received.load(Ordering::Relaxed);
        if frames > 0 {
            entry.lock().inbound_energy_dbfs = Some((self.energy_sum / frames as f64) as f32);
        }
    }

    /// Reports `outcome` (or the behaviour's) once, unless reporting is disabled.
    async fn report(&mut self, outcome: Option<Outcome>) {
        if self.reported || self.behaviour.no_report {
            return;
        }
        self.reported = true;
        let outcome = outcome.unwrap_or(self.behaviour.outcome);
        let callback_at = (outcome == Outcome::Callback).then(|| {
            let at = chrono::Utc::now()
                + chrono::Duration::minutes(self.behaviour.callback_in_minutes.clamp(0, 525_600));
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        });
        let entry = &self.session.entry;
        let frames = entry.frames_received.load(Ordering::Relaxed);
        let digits: String = entry.lock().dtmf_received.concat();
        let mut body = serde_json::json!({
            "call_id": self.context.call_id.clone().unwrap_or_default(),
            "outcome": outcome.as_str(),
            "notes": format!("scripted agent: heard {frames} frames, keys [{digits}]"),
            "transcript": self.transcript(frames),
        });
        if let (Some(at), Some(map)) = (&callback_at, body.as_object_mut()) {
            map.insert(
                "callback_at".to_owned(),
                serde_json::Value::String(at.clone()),
            );
        }
        let delivered = match (&self.context.outcome_url, &self.context.token) {
            (Some(url), Some(token)) => {
                let config = &self.session.config;
                let backoff = Duration::from_millis(config.report_backoff_ms);
                report::post(
                    &self.session.http,
                    url,
                    token,
                    &body,
                    config.report_attempts,
                    backoff,
                )
                .await
            }
            _ => report::Delivered {
                http_status: None,
                attempts: 0,
                error: Some("start carried no outcome_url or token".to_owned()),
            },
        };
        entry.lock().outcome = Some(OutcomeReport {
            outcome,
            callback_at,
            http_status: delivered.http_status,
            attempts: delivered.attempts,
            error: delivered.error,
            finished_at: std::time::Instant::now(),
        });
    }

    fn transcript(&self, frames: u64) -> String {
        let script: String = self
            .context
            .script
            .as_deref()
            .unwrap_or("(greeting tone)")
            .chars()
            .take(200)
            .collect();
        format!("agent: {script}\ncallee: [{frames} frames of audio]")
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
