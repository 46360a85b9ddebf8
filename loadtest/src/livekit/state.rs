//! The simulated LiveKit's shared state: rooms and their participants, dispatches, SIP
//! calls, the request log, and the webhook events every change emits.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use livekit_api::access_token::TokenVerifier;
use livekit_protocol as proto;
use livekit_protocol::participant_info::{Kind, State as ParticipantState};
use tokio::sync::mpsc;

use super::config::SimLiveKitConfig;
use super::record::{SimAgentReport, SimDispatch, SimRoom, SimSipCall, SipCallState, TwirpRequest};
use super::twirp::TwirpError;

/// Everything recorded, behind one lock that is never held across an await.
#[derive(Default)]
pub(crate) struct State {
    pub rooms: Vec<SimRoom>,
    pub dispatches: Vec<SimDispatch>,
    pub sip_calls: Vec<SimSipCall>,
    pub requests: Vec<TwirpRequest>,
    pub agent_reports: Vec<SimAgentReport>,
}

impl State {
    fn live_room_mut(&mut self, name: &str) -> Option<&mut SimRoom> {
        self.rooms
            .iter_mut()
            .rev()
            .find(|r| r.room.name == name && !r.deleted)
    }
}

/// State shared by the handlers and the call and agent tasks.
pub(crate) struct Shared {
    pub config: SimLiveKitConfig,
    pub verifier: TokenVerifier,
    /// For the simulated agents' outcome reports.
    pub http: reqwest::Client,
    state: Mutex<State>,
    events: mpsc::UnboundedSender<proto::WebhookEvent>,
    ids: AtomicU64,
}

/// Now, in Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Shared {
    pub fn new(
        config: SimLiveKitConfig,
        events: mpsc::UnboundedSender<proto::WebhookEvent>,
        http: reqwest::Client,
    ) -> Self {
        Shared {
            verifier: TokenVerifier::with_api_key(&config.api_key, &config.api_secret),
            http,
            config,
            state: Mutex::new(State::default()),
            events,
            ids: AtomicU64::new(1),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A fresh id: `prefix` and 12 hex digits, unique per simulator.
    pub fn new_id(&self, prefix: &str) -> String {
        format!("{prefix}{:012x}", self.ids.fetch_add(1, Ordering::Relaxed))
    }

    fn emit(&self, name: &str, room: &proto::Room, participant: Option<&proto::ParticipantInfo>) {
        let event = proto::WebhookEvent {
            event: name.to_owned(),
            room: Some(room.clone()),
            participant: participant.cloned(),
            id: self.new_id("EV_"),
            created_at: now_ms() / 1000,
            ..Default::default()
        };
        // The sender task only stops at shutdown; events after that are dropped.
        let _ = self.events.send(event);
    }

    /// The live room with this name, creating it (and emitting `room_started`) if needed.
    /// `request` shapes a new room; without one (a dispatch or a SIP call into a room that
    /// does not exist) LiveKit's defaults apply.
    pub fn ensure_room(
        &self,
        name: &str,
        request: Option<&proto::CreateRoomRequest>,
    ) -> proto::Room {
        let mut state = self.lock();
        if let Some(existing) = state.live_room_mut(name) {
            existing.explicit |= request.is_some();
            return existing.room.clone();
        }
        let now = now_ms();
        let room = proto::Room {
            sid: self.new_id("RM_"),
            name: name.to_owned(),
            empty_timeout: request.map_or(300, |r| r.empty_timeout),
            departure_timeout: request.map_or(20, |r| r.departure_timeout),
            max_participants: request.map_or(0, |r| r.max_participants),
            metadata: request.map(|r| r.metadata.clone()).unwrap_or_default(),
            creation_time: now / 1000,
            creation_time_ms: now,
            ..Default::default()
        };
        state.rooms.push(SimRoom {
            room: room.clone(),
            explicit: request.is_some(),
            deleted: false,
            participants: Vec::new(),
        });
        self.emit("room_started", &room, None);
        room
    }

    /// Participants of a live room.
    pub fn participants(&self, name: &str) -> Result<Vec<proto::ParticipantInfo>, TwirpError> {
        let mut state = self.lock();
        let room = state.live_room_mut(name).ok_or_else(room_not_found)?;
        Ok(room.participants.clone())
    }

    /// Deletes a live room: everyone leaves (`participant_left`), then `room_finished`.
    pub fn delete_room(&self, name: &str) -> Result<(), TwirpError> {
        let mut state = self.lock();
        let room = state.live_room_mut(name).ok_or_else(room_not_found)?;
        room.deleted = true;
        for mut participant in std::mem::take(&mut room.participants) {
            participant.state = ParticipantState::Disconnected as i32;
            participant.disconnect_reason = proto::DisconnectReason::RoomDeleted as i32;
            room.room.num_participants = room.room.num_participants.saturating_sub(1);
            self.emit("participant_left", &room.room, Some(&participant));
        }
        self.emit("room_finished", &room.room, None);
        for call in state.sip_calls.iter_mut() {
            if call.info.room_name != name {
                continue;
            }
            call.state = match call.state {
                SipCallState::Ringing => SipCallState::Canceled,
                SipCallState::Answered => SipCallState::Ended,
                ref other => other.clone(),
            };
        }
        Ok(())
    }

    /// Adds a participant to a live room (`participant_joined`); false if the room is gone.
    pub fn join(&self, room: &str, participant: proto::ParticipantInfo) -> bool {
        let mut state = self.lock();
        let Some(entry) = state.live_room_mut(room) else {
            return false;
        };
        entry.room.num_participants += 1;
        self.emit("participant_joined", &entry.room, Some(&participant));
        entry.participants.push(participant);
        true
    }

    /// Removes a participant (`participant_left`); false if it was not in the live room.
    pub fn leave(&self, room: &str, identity: &str, reason: proto::DisconnectReason) -> bool {
        let mut state = self.lock();
        let Some(entry) = state.live_room_mut(room) else {
            return false;
        };
        let Some(index) = entry
            .participants
            .iter()
            .position(|p| p.identity == identity)
        else {
            return false;
        };
        let mut participant = entry.participants.remove(index);
        participant.state = ParticipantState::Disconnected as i32;
        participant.disconnect_reason = reason as i32;
        entry.room.num_participants = entry.room.num_participants.saturating_sub(1);
        self.emit("participant_left", &entry.room, Some(&participant));
        true
    }

    /// A participant that has just joined.
    pub fn participant(
        &self,
        identity: &str,
        name: &str,
        kind: Kind,
        attributes: HashMap<String, String>,
    ) -> proto::ParticipantInfo {
        let now = now_ms();
        proto::ParticipantInfo {
            sid: self.new_id("PA_"),
            identity: identity.to_owned(),
            name: name.to_owned(),
            state: ParticipantState::Active as i32,
            kind: kind as i32,
            attributes,
            joined_at: now / 1000,
            joined_at_ms: now,
            ..Default::default()
        }
    }

    /// Records a dispatch.
    pub fn record_dispatch(&self, dispatch: proto::AgentDispatch) {
        let metadata_json = serde_json::from_str(&dispatch.metadata).ok();
        self.lock().dispatches.push(SimDispatch {
            dispatch,
            metadata_json,
        });
    }

    /// Records a SIP call; returns its index.
    pub fn record_sip_call(&self, call: SimSipCall) -> usize {
        let mut state = self.lock();
        state.sip_calls.push(call);
        state.sip_calls.len() - 1
    }

    /// Changes a SIP call's state.
    pub fn update_sip_call(&self, index: usize, update: impl FnOnce(&mut SimSipCall)) {
        if let Some(call) = self.lock().sip_calls.get_mut(index) {
            update(call);
        }
    }

    /// Records a request.
    pub fn record_request(&self, request: TwirpRequest) {
        self.lock().requests.push(request);
    }

    /// The id (`RM_…`) of the live room with this name.
    pub fn live_room_sid(&self, name: &str) -> Option<String> {
        self.lock().live_room_mut(name).map(|r| r.room.sid.clone())
    }

    /// Whether a room with this name is live.
    pub fn room_is_live(&self, name: &str) -> bool {
        self.lock().live_room_mut(name).is_some()
    }
}

/// LiveKit's error for a room that does not exist.
pub(crate) fn room_not_found() -> TwirpError {
    TwirpError::new("not_found", "requested room does not exist")
}
