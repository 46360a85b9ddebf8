//! Evaluating a query against one contact in memory.

use super::parse::has_date_prefix;
use super::{Bound, Clause, Field, Op, Query, Scalar};
use crate::contact::Contact;
use serde_json::{Number, Value};
use std::borrow::Cow;
use std::cmp::Ordering;

/// Whether the contact matches the query.
pub(super) fn matches(query: &Query, contact: &Contact) -> bool {
    query
        .clauses
        .iter()
        .all(|clause| clause_matches(clause, contact))
}

fn clause_matches(clause: &Clause, contact: &Contact) -> bool {
    match clause {
        Clause::And(queries) => queries.iter().all(|q| matches(q, contact)),
        Clause::Or(queries) => queries.iter().any(|q| matches(q, contact)),
        Clause::Not(query) => !matches(query, contact),
        Clause::Field { field, ops } => {
            let value = resolve(field, contact);
            ops.iter().all(|op| op_holds(op, value.as_deref()))
        }
    }
}

/// The value of a field, `None` when missing. Attribute paths walk through objects only.
fn resolve<'a>(field: &Field, contact: &'a Contact) -> Option<Cow<'a, Value>> {
    match field {
        Field::Column(column) => column
            .value(contact)
            .map(|s| Cow::Owned(Value::String(s.to_owned()))),
        Field::Attribute(path) => {
            let (first, rest) = path.split_first()?;
            let mut current = contact.attributes.get(first)?;
            for key in rest {
                current = current.as_object()?.get(key)?;
            }
            Some(Cow::Borrowed(current))
        }
    }
}

/// The candidates of a value: its elements if it is an array, else itself.
fn candidates(value: Option<&Value>) -> &[Value] {
    match value {
        Some(Value::Array(items)) => items,
        Some(value) => std::slice::from_ref(value),
        None => &[],
    }
}

fn op_holds(op: &Op, value: Option<&Value>) -> bool {
    match op {
        Op::Eq(scalar) => equals(value, scalar),
        Op::Ne(scalar) => !equals(value, scalar),
        Op::In(list) => list.iter().any(|s| equals(value, s)),
        Op::Nin(list) => !list.iter().any(|s| equals(value, s)),
        Op::Cmp(op, bound) => candidates(value).iter().any(|c| {
            let ordering = match (c, bound) {
                (Value::Number(n), Bound::Number(b)) => compare_numbers(n, b),
                (Value::String(s), Bound::Date(d)) if has_date_prefix(s) => Some(s.as_str().cmp(d)),
                _ => None,
            };
            ordering.is_some_and(|o| op.holds(o))
        }),
        Op::Exists(present) => value.is_some() == *present,
        Op::Not(ops) => !ops.iter().all(|op| op_holds(op, value)),
    }
}

/// Equality as a query means it: some candidate equals the scalar; `null` also matches
/// a missing field.
fn equals(value: Option<&Value>, scalar: &Scalar) -> bool {
    let candidates = candidates(value);
    match scalar {
        Scalar::Null => value.is_none() || candidates.iter().any(Value::is_null),
        Scalar::Bool(b) => candidates.iter().any(|c| c.as_bool() == Some(*b)),
        Scalar::String(s) => candidates.iter().any(|c| c.as_str() == Some(s.as_str())),
        Scalar::Number(n) => candidates.iter().any(|c| match c {
            Value::Number(c) => compare_numbers(c, n) == Some(Ordering::Equal),
            _ => false,
        }),
    }
}

/// Numeric order of two JSON numbers, exact between integers and floats.
fn compare_numbers(a: &Number, b: &Number) -> Option<Ordering> {
    match (exact(a), exact(b)) {
        (Ok(x), Ok(y)) => Some(x.cmp(&y)),
        (Err(x), Err(y)) => x.partial_cmp(&y),
        (Ok(i), Err(x)) => compare_int_float(i, x),
        (Err(x), Ok(i)) => compare_int_float(i, x).map(Ordering::reverse),
    }
}

/// An integer as `Ok`, anything else as a float.
fn exact(n: &Number) -> Result<i128, f64> {
    if let Some(i) = n.as_i64() {
        Ok(i128::from(i))
    } else if let Some(u) = n.as_u64() {
        Ok(i128::from(u))
    } else {
        Err(n.as_f64().unwrap_or(f64::NAN))
    }
}

fn compare_int_float(i: i128, x: f64) -> Option<Ordering> {
    // Rounding is monotonic: an inequality after rounding `i` is the true one.
    #[allow(clippy::cast_precision_loss)]
    let ordering = (i as f64).partial_cmp(&x)?;
    if ordering != Ordering::Equal {
        return Some(ordering);
    }
    // `x` equals a rounded integer, so it is integral and in range of i128.
    #[allow(clippy::cast_possible_truncation)]
    Some(i.cmp(&(x as i128)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ContactId, E164, TenantId};
    use serde_json::json;

    fn contact(attributes: Value) -> Contact {
        let now = chrono::Utc::now();
        Contact {
            id: ContactId(1),
            tenant_id: TenantId(1),
            phone: E164::from_stored("+14155550123".to_owned()).unwrap(),
            name: Some("Ada".to_owned()),
            email: None,
            company: None,
            timezone: None,
            attributes: attributes.as_object().cloned().unwrap_or_default(),
            consent_at: None,
            opted_out_at: None,
            created_at: now,
            updated_at: now,
        }
    }

    fn check(query: Value, attributes: Value) -> bool {
        Query::parse(&query).unwrap().matches(&contact(attributes))
    }

    #[test]
    fn an_array_of_values_matches_contacts_having_either() {
        let q = json!({"neighborhoods": ["mlaqa", "taadhi"]});
        assert!(check(
            q.clone(),
            json!({"neighborhoods": ["olaya", "taadhi"]})
        ));
        assert!(check(q.clone(), json!({"neighborhoods": "mlaqa"})));
        assert!(!check(q.clone(), json!({"neighborhoods": ["olaya"]})));
        assert!(!check(q.clone(), json!({"neighborhoods": [["mlaqa"]]})));
        assert!(!check(q, json!({})));
    }

    #[test]
    fn comparisons_respect_types() {
        let q = json!({"property_value": {"$gt": 1000000}});
        assert!(check(q.clone(), json!({"property_value": 1500000.5})));
        assert!(!check(q.clone(), json!({"property_value": 900000})));
        assert!(!check(q.clone(), json!({"property_value": "2000000"})));
        let d = json!({"last_contacted": {"$lt": "2024-01-01"}});
        assert!(check(
            d.clone(),
            json!({"last_contacted": "2023-12-31T23:59:59Z"})
        ));
        assert!(!check(d.clone(), json!({"last_contacted": "2024-01-01"})));
        assert!(!check(d.clone(), json!({"last_contacted": "Dec 2023"})));
        assert!(!check(d, json!({})));
    }

    #[test]
    fn null_ne_and_exists_treat_missing_fields_as_documented() {
        assert!(check(json!({"a": null}), json!({})));
        assert!(check(json!({"a": null}), json!({"a": [1, null]})));
        assert!(!check(json!({"a": null}), json!({"a": 1})));
        assert!(check(json!({"a": {"$ne": 1}}), json!({})));
        assert!(!check(json!({"a": {"$ne": 1}}), json!({"a": [2, 1.0]})));
        assert!(check(json!({"a": {"$exists": true}}), json!({"a": null})));
        assert!(check(
            json!({"a.b": {"$exists": false}}),
            json!({"a": [{"b": 1}]})
        ));
        assert!(check(
            json!({"age": {"$not": {"$gt": 5}}}),
            json!({"age": "x"})
        ));
        assert!(check(json!({"email": null, "name": "Ada"}), json!({})));
        assert!(check(
            json!({"attributes.name": {"$exists": false}}),
            json!({})
        ));
    }

    #[test]
    fn numbers_compare_exactly_across_integers_and_floats() {
        let big = Number::from(9_007_199_254_740_993_i64);
        let float = Number::from_f64(9_007_199_254_740_992.0).unwrap();
        assert_eq!(compare_numbers(&big, &float), Some(Ordering::Greater));
        assert_eq!(
            compare_numbers(&Number::from(1), &Number::from_f64(1.0).unwrap()),
            Some(Ordering::Equal)
        );
        assert_eq!(
            compare_numbers(&Number::from(u64::MAX), &Number::from(-1)),
            Some(Ordering::Greater)
        );
    }
}
