//! Contact lists: create, list, read (with members), delete, add and remove members.

use super::{json_body, path_id};
use crate::app::AppState;
use crate::auth::Auth;
use crate::problem::Problem;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_engine::contact::ContactList;
use switchboard_engine::{ContactId, ContactListId, Error};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The list routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_list, get_lists))
        .routes(routes!(get_list, delete_list))
        .routes(routes!(add_members, remove_members))
}

/// The tenant's list with this name, created if it does not exist.
pub async fn list_by_name(
    state: &AppState,
    auth: Auth,
    name: &str,
) -> Result<ContactList, Problem> {
    let existing = state.store.lists(auth.tenant).await?;
    if let Some(list) = existing.into_iter().find(|l| l.name == name.trim()) {
        return Ok(list);
    }
    match state.store.create_list(auth.tenant, name).await {
        Ok(list) => Ok(list),
        Err(Error::Invalid { errors, .. }) => Err(Problem::bad_request(
            "list",
            errors.first().map(|e| e.reason.clone()).unwrap_or_default(),
        )),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewList {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Members {
    contact_ids: Vec<ContactId>,
}

/// Creates a list (names are unique per tenant).
#[utoipa::path(post, path = "/api/v1/lists", tag = "lists",
    request_body(content = Object, description = "{\"name\": \"...\"}"),
    responses((status = 201, description = "The list", body = Object), (status = 409, description = "The name is taken"),
              (status = 422, description = "The name is blank")))]
pub async fn create_list(
    State(state): State<AppState>,
    auth: Auth,
    body: Bytes,
) -> Result<Response, Problem> {
    let new: NewList = json_body(&body)?;
    let list = state.store.create_list(auth.tenant, &new.name).await?;
    Ok((StatusCode::CREATED, Json(list)).into_response())
}

/// The tenant's lists.
#[utoipa::path(get, path = "/api/v1/lists", tag = "lists",
    responses((status = 200, description = "{items}", body = Object)))]
pub async fn get_lists(State(state): State<AppState>, auth: Auth) -> Result<Json<Value>, Problem> {
    let items = state.store.lists(auth.tenant).await?;
    Ok(Json(json!({ "items": items, "next_cursor": null })))
}

/// One list and its members.
#[utoipa::path(get, path = "/api/v1/lists/{id}", tag = "lists",
    params(("id" = i64, Path, description = "List id")),
    responses((status = 200, description = "{list, members}", body = Object), (status = 404, description = "No such list")))]
pub async fn get_list(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    let id: ContactListId = path_id(&id, "id")?;
    let list = state.store.list(auth.tenant, id).await?;
    let members = state.store.list_members(auth.tenant, id).await?;
    Ok(Json(json!({ "list": list, "members": members })))
}

/// Deletes a list (its contacts stay).
#[utoipa::path(delete, path = "/api/v1/lists/{id}", tag = "lists",
    params(("id" = i64, Path, description = "List id")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such list")))]
pub async fn delete_list(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    let id: ContactListId = path_id(&id, "id")?;
    state.store.delete_list(auth.tenant, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Adds contacts to a list (all or none: an unknown contact is a 404).
#[utoipa::path(post, path = "/api/v1/lists/{id}/members", tag = "lists",
    params(("id" = i64, Path, description = "List id")),
    request_body(content = Object, description = "{\"contact_ids\": [1, 2]}"),
    responses((status = 200, description = "{added}", body = Object), (status = 404, description = "No such list"),
              (status = 422, description = "A contact that does not exist (or is another tenant's), named; nothing is added")))]
pub async fn add_members(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, Problem> {
    let id: ContactListId = path_id(&id, "id")?;
    let members: Members = json_body(&body)?;
    // The list is the object the path names (404); a contact the body names that does not
    // exist is a bad field of the body (422).
    state.store.list(auth.tenant, id).await?;
    let added = match state
        .store
        .add_to_list(auth.tenant, id, &members.contact_ids)
        .await
    {
        Ok(added) => added,
        Err(Error::NotFound {
            what: "contact",
            id: contact,
        }) => {
            let at = members
                .contact_ids
                .iter()
                .position(|c| c.to_string() == contact)
                .map_or_else(|| "contact_ids".to_owned(), |i| format!("contact_ids[{i}]"));
            return Err(Problem::with_errors(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid members",
                vec![switchboard_engine::FieldError::new(
                    at,
                    format!("contact {contact} not found"),
                )],
            ));
        }
        Err(e) => return Err(e.into()),
    };
    Ok(Json(json!({ "added": added })))
}

/// Removes contacts from a list.
#[utoipa::path(delete, path = "/api/v1/lists/{id}/members", tag = "lists",
    params(("id" = i64, Path, description = "List id")),
    request_body(content = Object, description = "{\"contact_ids\": [1, 2]}"),
    responses((status = 200, description = "{removed}", body = Object), (status = 404, description = "No such list")))]
pub async fn remove_members(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, Problem> {
    let id: ContactListId = path_id(&id, "id")?;
    let members: Members = json_body(&body)?;
    let removed = state
        .store
        .remove_from_list(auth.tenant, id, &members.contact_ids)
        .await?;
    Ok(Json(json!({ "removed": removed })))
}
