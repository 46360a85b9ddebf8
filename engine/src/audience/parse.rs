//! Reading a query from JSON, with errors that say where in the query the problem is.

use super::{
    Bound, Clause, CmpOp, Column, Field, MAX_DEPTH, MAX_NODES, Op, Query, QueryError, Scalar,
};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde_json::{Map, Value};

/// Parses a query; see the [module docs](super) for the language.
pub(super) fn parse(value: &Value) -> Result<Query, QueryError> {
    Parser { nodes: 0 }.query(value, "", 0)
}

/// Counts values as they are read, to refuse oversized queries.
struct Parser {
    nodes: usize,
}

type Parsed<T> = Result<T, QueryError>;

fn error(path: &str, reason: impl Into<String>) -> QueryError {
    QueryError {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

fn expected(path: &str, what: &str, found: &Value) -> QueryError {
    error(path, format!("expected {what}, found {}", describe(found)))
}

/// A short rendering of a JSON value for an error message (shallow: the value may nest
/// deeper than a serializer should recurse).
fn describe(value: &Value) -> String {
    let mut text = String::new();
    render(value, 2, &mut text);
    match text.char_indices().nth(60) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

fn render(value: &Value, depth: usize, out: &mut String) {
    let items: Vec<(Option<&String>, &Value)> = match value {
        Value::Array(items) => items.iter().map(|v| (None, v)).collect(),
        Value::Object(map) => map.iter().map(|(k, v)| (Some(k), v)).collect(),
        scalar => return out.push_str(&scalar.to_string()),
    };
    let (open, close) = if value.is_array() {
        ('[', ']')
    } else {
        ('{', '}')
    };
    out.push(open);
    for (i, (key, item)) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if depth == 0 || i == 4 || out.len() > 60 {
            out.push('…');
            break;
        }
        if let Some(key) = key {
            out.push_str(&Value::String((*key).clone()).to_string());
            out.push(':');
        }
        render(item, depth - 1, out);
    }
    out.push(close);
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

impl Parser {
    fn count(&mut self, path: &str) -> Parsed<()> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(error(
                path,
                format!("the query is too large (more than {MAX_NODES} values)"),
            ));
        }
        Ok(())
    }

    fn query(&mut self, value: &Value, path: &str, depth: usize) -> Parsed<Query> {
        if depth > MAX_DEPTH {
            return Err(error(
                path,
                format!("the query nests too deeply (more than {MAX_DEPTH} levels)"),
            ));
        }
        self.count(path)?;
        let Value::Object(map) = value else {
            return Err(expected(path, "an object of conditions", value));
        };
        let mut clauses = Vec::with_capacity(map.len());
        for (key, value) in map {
            clauses.push(self.clause(key, value, path, depth)?);
        }
        Ok(Query { clauses })
    }

    fn clause(&mut self, key: &str, value: &Value, path: &str, depth: usize) -> Parsed<Clause> {
        let here = join(path, key);
        match key {
            "$and" => Ok(Clause::And(self.queries(value, &here, depth)?)),
            "$or" => Ok(Clause::Or(self.queries(value, &here, depth)?)),
            "$not" => Ok(Clause::Not(Box::new(self.query(
                value,
                &here,
                depth + 1,
            )?))),
            _ if key.starts_with('$') => Err(error(
                &here,
                format!("unknown operator {key:?}: expected $and, $or, $not or a field name"),
            )),
            _ => {
                let field = parse_field(key).map_err(|reason| error(path, reason))?;
                let ops = self.field_value(value, &here, depth)?;
                Ok(Clause::Field { field, ops })
            }
        }
    }

    fn queries(&mut self, value: &Value, path: &str, depth: usize) -> Parsed<Vec<Query>> {
        self.count(path)?;
        match value {
            Value::Array(items) if !items.is_empty() => items
                .iter()
                .enumerate()
                .map(|(i, item)| self.query(item, &format!("{path}[{i}]"), depth + 1))
                .collect(),
            _ => Err(expected(path, "a non-empty array of filter objects", value)),
        }
    }

    fn field_value(&mut self, value: &Value, path: &str, depth: usize) -> Parsed<Vec<Op>> {
        match value {
            Value::Object(map) => self.ops(map, path, depth),
            Value::Array(items) if items.is_empty() => Err(expected(
                path,
                "a value or a non-empty array of values",
                value,
            )),
            Value::Array(_) => Ok(vec![Op::In(self.scalars(value, path)?)]),
            _ => Ok(vec![Op::Eq(self.scalar(value, path)?)]),
        }
    }

    fn ops(&mut self, map: &Map<String, Value>, path: &str, depth: usize) -> Parsed<Vec<Op>> {
        if depth > MAX_DEPTH {
            return Err(error(
                path,
                format!("the query nests too deeply (more than {MAX_DEPTH} levels)"),
            ));
        }
        self.count(path)?;
        if map.is_empty() {
            return Err(error(
                path,
                "expected a value or an object of operators, found {}",
            ));
        }
        let mut ops = Vec::with_capacity(map.len());
        for (key, value) in map {
            let here = join(path, key);
            let cmp = |op| -> Parsed<Op> { Ok(Op::Cmp(op, bound(value, &here)?)) };
            let op = match key.as_str() {
                "$eq" => Op::Eq(self.scalar(value, &here)?),
                "$ne" => Op::Ne(self.scalar(value, &here)?),
                "$in" => Op::In(self.scalars(value, &here)?),
                "$nin" => Op::Nin(self.scalars(value, &here)?),
                "$gt" => cmp(CmpOp::Gt)?,
                "$gte" => cmp(CmpOp::Gte)?,
                "$lt" => cmp(CmpOp::Lt)?,
                "$lte" => cmp(CmpOp::Lte)?,
                "$exists" => match value {
                    Value::Bool(b) => Op::Exists(*b),
                    _ => return Err(expected(&here, "true or false", value)),
                },
                "$not" => match value {
                    Value::Object(inner) => Op::Not(self.ops(inner, &here, depth + 1)?),
                    _ => {
                        return Err(expected(
                            &here,
                            "an object of operators such as {\"$gt\": 5}",
                            value,
                        ));
                    }
                },
                _ if key.starts_with('$') => {
                    return Err(error(
                        &here,
                        format!(
                            "unknown operator {key:?}: expected $eq, $ne, $in, $nin, $gt, $gte, \
                             $lt, $lte, $exists or $not"
                        ),
                    ));
                }
                _ => {
                    return Err(error(
                        path,
                        format!(
                            "expected a value or an object of operators, found the key {key:?} \
                             (objects are not values; address a nested attribute with a dotted \
                             path such as \"{path}.{key}\")"
                        ),
                    ));
                }
            };
            self.count(&here)?;
            ops.push(op);
        }
        Ok(ops)
    }

    fn scalars(&mut self, value: &Value, path: &str) -> Parsed<Vec<Scalar>> {
        let Value::Array(items) = value else {
            return Err(expected(path, "an array of values", value));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| self.scalar(item, &format!("{path}[{i}]")))
            .collect()
    }

    fn scalar(&mut self, value: &Value, path: &str) -> Parsed<Scalar> {
        self.count(path)?;
        match value {
            Value::Null => Ok(Scalar::Null),
            Value::Bool(b) => Ok(Scalar::Bool(*b)),
            Value::Number(n) => Ok(Scalar::Number(n.clone())),
            Value::String(s) if s.contains('\0') => {
                Err(error(path, "strings cannot contain the NUL character"))
            }
            Value::String(s) => Ok(Scalar::String(s.clone())),
            Value::Array(_) | Value::Object(_) => {
                Err(expected(path, "a string, number, boolean or null", value))
            }
        }
    }
}

/// A field path: `name`, `address.city`, `attributes.name`.
fn parse_field(key: &str) -> Result<Field, String> {
    let segments: Vec<&str> = key.split('.').collect();
    let valid = |s: &&str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    if !segments.iter().all(valid) {
        return Err(format!(
            "invalid field {key:?}: expected dot-separated names of letters, digits, \"_\" or \"-\""
        ));
    }
    if segments.len() > MAX_DEPTH {
        return Err(format!(
            "invalid field {key:?}: more than {MAX_DEPTH} dot-separated names"
        ));
    }
    let owned = |s: &[&str]| s.iter().map(|s| (*s).to_owned()).collect();
    match segments.as_slice() {
        ["attributes"] => Err(
            "invalid field \"attributes\": expected an attribute after it, as in \
             \"attributes.unit_type\""
                .to_owned(),
        ),
        ["attributes", rest @ ..] => Ok(Field::Attribute(owned(rest))),
        [one] => {
            Ok(Column::from_name(one)
                .map_or_else(|| Field::Attribute(owned(&[one])), Field::Column))
        }
        all => Ok(Field::Attribute(owned(all))),
    }
}

/// The operand of `$gt`, `$gte`, `$lt` or `$lte`.
fn bound(value: &Value, path: &str) -> Parsed<Bound> {
    let found = || expected(path, "a number or an ISO-8601 date", value);
    match value {
        Value::Number(n) => Ok(Bound::Number(n.clone())),
        Value::String(s) => parse_date(s).map(Bound::Date).ok_or_else(found),
        _ => Err(found()),
    }
}

/// A `YYYY-MM-DD` date as is, or an RFC 3339 date-time converted to UTC (`...Z`).
fn parse_date(text: &str) -> Option<String> {
    if text.len() == 10 && has_date_prefix(text) {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
        return Some(text.to_owned());
    }
    let utc = DateTime::parse_from_rfc3339(text).ok()?.with_timezone(&Utc);
    let canonical = utc.to_rfc3339_opts(SecondsFormat::AutoSi, true);
    has_date_prefix(&canonical).then_some(canonical)
}

/// Whether the text starts with `YYYY-MM-DD` (digits and dashes; not checked further).
pub(super) fn has_date_prefix(text: &str) -> bool {
    let b = text.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(value: Value) -> String {
        match Query::parse(&value) {
            Ok(q) => panic!("{value} parsed as {q:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_seed_queries_parse_and_round_trip() {
        for q in [
            json!({"neighborhoods": ["mlaqa", "taadhi"]}),
            json!({"booking_status": "pending", "last_contacted": {"$lt": "2024-01-01"}}),
            json!({"renewal_due": {"$lt": "2024-02-01"}}),
            json!({"customer_type": "existing", "property_value": {"$gt": 1000000}}),
            json!({"last_interaction": {"$lt": "2023-06-01"}, "status": "inactive"}),
        ] {
            let parsed = Query::parse(&q).unwrap();
            assert_eq!(Query::parse(&parsed.to_json()).unwrap(), parsed, "{q}");
        }
    }

    #[test]
    fn fields_are_columns_attributes_or_explicit_attributes() {
        assert_eq!(parse_field("name"), Ok(Field::Column(Column::Name)));
        assert_eq!(
            parse_field("name.first"),
            Ok(Field::Attribute(vec!["name".into(), "first".into()]))
        );
        assert_eq!(
            parse_field("attributes.name"),
            Ok(Field::Attribute(vec!["name".into()]))
        );
        assert_eq!(
            Field::Attribute(vec!["name".into()]).key(),
            "attributes.name"
        );
        assert!(parse_field("a..b").is_err());
        assert!(parse_field("a b").is_err());
        assert!(parse_field("attributes").is_err());
    }

    #[test]
    fn errors_name_the_path_and_what_was_expected() {
        assert_eq!(
            message(json!({"$or": [{"a": 1}, {"last_contacted": {"$lt": "soon"}}]})),
            "at $or[1].last_contacted.$lt: expected a number or an ISO-8601 date, found \"soon\""
        );
        assert!(
            message(json!([1])).starts_with("at the top level of the query: expected an object")
        );
        assert!(message(json!({"$and": []})).starts_with("at $and: expected a non-empty array"));
        assert!(
            message(json!({"a": {"$regex": "x"}})).starts_with("at a.$regex: unknown operator")
        );
        assert!(message(json!({"a": {"b": 1}})).contains("\"a.b\""));
        assert!(
            message(json!({"a": {"$in": [[1]]}})).starts_with("at a.$in[0]: expected a string")
        );
        assert!(
            message(json!({"a": {"$exists": 1}}))
                .starts_with("at a.$exists: expected true or false")
        );
        assert!(
            message(json!({"a": {"$gt": "2024-02-30"}})).starts_with("at a.$gt: expected a number")
        );
        assert!(message(json!({"x": {"a b": {"$eq": 1}}})).contains("dotted path"));
        assert!(
            message(json!({"$or": [{"a b": 1}]})).starts_with("at $or[0]: invalid field \"a b\"")
        );
        assert!(
            message(json!({"a": []})).starts_with("at a: expected a value or a non-empty array")
        );
        assert!(message(json!({"a": {"$not": 5}})).starts_with("at a.$not: expected an object"));
    }

    #[test]
    fn found_values_are_rendered_shallowly() {
        assert_eq!(
            describe(&json!({"a": [1, [2, [3]]], "b": "x"})),
            r#"{"a":[1,[…]],"b":"x"}"#
        );
        assert_eq!(describe(&json!([1, 2, 3, 4, 5])), "[1,2,3,4,…]");
        assert_eq!(describe(&json!([])), "[]");
    }

    #[test]
    fn oversized_and_overly_deep_queries_are_refused() {
        let mut deep = json!({"a": 1});
        for _ in 0..40 {
            deep = json!({"$not": deep});
        }
        assert!(message(deep).contains("nests too deeply"));
        let many: Vec<i64> = (0..2000).collect();
        assert!(message(json!({"a": {"$in": many}})).contains("too large"));
    }

    #[test]
    fn a_query_deserializes_through_the_parser() {
        let q: Query = serde_json::from_value(json!({"status": "inactive"})).unwrap();
        assert_eq!(
            serde_json::to_value(&q).unwrap(),
            json!({"status": "inactive"})
        );
        let err = serde_json::from_value::<Query>(json!({"status": {"$gt": true}})).unwrap_err();
        assert!(
            err.to_string().starts_with("at status.$gt: expected"),
            "{err}"
        );
    }

    #[test]
    fn date_time_operands_are_normalized_to_utc() {
        let q = Query::parse(&json!({"a": {"$gte": "2024-01-01T02:30:00+02:00"}})).unwrap();
        assert_eq!(q.to_json(), json!({"a": {"$gte": "2024-01-01T00:30:00Z"}}));
    }

    #[test]
    fn repeated_operators_serialize_to_an_equivalent_query() {
        let q = Query {
            clauses: vec![Clause::Field {
                field: Field::Column(Column::Name),
                ops: vec![
                    Op::Exists(true),
                    Op::Exists(true),
                    Op::Not(vec![Op::Exists(false), Op::Exists(false)]),
                ],
            }],
        };
        let again = Query::parse(&q.to_json()).unwrap();
        assert_eq!(again.to_json(), q.to_json());
    }
}
