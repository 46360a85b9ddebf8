//! Switchboard's domain, pure logic and storage: ids, phone numbers, contacts, campaign
//! configuration and lifecycle, the audience query language, templates, CSV import and
//! export, the do-not-call list, and the [`Store`](store::Store) over SQLite or PostgreSQL.
//!
//! This crate knows nothing of actors or HTTP.
#![warn(missing_docs)]

pub mod audience;
pub mod call_token;
pub mod campaign;
pub mod contact;
pub mod destination;
pub mod dnc;
pub mod error;
pub mod export;
pub mod ids;
pub mod import;
pub mod pacing;
pub mod pacing_sim;
pub mod phone;
pub mod quality;
pub mod retry;
pub mod store;
pub mod template;
pub mod time;
pub mod webhook;
pub mod window;

pub use error::{Error, FieldError};
pub use ids::*;
pub use phone::E164;
