//! Twilio Programmable Voice: REST client, TwiML, request signatures and status callbacks.

pub mod call;
pub mod callback;
pub mod client;
pub mod error;
pub mod signature;
pub mod status;
pub mod twiml;

pub use call::{CallResource, CallbackEvent, CreateCall, HttpMethod, MachineDetection};
pub use callback::{AmdCallback, CallbackError, StatusCallback};
pub use client::{TwilioClient, TwilioConfig};
pub use error::TwilioError;
pub use status::{AnsweredBy, CallStatus};
