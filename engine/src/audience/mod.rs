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
//!
//! The database gives the same answers (a property test checks it on both backends), with
//! one known edge: memory holds numbers as 64-bit integers or doubles, SQLite too, and
//! PostgreSQL as exact decimals, so numbers beyond 64 bits or with more digits than a
//! double holds may compare differently.

mod eval;
mod parse;
mod sql;

pub use sql::{SqlFilter, SqlParam, compile};

use crate::contact::Contact;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Number, Value};
use std::collections::HashSet;
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
    pub fn parse(value: &Value) -> Result<Query, QueryError> {
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
    pub fn to_json(&self) -> Value {
        to_json(self)
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
        let value = Value::deserialize(deserializer)?;
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
    pub fn to_json(&self) -> Value {
        match self {
            Scalar::Null => Value::Null,
            Scalar::Bool(b) => Value::Bool(*b),
            Scalar::Number(n) => Value::Number(n.clone()),
            Scalar::String(s) => Value::String(s.clone()),
        }
    }
}

/// The query as JSON; see [`Query::to_json`].
fn to_json(query: &Query) -> Value {
    object_or_and(query.clauses.iter().flat_map(clause_entries).collect())
}

/// One object when the keys are distinct, else `{"$and": [{k: v}, ..]}`.
fn object_or_and(entries: Vec<(String, Value)>) -> Value {
    let distinct = entries.iter().map(|(k, _)| k).collect::<HashSet<_>>().len() == entries.len();
    if distinct {
        return Value::Object(entries.into_iter().collect());
    }
    let each = entries
        .into_iter()
        .map(|(k, v)| Value::Object(Map::from_iter([(k, v)])))
        .collect();
    Value::Object(Map::from_iter([("$and".to_owned(), Value::Array(each))]))
}

fn clause_entries(clause: &Clause) -> Vec<(String, Value)> {
    let list = |qs: &[Query]| Value::Array(qs.iter().map(to_json).collect());
    match clause {
        Clause::And(qs) => vec![("$and".to_owned(), list(qs))],
        Clause::Or(qs) => vec![("$or".to_owned(), list(qs))],
        Clause::Not(q) => vec![("$not".to_owned(), to_json(q))],
        Clause::Field { field, ops } => field_entries(field, ops),
    }
}

fn field_entries(field: &Field, ops: &[Op]) -> Vec<(String, Value)> {
    if let [Op::Eq(scalar)] = ops {
        return vec![(field.key(), scalar.to_json())];
    }
    if let Some(object) = ops_object(ops) {
        return vec![(field.key(), object)];
    }
    // The same operator twice: one entry per operator.
    let single = |op: &Op| Clause::Field {
        field: field.clone(),
        ops: vec![op.clone()],
    };
    ops.iter()
        .map(|op| match (op, ops_object(std::slice::from_ref(op))) {
            (_, Some(object)) => (field.key(), object),
            (Op::Not(inner), None) => (
                "$not".to_owned(),
                to_json(&Query {
                    clauses: inner.iter().map(single).collect(),
                }),
            ),
            (_, None) => (field.key(), Value::Null),
        })
        .collect()
}

/// `{"$gt": 1, ..}`, or `None` when an operator repeats.
fn ops_object(ops: &[Op]) -> Option<Value> {
    let list = |xs: &[Scalar]| Value::Array(xs.iter().map(Scalar::to_json).collect());
    let mut map = Map::new();
    for op in ops {
        let (key, value) = match op {
            Op::Eq(s) => ("$eq", s.to_json()),
            Op::Ne(s) => ("$ne", s.to_json()),
            Op::In(xs) => ("$in", list(xs)),
            Op::Nin(xs) => ("$nin", list(xs)),
            Op::Cmp(op, Bound::Number(n)) => (op.name(), Value::Number(n.clone())),
            Op::Cmp(op, Bound::Date(d)) => (op.name(), Value::String(d.clone())),
            Op::Exists(b) => ("$exists", Value::Bool(*b)),
            Op::Not(inner) => ("$not", ops_object(inner)?),
        };
        if map.insert(key.to_owned(), value).is_some() {
            return None;
        }
    }
    Some(Value::Object(map))
}
