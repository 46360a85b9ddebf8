//! The Twirp endpoints: `POST /twirp/livekit.{Service}/{Method}` for the room service,
//! agent dispatch, SIP and the Twilio connector.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use livekit_api::access_token::Claims;
use livekit_protocol as proto;
use livekit_protocol::participant_info::Kind;

use super::record::TwirpRequest;
use super::sip;
use super::state::Shared;
use super::twirp::{Format, TwirpError, authenticate, grants};

/// The simulator's routes.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/twirp/{service}/{method}", post(twirp))
        .with_state(shared)
}

async fn twirp(
    State(shared): State<Arc<Shared>>,
    Path((service, method)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let format = Format::of(&headers);
    let (claims, result) = match authenticate(&shared.verifier, &headers) {
        Err(error) => (None, Err(error)),
        Ok(claims) => {
            let call = Call {
                shared: &shared,
                claims: claims.as_ref(),
                format,
                body: &body,
            };
            let result = call.route(&service, &method).await;
            (claims, result)
        }
    };
    if let Err(error) = &result {
        tracing::debug!(%service, %method, code = error.code, msg = %error.msg, "simulated livekit refused a request");
    }
    shared.record_request(TwirpRequest {
        service,
        method,
        claims,
        error: result.as_ref().err().map(|e| e.code.to_owned()),
    });
    result.unwrap_or_else(IntoResponse::into_response)
}

/// One authenticated request.
pub(crate) struct Call<'a> {
    pub shared: &'a Arc<Shared>,
    pub claims: Option<&'a Claims>,
    pub format: Format,
    pub body: &'a [u8],
}

impl Call<'_> {
    async fn route(&self, service: &str, method: &str) -> Result<Response, TwirpError> {
        match (service, method) {
            ("livekit.RoomService", "CreateRoom") => self.create_room(),
            ("livekit.RoomService", "DeleteRoom") => self.delete_room(),
            ("livekit.RoomService", "ListParticipants") => self.list_participants(),
            ("livekit.AgentDispatchService", "CreateDispatch") => self.create_dispatch(),
            ("livekit.SIP", "CreateSIPParticipant") => sip::create_sip_participant(self).await,
            ("livekit.Connector", "ConnectTwilioCall") => self.connect_twilio_call(),
            _ => Err(TwirpError::new(
                "bad_route",
                format!("no handler for path \"/twirp/{service}/{method}\""),
            )),
        }
    }

    fn create_room(&self) -> Result<Response, TwirpError> {
        let request: proto::CreateRoomRequest = self.format.decode(self.body)?;
        grants::room_create(self.claims)?;
        non_empty("name", &request.name)?;
        let room = self.shared.ensure_room(&request.name, Some(&request));
        Ok(self.format.encode(&room))
    }

    fn delete_room(&self) -> Result<Response, TwirpError> {
        let request: proto::DeleteRoomRequest = self.format.decode(self.body)?;
        grants::room_create(self.claims)?;
        self.shared.delete_room(&request.room)?;
        Ok(self.format.encode(&proto::DeleteRoomResponse {}))
    }

    fn list_participants(&self) -> Result<Response, TwirpError> {
        let request: proto::ListParticipantsRequest = self.format.decode(self.body)?;
        grants::room_admin(self.claims, &request.room)?;
        let participants = self.shared.participants(&request.room)?;
        Ok(self
            .format
            .encode(&proto::ListParticipantsResponse { participants }))
    }

    fn create_dispatch(&self) -> Result<Response, TwirpError> {
        let request: proto::CreateAgentDispatchRequest = self.format.decode(self.body)?;
        grants::room_admin(self.claims, &request.room)?;
        non_empty("room", &request.room)?;
        self.shared.ensure_room(&request.room, None);
        let dispatch = proto::AgentDispatch {
            id: self.shared.new_id("AD_"),
            agent_name: request.agent_name,
            room: request.room,
            metadata: request.metadata,
            restart_policy: request.restart_policy,
            deployment: request.deployment,
            attributes: request.attributes,
            state: Some(proto::AgentDispatchState {
                created_at: super::state::now_ms() / 1000,
                ..Default::default()
            }),
        };
        self.shared.record_dispatch(dispatch.clone());
        if let Some(delay) = self.shared.config.agent_join_delay {
            let shared = self.shared.clone();
            let (room, identity, name) = (
                dispatch.room.clone(),
                format!("agent-{}", dispatch.id),
                dispatch.agent_name.clone(),
            );
            let script = self.shared.config.sip_agent.clone();
            let job = dispatch.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let agent = shared.participant(&identity, &name, Kind::Agent, HashMap::new());
                if shared.join(&room, agent)
                    && let Some(script) = script
                {
                    super::agent::run(shared, job, identity, script).await;
                }
            });
        }
        Ok(self.format.encode(&dispatch))
    }

    fn connect_twilio_call(&self) -> Result<Response, TwirpError> {
        let request: proto::ConnectTwilioCallRequest = self.format.decode(self.body)?;
        grants::room_create(self.claims)?;
        let Some(url) = &self.shared.config.twilio_connector_url else {
            return Err(TwirpError::new(
                "unimplemented",
                "the twilio connector is not available on this server",
            ));
        };
        non_empty("room_name", &request.room_name)?;
        self.shared.ensure_room(&request.room_name, None);
        Ok(self.format.encode(&proto::ConnectTwilioCallResponse {
            connect_url: url.clone(),
        }))
    }
}

/// `invalid_argument` for an empty required field.
pub(crate) fn non_empty(field: &str, value: &str) -> Result<(), TwirpError> {
    if value.trim().is_empty() {
        Err(TwirpError::new(
            "invalid_argument",
            format!("{field} is required"),
        ))
    } else {
        Ok(())
    }
}
