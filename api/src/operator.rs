//! What only the operator sets over HTTP (an operator key, [`OperatorAuth`]; a tenant's
//! key, supervisor or not, is refused with 403): which LiveKit outbound SIP trunks and
//! agent names a tenant may name in its campaigns (see
//! [`switchboard_engine::campaign::LivekitAllowlist`]). `switchboard tenants livekit` does
//! the same from the command line.

use crate::app::AppState;
use crate::auth::OperatorAuth;
use crate::problem::Problem;
use crate::rest::{json_body, path_id};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use switchboard_engine::TenantId;
use switchboard_engine::campaign::LivekitAllowlist;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The operator's routes, with their OpenAPI description.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(tenant_livekit, set_tenant_livekit))
}

/// What a tenant may use of the shared LiveKit project.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TenantLivekit {
    /// Outbound SIP trunk ids (`agent.trunk_id` of a `sip` agent).
    pub trunks: Vec<String>,
    /// Agent names (`agent.agent_name` of a `livekit` or `sip` agent).
    pub agent_names: Vec<String>,
}

impl From<LivekitAllowlist> for TenantLivekit {
    fn from(list: LivekitAllowlist) -> Self {
        TenantLivekit {
            trunks: list.trunks.into_iter().collect(),
            agent_names: list.agent_names.into_iter().collect(),
        }
    }
}

/// The LiveKit trunk ids and agent names the tenant may use (empty: none).
#[utoipa::path(get, path = "/admin/tenants/{tenant_id}/livekit", tag = "admin",
    params(("tenant_id" = i64, Path, description = "Tenant id")),
    responses((status = 200, description = "The tenant's LiveKit allowlist", body = TenantLivekit),
              (status = 403, description = "Not an operator key"),
              (status = 404, description = "No such tenant")),
    security(("operator_key" = [])))]
async fn tenant_livekit(
    State(state): State<AppState>,
    _operator: OperatorAuth,
    Path(id): Path<String>,
) -> Result<Json<TenantLivekit>, Problem> {
    let tenant: TenantId = path_id(&id, "tenant_id")?;
    state.store.tenant(tenant).await?;
    Ok(Json(state.store.livekit_allowlist(tenant).await?.into()))
}

/// Replaces the LiveKit trunk ids and agent names the tenant may use, all at once. A
/// campaign naming anything else is refused from then on, and never dialed.
#[utoipa::path(put, path = "/admin/tenants/{tenant_id}/livekit", tag = "admin",
    params(("tenant_id" = i64, Path, description = "Tenant id")),
    request_body(content = TenantLivekit, description = "`trunks` and `agent_names`; a missing list is empty"),
    responses((status = 200, description = "The tenant's LiveKit allowlist, as stored", body = TenantLivekit),
              (status = 400, description = "Not a JSON object of two lists of strings"),
              (status = 403, description = "Not an operator key"),
              (status = 404, description = "No such tenant"),
              (status = 422, description = "A value that is not letters, digits and `_ . : @ / -`, longer than 128 characters, or more than 100 of them")),
    security(("operator_key" = [])))]
async fn set_tenant_livekit(
    State(state): State<AppState>,
    _operator: OperatorAuth,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<TenantLivekit>, Problem> {
    let tenant: TenantId = path_id(&id, "tenant_id")?;
    let wanted: TenantLivekit = json_body(&body)?;
    let list = LivekitAllowlist {
        trunks: wanted.trunks.into_iter().collect(),
        agent_names: wanted.agent_names.into_iter().collect(),
    };
    Ok(Json(
        state
            .store
            .set_livekit_allowlist(tenant, &list)
            .await?
            .into(),
    ))
}
