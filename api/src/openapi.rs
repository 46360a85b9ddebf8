//! The REST API with its OpenAPI description, generated from the handlers' annotations
//! (utoipa): the same macro registers a route and its description, so the spec served at
//! `/openapi.json` is the router. `/docs` is a small self-contained page that reads the
//! spec and lists every operation (no external scripts: it works offline).

use crate::app::AppState;
use axum::Router;
use axum::http::header;
use axum::response::Html;
use axum::routing::get;
use std::sync::Arc;
use utoipa::Modify;
use utoipa::OpenApi as _;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Switchboard", description = "Outbound voice campaigns: campaigns, contacts, audiences, do-not-call. Every route needs `Authorization: Bearer <api key>`; errors are RFC 9457 problem details."),
    paths(agent_outcome),
    modifiers(&BearerKey),
    tags((name = "campaigns"), (name = "controls"), (name = "contacts"), (name = "lists"), (name = "dnc"), (name = "audience"), (name = "agents"))
)]
struct ApiDoc;

/// The agent API, routed in [`crate::app::router`] (documented here: it takes a per-call
/// token, not an API key).
#[utoipa::path(post, path = "/api/v1/agent/outcome", tag = "agents",
    request_body(content = Object, description = "{outcome, notes?, callback_at?, transcript?, call_id?}"),
    responses((status = 200, description = "{call_id, outcome, recorded}", body = Object),
              (status = 403, description = "Missing or invalid call token"),
              (status = 409, description = "A different outcome was already recorded")),
    security(("call_token" = [])))]
#[allow(dead_code)]
async fn agent_outcome() {}

/// Declares the bearer API key and requires it on every operation.
struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A tenant API key (`switchboard tenants create`)"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "call_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The per-call token an agent receives with the call"))
                    .build(),
            ),
        );
        openapi.security = Some(vec![SecurityRequirement::new(
            "api_key",
            Vec::<String>::new(),
        )]);
    }
}

/// The REST routes plus `/openapi.json` and `/docs`.
pub fn router() -> Router<AppState> {
    let (rest, spec) = utoipa_axum::router::OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(crate::rest::routes())
        .split_for_parts();
    let spec: Arc<str> = serde_json::to_string(&spec)
        .expect("the spec serializes")
        .into();
    rest.route(
        "/openapi.json",
        get(move || async move {
            (
                [(header::CONTENT_TYPE, "application/json")],
                spec.to_string(),
            )
        }),
    )
    .route("/docs", get(|| async { Html(DOCS_PAGE) }))
}

/// The spec alone (for tests and tools).
pub fn spec() -> OpenApi {
    utoipa_axum::router::OpenApiRouter::<AppState>::with_openapi(ApiDoc::openapi())
        .merge(crate::rest::routes())
        .into_openapi()
}

const DOCS_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Switchboard API</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#222}
h2{margin-top:2rem;border-bottom:1px solid #ddd;text-transform:capitalize}
.op{margin:.6rem 0;padding:.5rem .8rem;border:1px solid #e3e3e3;border-radius:6px}
.m{display:inline-block;width:4.5rem;font-weight:700;text-transform:uppercase}
.get{color:#0a7}.post{color:#06c}.put{color:#a60}.patch{color:#a60}.delete{color:#c22}
code{font-size:14px}.d{color:#555;margin:.2rem 0 0 4.5rem}ul{margin:.2rem 0 0 4.5rem;color:#555}
</style></head><body>
<h1>Switchboard API</h1>
<p>Every route needs <code>Authorization: Bearer &lt;api key&gt;</code>. Errors are
<code>application/problem+json</code> (RFC 9457). The machine-readable spec is at
<a href="/openapi.json">/openapi.json</a>.</p>
<div id="ops">Loading…</div>
<script>
fetch('/openapi.json').then(r => r.json()).then(spec => {
  const byTag = {};
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (!op || typeof op !== 'object' || !op.responses) continue;
      const tag = (op.tags && op.tags[0]) || 'other';
      (byTag[tag] = byTag[tag] || []).push({path, method, op});
    }
  }
  const esc = s => String(s || '').replace(/[&<>]/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;'}[c]));
  const out = [];
  for (const [tag, ops] of Object.entries(byTag)) {
    out.push('<h2>' + esc(tag) + '</h2>');
    for (const {path, method, op} of ops) {
      const params = (op.parameters || []).map(p => '<li><code>' + esc(p.name) + '</code> (' + esc(p.in) + ') ' + esc(p.description) + '</li>').join('');
      const responses = Object.entries(op.responses).map(([s, r]) => '<li>' + esc(s) + ': ' + esc(r.description) + '</li>').join('');
      out.push('<div class="op"><span class="m ' + method + '">' + method + '</span><code>' + esc(path) + '</code>'
        + '<div class="d">' + esc(op.summary || op.description) + '</div>'
        + (params ? '<ul>' + params + '</ul>' : '') + '<ul>' + responses + '</ul></div>');
    }
  }
  document.getElementById('ops').innerHTML = out.join('');
}).catch(e => { document.getElementById('ops').textContent = 'cannot load /openapi.json: ' + e; });
</script></body></html>"#;
