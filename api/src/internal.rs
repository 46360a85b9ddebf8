//! The routes deliberately left out of the OpenAPI spec, each with why, and the probes
//! among them (`/healthz`, `/readyz`).
//!
//! The router is made of exactly two parts: the documented routes
//! ([`crate::openapi::documented`], whose annotations are the spec) and the table
//! [`UNDOCUMENTED`] here. A route cannot be served without being in one of them, and the
//! OpenAPI test checks both: every spec operation answers, and every undocumented route is
//! listed (with its reason) in the test too.

use crate::app::AppState;
use crate::{dashboard, livekit_hooks, media_ws, metrics, twilio_hooks};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{MethodRouter, get, post};
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;

/// A route served outside the OpenAPI spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Undocumented {
    /// The methods it answers (lowercase).
    pub methods: &'static [&'static str],
    /// Its path.
    pub path: &'static str,
    /// Why it is not part of the described API.
    pub why: &'static str,
}

/// Every route served outside the OpenAPI spec.
pub const UNDOCUMENTED: &[Undocumented] = &[
    Undocumented {
        methods: &["get"],
        path: "/healthz",
        why: "liveness probe for orchestrators, no key",
    },
    Undocumented {
        methods: &["get"],
        path: "/readyz",
        why: "readiness probe for orchestrators, no key",
    },
    Undocumented {
        methods: &["get"],
        path: "/metrics",
        why: "Prometheus scrape in its text format, no key",
    },
    Undocumented {
        methods: &["post"],
        path: "/twilio/status",
        why: "Twilio's status callbacks, signed by Twilio",
    },
    Undocumented {
        methods: &["post"],
        path: "/twilio/amd",
        why: "Twilio's asynchronous machine detection callbacks, signed by Twilio",
    },
    Undocumented {
        methods: &["get", "post"],
        path: "/twilio/twiml",
        why: "TwiML Twilio fetches for a call, signed by Twilio",
    },
    Undocumented {
        methods: &["get"],
        path: "/twilio/media",
        why: "Twilio's media stream WebSocket, signed by Twilio",
    },
    Undocumented {
        methods: &["post"],
        path: "/livekit/webhook",
        why: "LiveKit's webhooks, signed by LiveKit",
    },
    Undocumented {
        methods: &["get"],
        path: "/",
        why: "the dashboard page, a client of the API",
    },
    Undocumented {
        methods: &["get"],
        path: "/openapi.json",
        why: "the spec itself",
    },
    Undocumented {
        methods: &["get"],
        path: "/docs",
        why: "the API reference (Swagger UI over the spec): sends the browser to /docs/",
    },
    Undocumented {
        methods: &["get"],
        path: "/docs/",
        why: "the API reference page",
    },
    Undocumented {
        methods: &["get"],
        path: "/docs/{*file}",
        why: "the API reference's scripts and styles, embedded in the binary",
    },
];

/// The handlers of [`UNDOCUMENTED`], by path; `spec` is the serialized OpenAPI document.
fn handler(path: &str, spec: &Arc<str>) -> MethodRouter<AppState> {
    match path {
        "/healthz" => get(healthz),
        "/readyz" => get(readyz),
        "/metrics" => get(metrics::scrape),
        "/twilio/status" => post(twilio_hooks::status_callback),
        "/twilio/amd" => post(twilio_hooks::amd_callback),
        "/twilio/twiml" => get(twilio_hooks::call_twiml).post(twilio_hooks::call_twiml),
        "/twilio/media" => get(media_ws::media_stream),
        "/livekit/webhook" => post(livekit_hooks::livekit_webhook),
        "/" => get(dashboard::page),
        "/openapi.json" => {
            let spec = spec.clone();
            get(move || async move {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    spec.to_string(),
                )
            })
        }
        "/docs" => get(|| async { Redirect::permanent("/docs/") }),
        "/docs/" => get(|| async { crate::openapi::reference_file("") }),
        "/docs/{*file}" => {
            get(|Path(file): Path<String>| async move { crate::openapi::reference_file(&file) })
        }
        other => unreachable!("{other} is in UNDOCUMENTED without a handler"),
    }
}

/// The undocumented routes, added to `router`.
pub fn add_routes(mut router: Router<AppState>, spec: &Arc<str>) -> Router<AppState> {
    for route in UNDOCUMENTED {
        router = router.route(route.path, handler(route.path, spec));
    }
    router
}

/// Liveness: the process is up and serving HTTP.
async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// How long readiness waits for the database and for the engine supervisor.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Readiness: the database answers and the engine supervisor replies (when the runtime
/// runs; without Twilio it is reported `not_configured` and does not block readiness).
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let (ready, body) = readiness(&state).await;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// Whether the server is ready, and the figures that say so (`/readyz`'s body; `/metrics`
/// exposes the first as `switchboard_ready`).
pub async fn readiness(state: &AppState) -> (bool, serde_json::Value) {
    let database = match tokio::time::timeout(READY_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => "ok",
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: the database does not answer");
            "unreachable"
        }
        Err(_) => {
            tracing::warn!("readiness: the database did not answer in time");
            "timeout"
        }
    };
    let runtime = match &state.runtime {
        None => json!("not_configured"),
        Some(runtime) => match runtime.ping(READY_TIMEOUT).await {
            Ok(campaigns) => json!({ "status": "ok", "running_campaigns": campaigns }),
            Err(e) => {
                tracing::warn!(error = %e, "readiness: the engine supervisor does not answer");
                json!({ "status": "unresponsive" })
            }
        },
    };
    let runtime_ok = runtime == json!("not_configured") || runtime["status"] == "ok";
    let ready = database == "ok" && runtime_ok;
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "database": database,
        "runtime": runtime,
    });
    (ready, body)
}
