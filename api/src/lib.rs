//! Switchboard's HTTP surface: the REST API, carrier and agent webhooks, the admin API and
//! health endpoints, and the [`Application`] that binds them to a socket.
#![warn(missing_docs)]

pub mod app;
pub mod config;

pub use app::{AppState, Application, router};
pub use config::Settings;
