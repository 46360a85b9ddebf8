//! The simulated agent of a SIP call, as a LiveKit Agents worker plays it: dispatched into
//! the call's room (it joins after `agent_join_delay`), it reads its job metadata (the
//! call context: `call_id`, `token`, `outcome_url`, `contact`), waits for the callee (the
//! SIP participant) to answer, talks, reports the outcome to Switchboard's agent API with
//! the call's bearer token, then ends the call by deleting the room (an agent's
//! `delete_room`). A callee who hangs up first ends the job early: the agent reports what
//! it has and leaves the room. The contact's attributes steer it per call, as they steer
//! the scripted Media Streams agent: `agent_outcome`, `agent_talk_ms`, `agent_no_report`,
//! `agent_callback_in_minutes`.

use std::sync::Arc;
use std::time::Duration;

use livekit_protocol as proto;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::record::SimAgentReport;
use super::state::Shared;
use crate::agent::config::{AgentConfig, Behaviour};
use crate::agent::{Outcome, report};
use crate::time::after_ms;

/// How often the agent looks at its room.
const LOOK_EVERY: Duration = Duration::from_millis(20);

/// What the simulated agent does once a SIP callee is in its room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipAgentScript {
    /// Milliseconds of conversation after the answer before it reports (the contact's
    /// `agent_talk_ms` overrides it).
    pub talk_ms: u64,
    /// Outcome reported when the contact's `agent_outcome` names none.
    pub outcome: Outcome,
    /// After reporting, end the call by deleting the room; `false` leaves the hang-up to
    /// the callee (or to Switchboard).
    pub hang_up: bool,
    /// Attempts at the report (5xx and transport errors are retried).
    pub report_attempts: u32,
}

impl Default for SipAgentScript {
    fn default() -> Self {
        SipAgentScript {
            talk_ms: 300,
            outcome: Outcome::Interested,
            hang_up: true,
            report_attempts: 4,
        }
    }
}

/// Where the callee is, seen from the agent.
enum Callee {
    /// Not in the room (yet, or any more).
    Absent,
    /// In the room.
    Present,
    /// The room is gone.
    RoomGone,
}

/// The callee of room `room` whose id is `sid` (a later room of the same name is not it).
fn callee(shared: &Shared, room: &str, sid: &str) -> Callee {
    if shared.live_room_sid(room).as_deref() != Some(sid) {
        return Callee::RoomGone;
    }
    match shared.participants(room) {
        Err(_) => Callee::RoomGone,
        Ok(list)
            if list
                .iter()
                .any(|p| p.kind == proto::participant_info::Kind::Sip as i32) =>
        {
            Callee::Present
        }
        Ok(_) => Callee::Absent,
    }
}

/// Plays the script for the agent `identity` dispatched by `dispatch`, which has joined.
pub(crate) async fn run(
    shared: Arc<Shared>,
    dispatch: proto::AgentDispatch,
    identity: String,
    script: SipAgentScript,
) {
    let room = dispatch.room.clone();
    let metadata: Value = serde_json::from_str(&dispatch.metadata).unwrap_or_default();
    let defaults = AgentConfig {
        talk_ms: script.talk_ms,
        outcome: script.outcome,
        ..AgentConfig::default()
    };
    let behaviour = Behaviour::resolve(&defaults, metadata.get("contact"));
    let Some(sid) = shared.live_room_sid(&room) else {
        return;
    };
    // The callee answers, or the room goes (the dial failed, or Switchboard hung up).
    loop {
        match callee(&shared, &room, &sid) {
            Callee::Present => break,
            Callee::RoomGone => return,
            Callee::Absent => tokio::time::sleep(LOOK_EVERY).await,
        }
    }
    let done_talking = after_ms(Instant::now(), behaviour.talk_ms);
    let callee_left = loop {
        if Instant::now() >= done_talking {
            break false;
        }
        match callee(&shared, &room, &sid) {
            Callee::Present => tokio::time::sleep(LOOK_EVERY).await,
            Callee::Absent => break true,
            Callee::RoomGone => return,
        }
    };
    if !behaviour.no_report {
        report_outcome(&shared, &room, &metadata, &behaviour, &script).await;
    }
    if shared.live_room_sid(&room).as_deref() != Some(sid.as_str()) {
        return;
    }
    if callee_left {
        shared.leave(&room, &identity, proto::DisconnectReason::ClientInitiated);
    } else if script.hang_up {
        // A room deleted meanwhile (Switchboard hung up) is fine.
        let _ = shared.delete_room(&room);
    }
}

async fn report_outcome(
    shared: &Shared,
    room: &str,
    metadata: &Value,
    behaviour: &Behaviour,
    script: &SipAgentScript,
) {
    let call_id = match metadata.get("call_id") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    let mut body = json!({
        "call_id": call_id,
        "outcome": behaviour.outcome.as_str(),
        "notes": "simulated livekit agent",
    });
    if behaviour.outcome == Outcome::Callback
        && let Some(map) = body.as_object_mut()
    {
        let at = chrono::Utc::now()
            + chrono::Duration::minutes(behaviour.callback_in_minutes.clamp(0, 525_600));
        map.insert(
            "callback_at".to_owned(),
            json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        );
    }
    let text = |key: &str| {
        metadata
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let (url, token) = (text("outcome_url"), text("token"));
    let mut record = SimAgentReport {
        room: room.to_owned(),
        call_id,
        outcome: behaviour.outcome,
        http_status: None,
        error: None,
    };
    if url.is_empty() || token.is_empty() {
        record.error = Some("no outcome_url or token in the dispatch metadata".to_owned());
    } else {
        let delivered = report::post(
            &shared.http,
            url,
            token,
            &body,
            script.report_attempts,
            Duration::from_millis(100),
        )
        .await;
        record.http_status = delivered.http_status;
        record.error = delivered.error;
    }
    shared.lock().agent_reports.push(record);
}
