//! A LiveKit agent session per call: a room named after the call, the campaign's agent
//! dispatched into it with the call context, and the room deleted when the call ends.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use livekit_api::services::LiveKitApi;
use livekit_api::services::connector::ConnectTwilioCallOptions;
use livekit_api::services::room::CreateRoomOptions;
use livekit_api::services::sip::SIPClient;
use livekit_protocol as proto;
use livekit_protocol::connect_twilio_call_request::TwilioCallDirection;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::config::{LiveKitConfig, LiveKitOptions};
use super::context::{CallContext, room_name};
use super::error::LiveKitError;

/// Switchboard's handle on a LiveKit project: opens per-call sessions and dials through
/// SIP. Cheap to clone; one HTTP connection pool is shared by every clone.
#[derive(Clone)]
pub struct LiveKitAgents {
    inner: Arc<Inner>,
}

struct Inner {
    api: LiveKitApi,
    sip: SIPClient,
    config: LiveKitConfig,
    options: LiveKitOptions,
}

impl fmt::Debug for LiveKitAgents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveKitAgents")
            .field("config", &self.inner.config)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl LiveKitAgents {
    /// Agents on this LiveKit project, with default options.
    pub fn new(config: LiveKitConfig) -> Result<LiveKitAgents, LiveKitError> {
        Self::with_options(config, LiveKitOptions::default())
    }

    /// Agents on this LiveKit project; refuses an unusable configuration.
    pub fn with_options(
        config: LiveKitConfig,
        options: LiveKitOptions,
    ) -> Result<LiveKitAgents, LiveKitError> {
        config.validate()?;
        let url = config.url.trim();
        let mut api = LiveKitApi::with_api_key(url, &config.api_key, config.secret())
            .with_failover(options.region_failover);
        // Never replayed in another region: a dial that timed out may be ringing already.
        let mut sip =
            SIPClient::with_api_key(url, &config.api_key, config.secret()).with_failover(false);
        if let Some(timeout) = options.request_timeout {
            api = api.with_request_timeout(timeout);
            sip = sip.with_request_timeout(timeout);
        }
        Ok(LiveKitAgents {
            inner: Arc::new(Inner {
                api,
                sip,
                config,
                options,
            }),
        })
    }

    /// The configuration (the secret stays wrapped).
    pub fn config(&self) -> &LiveKitConfig {
        &self.inner.config
    }

    /// The options.
    pub fn options(&self) -> &LiveKitOptions {
        &self.inner.options
    }

    pub(crate) fn api(&self) -> &LiveKitApi {
        &self.inner.api
    }

    pub(crate) fn sip(&self) -> &SIPClient {
        &self.inner.sip
    }

    /// Opens the call's session: creates room `call-<id>`, dispatches `call.agent_name` with
    /// the call context as metadata and, when [`LiveKitOptions::twilio_connector`] is set,
    /// asks for the Twilio connector URL. If a step fails the room is deleted again.
    ///
    /// Safe to retry after a retryable error: the room is named after the call and
    /// creating an existing room returns it (a retry may dispatch the agent twice, though).
    #[tracing::instrument(skip_all, fields(call_id = call.call_id, agent = %call.agent_name))]
    pub async fn open_session(&self, call: &CallContext) -> Result<LiveKitSession, LiveKitError> {
        self.open(call, self.inner.options.twilio_connector).await
    }

    /// Room and dispatch (and the connector URL if `connector`); cleans up on failure.
    pub(crate) async fn open(
        &self,
        call: &CallContext,
        connector: bool,
    ) -> Result<LiveKitSession, LiveKitError> {
        if call.agent_name.trim().is_empty() {
            return Err(LiveKitError::Invalid {
                field: "agent_name",
                reason: "must not be empty (agents are dispatched by name)".into(),
            });
        }
        let room = self.create_room(call).await?;
        let mut session = LiveKitSession {
            agents: self.clone(),
            call_id: call.call_id,
            room: room.name,
            room_sid: room.sid,
            dispatch_id: String::new(),
            connector_url: None,
        };
        let finished = async {
            session.dispatch_id = self.dispatch(&session.room, call).await?;
            if connector {
                session.connector_url = Some(self.connect_twilio(&session.room, call).await?);
            }
            Ok::<(), LiveKitError>(())
        }
        .await;
        match finished {
            Ok(()) => {
                tracing::debug!(room = %session.room, dispatch = %session.dispatch_id, "livekit session open");
                Ok(session)
            }
            Err(error) => {
                session.discard().await;
                Err(error)
            }
        }
    }

    async fn create_room(&self, call: &CallContext) -> Result<proto::Room, LiveKitError> {
        let settings = &self.inner.options.room;
        let options = CreateRoomOptions {
            empty_timeout: seconds(settings.empty_timeout),
            departure_timeout: seconds(settings.departure_timeout),
            max_participants: settings.max_participants,
            metadata: json!({ "call_id": call.call_id, "campaign_id": call.campaign_id })
                .to_string(),
            ..CreateRoomOptions::default()
        };
        let room = call.room();
        let created = self.api().room().create_room(&room, options).await?;
        Ok(proto::Room {
            name: if created.name.is_empty() {
                room
            } else {
                created.name
            },
            ..created
        })
    }

    async fn dispatch(&self, room: &str, call: &CallContext) -> Result<String, LiveKitError> {
        let request = proto::CreateAgentDispatchRequest {
            agent_name: call.agent_name.clone(),
            room: room.to_owned(),
            metadata: call.to_metadata(),
            ..Default::default()
        };
        let dispatch = self.api().agent_dispatch().create_dispatch(request).await?;
        Ok(dispatch.id)
    }

    async fn connect_twilio(&self, room: &str, call: &CallContext) -> Result<String, LiveKitError> {
        let options = ConnectTwilioCallOptions {
            participant_identity: Some(format!("callee-{}", call.call_id)),
            participant_name: call.contact.name.clone(),
            ..ConnectTwilioCallOptions::default()
        };
        let response = self
            .api()
            .connector()
            .connect_twilio_call(TwilioCallDirection::Outbound, room, options)
            .await?;
        if response.connect_url.is_empty() {
            return Err(LiveKitError::Decode(
                "the twilio connector returned no connect_url".into(),
            ));
        }
        Ok(response.connect_url)
    }

    /// Deletes a room; a room that does not exist (any more) is not an error.
    pub async fn delete_room(&self, room: &str) -> Result<(), LiveKitError> {
        match self.api().room().delete_room(room).await {
            Ok(()) => Ok(()),
            Err(error) => match LiveKitError::from(error) {
                error if error.is_not_found() => Ok(()),
                error => Err(error),
            },
        }
    }

    /// Deletes the room of a call by id (e.g. after a restart lost the session handle).
    pub async fn close_call(&self, call_id: i64) -> Result<(), LiveKitError> {
        self.delete_room(&room_name(call_id)).await
    }

    /// Who is in a room now (the agent, the callee).
    pub async fn participants(&self, room: &str) -> Result<Vec<LiveKitParticipant>, LiveKitError> {
        let list = self.api().room().list_participants(room).await?;
        Ok(list.iter().map(LiveKitParticipant::from).collect())
    }

    /// Whether LiveKit's API answers with these credentials: an authenticated request
    /// about a room that does not exist. Any Twirp answer past authentication (the room's
    /// participants, `not_found`) means the API answers; a transport failure, a timeout or
    /// a refused token does not. LiveKit has no way to ask whether a named agent is
    /// registered short of dispatching it, so that is not checked.
    pub async fn probe(&self) -> Result<(), LiveKitError> {
        match self.api().room().list_participants(PROBE_ROOM).await {
            Ok(_) => Ok(()),
            Err(error) => match LiveKitError::from(error) {
                error if error.is_not_found() => Ok(()),
                error => Err(error),
            },
        }
    }
}

/// The room a probe asks about (never created).
const PROBE_ROOM: &str = "switchboard-probe";

fn seconds(d: std::time::Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

/// The LiveKit side of one call: its room and the agent dispatched into it. Close it when
/// the call ends; a session dropped without `close` leaves the room to LiveKit's
/// `empty_timeout`/`departure_timeout`.
#[derive(Debug)]
pub struct LiveKitSession {
    agents: LiveKitAgents,
    call_id: i64,
    room: String,
    room_sid: String,
    dispatch_id: String,
    connector_url: Option<String>,
}

impl LiveKitSession {
    /// The call.
    pub fn call_id(&self) -> i64 {
        self.call_id
    }

    /// The room name, `call-<call_id>`.
    pub fn room(&self) -> &str {
        &self.room
    }

    /// LiveKit's id of the room (`RM_…`).
    pub fn room_sid(&self) -> &str {
        &self.room_sid
    }

    /// LiveKit's id of the agent dispatch (`AD_…`).
    pub fn dispatch_id(&self) -> &str {
        &self.dispatch_id
    }

    /// In media-stream mode, the agent side of the relay: the LiveKit Twilio connector's
    /// Media Streams WebSocket URL when [`LiveKitOptions::twilio_connector`] is on; `None`
    /// otherwise (the runtime then uses its own agent gateway URL). Never set for SIP.
    pub fn connector_url(&self) -> Option<&str> {
        self.connector_url.as_deref()
    }

    /// Who is in the room now.
    pub async fn participants(&self) -> Result<Vec<LiveKitParticipant>, LiveKitError> {
        self.agents.participants(&self.room).await
    }

    /// Ends the session: deletes the room, which disconnects the agent and any SIP callee.
    /// Idempotent: a room already gone is not an error.
    #[tracing::instrument(skip_all, fields(call_id = self.call_id))]
    pub async fn close(self) -> Result<(), LiveKitError> {
        self.agents.delete_room(&self.room).await
    }

    /// Best-effort close after a failure; a failure to delete is logged.
    pub(crate) async fn discard(&self) {
        if let Err(error) = self.agents.delete_room(&self.room).await {
            tracing::warn!(room = %self.room, %error, "could not delete the room of a failed session");
        }
    }
}

/// A participant of a call room, as LiveKit reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LiveKitParticipant {
    /// LiveKit's id (`PA_…`).
    pub sid: String,
    /// Identity in the room.
    pub identity: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// `standard`, `sip`, `agent`, `connector`, … (lower case).
    pub kind: String,
    /// `joining`, `joined`, `active` or `disconnected`.
    pub state: String,
    /// Why the participant left (`client_initiated`, `room_deleted`, …), when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnect_reason: Option<String>,
    /// Attributes (SIP participants carry `sip.callStatus`, `sip.callID`, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

impl From<&proto::ParticipantInfo> for LiveKitParticipant {
    fn from(p: &proto::ParticipantInfo) -> Self {
        let kind = proto::participant_info::Kind::try_from(p.kind)
            .map(|k| k.as_str_name().to_ascii_lowercase())
            .unwrap_or_else(|_| format!("kind_{}", p.kind));
        let state = proto::participant_info::State::try_from(p.state)
            .map(|s| s.as_str_name().to_ascii_lowercase())
            .unwrap_or_else(|_| format!("state_{}", p.state));
        let disconnect_reason = proto::DisconnectReason::try_from(p.disconnect_reason)
            .ok()
            .filter(|r| *r != proto::DisconnectReason::UnknownReason)
            .map(|r| r.as_str_name().to_ascii_lowercase());
        LiveKitParticipant {
            sid: p.sid.clone(),
            identity: p.identity.clone(),
            name: p.name.clone(),
            kind,
            state,
            disconnect_reason,
            attributes: p.attributes.clone().into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn participants_read_kind_state_and_reason_as_lower_case_names() {
        let info = proto::ParticipantInfo {
            sid: "PA_1".into(),
            identity: "callee-7".into(),
            kind: proto::participant_info::Kind::Sip as i32,
            state: proto::participant_info::State::Disconnected as i32,
            disconnect_reason: proto::DisconnectReason::RoomDeleted as i32,
            ..Default::default()
        };
        let p = LiveKitParticipant::from(&info);
        assert_eq!(p.kind, "sip");
        assert_eq!(p.state, "disconnected");
        assert_eq!(p.disconnect_reason.as_deref(), Some("room_deleted"));
        let fresh = LiveKitParticipant::from(&proto::ParticipantInfo::default());
        assert_eq!(
            (fresh.kind.as_str(), fresh.state.as_str()),
            ("standard", "joining")
        );
        assert_eq!(fresh.disconnect_reason, None);
    }

    #[test]
    fn handles_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<LiveKitAgents>();
        check::<LiveKitSession>();
    }
}
