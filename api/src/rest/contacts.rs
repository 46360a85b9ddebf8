//! Contacts: create (upsert by phone), search (text or audience query), read, replace,
//! delete, CSV import with a per-row report, and CSV export.

use super::{ApiSettings, Page, Params, json_body, path_id, region};
use crate::app::AppState;
use crate::auth::Auth;
use crate::problem::Problem;
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use switchboard_engine::audience::Query;
use switchboard_engine::campaign::AudienceSpec;
use switchboard_engine::contact::{Contact, NewContact, parse_timezone};
use switchboard_engine::import::{ImportMode, ImportOptions, import_csv_file};
use switchboard_engine::store::{Audience, ContactFilter};
use switchboard_engine::{ContactId, E164, FieldError};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Largest JSON body a contact route accepts (a contact's attributes are capped at
/// [`switchboard_engine::contact::MAX_ATTRIBUTES_BYTES`] of JSON).
pub const MAX_CONTACT_JSON_BYTES: usize = 256 * 1024;

/// The contact routes: only the CSV import takes a large body.
pub fn routes() -> OpenApiRouter<AppState> {
    let import = OpenApiRouter::new().routes(routes!(import_contacts));
    OpenApiRouter::new()
        .routes(routes!(create_contact, list_contacts))
        .routes(routes!(get_contact, replace_contact, delete_contact))
        .routes(routes!(export_contacts))
        .layer(DefaultBodyLimit::max(MAX_CONTACT_JSON_BYTES))
        .merge(import)
}

/// A contact as written in a request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactInput {
    /// Phone number: E.164, or national with the default region.
    pub phone: String,
    /// Full name.
    #[serde(default)]
    pub name: Option<String>,
    /// Email.
    #[serde(default)]
    pub email: Option<String>,
    /// Company.
    #[serde(default)]
    pub company: Option<String>,
    /// IANA timezone.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Free-form attributes.
    #[serde(default)]
    pub attributes: Map<String, Value>,
    /// When consent was given.
    #[serde(default)]
    pub consent_at: Option<DateTime<Utc>>,
    /// When the contact opted out.
    #[serde(default)]
    pub opted_out_at: Option<DateTime<Utc>>,
}

impl ContactInput {
    /// The contact to store; every bad field is named (422).
    pub fn into_contact(self, settings: &ApiSettings) -> Result<NewContact, Problem> {
        let mut errors = Vec::new();
        let phone = E164::parse(&self.phone, settings.default_region)
            .map_err(|e| errors.push(FieldError::new("phone", e.to_string())))
            .ok();
        if let Some(tz) = &self.timezone
            && parse_timezone(tz).is_none()
        {
            errors.push(FieldError::new(
                "timezone",
                format!("{tz:?} is not an IANA timezone (e.g. America/New_York)"),
            ));
        }
        if let Some(reason) = switchboard_engine::contact::attributes_too_large(&self.attributes) {
            errors.push(FieldError::new("attributes", reason));
        }
        if let (Some(phone), Some(tz)) = (&phone, &self.timezone)
            && let Some(reason) = switchboard_engine::window::zone_mismatch(tz, phone)
        {
            errors.push(FieldError::new("timezone", reason));
        }
        let Some(phone) = phone.filter(|_| errors.is_empty()) else {
            return Err(Problem::with_errors(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid contact",
                errors,
            ));
        };
        Ok(NewContact {
            phone,
            name: self.name,
            email: self.email,
            company: self.company,
            timezone: self.timezone,
            attributes: self.attributes,
            consent_at: self.consent_at,
            opted_out_at: self.opted_out_at,
        })
    }
}

/// Creates a contact, or updates the tenant's contact with the same phone number.
#[utoipa::path(post, path = "/api/v1/contacts", tag = "contacts",
    request_body(content = Object, description = "{phone, name?, email?, company?, timezone?, attributes?, consent_at?, opted_out_at?}"),
    responses((status = 201, description = "Created", body = Object), (status = 200, description = "Updated (same phone)", body = Object),
              (status = 422, description = "Invalid fields (a phone that is not a real number, a timezone that does not exist or fit it, attributes over 64 KiB)")))]
pub async fn create_contact(
    State(state): State<AppState>,
    auth: Auth,
    body: Bytes,
) -> Result<Response, Problem> {
    let input: ContactInput = json_body(&body)?;
    let contact = input.into_contact(&state.api)?;
    record_opt_out(&state, &auth, &contact).await?;
    let existed = state
        .store
        .contact_by_phone(auth.tenant, &contact.phone)
        .await?
        .is_some();
    let stored = state.store.upsert_contact(auth.tenant, &contact).await?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(stored)).into_response())
}

/// An opt-out written through the API is the callee's request: it is kept as a suppression
/// of the number (source `api`, by this API key) before the contact is written, so it
/// outlives the contact. A number already suppressed keeps its first request.
async fn record_opt_out(
    state: &AppState,
    auth: &Auth,
    contact: &NewContact,
) -> Result<(), Problem> {
    if contact.opted_out_at.is_some() {
        state
            .store
            .suppress(
                auth.tenant,
                &contact.phone,
                "api",
                Some(&super::suppressions::actor(auth)),
                Some("contact opted out through the API"),
            )
            .await?;
    }
    Ok(())
}

/// Lists contacts by id: all, a text search (`q`), or an audience query (`query`, JSON).
#[utoipa::path(get, path = "/api/v1/contacts", tag = "contacts",
    params(("query" = Option<String>, Query, description = "Audience query, JSON (e.g. {\"city\": \"Doha\"})"),
           ("q" = Option<String>, Query, description = "Part of name, email, company or phone"),
           ("limit" = Option<u32>, Query, description = "1 to 1000 (default 100)"),
           ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, description = "{items, next_cursor}", body = Object), (status = 422, description = "Bad query")))]
pub async fn list_contacts(
    State(state): State<AppState>,
    auth: Auth,
    params: Params,
) -> Result<Json<Page<Contact>>, Problem> {
    let limit = params.limit(100, 1000)?;
    let after = params.cursor()?.map(ContactId);
    let items = match params.get("query") {
        Some(text) => {
            let audience = audience_of(text)?;
            state
                .store
                .audience_page(auth.tenant, &audience, after, limit)
                .await?
        }
        None => {
            let filter = ContactFilter {
                search: params.get("q").map(str::to_owned),
                after,
                limit: Some(limit),
            };
            state.store.list_contacts(auth.tenant, &filter).await?
        }
    };
    Ok(Json(Page::new(items, limit, |c| c.id.0)))
}

/// An audience from a JSON query text; errors name the place in the query.
fn audience_of(text: &str) -> Result<Audience, Problem> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Problem::bad_request("query", format!("not JSON: {e}")))?;
    if let Err(e) = Query::parse(&value) {
        let field = if e.path.is_empty() {
            "query".to_owned()
        } else {
            format!("query.{}", e.path)
        };
        return Err(Problem::with_errors(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid audience query",
            vec![FieldError::new(field, e.reason)],
        ));
    }
    Ok(Audience::from_spec(&AudienceSpec {
        query: Some(value),
        lists: Vec::new(),
    })?)
}

/// One contact.
#[utoipa::path(get, path = "/api/v1/contacts/{id}", tag = "contacts",
    params(("id" = i64, Path, description = "Contact id")),
    responses((status = 200, description = "The contact", body = Object), (status = 404, description = "No such contact")))]
pub async fn get_contact(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Contact>, Problem> {
    let id: ContactId = path_id(&id, "id")?;
    Ok(Json(state.store.contact(auth.tenant, id).await?))
}

/// Replaces every field of a contact.
#[utoipa::path(put, path = "/api/v1/contacts/{id}", tag = "contacts",
    params(("id" = i64, Path, description = "Contact id")),
    request_body(content = Object, description = "The full contact"),
    responses((status = 200, description = "The contact", body = Object), (status = 404, description = "No such contact"),
              (status = 409, description = "Another contact has this phone"),
              (status = 422, description = "Invalid fields (a phone that is not a real number, a timezone that does not exist or fit it, attributes over 64 KiB)")))]
pub async fn replace_contact(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Contact>, Problem> {
    let id: ContactId = path_id(&id, "id")?;
    let input: ContactInput = json_body(&body)?;
    let contact = input.into_contact(&state.api)?;
    state.store.contact(auth.tenant, id).await?;
    record_opt_out(&state, &auth, &contact).await?;
    Ok(Json(
        state
            .store
            .update_contact(auth.tenant, id, &contact)
            .await?,
    ))
}

/// Deletes a contact and its call history.
#[utoipa::path(delete, path = "/api/v1/contacts/{id}", tag = "contacts",
    params(("id" = i64, Path, description = "Contact id")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such contact")))]
pub async fn delete_contact(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    let id: ContactId = path_id(&id, "id")?;
    state.store.delete_contact(auth.tenant, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Imports contacts from a CSV body. `all_or_nothing` (default) stores nothing when a row
/// is bad (422 with the report); `skip_bad_rows` stores the good rows (200 with the report).
/// The body is read as it arrives into a temporary file (at most `limits.import_max_bytes`,
/// 256 MiB by default; 413 beyond), then imported (at most `limits.import_max_rows` rows; 422 beyond). The report
/// lists the first 1000 bad rows and counts the rest.
#[utoipa::path(post, path = "/api/v1/contacts/import", tag = "contacts",
    params(("mode" = Option<String>, Query, description = "all_or_nothing (default) or skip_bad_rows"),
           ("region" = Option<String>, Query, description = "Region for national numbers, e.g. US"),
           ("list" = Option<String>, Query, description = "Also add every imported contact to this list (created if new)")),
    request_body(content = String, description = "CSV with a header row", content_type = "text/csv"),
    responses((status = 200, description = "Report: {rows, inserted, updated, rejected, committed, errors:[{row, line, column, reason}], errors_omitted}", body = Object),
              (status = 413, description = "The body is larger than 256 MiB"),
              (status = 422, description = "Bad rows (nothing stored), an unusable header, or more rows than the server's limit")))]
pub async fn import_contacts(
    State(state): State<AppState>,
    auth: Auth,
    params: Params,
    body: Body,
) -> Result<Response, Problem> {
    let mode = match params.get("mode") {
        None | Some("all_or_nothing") => ImportMode::AllOrNothing,
        Some("skip_bad_rows") => ImportMode::SkipBadRows,
        Some(other) => {
            return Err(Problem::bad_request(
                "mode",
                format!("{other:?}: expected all_or_nothing or skip_bad_rows"),
            ));
        }
    };
    let options = ImportOptions {
        default_region: region(&params, &state.api)?.map(|r| r.code().to_owned()),
        mode,
        max_rows: Some(state.guards.limits().import_max_rows),
        ..ImportOptions::default()
    };
    let list = match params.get("list") {
        Some(name) => Some(super::lists::list_by_name(&state, auth, name).await?),
        None => None,
    };
    let max_bytes = usize::try_from(state.guards.limits().import_max_bytes).unwrap_or(usize::MAX);
    let upload = spool(body, max_bytes).await?;
    let report = import_csv_file(
        &state.store,
        auth.tenant,
        upload.path(),
        &options,
        list.as_ref().map(|l| l.id),
    )
    .await?;
    drop(upload);
    if !report.committed && report.rejected > 0 {
        let errors = report
            .errors
            .iter()
            .map(|e| {
                let column = e
                    .column
                    .as_deref()
                    .map(|c| format!(", column {c}"))
                    .unwrap_or_default();
                FieldError::new(
                    format!("row {} (line {}{column})", e.row, e.line),
                    e.reason.clone(),
                )
            })
            .collect();
        return Err(Problem::with_errors(
            StatusCode::UNPROCESSABLE_ENTITY,
            "import refused: nothing was stored",
            errors,
        )
        .with_extension("report", json!(report)));
    }
    let mut body = json!(report);
    body["list"] = json!(list.filter(|_| report.committed).map(|list| {
        json!({"id": list.id, "name": list.name, "contacts": report.inserted + report.updated})
    }));
    Ok((StatusCode::OK, Json(body)).into_response())
}

/// Writes a request body to a temporary file as it arrives (removed when the returned
/// handle is dropped); more than `max` bytes is a 413, and nothing is kept of it.
pub async fn spool(body: Body, max: usize) -> Result<tempfile::NamedTempFile, Problem> {
    use futures_util::StreamExt as _;
    use std::io::Write as _;
    let unavailable = |e: std::io::Error| {
        tracing::error!(error = %e, "spooling an upload to a temporary file failed");
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the upload could not be stored for reading; retry later",
        )
    };
    let file = tempfile::NamedTempFile::new().map_err(unavailable)?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let writer = tokio::task::spawn_blocking(move || {
        let mut out = std::io::BufWriter::with_capacity(256 * 1024, file);
        while let Some(chunk) = rx.blocking_recv() {
            out.write_all(&chunk)?;
        }
        out.into_inner()
            .map_err(std::io::IntoInnerError::into_error)
    });
    let mut stream = body.into_data_stream();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| Problem::bad_request("body", format!("reading the upload failed: {e}")))?;
        total += chunk.len();
        if total > max {
            return Err(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload too large",
                format!(
                    "the upload is larger than {max} bytes, the most one import takes; split it"
                ),
            ));
        }
        if tx.send(chunk).await.is_err() {
            break;
        }
    }
    drop(tx);
    writer
        .await
        .map_err(|e| unavailable(std::io::Error::other(e.to_string())))?
        .map_err(unavailable)
}

/// Every contact of the tenant as CSV (the form an import reads back).
#[utoipa::path(get, path = "/api/v1/contacts/export", tag = "contacts",
    responses((status = 200, description = "text/csv", content_type = "text/csv", body = String)))]
pub async fn export_contacts(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Response, Problem> {
    let mut out = Vec::new();
    switchboard_engine::export::export_contacts_csv(&state.store, auth.tenant, &mut out).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"contacts.csv\"",
            ),
        ],
        out,
    )
        .into_response())
}
