//! The operator dashboard: one self-contained page at `/` (inline CSS and script, no
//! external resources) that talks to the REST API and the admin live view with the key
//! the operator enters. Its charts read `GET /api/v1/campaigns/{id}/timeseries`
//! ([`crate::rest::timeseries`]).

use axum::http::header;
use axum::response::{Html, IntoResponse};

/// The page, embedded in the binary.
pub const PAGE: &str = include_str!("dashboard.html");

/// `GET /`: the page.
pub async fn page() -> impl IntoResponse {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'",
            ),
        ],
        Html(PAGE),
    )
}
