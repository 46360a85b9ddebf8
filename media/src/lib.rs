//! How bytes move between Switchboard, the carrier and the AI agent: the Twilio REST
//! client, TwiML, request signatures, the Media Streams codec and G.711 audio helpers.
//!
//! This crate knows the wire formats and nothing of Switchboard's engine or actors.
#![warn(missing_docs)]

pub mod agent_ws;
pub mod audio;
pub mod livekit;
pub mod streams;
pub mod twilio;

pub use agent_ws::{AgentConnectError, AgentConnector};
pub use streams::{EventKind, StreamError, StreamEvent, peek_event};
pub use twilio::{
    AnsweredBy, CallResource, CallStatus, CreateCall, StatusCallback, TwilioClient, TwilioConfig,
    TwilioError,
};
