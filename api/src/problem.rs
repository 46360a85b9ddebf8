//! Errors as HTTP responses: RFC 9457 problem details (`application/problem+json`) naming
//! the field and value at fault. Every handler error becomes a response here, and only
//! here; internal details (database errors) are logged, never sent.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use switchboard_engine::{Error, FieldError};

/// An error a handler returns.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    title: String,
    detail: String,
    errors: Vec<FieldError>,
    extensions: serde_json::Map<String, serde_json::Value>,
    retry_after: Option<std::time::Duration>,
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'a str,
    status: u16,
    detail: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<BodyError<'a>>,
    #[serde(flatten)]
    extensions: &'a serde_json::Map<String, serde_json::Value>,
}

/// One entry of `errors`: the field at fault and what is wrong with it.
#[derive(Serialize)]
struct BodyError<'a> {
    field: &'a str,
    message: &'a str,
}

impl Problem {
    /// A problem with a status, a short title and a detail sentence.
    pub fn new(status: StatusCode, title: impl Into<String>, detail: impl Into<String>) -> Self {
        Problem {
            status,
            title: title.into(),
            detail: detail.into(),
            errors: Vec::new(),
            extensions: serde_json::Map::new(),
            retry_after: None,
        }
    }

    /// 429: a bound of the caller was reached; `Retry-After` says when to come back
    /// (whole seconds, rounded up).
    pub fn too_many_requests(detail: impl Into<String>, retry_after: std::time::Duration) -> Self {
        Problem {
            retry_after: Some(retry_after),
            ..Problem::new(StatusCode::TOO_MANY_REQUESTS, "too many requests", detail)
        }
    }

    /// 401: no usable credentials.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    /// 404 for an object of this kind and id.
    pub fn not_found(what: &str, id: impl std::fmt::Display) -> Self {
        Problem::new(
            StatusCode::NOT_FOUND,
            "not found",
            format!("{what} {id} not found"),
        )
    }

    /// 409: the change conflicts with the object's state.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::CONFLICT, "conflict", detail)
    }

    /// A problem listing every field at fault; the detail joins them.
    pub fn with_errors(
        status: StatusCode,
        title: impl Into<String>,
        errors: Vec<FieldError>,
    ) -> Self {
        Problem {
            status,
            title: title.into(),
            detail: errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
            errors,
            extensions: serde_json::Map::new(),
            retry_after: None,
        }
    }

    /// Adds an extension member (RFC 9457 section 3.2) to the body.
    pub fn with_extension(mut self, key: &str, value: serde_json::Value) -> Self {
        self.extensions.insert(key.to_owned(), value);
        self
    }

    /// The field errors.
    pub fn errors(&self) -> &[FieldError] {
        &self.errors
    }

    /// 403: the request is not authentic (a bad signature or token).
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 400 for one field.
    pub fn bad_request(field: &str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Problem {
            status: StatusCode::BAD_REQUEST,
            title: "invalid request".into(),
            detail: format!("{field}: {reason}"),
            errors: vec![FieldError::new(field, reason)],
            extensions: serde_json::Map::new(),
            retry_after: None,
        }
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid { what, errors } => Problem::with_errors(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("invalid {what}"),
                errors,
            ),
            Error::NotFound { .. } => {
                Problem::new(StatusCode::NOT_FOUND, "not found", e.to_string())
            }
            Error::Conflict(_) | Error::Transition(_) => {
                Problem::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            Error::LimitReached {
                limit,
                max,
                current,
            } => Problem::new(StatusCode::CONFLICT, "limit reached", e.to_string()).with_extension(
                "limit",
                serde_json::json!({ "name": limit, limit: max, "active": current }),
            ),
            Error::Phone(_) | Error::Query(_) | Error::Template(_) | Error::Import(_) => {
                Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid request",
                    e.to_string(),
                )
            }
            Error::Database(sqlx_error)
                if sqlx_error
                    .as_database_error()
                    .and_then(|d| d.code())
                    .is_some_and(|code| code == "57014") =>
            {
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "query too slow",
                    "the query ran longer than the API's statement timeout (limits.api_statement_timeout_ms) and was cancelled; narrow it and retry",
                )
            }
            Error::Database(_) | Error::Migrate(_) => {
                tracing::error!(error = %e, "database error");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the database is unavailable; retry later",
                )
            }
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = Body {
            kind: "about:blank",
            title: &self.title,
            status: self.status.as_u16(),
            detail: &self.detail,
            errors: self
                .errors
                .iter()
                .map(|e| BodyError {
                    field: &e.field,
                    message: &e.reason,
                })
                .collect(),
            extensions: &self.extensions,
        };
        let mut response = (self.status, Json(body)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(after) = self.retry_after {
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}
