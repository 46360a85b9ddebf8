//! The operator dashboard: one self-contained page at `/` (inline CSS and script, no
//! external resources) that talks to the REST API and the admin live view with the key
//! the operator enters. Its charts read `GET /api/v1/campaigns/{id}/timeseries`
//! ([`crate::rest::timeseries`]).

use axum::http::header;
use axum::response::{Html, IntoResponse};

/// The page, embedded in the binary.
pub const PAGE: &str = include_str!("dashboard.html");

/// `GET /`: the page. It holds a key that controls live calls, so no other site may frame
/// it (clickjacking): `frame-ancestors 'none'`, and `X-Frame-Options: DENY` for browsers
/// that predate it.
pub async fn page() -> impl IntoResponse {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; \
                 frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
            ),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        Html(PAGE),
    )
}
