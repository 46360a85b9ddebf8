//! What callees asked for: numbers the tenant may not call because their callee said no (a
//! `do_not_call` outcome, an opt-out through the API). Listed and read with their history;
//! removed only by an explicit call that records who and why.

use super::{Params, region};
use crate::app::AppState;
use crate::auth::Auth;
use crate::problem::Problem;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::Value;
use switchboard_engine::store::{Suppression, SuppressionEvent};
use switchboard_engine::{E164, FieldError};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Longest reason accepted when a suppression is removed, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// The suppression routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_suppressions))
        .routes(routes!(get_suppression, remove_suppression))
}

/// The API key a request was made with, as recorded in a suppression's history.
pub fn actor(auth: &Auth) -> String {
    format!("api key {}", auth.key.0)
}

/// A page of suppressions, by phone.
#[derive(Debug, Serialize)]
pub struct SuppressionPage {
    /// The suppressions.
    pub items: Vec<Suppression>,
    /// Pass as `cursor` for the next page (`null`: the last page).
    pub next_cursor: Option<String>,
}

/// A number's suppression, if any, and every addition and removal of it (so a removed
/// suppression still shows who lifted it and why).
#[derive(Debug, Serialize)]
pub struct SuppressionDetail {
    /// The number, E.164.
    pub phone: E164,
    /// Whether the number may not be called now.
    pub suppressed: bool,
    /// The suppression in force, if any.
    pub current: Option<Suppression>,
    /// Who added or removed it, when, why and from where; oldest first.
    pub history: Vec<SuppressionEvent>,
}

fn phone(raw: &str, params: &Params, state: &AppState) -> Result<E164, Problem> {
    E164::parse(raw, region(params, &state.api)?).map_err(|e| {
        Problem::with_errors(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid phone number",
            vec![FieldError::new("phone", e.to_string())],
        )
    })
}

/// The tenant's suppressions, by phone.
#[utoipa::path(get, path = "/api/v1/suppressions", tag = "suppressions",
    params(("limit" = Option<u32>, Query, description = "1 to 1000 (default 100)"),
           ("cursor" = Option<String>, Query, description = "next_cursor of the previous page (a phone)")),
    responses((status = 200, description = "{items: [{phone, source, reason, requested_by, created_at}], next_cursor}", body = Object),
              (status = 400, description = "Bad limit")))]
pub async fn list_suppressions(
    State(state): State<AppState>,
    auth: Auth,
    params: Params,
) -> Result<Json<SuppressionPage>, Problem> {
    let limit = params.limit(100, 1000)?;
    let items = state
        .store
        .list_suppressions(auth.tenant, params.get("cursor"), limit)
        .await?;
    let next_cursor = (items.len() as u32 >= limit)
        .then(|| items.last().map(|s| s.phone.clone()))
        .flatten();
    Ok(Json(SuppressionPage { items, next_cursor }))
}

/// A number's suppression and its history; also after the suppression was removed.
#[utoipa::path(get, path = "/api/v1/suppressions/{phone}", tag = "suppressions",
    params(("phone" = String, Path, description = "The number, URL-encoded, e.g. %2B14155550123")),
    responses((status = 200, description = "{phone, suppressed, current: {source, reason, requested_by, created_at} or null, history: [{action, source, actor, reason, at}]}", body = Object),
              (status = 404, description = "The number was never suppressed"),
              (status = 422, description = "Not a phone number (numbering plans are checked by the server)")))]
pub async fn get_suppression(
    State(state): State<AppState>,
    auth: Auth,
    params: Params,
    Path(raw): Path<String>,
) -> Result<Json<SuppressionDetail>, Problem> {
    let number = phone(&raw, &params, &state)?;
    let current = state.store.suppression(auth.tenant, &number).await?;
    let history = state
        .store
        .suppression_history(auth.tenant, &number)
        .await?;
    if current.is_none() && history.is_empty() {
        return Err(Problem::not_found("suppression", &number));
    }
    Ok(Json(SuppressionDetail {
        phone: number,
        suppressed: current.is_some(),
        current,
        history,
    }))
}

/// The required reason of a removal: a 422 naming `reason` when missing, empty or too long.
fn removal_reason(body: &Bytes) -> Result<String, Problem> {
    required_reason(
        body,
        "a reason is required to remove a suppression",
        "required: say why the callee may be called again",
    )
}

/// The `reason` of a JSON body `{"reason": ...}`, required (an audited act): a 422 titled
/// `title` naming `reason` when missing (saying `missing`), empty or too long.
pub(super) fn required_reason(
    body: &Bytes,
    title: &'static str,
    missing: &'static str,
) -> Result<String, Problem> {
    let invalid = |detail: String| {
        Problem::with_errors(
            StatusCode::UNPROCESSABLE_ENTITY,
            title,
            vec![FieldError::new("reason", detail)],
        )
    };
    let value: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(body).map_err(|e| Problem::bad_request("body", e.to_string()))?
    };
    if let Some(fields) = value.as_object()
        && let Some(unknown) = fields.keys().find(|k| *k != "reason")
    {
        return Err(Problem::bad_request(
            "body",
            format!("unknown field `{unknown}`, expected `reason`"),
        ));
    }
    let reason = match value.get("reason") {
        None | Some(Value::Null) => return Err(invalid(missing.into())),
        Some(Value::String(s)) => s,
        Some(other) => return Err(invalid(format!("{other}: expected a string"))),
    };
    let chars = reason.chars().count();
    if chars > MAX_REASON_CHARS {
        return Err(invalid(format!(
            "{chars} characters: at most {MAX_REASON_CHARS}"
        )));
    }
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(invalid("must not be empty".into()));
    }
    Ok(reason.to_owned())
}

/// Makes a suppressed number callable again, recording the API key and the reason in its
/// history. Also lifts the do-not-call entry an agent added for it and its contacts' opt-out.
#[utoipa::path(delete, path = "/api/v1/suppressions/{phone}", tag = "suppressions",
    params(("phone" = String, Path, description = "The number, URL-encoded, e.g. %2B14155550123")),
    request_body(content = Object, description = "{\"reason\": \"why the callee may be called again\"} (required, at most 500 characters)"),
    responses((status = 204, description = "Removed; the history records who and why"),
              (status = 400, description = "The body is not a JSON object with only `reason`"),
              (status = 404, description = "The number is not suppressed"),
              (status = 422, description = "Not a phone number, or the reason is missing, blank or too long")))]
pub async fn remove_suppression(
    State(state): State<AppState>,
    auth: Auth,
    params: Params,
    Path(raw): Path<String>,
    body: Bytes,
) -> Result<StatusCode, Problem> {
    let number = phone(&raw, &params, &state)?;
    let reason = removal_reason(&body)?;
    state
        .store
        .remove_suppression(auth.tenant, &number, &actor(&auth), &reason)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason_of(body: &str) -> Result<String, Problem> {
        removal_reason(&Bytes::from(body.to_owned()))
    }

    #[test]
    fn a_removal_needs_a_reason_of_at_most_500_characters() {
        assert!(reason_of("").is_err());
        assert!(reason_of("{}").is_err());
        assert!(reason_of(r#"{"reason": "  "}"#).is_err());
        assert!(reason_of(r#"{"reason": 3}"#).is_err());
        let long = format!(r#"{{"reason": "{}"}}"#, "x".repeat(501));
        assert!(reason_of(&long).is_err());
        assert!(reason_of(r#"{"reason": "ok", "by": "me"}"#).is_err());
        assert_eq!(
            reason_of(r#"{"reason": "callee asked again"}"#).unwrap(),
            "callee asked again"
        );
    }
}
