//! LiveKit agents for calls, through the `livekit-api` crate (Twirp clients, access
//! tokens, the webhook receiver):
//!
//! - a session per call ([`LiveKitAgents::open_session`]): room `call-<id>`, the
//!   campaign's agent dispatched by name with the [`CallContext`] as job metadata, the
//!   room deleted at hang-up ([`LiveKitSession::close`]);
//! - outbound calls through LiveKit SIP ([`LiveKitAgents::dial_sip`]) with SIP answers
//!   mapped to [`SipCallError`]s that say whether the callee said no or the carrier was
//!   full;
//! - webhooks ([`WebhookVerifier`]) turned into events of the call their room belongs to.
//!
//! ```no_run
//! # async fn demo(call: switchboard_media::livekit::CallContext) -> Result<(), switchboard_media::livekit::LiveKitError> {
//! use switchboard_media::livekit::{LiveKitAgents, LiveKitConfig};
//! let config = LiveKitConfig::new("wss://project.livekit.cloud", "APIkey", "secret".into());
//! let agents = LiveKitAgents::new(config)?;
//! let session = agents.open_session(&call).await?;
//! // ... the call runs ...
//! session.close().await?;
//! # Ok(()) }
//! ```

mod agents;
mod config;
mod context;
mod error;
mod sip;
mod webhook;

pub use agents::{LiveKitAgents, LiveKitParticipant, LiveKitSession};
pub use config::{LiveKitConfig, LiveKitOptions, RoomSettings};
pub use context::{CallContact, CallContext, ROOM_PREFIX, call_id_from_room, room_name};
pub use error::LiveKitError;
pub use sip::{SipAnswer, SipCallError, SipDialOptions, SipParticipant};
pub use webhook::{
    LiveKitCallEvent, LiveKitEventKind, LiveKitEventSink, WEBHOOK_CONTENT_TYPE, WEBHOOK_TOKEN_TTL,
    WebhookError, WebhookVerifier, sign_webhook,
};
