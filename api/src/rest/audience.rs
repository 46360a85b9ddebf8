//! Previews: who an audience holds (count and a sample), and what a script says to one
//! contact.

use super::json_body;
use crate::app::AppState;
use crate::auth::Auth;
use crate::problem::Problem;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use switchboard_engine::audience::Query;
use switchboard_engine::campaign::AudienceSpec;
use switchboard_engine::store::Audience;
use switchboard_engine::template::Template;
use switchboard_engine::{ContactId, ContactListId, FieldError};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The preview routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(preview_audience))
        .routes(routes!(preview_template))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AudienceRequest {
    #[serde(default)]
    query: Option<Value>,
    #[serde(default)]
    lists: Vec<ContactListId>,
    #[serde(default)]
    sample: Option<u32>,
}

/// How many contacts an audience holds and the first few of them.
#[utoipa::path(post, path = "/api/v1/audience/preview", tag = "audience",
    request_body(content = Object, description = "{query?, lists?, sample? (default 10, at most 100)}"),
    responses((status = 200, description = "{count, sample:[contacts]}", body = Object),
              (status = 404, description = "A list is not the tenant's"), (status = 422, description = "Bad query, naming where")))]
pub async fn preview_audience(
    State(state): State<AppState>,
    auth: Auth,
    body: Bytes,
) -> Result<Json<Value>, Problem> {
    let request: AudienceRequest = json_body(&body)?;
    let sample = request.sample.unwrap_or(10);
    if sample > 100 {
        return Err(Problem::bad_request(
            "sample",
            format!("{sample} is more than 100"),
        ));
    }
    if let Some(q) = &request.query
        && let Err(e) = Query::parse(q)
    {
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
    for list in &request.lists {
        state.store.list(auth.tenant, *list).await?;
    }
    let audience = Audience::from_spec(&AudienceSpec {
        query: request.query,
        lists: request.lists,
    })?;
    let count = state.store.count_audience(auth.tenant, &audience).await?;
    let contacts = if sample == 0 {
        Vec::new()
    } else {
        state
            .store
            .audience_page(auth.tenant, &audience, None, sample)
            .await?
    };
    Ok(Json(json!({ "count": count, "sample": contacts })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateRequest {
    template: String,
    contact_id: ContactId,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    fallbacks: BTreeMap<String, String>,
}

/// A script rendered for one contact, and the placeholders that had no value.
#[utoipa::path(post, path = "/api/v1/templates/preview", tag = "audience",
    request_body(content = Object, description = "{template, contact_id, variables?, fallbacks?}"),
    responses((status = 200, description = "{text, missing:[placeholders]}", body = Object),
              (status = 404, description = "No such contact"), (status = 422, description = "The template does not parse")))]
pub async fn preview_template(
    State(state): State<AppState>,
    auth: Auth,
    body: Bytes,
) -> Result<Json<Value>, Problem> {
    let request: TemplateRequest = json_body(&body)?;
    let template = Template::parse(&request.template).map_err(|e| {
        Problem::with_errors(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid template",
            vec![FieldError::new("template", e.to_string())],
        )
    })?;
    let mut errors = Vec::new();
    for (name, values) in [
        ("variables", &request.variables),
        ("fallbacks", &request.fallbacks),
    ] {
        for (key, reason) in switchboard_engine::template::check_values(values) {
            let field = key.map_or_else(|| name.to_owned(), |k| format!("{name}.{k}"));
            errors.push(FieldError::new(field, reason));
        }
    }
    if !errors.is_empty() {
        return Err(Problem::with_errors(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid template variables",
            errors,
        ));
    }
    let contact = state.store.contact(auth.tenant, request.contact_id).await?;
    let rendered = template.render(&contact, &request.variables, &request.fallbacks);
    if rendered.truncated {
        return Err(Problem::with_errors(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid template",
            vec![FieldError::new(
                "template",
                format!(
                    "renders to more than {} bytes for this contact",
                    switchboard_engine::template::MAX_RENDERED_BYTES
                ),
            )],
        ));
    }
    Ok(Json(
        json!({ "text": rendered.text, "missing": rendered.missing }),
    ))
}
