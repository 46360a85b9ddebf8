//! Audience queries: a JSON filter language over contacts, in the style of MongoDB
//! filters, evaluated in memory ([`Query::matches`]) and by the database
//! ([`compile`], used by `Store::audience_count` and friends) with the same meaning.
//!
//! # Syntax
//!
//! A query is a JSON object; its keys are an implicit AND, and `{}` matches everyone.
//! A key is either a field path or one of `$and: [filter, ..]`, `$or: [filter, ..]`
//! (non-empty arrays of filter objects) or `$not: filter`. A field path names a contact
//! column (`phone`, `name`, `email`, `company`, `timezone`) or else an attribute;
//! `attributes.x` addresses the attribute `x` explicitly (even when `x` is a column name)
//! and dots walk into nested objects (`address.city`). Path segments are
//! `[A-Za-z0-9_-]+`. A field's value is a scalar (equality), a non-empty array of
//! scalars (`{"neighborhoods": ["mlaqa", "taadhi"]}`: equal to any of them, like `$in`)
//! or an object of operators, all of which must hold: `$eq`, `$ne` (scalar), `$in`,
//! `$nin` (array of scalars), `$gt`, `$gte`, `$lt`, `$lte` (a number, a `YYYY-MM-DD`
//! date or an RFC 3339 date-time), `$exists` (bool) and `$not` (an object of operators).
//! A query holds at most [`MAX_NODES`] JSON values and nests at most [`MAX_DEPTH`] deep.
//!
//! # Semantics
//!
//! - A field resolves to a JSON value or is missing. A NULL column is missing; a column
//!   otherwise is a string. An attribute path only walks through objects: a path through
//!   an array or a scalar is missing.
//! - The *candidates* of a value are its elements if it is an array, otherwise the value
//!   itself (one level of unwrapping: an array nested in an array is never equal to a
//!   scalar, and an object is never equal to anything).
//! - Equality with a string, number or bool holds when some candidate equals it: strings
//!   exactly (case-sensitive), numbers numerically (`1` equals `1.0`), bools as bools. A
//!   string never equals a number.
//! - Equality with `null` holds when the field is missing or some candidate is `null`.
//! - `$ne: x` is NOT (equality with `x`), so it matches contacts without the field.
//! - `$in: [..]` holds when equality with some element holds (so a `null` element also
//!   matches a missing field); `$in: []` matches nothing. `$nin` is NOT `$in`.
//! - `$gt/$gte/$lt/$lte` with a number: some candidate is a JSON number in range. Strings
//!   never compare with numbers.
//! - With a date: some candidate is a string that starts with a `YYYY-MM-DD` date and is
//!   in range comparing text by Unicode code point. Dates and canonical UTC date-times
//!   (`2024-01-01T09:30:00Z`) compare correctly this way; a date-only value sorts before
//!   every time on that day (`"2024-01-01" < "2024-01-01T00:00:00Z"`). An RFC 3339
//!   operand is normalized to UTC with a `Z` suffix first.
//! - `$exists: true`: the field is present, even if `null`; `false`: it is missing.
//! - `$not` (on a field or a filter), `$and`, `$or`: as in logic; `$not` of anything
//!   that does not hold holds, including for missing fields.

mod eval;
mod parse;
mod sql;

pub use sql::{SqlFilter, SqlParam, compile};

use crate::contact::Contact;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Number;
use std::fmt;

/// How deeply `$and`, `$or` and `$not` may nest.
pub const MAX_DEPTH: usize = 32;

/// How many JSON values (objects, arrays, scalars) a query may hold.
pub const MAX_NODES: usize = 1000;

/// A parsed audience query: a conjunction of clauses (none: everyone matches).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Query {
    clauses: Vec<Clause>,
}

/// One key of a filter object.
#[derive(Debug, Clone, PartialEq)]
pub enum Clause {
    /// Conditions on one field, all of which must hold.
    Field {
        /// The field.
        field: Field,
        /// Its conditions (at least one).
        ops: Vec<Op>,
    },
    /// Every query holds.
    And(Vec<Query>),
    /// Some query holds.
    Or(Vec<Query>),
    /// The query does not hold.
    Not(Box<Query>),
}

/// What a field path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// A contact column.
    Column(Column),
    /// An attribute, as a path into nested objects (at least one segment).
    Attribute(Vec<String>),
}

/// A contact column an audience query can address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// `phone`, E.164; never missing.
    Phone,
    /// `name`.
    Name,
    /// `email`.
    Email,
    /// `company`.
    Company,
    /// `timezone`.
    Timezone,
}

/// A condition on the value of one field.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Some candidate equals the value (`null`: missing or null).
    Eq(Scalar),
    /// Not [`Op::Eq`].
    Ne(Scalar),
    /// [`Op::Eq`] holds for some value.
    In(Vec<Scalar>),
    /// Not [`Op::In`].
    Nin(Vec<Scalar>),
    /// Some candidate compares to the bound this way.
    Cmp(CmpOp, Bound),
    /// The field is present (`true`) or missing (`false`).
    Exists(bool),
    /// Not all of these conditions hold.
    Not(Vec<Op>),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `$gt`.
    Gt,
    /// `$gte`.
    Gte,
    /// `$lt`.
    Lt,
    /// `$lte`.
    Lte,
}

/// The operand of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Bound {
    /// Compares with JSON numbers.
    Number(Number),
    /// Compares as text with strings that start with a date: `YYYY-MM-DD` or a UTC
    /// date-time ending in `Z`.
    Date(String),
}

/// A JSON scalar operand.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number.
    Number(Number),
    /// A string.
    String(String),
}

/// Why a query was refused: where in the query, and what was expected there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct QueryError {
    /// Location in the query, such as `$or[1].last_contacted.$lt` (empty: the top level).
    pub path: String,
    /// What is wrong, naming what was expected and what was found.
    pub reason: String,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "at the top level of the query: {}", self.reason)
        } else {
            write!(f, "at {}: {}", self.path, self.reason)
        }
    }
}

impl Query {
    /// Parses a JSON audience query.
    pub fn parse(value: &serde_json::Value) -> Result<Query, QueryError> {
        parse::parse(value)
    }

    /// The query `{}`, which every contact matches.
    pub fn match_all() -> Query {
        Query::default()
    }

    /// Whether this is the query `{}`.
    pub fn is_match_all(&self) -> bool {
        self.clauses.is_empty()
    }

    /// The clauses, all of which must hold.
    pub fn clauses(&self) -> &[Clause] {
        &self.clauses
    }

    /// The query as JSON, in a form [`Query::parse`] reads back to an equal query.
    pub fn to_json(&self) -> serde_json::Value {
        parse::to_json(self)
    }

    /// Whether the contact matches, per the semantics in the [module docs](self).
    pub fn matches(&self, contact: &Contact) -> bool {
        eval::matches(self, contact)
    }
}

impl Serialize for Query {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Query {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Query::parse(&value).map_err(serde::de::Error::custom)
    }
}

impl Column {
    /// Every column, in the order of [`crate::contact::CONTACT_COLUMNS`].
    pub const ALL: [Column; 5] = [
        Column::Phone,
        Column::Name,
        Column::Email,
        Column::Company,
        Column::Timezone,
    ];

    /// The column's name, as in a query and in the database.
    pub fn name(self) -> &'static str {
        match self {
            Column::Phone => "phone",
            Column::Name => "name",
            Column::Email => "email",
            Column::Company => "company",
            Column::Timezone => "timezone",
        }
    }

    /// The column with this name.
    pub fn from_name(name: &str) -> Option<Column> {
        Column::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The contact's value of this column (`None` when NULL).
    pub fn value(self, contact: &Contact) -> Option<&str> {
        match self {
            Column::Phone => Some(contact.phone.as_str()),
            Column::Name => contact.name.as_deref(),
            Column::Email => contact.email.as_deref(),
            Column::Company => contact.company.as_deref(),
            Column::Timezone => contact.timezone.as_deref(),
        }
    }
}

impl Field {
    /// The key that addresses this field in a query (`name`, `address.city`,
    /// `attributes.name` for an attribute named like a column).
    pub fn key(&self) -> String {
        match self {
            Field::Column(c) => c.name().to_owned(),
            Field::Attribute(path) => {
                let joined = path.join(".");
                let first = path.first().map(String::as_str).unwrap_or("");
                let ambiguous = first == "attributes"
                    || (path.len() == 1 && Column::from_name(first).is_some());
                if ambiguous {
                    format!("attributes.{joined}")
                } else {
                    joined
                }
            }
        }
    }
}

impl CmpOp {
    /// The operator's name in a query (`$gt`).
    pub fn name(self) -> &'static str {
        match self {
            CmpOp::Gt => "$gt",
            CmpOp::Gte => "$gte",
            CmpOp::Lt => "$lt",
            CmpOp::Lte => "$lte",
        }
    }

    /// Whether `left.cmp(right) == ordering` satisfies `left <op> right`.
    pub fn holds(self, ordering: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::{Greater, Less};
        match self {
            CmpOp::Gt => ordering == Greater,
            CmpOp::Gte => ordering != Less,
            CmpOp::Lt => ordering == Less,
            CmpOp::Lte => ordering != Greater,
        }
    }
}

impl Scalar {
    /// The scalar as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Scalar::Null => Value::Null,
            Scalar::Bool(b) => Value::Bool(*b),
            Scalar::Number(n) => Value::Number(n.clone()),
            Scalar::String(s) => Value::String(s.clone()),
        }
    }
}
