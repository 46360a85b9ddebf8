//! One call from dial start to its final status: initiated, ringing, answer (or busy,
//! no-answer, failed), TwiML (`<Say>`, media stream, `<Hangup/>`, and any TwiML the call is
//! given later through the REST API), hang-up, with a status callback at each step.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use switchboard_media::CallStatus;
use tokio::sync::watch;
use tokio::time::Instant;

use super::callbacks::{self, call_form, emit, send_signed};
use super::config::DialResult;
use super::record::{CallEntry, StreamCloseReason};
use super::server::Shared;
use super::stream::{self, StreamSession};
use super::tally::Tally;
use super::twiml::{self, MAX_TWIML_BYTES, Twiml};

/// Longest wait for the customer's TwiML.
const TWIML_TIMEOUT: Duration = Duration::from_secs(15);

/// Marks a queued call as dialling; false when it was canceled meanwhile.
pub(crate) fn begin_dial(entry: &CallEntry) -> bool {
    let mut state = entry.lock();
    if state.status != CallStatus::Queued || entry.hangup_requested.load(Ordering::Acquire) {
        return false;
    }
    state.dial_started_at = Some(std::time::Instant::now());
    state.dial_started_wall = Some(chrono::Utc::now());
    true
}

/// Runs a call whose dialling has begun, to its final status.
pub(crate) async fn run(
    shared: Arc<Shared>,
    entry: Arc<CallEntry>,
    shutdown: watch::Receiver<bool>,
) {
    let mut call = Call {
        shared,
        entry,
        shutdown,
    };
    let status = call.drive().await;
    finish(&call.entry, status);
    Tally::bump(&call.shared.tally.ended);
}

/// Sets the final status and sends the terminal callback.
pub(crate) fn finish(entry: &CallEntry, status: CallStatus) {
    {
        let mut state = entry.lock();
        state.status = status.clone();
        state.ended_at = Some(std::time::Instant::now());
        state.ended_wall = Some(chrono::Utc::now());
    }
    emit(entry, status);
    entry.ended.send_replace(true);
}

/// What interrupted a wait.
enum Waited {
    Elapsed,
    HungUp,
    /// New TwiML was given through the REST API.
    Redirected,
    Shutdown,
}

struct Call {
    shared: Arc<Shared>,
    entry: Arc<CallEntry>,
    shutdown: watch::Receiver<bool>,
}

impl Call {
    /// Waits `duration`, unless the call is hung up, given new TwiML or the carrier shuts
    /// down. A wake-up with nothing to act on (a permit left by an interruption already
    /// handled) waits on.
    async fn wait(&mut self, duration: Duration) -> Waited {
        let until = Instant::now() + duration;
        loop {
            match self.entry.interruption() {
                Some(StreamCloseReason::Redirected) => return Waited::Redirected,
                Some(_) => return Waited::HungUp,
                None => {}
            }
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return Waited::Elapsed,
                _ = self.entry.hangup.notified() => {}
                _ = self.shutdown.wait_for(|stop| *stop) => return Waited::Shutdown,
            }
        }
    }

    fn set_status(&self, status: CallStatus) {
        self.entry.lock().status = status.clone();
        emit(&self.entry, status);
    }

    async fn drive(&mut self) -> CallStatus {
        emit(&self.entry, CallStatus::Initiated);
        let plan = self.entry.plan.clone();
        let ring = Duration::from_millis(plan.ring_ms);
        let timeout = Duration::from_secs(u64::from(self.entry.request.timeout_secs));
        let (ring_for, then) = match plan.result {
            DialResult::Failed => (ring, CallStatus::Failed),
            DialResult::Busy => (ring, CallStatus::Busy),
            DialResult::NoAnswer => (ring.min(timeout), CallStatus::NoAnswer),
            DialResult::Answered if ring >= timeout => (timeout, CallStatus::NoAnswer),
            DialResult::Answered => (ring, CallStatus::InProgress),
        };
        if matches!(then, CallStatus::NoAnswer | CallStatus::InProgress) {
            self.set_status(CallStatus::Ringing);
        }
        match self.wait(ring_for).await {
            // New TwiML is refused before the answer, so only a stray wake-up lands here.
            Waited::Elapsed | Waited::Redirected => {}
            Waited::HungUp | Waited::Shutdown => return CallStatus::Canceled,
        }
        if then != CallStatus::InProgress {
            return then;
        }
        self.answered().await;
        CallStatus::Completed
    }

    /// The callee picked up: callbacks, TwiML, then media or silence until the hang-up.
    /// TwiML given through the REST API meanwhile stops what runs and runs next.
    async fn answered(&mut self) {
        let answered_at = Instant::now();
        {
            let mut state = self.entry.lock();
            state.answered_at = Some(answered_at.into_std());
            state.answered_by = Some(self.entry.plan.answered_by.clone());
        }
        self.set_status(CallStatus::InProgress);
        Tally::bump(&self.shared.tally.answered);
        self.spawn_async_amd();
        let mut talk = Duration::from_millis(self.entry.plan.talk_ms);
        if let Some(limit) = self.entry.request.time_limit_secs {
            talk = talk.min(Duration::from_secs(u64::from(limit)));
        }
        let deadline = crate::time::after(answered_at, talk);
        let mut document = self.twiml().await;
        loop {
            let reason = match document {
                Err(error) => Some(StreamCloseReason::TwimlError { error }),
                Ok(twiml) => self.run(twiml, deadline).await,
            };
            if let Some(reason) = reason {
                self.entry.lock().stream_close_reason = Some(reason);
            }
            match self.entry.take_pending_twiml() {
                Some(next) => document = Ok(next),
                None => break,
            }
        }
    }

    /// Runs one TwiML document: its `<Say>`s, then its stream, or waits for the callee to
    /// hang up unless it ends with `<Hangup/>`. Returns why a stream ended, if one ran.
    async fn run(&mut self, twiml: Twiml, deadline: Instant) -> Option<StreamCloseReason> {
        for text in twiml.say {
            let plays = Duration::from_millis(self.shared.config.say_ms(&text));
            self.entry.lock().said.push(text);
            let left = deadline.saturating_duration_since(Instant::now());
            match self.wait(plays.min(left)).await {
                Waited::Elapsed if plays <= left => {}
                // The callee hung up, the call was ended or given new TwiML.
                _ => return None,
            }
        }
        if let Some(target) = twiml.stream {
            return Some(self.stream(target, deadline).await);
        }
        if !twiml.hangup {
            let _ = self
                .wait(deadline.saturating_duration_since(Instant::now()))
                .await;
        }
        None
    }

    async fn stream(
        &mut self,
        target: twiml::StreamTarget,
        deadline: Instant,
    ) -> StreamCloseReason {
        let stream_sid = self.shared.new_sid("MZ");
        {
            let mut state = self.entry.lock();
            state.stream_url = Some(target.url.clone());
            state.stream_sid = Some(stream_sid.clone());
        }
        let session = StreamSession {
            entry: self.entry.clone(),
            stream_sid,
            parameters: target
                .parameters
                .iter()
                .cloned()
                .collect::<BTreeMap<_, _>>(),
            frames: self.shared.audio.frames(self.entry.plan.audio),
            deadline,
            shutdown: self.shutdown.clone(),
            probe: self.shared.config.probe.clone(),
            violations: self.shared.tally.frame_violations.clone(),
        };
        Tally::bump(&self.shared.tally.streams_opened);
        let reason = stream::connect_and_run(&self.shared.auth_token, &target, session).await;
        Tally::bump(&self.shared.tally.streams_closed);
        reason
    }

    /// The inline `Twiml`, or the document fetched from `Url` with a signed request.
    async fn twiml(&self) -> Result<Twiml, String> {
        let request = &self.entry.request;
        if let Some(inline) = &request.twiml {
            return twiml::parse(inline);
        }
        let Some(url) = &request.url else {
            return Err("no twiml and no url".to_owned());
        };
        let mut form = call_form(&self.entry, &CallStatus::InProgress);
        {
            let state = self.entry.lock();
            if self.entry.answered_by_known(&state)
                && let Some(answered_by) = &state.answered_by
            {
                form.push(("AnsweredBy".to_owned(), answered_by.to_string()));
            }
        }
        let fetch = async {
            let response = send_signed(
                &self.shared.http,
                &self.shared.auth_token,
                url,
                request.method,
                &form,
            )
            .await
            .map_err(|error| format!("fetching twiml from {url}: {error}"))?;
            let status = response.status();
            let body = response
                .bytes()
                .await
                .map_err(|error| format!("reading twiml from {url}: {error}"))?;
            if !status.is_success() {
                return Err(format!("twiml url {url} answered {status}"));
            }
            if body.len() > MAX_TWIML_BYTES {
                return Err(format!("twiml from {url} is {} bytes", body.len()));
            }
            let text = String::from_utf8(body.to_vec())
                .map_err(|_| format!("twiml from {url} is not utf-8"))?;
            twiml::parse(&text)
        };
        tokio::time::timeout(TWIML_TIMEOUT, fetch)
            .await
            .unwrap_or_else(|_| Err(format!("twiml url {url} did not answer in time")))
    }

    fn spawn_async_amd(&self) {
        let Some(target) = self.entry.request.async_amd_callback.clone() else {
            return;
        };
        let shared = self.shared.clone();
        let entry = self.entry.clone();
        tokio::spawn(async move {
            let detection_ms = entry.plan.amd_ms;
            tokio::time::sleep(Duration::from_millis(detection_ms)).await;
            callbacks::send_async_amd(
                &shared.http,
                &shared.auth_token,
                &entry,
                &target,
                detection_ms,
            )
            .await;
        });
    }
}
