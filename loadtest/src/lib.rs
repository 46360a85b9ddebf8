//! The simulated Twilio carrier, the scripted agent and the load driver.
//!
//! Everything here drives Switchboard from outside, over real sockets, the way Twilio and an
//! AI agent would: it depends on `switchboard-media` for the wire formats and on nothing of
//! the engine or its runtime.
#![warn(missing_docs)]

pub mod agent;
pub mod carrier;
pub mod driver;
mod error;
pub mod livekit;
pub mod probe;
mod time;
mod wait;
mod ws;

pub use agent::{
    AgentCallRecord, AgentCloseReason, AgentConfig, AgentStats, Finish, Outcome, ScriptedAgent,
};
pub use carrier::{
    AnswerMix, CallRecord, CallScript, CallbackPolicy, CallerAudio, CarrierConfig, CarrierStats,
    DEFAULT_API_CONCURRENCY, DialResult, Failure, FailureMix, FrameViolation, FrameViolations,
    MachineMix, Millis, SentAmd, SentCallback, SimCarrier, StreamCloseReason,
};
pub use error::Error;
pub use wait::WaitTimedOut;
