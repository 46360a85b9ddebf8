//! A request id for every HTTP request: taken from `X-Request-Id` when the caller sent a
//! sane one, made up otherwise, echoed in the response, and carried by the request's span
//! so that every log line of the request names it.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use tracing::Instrument as _;

/// The header that carries the id.
pub const HEADER: &str = "x-request-id";

static NEXT: AtomicU64 = AtomicU64::new(1);

/// A short random prefix per process, so ids of several processes do not collide.
fn process_prefix() -> &'static str {
    static PREFIX: OnceLock<String> = OnceLock::new();
    PREFIX.get_or_init(|| {
        let mut bytes = [0u8; 4];
        let _ = getrandom::fill(&mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    })
}

fn incoming(request: &Request) -> Option<String> {
    let id = request.headers().get(HEADER)?.to_str().ok()?;
    let sane = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    sane.then(|| id.to_owned())
}

/// The middleware: runs the request inside an `http_request` span with its id.
pub async fn layer(request: Request, next: Next) -> Response {
    let id = incoming(&request).unwrap_or_else(|| {
        format!(
            "{}-{}",
            process_prefix(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        )
    });
    let span = tracing::info_span!(
        "http_request",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path()
    );
    let mut response = next.run(request).instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}
