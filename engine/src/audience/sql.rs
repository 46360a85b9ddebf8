//! Compiling a query to a SQL boolean expression over the contacts table `c`, with the
//! same meaning as [`Query::matches`](super::Query::matches).
//!
//! Every value from the query is a bind parameter; nothing a user wrote is spliced into
//! the SQL text. SQLite walks the candidates of an attribute with `json_each` (which
//! yields the value itself when it is a scalar). PostgreSQL tests attributes with one
//! `c.attributes @? $n::jsonpath` per condition, in strict mode so that paths only walk
//! through objects; its string literals are JSON strings, and the whole jsonpath is one
//! bound parameter. Equality there can use the `jsonb_path_ops` GIN index. A negation
//! is `(..) IS NOT TRUE`, so that SQL NULLs (a strict jsonpath on a missing key) count as
//! "does not hold" everywhere, and no value is ever cast, so evaluation order is moot.

use super::{Bound, Clause, CmpOp, Column, Field, Op, Query, Scalar};
use crate::store::Backend;
use serde_json::{Number, Value};

/// A bind parameter of a compiled filter.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlParam {
    /// A string.
    Text(String),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

/// A SQL boolean expression over table alias `c` and the parameters it refers to.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlFilter {
    /// The expression; parameter `i` of `params` is `$(first_param + i)`.
    pub sql: String,
    /// The values to bind, in order.
    pub params: Vec<SqlParam>,
}

/// Compiles a query for a backend; its parameters are numbered from `$first_param`.
pub fn compile(query: &Query, backend: Backend, first_param: usize) -> SqlFilter {
    let mut compiler = Compiler {
        backend,
        first_param,
        params: Vec::new(),
    };
    let sql = compiler.query(query);
    SqlFilter {
        sql,
        params: compiler.params,
    }
}

/// `YYYY-MM-DD` at the start of a string, as a SQLite GLOB.
const DATE_GLOB: &str = "'[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*'";
/// `YYYY-MM-DD` at the start of a string, as a PostgreSQL regular expression.
const DATE_REGEX: &str = "'^[0-9]{4}-[0-9]{2}-[0-9]{2}'";
/// `YYYY-MM-DD` at the start of a string, as a jsonpath `like_regex` literal.
const JSONPATH_DATE_REGEX: &str = "\"^[0-9]{4}-[0-9]{2}-[0-9]{2}\"";

/// A condition on one candidate value.
#[derive(Clone, Copy)]
enum Pred<'a> {
    Eq(&'a Scalar),
    Cmp(CmpOp, &'a Bound),
}

struct Compiler {
    backend: Backend,
    first_param: usize,
    params: Vec<SqlParam>,
}

fn conjunction(parts: Vec<String>) -> String {
    combine(parts, " AND ", "TRUE")
}

fn disjunction(parts: Vec<String>) -> String {
    combine(parts, " OR ", "FALSE")
}

fn combine(mut parts: Vec<String>, glue: &str, empty: &str) -> String {
    match parts.len() {
        0 => empty.to_owned(),
        1 => parts.pop().unwrap_or_default(),
        _ => parts
            .iter()
            .map(|p| format!("({p})"))
            .collect::<Vec<_>>()
            .join(glue),
    }
}

fn not(sql: String) -> String {
    format!("({sql}) IS NOT TRUE")
}

fn sql_operator(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Gt => ">",
        CmpOp::Gte => ">=",
        CmpOp::Lt => "<",
        CmpOp::Lte => "<=",
    }
}

/// A JSON string literal, which is also a valid jsonpath string literal.
fn json_string(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

fn number_param(n: &Number) -> SqlParam {
    match n.as_i64() {
        Some(i) => SqlParam::Int(i),
        None => SqlParam::Float(n.as_f64().unwrap_or(f64::NAN)),
    }
}

impl Compiler {
    /// Adds a parameter and returns its placeholder.
    fn bind(&mut self, param: SqlParam) -> String {
        self.params.push(param);
        format!("${}", self.first_param + self.params.len() - 1)
    }

    fn query(&mut self, query: &Query) -> String {
        let mut parts = Vec::with_capacity(query.clauses.len());
        for clause in &query.clauses {
            parts.push(self.clause(clause));
        }
        conjunction(parts)
    }

    fn clause(&mut self, clause: &Clause) -> String {
        match clause {
            Clause::And(queries) | Clause::Or(queries) => {
                let mut parts = Vec::with_capacity(queries.len());
                for query in queries {
                    parts.push(self.query(query));
                }
                if matches!(clause, Clause::And(_)) {
                    conjunction(parts)
                } else {
                    disjunction(parts)
                }
            }
            Clause::Not(query) => not(self.query(query)),
            Clause::Field { field, ops } => self.ops(field, ops),
        }
    }

    fn ops(&mut self, field: &Field, ops: &[Op]) -> String {
        let mut parts = Vec::with_capacity(ops.len());
        for op in ops {
            parts.push(self.op(field, op));
        }
        conjunction(parts)
    }

    fn op(&mut self, field: &Field, op: &Op) -> String {
        match op {
            Op::Eq(scalar) => self.equals_any(field, std::slice::from_ref(scalar)),
            Op::Ne(scalar) => not(self.equals_any(field, std::slice::from_ref(scalar))),
            Op::In(list) => self.equals_any(field, list),
            Op::Nin(list) => not(self.equals_any(field, list)),
            Op::Cmp(op, bound) => self.some(field, &[Pred::Cmp(*op, bound)]),
            Op::Exists(true) => self.present(field),
            Op::Exists(false) => not(self.present(field)),
            Op::Not(ops) => not(self.ops(field, ops)),
        }
    }

    /// Equality with one of the values; a `null` among them also matches a missing field.
    fn equals_any(&mut self, field: &Field, values: &[Scalar]) -> String {
        if values.is_empty() {
            return "FALSE".to_owned();
        }
        let preds: Vec<Pred<'_>> = values.iter().map(Pred::Eq).collect();
        let some = self.some(field, &preds);
        if values.contains(&Scalar::Null) {
            let missing = not(self.present(field));
            disjunction(vec![missing, some])
        } else {
            some
        }
    }

    /// The field is present (possibly `null`).
    fn present(&mut self, field: &Field) -> String {
        match (field, self.backend) {
            (Field::Column(column), _) => format!("c.{} IS NOT NULL", column.name()),
            (Field::Attribute(path), Backend::Sqlite) => {
                let path = self.bind(SqlParam::Text(sqlite_path(path)));
                format!("json_type(c.attributes, {path}) IS NOT NULL")
            }
            (Field::Attribute(path), Backend::Postgres) => {
                let jsonpath = self.bind(SqlParam::Text(format!("strict {}", jsonpath(path))));
                format!("c.attributes @? {jsonpath}::jsonpath")
            }
        }
    }

    /// Some candidate of the field satisfies one of the predicates.
    fn some(&mut self, field: &Field, preds: &[Pred<'_>]) -> String {
        match (field, self.backend) {
            (Field::Column(column), _) => self.column_some(*column, preds),
            (Field::Attribute(path), Backend::Sqlite) => self.sqlite_some(path, preds),
            (Field::Attribute(path), Backend::Postgres) => self.postgres_some(path, preds),
        }
    }

    /// A column is one string or missing: only string equality and dates can hold.
    fn column_some(&mut self, column: Column, preds: &[Pred<'_>]) -> String {
        let name = format!("c.{}", column.name());
        let mut texts = Vec::new();
        let mut parts = Vec::new();
        for pred in preds {
            match pred {
                Pred::Eq(Scalar::String(s)) => texts.push(self.bind(SqlParam::Text(s.clone()))),
                Pred::Cmp(op, Bound::Date(d)) => {
                    let value = self.bind(SqlParam::Text(d.clone()));
                    let op = sql_operator(*op);
                    parts.push(match self.backend {
                        Backend::Sqlite => {
                            format!("{name} GLOB {DATE_GLOB} AND {name} {op} {value}")
                        }
                        Backend::Postgres => {
                            format!("{name} ~ {DATE_REGEX} AND {name} COLLATE \"C\" {op} {value}")
                        }
                    });
                }
                Pred::Eq(_) | Pred::Cmp(_, Bound::Number(_)) => {}
            }
        }
        if let Some(eq) = in_list(&name, texts) {
            parts.insert(0, eq);
        }
        disjunction(parts)
    }

    fn sqlite_some(&mut self, path: &[String], preds: &[Pred<'_>]) -> String {
        const NUMBER: &str = "j.type IN ('integer', 'real')";
        let mut texts = Vec::new();
        let mut parts = Vec::new();
        for pred in preds {
            match pred {
                Pred::Eq(Scalar::String(s)) => texts.push(self.bind(SqlParam::Text(s.clone()))),
                Pred::Eq(Scalar::Number(n)) => {
                    let value = self.bind(number_param(n));
                    parts.push(format!("{NUMBER} AND j.value = {value}"));
                }
                Pred::Eq(Scalar::Bool(b)) => parts.push(format!("j.type = '{b}'")),
                Pred::Eq(Scalar::Null) => parts.push("j.type = 'null'".to_owned()),
                Pred::Cmp(op, Bound::Number(n)) => {
                    let value = self.bind(number_param(n));
                    parts.push(format!(
                        "{NUMBER} AND j.value {} {value}",
                        sql_operator(*op)
                    ));
                }
                Pred::Cmp(op, Bound::Date(d)) => {
                    let value = self.bind(SqlParam::Text(d.clone()));
                    let op = sql_operator(*op);
                    parts.push(format!(
                        "j.type = 'text' AND j.value GLOB {DATE_GLOB} AND j.value {op} {value}"
                    ));
                }
            }
        }
        if let Some(eq) = in_list("j.value", texts) {
            parts.insert(0, format!("j.type = 'text' AND {eq}"));
        }
        let path = self.bind(SqlParam::Text(sqlite_path(path)));
        // json_each yields the elements of an array, the members of an object (keyed by
        // text, skipped: an object is one candidate that equals nothing) or the scalar.
        format!(
            "EXISTS (SELECT 1 FROM json_each(c.attributes, {path}) j \
             WHERE typeof(j.key) <> 'text' AND ({}))",
            disjunction(parts)
        )
    }

    fn postgres_some(&mut self, path: &[String], preds: &[Pred<'_>]) -> String {
        let tests: Vec<String> = preds.iter().map(|p| jsonpath_test(*p)).collect();
        let test = tests.join(" || ");
        // Strict mode: `@[*]` applies to arrays only, and comparing an array with a
        // scalar is unknown, so the candidates are the value or its elements, once.
        let jsonpath = format!(
            "strict {} ? ({test} || exists (@[*] ? ({test})))",
            jsonpath(path)
        );
        let jsonpath = self.bind(SqlParam::Text(jsonpath));
        format!("c.attributes @? {jsonpath}::jsonpath")
    }
}

/// `x = $1` or `x IN ($1, $2)`; `None` for no values.
fn in_list(expr: &str, values: Vec<String>) -> Option<String> {
    match values.len() {
        0 => None,
        1 => Some(format!("{expr} = {}", values.join(""))),
        _ => Some(format!("{expr} IN ({})", values.join(", "))),
    }
}

/// A jsonpath test of `@` against one predicate.
fn jsonpath_test(pred: Pred<'_>) -> String {
    match pred {
        Pred::Eq(Scalar::Null) => "@ == null".to_owned(),
        Pred::Eq(Scalar::Bool(b)) => format!("@ == {b}"),
        Pred::Eq(Scalar::Number(n)) => format!("@ == {n}"),
        Pred::Eq(Scalar::String(s)) => format!("@ == {}", json_string(s)),
        Pred::Cmp(op, Bound::Number(n)) => format!("@ {} {n}", sql_operator(op)),
        // The comparison first: `&&` skips the regular expression when it is false.
        Pred::Cmp(op, Bound::Date(d)) => format!(
            "(@ {} {} && @ like_regex {JSONPATH_DATE_REGEX})",
            sql_operator(op),
            json_string(d)
        ),
    }
}

/// The SQLite JSON path of an attribute: `$."a"."b"` (keys are checked by the parser).
fn sqlite_path(path: &[String]) -> String {
    let mut out = String::from("$");
    for key in path {
        out.push_str(".\"");
        out.push_str(key);
        out.push('"');
    }
    out
}

/// The jsonpath of an attribute: `$."a"."b"`, keys as JSON string literals.
fn jsonpath(path: &[String]) -> String {
    let mut out = String::from("$");
    for key in path {
        out.push('.');
        out.push_str(&json_string(key));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn compiled(query: Value, backend: Backend) -> SqlFilter {
        compile(&Query::parse(&query).unwrap(), backend, 2)
    }

    #[test]
    fn postgres_tests_attributes_with_one_bound_jsonpath() {
        let f = compiled(
            json!({"neighborhoods": ["mlaqa", "taadhi"]}),
            Backend::Postgres,
        );
        assert_eq!(f.sql, "c.attributes @? $2::jsonpath");
        let test = r#"@ == "mlaqa" || @ == "taadhi""#;
        let expected =
            format!(r#"strict $."neighborhoods" ? ({test} || exists (@[*] ? ({test})))"#);
        assert_eq!(f.params, vec![SqlParam::Text(expected)]);
    }

    #[test]
    fn user_values_are_parameters_never_sql_text() {
        let evil = "x'); DROP TABLE contacts; --\"\\";
        for backend in [Backend::Sqlite, Backend::Postgres] {
            let f = compiled(
                json!({"a": evil, "name": {"$in": [evil, 1]}, "d": {"$lt": "2024-01-01"}}),
                backend,
            );
            assert!(
                !f.sql.contains("DROP") && !f.sql.contains("2024"),
                "{}",
                f.sql
            );
            assert!(f.sql.contains("$4"), "{}", f.sql);
        }
    }

    #[test]
    fn negations_and_nulls_compile_to_is_not_true() {
        let f = compiled(json!({"email": null, "a": {"$ne": 1}}), Backend::Sqlite);
        assert!(
            f.sql.contains("(c.email IS NOT NULL) IS NOT TRUE"),
            "{}",
            f.sql
        );
        assert!(f.sql.contains(") IS NOT TRUE"), "{}", f.sql);
        assert_eq!(compiled(json!({}), Backend::Postgres).sql, "TRUE");
        assert_eq!(
            compiled(json!({"a": {"$in": []}}), Backend::Sqlite).sql,
            "FALSE"
        );
    }
}
