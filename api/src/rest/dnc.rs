//! The tenant's do-not-call list: add, remove, bulk import, check a number, list.

use super::{Page, Params, json_body, region};
use crate::app::AppState;
use crate::auth::Auth;
use crate::problem::Problem;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_engine::dnc::{DncEntry, DncKind, DncPattern, parse_list};
use switchboard_engine::{DncEntryId, E164, FieldError};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The do-not-call routes.
pub fn routes() -> OpenApiRouter<AppState> {
    let import = OpenApiRouter::new()
        .routes(routes!(import_entries))
        .layer(DefaultBodyLimit::max(MAX_IMPORT_BYTES));
    OpenApiRouter::new()
        .routes(routes!(add_entry, list_entries))
        .routes(routes!(remove_entry))
        .routes(routes!(check_number))
        .merge(import)
}

/// Largest body a do-not-call import takes (about two million numbers).
pub const MAX_IMPORT_BYTES: usize = 32 * 1024 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEntry {
    pattern: String,
    #[serde(default)]
    reason: Option<String>,
}

fn pattern(
    value: &str,
    field: &str,
    params: &Params,
    state: &AppState,
) -> Result<DncPattern, Problem> {
    DncPattern::parse(value, region(params, &state.api)?).map_err(|e| {
        Problem::with_errors(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid do-not-call pattern",
            vec![FieldError::new(field, e.to_string())],
        )
    })
}

/// Adds a number (`+14155550123`) or a prefix (`+1900*`).
#[utoipa::path(post, path = "/api/v1/dnc", tag = "dnc",
    request_body(content = Object, description = "{\"pattern\": \"+14155550123\" or \"+1900*\", \"reason\": \"...\"}"),
    responses((status = 201, description = "{added: 1 or 0 when already listed}", body = Object), (status = 422, description = "Bad pattern")))]
pub async fn add_entry(
    State(state): State<AppState>,
    auth: Auth,
    params: Params,
    body: Bytes,
) -> Result<Response, Problem> {
    let new: NewEntry = json_body(&body)?;
    let p = pattern(&new.pattern, "pattern", &params, &state)?;
    let added = state
        .store
        .add_dnc(
            auth.tenant,
            std::slice::from_ref(&p),
            new.reason.as_deref(),
            "api",
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "added": added, "pattern": p })),
    )
        .into_response())
}

/// Removes an entry (the pattern as listed, URL-encoded).
#[utoipa::path(delete, path = "/api/v1/dnc/{pattern}", tag = "dnc",
    params(("pattern" = String, Path, description = "The number or prefix, e.g. %2B14155550123")),
    responses((status = 204, description = "Removed"), (status = 404, description = "Not listed"),
              (status = 409, description = "The callee asked not to be called (a do_not_call outcome or a suppression): remove it with DELETE /api/v1/suppressions/{phone}"),
              (status = 422, description = "Bad pattern")))]
pub async fn remove_entry(
    State(state): State<AppState>,
    auth: Auth,
    params: Params,
    Path(raw): Path<String>,
) -> Result<StatusCode, Problem> {
    let p = pattern(&raw, "pattern", &params, &state)?;
    if let Some(number) = callee_request(&state, &auth, &p).await? {
        return Err(Problem::conflict(format!(
            "{number} is suppressed at its callee's request: remove it with \
             DELETE /api/v1/suppressions/{number} and a reason"
        )));
    }
    state.store.remove_dnc(auth.tenant, &p).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The number of an exact entry its callee asked for: added by a `do_not_call` outcome, or
/// a suppressed number. Such an entry is lifted only through the suppression routes.
async fn callee_request(
    state: &AppState,
    auth: &Auth,
    p: &DncPattern,
) -> Result<Option<E164>, Problem> {
    if p.kind() != DncKind::Exact {
        return Ok(None);
    }
    let Ok(number) = E164::parse(p.digits(), None) else {
        return Ok(None);
    };
    let by_agent = state
        .store
        .dnc_check(auth.tenant, &number)
        .await?
        .is_some_and(|e| e.pattern == *p && e.source == "agent");
    let suppressed = state
        .store
        .suppression(auth.tenant, &number)
        .await?
        .is_some();
    Ok((by_agent || suppressed).then_some(number))
}

/// Bulk import: one number or prefix per line (or the first CSV column). With a bad line
/// nothing is added (422 naming every line) unless `mode=skip_bad_rows`.
#[utoipa::path(post, path = "/api/v1/dnc/import", tag = "dnc",
    params(("mode" = Option<String>, Query, description = "all_or_nothing (default) or skip_bad_rows"),
           ("reason" = Option<String>, Query, description = "Stored with every entry"),
           ("region" = Option<String>, Query, description = "Region for national numbers")),
    request_body(content = String, description = "One number or prefix per line", content_type = "text/plain"),
    responses((status = 200, description = "{added, lines, errors:[{line, value, reason}]}", body = Object),
              (status = 422, description = "Bad lines, nothing added")))]
pub async fn import_entries(
    State(state): State<AppState>,
    auth: Auth,
    params: Params,
    body: Bytes,
) -> Result<Json<Value>, Problem> {
    let text = std::str::from_utf8(&body)
        .map_err(|e| Problem::bad_request("body", format!("not UTF-8 text: {e}")))?;
    let skip = match params.get("mode") {
        None | Some("all_or_nothing") => false,
        Some("skip_bad_rows") => true,
        Some(other) => {
            return Err(Problem::bad_request(
                "mode",
                format!("{other:?}: expected all_or_nothing or skip_bad_rows"),
            ));
        }
    };
    let (patterns, mut errors) = parse_list(text, region(&params, &state.api)?);
    // The report lists the first bad lines and counts the rest.
    let bad = errors.len();
    errors.truncate(switchboard_engine::import::MAX_REPORTED_ERRORS);
    let omitted = bad - errors.len();
    if bad > 0 && !skip {
        let fields = errors
            .iter()
            .map(|e| {
                FieldError::new(
                    format!("line {}", e.line),
                    format!("{:?}: {}", e.value, e.reason),
                )
            })
            .collect();
        return Err(Problem::with_errors(
            StatusCode::UNPROCESSABLE_ENTITY,
            "import refused: nothing was added",
            fields,
        )
        .with_extension("lines", json!(errors))
        .with_extension("errors_omitted", json!(omitted)));
    }
    let added = state
        .store
        .add_dnc(auth.tenant, &patterns, params.get("reason"), "import")
        .await?;
    Ok(Json(
        json!({ "added": added, "valid": patterns.len(), "errors": errors, "errors_omitted": omitted }),
    ))
}

/// Whether a number is blocked, and by which entry.
#[utoipa::path(get, path = "/api/v1/dnc/check", tag = "dnc",
    params(("number" = String, Query, description = "The number to check")),
    responses((status = 200, description = "{number, listed, entry}", body = Object), (status = 400, description = "No number, or an unknown region"),
              (status = 422, description = "Not a phone number (numbering plans are checked by the server)")))]
pub async fn check_number(
    State(state): State<AppState>,
    auth: Auth,
    params: Params,
) -> Result<Json<Value>, Problem> {
    let raw = params
        .get("number")
        .ok_or_else(|| Problem::bad_request("number", "required: the number to check"))?;
    let number = E164::parse(raw, region(&params, &state.api)?).map_err(|e| {
        Problem::with_errors(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid phone number",
            vec![FieldError::new("number", e.to_string())],
        )
    })?;
    let entry = state.store.dnc_check(auth.tenant, &number).await?;
    Ok(Json(
        json!({ "number": number, "listed": entry.is_some(), "entry": entry }),
    ))
}

/// The list, by id.
#[utoipa::path(get, path = "/api/v1/dnc", tag = "dnc",
    params(("limit" = Option<u32>, Query, description = "1 to 1000 (default 100)"),
           ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, description = "{items, next_cursor}", body = Object)))]
pub async fn list_entries(
    State(state): State<AppState>,
    auth: Auth,
    params: Params,
) -> Result<Json<Page<DncEntry>>, Problem> {
    let limit = params.limit(100, 1000)?;
    let items = state
        .store
        .list_dnc(auth.tenant, params.cursor()?.map(DncEntryId), limit)
        .await?;
    Ok(Json(Page::new(items, limit, |e| e.id.0)))
}
