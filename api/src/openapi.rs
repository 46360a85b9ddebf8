//! The API's OpenAPI description, generated from the handlers' annotations (utoipa): the
//! same macro registers a route and its description, so the spec served at
//! `/openapi.json` is the router's documented half (the other half is
//! [`crate::internal::UNDOCUMENTED`], each route with why). `/docs` is a small
//! self-contained page that reads the spec and lists every operation (no external
//! scripts: it works offline).

pub mod bodies;
pub mod requests;
pub mod responses;

use crate::app::AppState;
use axum::Router;
use utoipa::Modify;
use utoipa::OpenApi as _;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Switchboard", description = "Outbound voice campaigns: campaigns, contacts, audiences, do-not-call, webhooks, and the administrators' live view. Every route needs `Authorization: Bearer <api key>` (the `/admin` routes a tenant's supervisor key, which sees its own tenant, or an operator key, which sees every tenant); errors are RFC 9457 problem details."),
    modifiers(&BearerKey),
    tags((name = "campaigns"), (name = "controls"), (name = "contacts"), (name = "lists"), (name = "dnc"), (name = "suppressions"), (name = "audience"), (name = "webhooks"), (name = "agents"), (name = "admin"))
)]
struct ApiDoc;

/// Declares the bearer keys and requires the tenant key on every operation that does not
/// say otherwise.
struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(description))
                    .build(),
            )
        };
        components.add_security_scheme(
            "api_key",
            bearer("A tenant API key (`switchboard tenants create`)"),
        );
        components.add_security_scheme(
            "admin_key",
            bearer("A tenant's supervisor key (`switchboard keys create --tenant ID --supervisor`), which sees and controls only its own tenant (another tenant's call or campaign is 404), or an operator key, which sees every tenant; a plain tenant key gets 403"),
        );
        components.add_security_scheme(
            "operator_key",
            bearer("An operator key (`switchboard operators create NAME`, prefix `sb_op_`): held by whoever runs Switchboard, never by a tenant; it reaches across tenants and nothing tenant-scoped. A tenant's key, supervisor or not, gets 403"),
        );
        components.add_security_scheme(
            "call_token",
            bearer("The per-call token an agent receives with the call"),
        );
        openapi.security = Some(vec![SecurityRequirement::new(
            "api_key",
            Vec::<String>::new(),
        )]);
    }
}

/// Every documented route (the REST API, webhooks, the agent API, the admin live view and
/// the event streams) and their spec, completed with every answer they can give.
pub fn documented() -> (Router<AppState>, serde_json::Value) {
    let (router, mut spec) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(crate::rest::routes())
        .merge(crate::webhooks::routes())
        .merge(crate::agent_api::routes())
        .merge(crate::admin::routes())
        .merge(crate::admin_events::routes())
        .merge(crate::operator::routes())
        .split_for_parts();
    responses::complete(&mut spec);
    let mut spec = serde_json::to_value(&spec).expect("the spec serializes");
    requests::complete(&mut spec);
    bodies::complete(&mut spec);
    (router, spec)
}

/// The spec alone (for tests and tools).
pub fn spec() -> serde_json::Value {
    documented().1
}

/// The page at `/docs`.
pub const DOCS_PAGE: &str = r#"<!doctype html>
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
