//! Erasure of a contact at its callee's request: `POST /api/v1/contacts/{id}/erase`
//! removes its personal data everywhere Switchboard keeps it, keeps its calls as anonymous
//! counts, and keeps its number's suppression under a keyed hash so the number is still
//! never dialed (see the store's `erasure` module).

use super::path_id;
use crate::app::AppState;
use crate::auth::Auth;
use crate::problem::Problem;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use switchboard_engine::ContactId;
use switchboard_engine::store::ErasureReport;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The erasure route (a small JSON body: the reason).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(erase_contact))
        .layer(DefaultBodyLimit::max(16 * 1024))
}

/// Erases a contact's personal data (name, email, company, phone, timezone, attributes,
/// list memberships; its calls' numbers, notes, transcripts and event data; the number in
/// webhook payloads about it). Its calls stay as anonymous counts in their campaigns'
/// figures. A suppression or exact do-not-call entry of its number is kept under the
/// number's keyed hash, so the number is never dialed again even if imported again; the
/// suppression's history records the erasure. A contact with a call in progress is refused
/// (409): erase it once the call has ended. The erasure is recorded with the API key and the
/// reason, and cannot be undone.
#[utoipa::path(post, path = "/api/v1/contacts/{id}/erase", tag = "contacts",
    params(("id" = i64, Path, description = "Contact id")),
    request_body(content = Object, description = "{\"reason\": \"why the contact's data is erased\"} (required, at most 500 characters)"),
    responses((status = 200, description = "{contact_id, erased_at, calls_anonymized, suppression_kept}", body = Object),
              (status = 400, description = "Not an id, or the body is not JSON"),
              (status = 404, description = "No such contact (or already erased)"),
              (status = 409, description = "The contact has a call in progress"),
              (status = 422, description = "reason missing, empty or too long")))]
pub async fn erase_contact(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<ErasureReport>, Problem> {
    let id: ContactId = path_id(&id, "id")?;
    let reason = super::suppressions::required_reason(
        &body,
        "a reason is required to erase a contact",
        "required: say why the contact's data is erased (e.g. the callee's request)",
    )?;
    let actor = super::suppressions::actor(&auth);
    let report = state
        .store
        .erase_contact(auth.tenant, id, &actor, &reason)
        .await?;
    crate::metrics::contact_erased();
    Ok(Json(report))
}
