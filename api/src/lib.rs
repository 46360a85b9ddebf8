//! Switchboard's HTTP surface: the REST API, carrier and agent webhooks, the admin API and
//! health endpoints, and the [`Application`] that binds them to a socket.
#![warn(missing_docs)]

pub mod admin;
pub mod admin_events;
pub mod agent_api;
pub mod app;
pub mod auth;
pub mod call_probe;
pub mod calls;
pub mod cli;
pub mod config;
pub mod dashboard;
#[cfg(feature = "demo")]
pub mod demo;
pub mod internal;
pub mod limits;
pub mod live_events;
pub mod livekit_hooks;
pub mod media_ws;
pub mod metrics;
pub mod openapi;
pub mod operator;
pub mod problem;
pub mod relay;
pub mod request_id;
pub mod rest;
pub mod retention;
pub mod server;
pub mod sessions;
pub mod twilio_hooks;
pub mod webhook_guard;
pub mod webhook_worker;
pub mod webhooks;

pub use app::{AppState, Application, router};
pub use config::Settings;
