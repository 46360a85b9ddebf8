//! The engine's error type.

use serde::Serialize;
use std::fmt;

/// One problem with one field of an input: `field` is a path such as
/// `schedule.days[2]` or `retry.busy.max_attempts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Where the problem is.
    pub field: String,
    /// What is wrong, lowercase, naming the offending value.
    pub reason: String,
}

impl FieldError {
    /// A problem at `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// Formats a list of field errors as `a: x; b: y`.
pub(crate) struct Joined<'a>(pub &'a [FieldError]);

impl fmt::Display for Joined<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Everything that can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input failed validation; every problem is listed.
    #[error("invalid {what}: {}", Joined(.errors))]
    Invalid {
        /// What was being validated (`campaign`, `contact`).
        what: &'static str,
        /// Every problem found.
        errors: Vec<FieldError>,
    },
    /// A phone number was refused.
    #[error(transparent)]
    Phone(#[from] crate::phone::PhoneError),
    /// An audience query was refused.
    #[error(transparent)]
    Query(#[from] crate::audience::QueryError),
    /// A lifecycle transition is not allowed.
    #[error(transparent)]
    Transition(#[from] crate::campaign::TransitionError),
    /// A template could not be parsed.
    #[error(transparent)]
    Template(#[from] crate::template::TemplateError),
    /// A CSV import could not proceed.
    #[error(transparent)]
    Import(#[from] crate::import::ImportError),
    /// The object does not exist (or belongs to another tenant).
    #[error("{what} {id} not found")]
    NotFound {
        /// Kind of object.
        what: &'static str,
        /// Its id or key as given.
        id: String,
    },
    /// The change conflicts with existing data (a duplicate name, a running campaign).
    #[error("{0}")]
    Conflict(String),
    /// A tenant limit does not allow the change (one more active campaign).
    #[error(
        "tenant limit {limit} = {max} reached: {current} campaigns are active; pause or stop one first"
    )]
    LimitReached {
        /// The limit's name (`max_running_campaigns`).
        limit: &'static str,
        /// Its value.
        max: i64,
        /// How many count against it now.
        current: u64,
    },
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl Error {
    /// A single-field validation error.
    pub fn invalid(
        what: &'static str,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Error::Invalid {
            what,
            errors: vec![FieldError::new(field, reason)],
        }
    }

    /// A not-found error.
    pub fn not_found(what: &'static str, id: impl ToString) -> Self {
        Error::NotFound {
            what,
            id: id.to_string(),
        }
    }
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
