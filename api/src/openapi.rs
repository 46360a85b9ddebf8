//! The API's OpenAPI description, generated from the handlers' annotations (utoipa): the
//! same macro registers a route and its description, so the spec served at
//! `/openapi.json` is the router's documented half (the other half is
//! [`crate::internal::UNDOCUMENTED`], each route with why). `/docs/` is the API
//! reference: Swagger UI, served from assets embedded in the binary (it works offline).

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

/// A file of the API reference at `/docs/`: Swagger UI (its assets embedded in the
/// binary) reading `/openapi.json`, with the key entered once (Authorize) and kept across
/// reloads in the browser's storage; "Try it out" sends real requests to this server.
pub fn reference_file(path: &str) -> axum::response::Response {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    static CONFIG: std::sync::OnceLock<std::sync::Arc<utoipa_swagger_ui::Config<'static>>> =
        std::sync::OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        std::sync::Arc::new(
            utoipa_swagger_ui::Config::new(["/openapi.json"])
                .persist_authorization(true)
                .try_it_out_enabled(true)
                .display_request_duration(true),
        )
    });
    match utoipa_swagger_ui::serve(path, config.clone()) {
        Ok(Some(file)) => (
            [
                (header::CONTENT_TYPE, file.content_type),
                (header::CACHE_CONTROL, "no-cache".to_owned()),
            ],
            file.bytes.into_owned(),
        )
            .into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "no such file of the API reference").into_response(),
        Err(e) => {
            tracing::error!(error = %e, "the API reference could not be served");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
