//! Every answer an operation can give, in the spec: the `Problem` schema (what
//! [`crate::problem::Problem`] writes) under `application/problem+json` for every error
//! status an annotation names, plus the statuses every route may answer whatever it does:
//!
//! - 400 when the operation takes parameters or a body (an unreadable value, named);
//! - 401 (missing, unknown or revoked key), 408 (the request took too long to arrive),
//!   413 (a body over the route's limit), 429 (the key's rate limit, with `Retry-After`),
//!   500 (a fault of ours) and 503 (the database is unavailable).
//!
//! Annotations name only what is particular to an operation (404, 409, 422, ...), with a
//! sentence saying when; the common statuses are added here, once.

use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::{OpenApi, Ref, RefOr};

/// The media type of every error answer.
pub const PROBLEM_TYPE: &str = "application/problem+json";

/// Statuses any operation may answer, and what each means.
const COMMON: &[(&str, &str)] = &[
    (
        "401",
        "Missing, unknown or revoked key: send `Authorization: Bearer <key>`",
    ),
    ("408", "The request did not arrive in time"),
    ("413", "The body is larger than this route accepts"),
    (
        "429",
        "Too many requests for this key: retry after `Retry-After` seconds",
    ),
    (
        "500",
        "A fault of the server's (logged; nothing was changed)",
    ),
    ("503", "The database is unavailable: retry later"),
];

/// What a 400 means where the operation reads parameters or a body.
const BAD_REQUEST: &str = "A parameter or the body cannot be read (not JSON, a wrong type, an unknown field, a value out of range): `errors` names it";

/// The `Problem` schema: RFC 9457 problem details as Switchboard writes them.
fn problem_schema() -> Schema {
    let field_error = ObjectBuilder::new()
        .description(Some("One field at fault and what is wrong with it"))
        .property(
            "field",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("The field, parameter, row or line at fault")),
        )
        .property("message", ObjectBuilder::new().schema_type(Type::String))
        .required("field")
        .required("message")
        .additional_properties(Some(
            utoipa::openapi::schema::AdditionalProperties::FreeForm(false),
        ));
    ObjectBuilder::new()
        .description(Some(
            "RFC 9457 problem details. Some problems add extension members (`limit`, `report`, `lines`, `missing_settings`).",
        ))
        .property(
            "type",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("Always `about:blank`")),
        )
        .property(
            "title",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("A short, fixed summary")),
        )
        .property(
            "status",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(400))
                .maximum(Some(599))
                .description(Some("The HTTP status")),
        )
        .property(
            "detail",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("What went wrong, naming the field and value")),
        )
        .property(
            "errors",
            ArrayBuilder::new().items(field_error),
        )
        .required("type")
        .required("title")
        .required("status")
        .required("detail")
        .into()
}

/// A problem answer with this description.
fn problem_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_TYPE,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
}

/// Completes the spec: the `Problem` schema, problem content on every error answer an
/// annotation names, and the common statuses on every operation.
pub fn complete(spec: &mut OpenApi) {
    spec.components
        .get_or_insert_with(Default::default)
        .schemas
        .insert("Problem".into(), RefOr::T(problem_schema()));
    for (path, item) in spec.paths.paths.iter_mut() {
        let names_an_object = path.contains('{');
        for operation in operations(item) {
            complete_operation(operation, names_an_object);
        }
    }
}

/// Every operation of a path.
fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

fn complete_operation(operation: &mut Operation, names_an_object: bool) {
    let reads_input = operation.request_body.is_some()
        || operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let responses = &mut operation.responses.responses;
    for (status, response) in responses.iter_mut() {
        if let RefOr::T(response) = response
            && status.as_str() >= "400"
            && response.content.is_empty()
        {
            *response = problem_response(&response.description);
        }
    }
    if names_an_object {
        responses.entry("404".into()).or_insert_with(|| {
            RefOr::T(problem_response(
                "No such object (another tenant's objects are not found either)",
            ))
        });
    }
    if reads_input {
        responses
            .entry("400".into())
            .or_insert_with(|| RefOr::T(problem_response(BAD_REQUEST)));
    }
    for (status, description) in COMMON {
        responses.entry((*status).into()).or_insert_with(|| {
            let mut response = problem_response(description);
            if *status == "429" {
                response.headers.insert(
                    "Retry-After".into(),
                    HeaderBuilder::new()
                        .schema(
                            ObjectBuilder::new()
                                .schema_type(Type::Integer)
                                .minimum(Some(0)),
                        )
                        .description(Some("Seconds to wait before the next request"))
                        .build(),
                );
            }
            RefOr::T(response)
        });
    }
}
