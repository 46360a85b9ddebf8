//! Campaigns: create, list, read, update (what the status allows), delete, duplicate,
//! and the history of status changes.

use super::{Page, Params, json_body, path_id};
use crate::app::AppState;
use crate::auth::Auth;
use crate::problem::Problem;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use switchboard_engine::campaign::{AgentConfig, CampaignConfig, CampaignStatus, MAX_NAME_CHARS};
use switchboard_engine::store::{CampaignFilter, CampaignRecord, TransitionRecord};
use switchboard_engine::{CampaignId, Error, FieldError};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The campaign routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_campaign, list_campaigns))
        .routes(routes!(
            get_campaign,
            replace_campaign,
            patch_campaign,
            delete_campaign
        ))
        .routes(routes!(duplicate_campaign))
        .routes(routes!(campaign_history))
}

/// A configuration from a JSON document: 422 naming every bad field.
pub fn parse_config(value: Value) -> Result<CampaignConfig, Problem> {
    CampaignConfig::from_json(value).map_err(|errors| {
        Problem::with_errors(StatusCode::UNPROCESSABLE_ENTITY, "invalid campaign", errors)
    })
}

/// Refuses (422) an agent the tenant may not use: a LiveKit trunk or agent name the
/// operator did not allow this tenant (see
/// [`switchboard_engine::campaign::LivekitAllowlist`]), or a media-stream URL that leads to
/// an internal address (resolved now; the relay and the probe judge it again when they
/// connect) unless the server sets `agent_allow_private_addresses`.
async fn check_agent(
    state: &AppState,
    auth: &Auth,
    config: &CampaignConfig,
) -> Result<(), Problem> {
    state
        .store
        .check_livekit_agent(auth.tenant, config.agent.as_ref())
        .await?;
    let Some(AgentConfig::MediaStream { url }) = &config.agent else {
        return Ok(());
    };
    if state.api.agent_allow_private_addresses {
        return Ok(());
    }
    crate::webhook_guard::check_agent_url(url)
        .await
        .map_err(|e| {
            Problem::with_errors(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid campaign",
                vec![FieldError::new("agent.url", e.to_string())],
            )
        })
}

fn created(record: CampaignRecord) -> Response {
    let location = format!("/api/v1/campaigns/{}", record.id);
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(record),
    )
        .into_response()
}

/// Creates a campaign in `draft`.
#[utoipa::path(post, path = "/api/v1/campaigns", tag = "campaigns",
    request_body(content = Object, description = "A campaign configuration (every field has a default)"),
    responses((status = 201, description = "The campaign, in draft", body = Object),
              (status = 422, description = "Invalid configuration: every bad field is named (a LiveKit `agent.trunk_id` or `agent.agent_name` the operator did not allow this tenant too)")))]
pub async fn create_campaign(
    State(state): State<AppState>,
    auth: Auth,
    body: Bytes,
) -> Result<Response, Problem> {
    let config = parse_config(json_body(&body)?)?;
    check_agent(&state, &auth, &config).await?;
    let record = state.store.create_campaign(auth.tenant, &config).await?;
    Ok(created(record))
}

/// Lists campaigns, by id, filtered by status and searched by name.
#[utoipa::path(get, path = "/api/v1/campaigns", tag = "campaigns",
    params(("status" = Option<String>, Query, description = "draft, scheduled, active, paused, completed, failed or stopped"),
           ("q" = Option<String>, Query, description = "Case-insensitive part of the name"),
           ("limit" = Option<u32>, Query, description = "Page size, 1 to 500 (default 50)"),
           ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, description = "{items, next_cursor}", body = Object)))]
pub async fn list_campaigns(
    State(state): State<AppState>,
    auth: Auth,
    params: Params,
) -> Result<Json<Page<CampaignRecord>>, Problem> {
    let limit = params.limit(50, 500)?;
    let filter = CampaignFilter {
        status: params.parse::<CampaignStatus>("status")?,
        search: params.get("q").map(str::to_owned),
        after: params.cursor()?.map(CampaignId),
        limit: Some(limit),
    };
    let items = state.store.list_campaigns(auth.tenant, &filter).await?;
    Ok(Json(Page::new(items, limit, |c| c.id.0)))
}

/// One campaign.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}", tag = "campaigns",
    params(("id" = i64, Path, description = "Campaign id")),
    responses((status = 200, description = "The campaign", body = Object), (status = 404, description = "No such campaign")))]
pub async fn get_campaign(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<CampaignRecord>, Problem> {
    let id: CampaignId = path_id(&id, "id")?;
    Ok(Json(state.store.campaign(auth.tenant, id).await?))
}

/// Stores a new configuration with what the status allows; a refused field is a 409
/// naming it and why.
async fn edit(
    state: &AppState,
    auth: Auth,
    id: CampaignId,
    config: CampaignConfig,
) -> Result<Json<CampaignRecord>, Problem> {
    match state.store.edit_campaign(auth.tenant, id, &config).await {
        Ok(record) => {
            if let Some(runtime) = &state.runtime {
                // A running supervisor paces by the edited settings from its next tick.
                runtime.campaign_edited(id);
            }
            Ok(Json(record))
        }
        Err(Error::Invalid {
            what: "campaign change",
            errors,
        }) => Err(Problem::with_errors(
            StatusCode::CONFLICT,
            "change not allowed in this status",
            errors,
        )),
        Err(e) => Err(e.into()),
    }
}

/// Replaces the configuration. A draft or scheduled campaign may change anything; a
/// running one only its pacing, caps, end time, budget and thresholds; a finished one nothing.
#[utoipa::path(put, path = "/api/v1/campaigns/{id}", tag = "campaigns",
    params(("id" = i64, Path, description = "Campaign id")),
    request_body(content = Object, description = "The full campaign configuration"),
    responses((status = 200, description = "The campaign", body = Object),
              (status = 409, description = "A field may not change in the current status (named in errors)"),
              (status = 422, description = "Invalid configuration")))]
pub async fn replace_campaign(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<CampaignRecord>, Problem> {
    let id: CampaignId = path_id(&id, "id")?;
    let config = parse_config(json_body(&body)?)?;
    state.store.campaign(auth.tenant, id).await?;
    check_agent(&state, &auth, &config).await?;
    edit(&state, auth, id, config).await
}

/// Merges a partial configuration (RFC 7396 JSON merge patch) into the current one.
#[utoipa::path(patch, path = "/api/v1/campaigns/{id}", tag = "campaigns",
    params(("id" = i64, Path, description = "Campaign id")),
    request_body(content = Object, description = "The fields to change; null removes an optional field"),
    responses((status = 200, description = "The campaign", body = Object),
              (status = 409, description = "A field may not change in the current status"),
              (status = 422, description = "The merged configuration is invalid: every bad field is named")))]
pub async fn patch_campaign(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<CampaignRecord>, Problem> {
    let id: CampaignId = path_id(&id, "id")?;
    let patch: Value = json_body(&body)?;
    let current = state.store.campaign(auth.tenant, id).await?;
    let mut document = serde_json::to_value(&current.config)
        .map_err(|e| Problem::bad_request("body", e.to_string()))?;
    merge_patch(&mut document, patch);
    let config = parse_config(document)?;
    check_agent(&state, &auth, &config).await?;
    edit(&state, auth, id, config).await
}

/// RFC 7396: objects merge key by key, `null` removes, anything else replaces.
fn merge_patch(target: &mut Value, patch: Value) {
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = Value::Object(Default::default());
            }
            let Value::Object(map) = target else { return };
            for (k, v) in fields {
                if v.is_null() {
                    map.remove(&k);
                } else {
                    merge_patch(map.entry(k).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other,
    }
}

/// Deletes a campaign that is not running.
#[utoipa::path(delete, path = "/api/v1/campaigns/{id}", tag = "campaigns",
    params(("id" = i64, Path, description = "Campaign id")),
    responses((status = 204, description = "Deleted"), (status = 409, description = "Running: stop it first"), (status = 404, description = "No such campaign")))]
pub async fn delete_campaign(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    let id: CampaignId = path_id(&id, "id")?;
    state.store.delete_campaign(auth.tenant, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new draft with the same configuration, named "<name> (copy)".
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/duplicate", tag = "campaigns",
    params(("id" = i64, Path, description = "Campaign id")),
    responses((status = 201, description = "The copy, in draft", body = Object), (status = 404, description = "No such campaign")))]
pub async fn duplicate_campaign(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let id: CampaignId = path_id(&id, "id")?;
    let mut config = state.store.campaign(auth.tenant, id).await?.config;
    let suffix = " (copy)";
    let keep = MAX_NAME_CHARS.saturating_sub(suffix.chars().count());
    config.name = config.name.chars().take(keep).collect::<String>() + suffix;
    check_agent(&state, &auth, &config).await?;
    let record = state.store.create_campaign(auth.tenant, &config).await?;
    Ok(created(record))
}

/// Every status change of the campaign, oldest first, with cause and reason.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/history", tag = "campaigns",
    params(("id" = i64, Path, description = "Campaign id")),
    responses((status = 200, description = "Status changes: [{from, to, cause, reason, at, ...}]", body = Vec<Object>), (status = 404, description = "No such campaign")))]
pub async fn campaign_history(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Vec<TransitionRecord>>, Problem> {
    let id: CampaignId = path_id(&id, "id")?;
    Ok(Json(state.store.campaign_history(auth.tenant, id).await?))
}

#[cfg(test)]
mod tests {
    use super::merge_patch;
    use serde_json::json;

    #[test]
    fn a_merge_patch_changes_only_what_it_names() {
        let mut doc = json!({"name": "a", "retry": {"max_attempts": 3, "min_gap_minutes": 60}, "daily_cap": 10});
        merge_patch(
            &mut doc,
            json!({"retry": {"max_attempts": 5}, "daily_cap": null}),
        );
        assert_eq!(
            doc,
            json!({"name": "a", "retry": {"max_attempts": 5, "min_gap_minutes": 60}})
        );
    }
}
