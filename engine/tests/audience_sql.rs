//! Audience queries evaluated by SQLite and PostgreSQL: the seeds' queries as written on
//! hand-built contacts, a property test that the database and `Query::matches` always
//! agree, and the errors malformed queries get.

use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use switchboard_engine::audience::{Query, compile};
use switchboard_engine::contact::{Contact, NewContact};
use switchboard_engine::store::testing::TestDb;
use switchboard_engine::store::{ContactFilter, Store};
use switchboard_engine::{ContactId, E164, TenantId};

fn phone(i: usize) -> E164 {
    E164::from_stored(format!("+1415555{i:04}")).expect("phone")
}

/// Stores the contacts for a new tenant and reads them back, in id order.
async fn load(store: &Store, contacts: &[NewContact]) -> (TenantId, Vec<Contact>) {
    let tenant = store.create_tenant("audience").await.expect("tenant").id;
    store
        .upsert_contacts(tenant, contacts)
        .await
        .expect("upsert");
    let all = ContactFilter {
        limit: Some(1000),
        ..ContactFilter::default()
    };
    (
        tenant,
        store.list_contacts(tenant, &all).await.expect("list"),
    )
}

/// The labels of the contacts (label: attributes, stored with the label as name) that the
/// database matches, checking that memory agrees and that count and sample are consistent.
async fn matched(store: &Store, query: &Value, contacts: &Value) -> BTreeSet<String> {
    let query = Query::parse(query).expect("query parses");
    let mut new = Vec::new();
    for (i, (label, attributes)) in contacts.as_object().into_iter().flatten().enumerate() {
        let mut c = NewContact::new(phone(i));
        c.name = Some(label.clone());
        c.attributes = attributes.as_object().cloned().unwrap_or_default();
        new.push(c);
    }
    let (tenant, stored) = load(store, &new).await;
    let ids = store
        .audience_contact_ids(tenant, &query)
        .await
        .expect("ids");
    let in_memory: Vec<ContactId> = stored
        .iter()
        .filter(|c| query.matches(c))
        .map(|c| c.id)
        .collect();
    assert_eq!(
        ids,
        in_memory,
        "database and memory disagree on {}",
        query.to_json()
    );
    let count = store.audience_count(tenant, &query).await.expect("count");
    assert_eq!(count, ids.len() as u64);
    let sample = store
        .audience_sample(tenant, &query, 2)
        .await
        .expect("sample");
    let first_two: Vec<ContactId> = ids.iter().copied().take(2).collect();
    assert_eq!(sample.iter().map(|c| c.id).collect::<Vec<_>>(), first_two);
    let label = |id: &ContactId| {
        stored
            .iter()
            .find(|c| c.id == *id)
            .and_then(|c| c.name.clone())
    };
    ids.iter().filter_map(label).collect()
}

/// Runs `[{"query", "contacts": {label: attributes}, "matches": [label]}]`.
async fn check(store: &Store, cases: Value) {
    for case in cases.as_array().into_iter().flatten() {
        let expected: BTreeSet<String> =
            serde_json::from_value(case["matches"].clone()).expect("labels");
        let actual = matched(store, &case["query"], &case["contacts"]).await;
        assert_eq!(actual, expected, "{}", case["query"]);
    }
}

async fn the_seed_queries_match_exactly_the_expected_contacts(store: &Store) {
    check(store, json!([
        {"query": {"neighborhoods": ["mlaqa", "taadhi"]},
         "contacts": {
            "both": {"neighborhoods": ["mlaqa", "taadhi"]},
            "either": {"neighborhoods": ["olaya", "taadhi"]},
            "scalar": {"neighborhoods": "mlaqa"},
            "neither": {"neighborhoods": ["olaya", "hittin"]},
            "other case": {"neighborhoods": ["MLAQA"]},
            "missing": {}},
         "matches": ["both", "either", "scalar"]},
        {"query": {"booking_status": "pending", "last_contacted": {"$lt": "2024-01-01"}},
         "contacts": {
            "day before": {"booking_status": "pending", "last_contacted": "2023-12-31"},
            "time before": {"booking_status": "pending", "last_contacted": "2023-11-02T10:00:00Z"},
            "same day": {"booking_status": "pending", "last_contacted": "2024-01-01"},
            "after": {"booking_status": "pending", "last_contacted": "2024-03-01"},
            "never contacted": {"booking_status": "pending"},
            "not a date": {"booking_status": "pending", "last_contacted": 20231231},
            "confirmed": {"booking_status": "confirmed", "last_contacted": "2023-01-01"}},
         "matches": ["day before", "time before"]},
        {"query": {"renewal_due": {"$lt": "2024-02-01"}},
         "contacts": {
            "due": {"renewal_due": "2024-01-31"},
            "on the day": {"renewal_due": "2024-02-01"},
            "later": {"renewal_due": "2025-01-01"},
            "one of several": {"renewal_due": ["2025-01-01", "2024-01-15"]},
            "soon": {"renewal_due": "soon"},
            "none": {}},
         "matches": ["due", "one of several"]},
        {"query": {"customer_type": "existing", "property_value": {"$gt": 1000000}},
         "contacts": {
            "above": {"customer_type": "existing", "property_value": 1500000},
            "just above": {"customer_type": "existing", "property_value": 1000000.5},
            "equal": {"customer_type": "existing", "property_value": 1000000},
            "below": {"customer_type": "existing", "property_value": 999999.99},
            "string": {"customer_type": "existing", "property_value": "2000000"},
            "unknown value": {"customer_type": "existing"},
            "new": {"customer_type": "new", "property_value": 2000000}},
         "matches": ["above", "just above"]},
        {"query": {"last_interaction": {"$lt": "2023-06-01"}, "status": "inactive"},
         "contacts": {
            "lapsed": {"last_interaction": "2023-05-31", "status": "inactive"},
            "recent": {"last_interaction": "2023-06-01", "status": "inactive"},
            "active": {"last_interaction": "2023-01-01", "status": "active"},
            "capitalized": {"last_interaction": "2023-01-01", "status": "Inactive"},
            "no history": {"status": "inactive"}},
         "matches": ["lapsed"]},
    ]))
    .await;
}

async fn strings_with_quotes_backslashes_and_unicode_match_exactly(store: &Store) {
    let nasty = "O'Brien \"the\" \\ é 😀 \u{1} $.x ? (@ == 1)";
    let contacts =
        json!({"nasty": {"q": nasty, "list": [nasty, "plain"]}, "plain": {"q": "plain"}});
    check(store, json!([
        {"query": {"q": nasty}, "contacts": contacts, "matches": ["nasty"]},
        {"query": {"list": {"$in": [nasty]}}, "contacts": contacts, "matches": ["nasty"]},
        {"query": {"q": {"$gt": "2024-01-01"}}, "contacts": contacts, "matches": []},
        {"query": {"name": {"$in": ["nasty", "x'"]}}, "contacts": contacts, "matches": ["nasty"]},
        {"query": {"q": {"$ne": nasty}}, "contacts": contacts, "matches": ["plain"]},
    ]))
    .await;
}

async fn the_largest_queries_allowed_run(store: &Store) {
    let many: Vec<String> = (0..990).map(|i| format!("n{i}")).collect();
    let contacts = json!({"in": {"tags": ["x", "n989"]}, "out": {"tags": "n990"}});
    let ors: Vec<Value> = many.iter().take(495).map(|n| json!({"tags": n})).collect();
    check(
        store,
        json!([
            {"query": {"tags": {"$in": many}}, "contacts": contacts, "matches": ["in"]},
            {"query": {"$or": ors}, "contacts": contacts, "matches": []},
        ]),
    )
    .await;
}

switchboard_engine::conformance!(
    the_seed_queries_match_exactly_the_expected_contacts,
    strings_with_quotes_backslashes_and_unicode_match_exactly,
    the_largest_queries_allowed_run,
);

#[test]
fn malformed_queries_are_refused_with_the_path_of_the_problem() {
    let cases = json!([
        [{"$or": [{"a": 1}, {"last_contacted": {"$lt": "soon"}}]}, "$or[1].last_contacted.$lt"],
        [[1], ""],
        [{"$and": []}, "$and"],
        [{"$or": [5]}, "$or[0]"],
        [{"$nor": [{"a": 1}]}, "$nor"],
        [{"a": {"$foo": 1}}, "a.$foo"],
        [{"a": {}}, "a"],
        [{"a": {"b": 1}}, "a"],
        [{"a": {"$in": 5}}, "a.$in"],
        [{"a": {"$in": [1, {"b": 2}]}}, "a.$in[1]"],
        [{"a": {"$eq": [1]}}, "a.$eq"],
        [{"a": {"$gt": true}}, "a.$gt"],
        [{"a": {"$lte": "2024-13-01"}}, "a.$lte"],
        [{"a": {"$exists": "yes"}}, "a.$exists"],
        [{"$and": [{"x": {"$not": {"$lt": []}}}]}, "$and[0].x.$not.$lt"],
        [{"$and": [{"bad key!": 1}]}, "$and[0]"],
        [{"attributes": 1}, ""],
    ]);
    for case in cases.as_array().into_iter().flatten() {
        let (query, path) = (&case[0], case[1].as_str().unwrap_or_default());
        let err = Query::parse(query).expect_err(&query.to_string());
        assert_eq!(err.path, path, "{query}: {err}");
        let message = switchboard_engine::Error::from(err).to_string();
        let prefix = if path.is_empty() {
            "at the top level".to_owned()
        } else {
            format!("at {path}: ")
        };
        assert!(message.starts_with(&prefix), "{query}: {message}");
    }
    let err = Query::parse(&cases[0][0]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "at $or[1].last_contacted.$lt: expected a number or an ISO-8601 date, found \"soon\""
    );
    let err = Query::parse(&json!({"$and": [{"bad key!": 1}]})).unwrap_err();
    assert!(err.to_string().contains("\"bad key!\""), "{err}");
}

// ---- the database and memory agree on random contacts and queries ----

/// The vocabulary of random contacts and queries, `|`-separated: strings (common ones,
/// then rare ones with quotes, unicode and near-dates), date operands, attribute keys and
/// query fields.
const COMMON: &str = "mlaqa|taadhi|2024-01-01|2024-01-15T08:30:00Z|2023-05-31";
const RARE: &str =
    "MLAQA||a'b|q\"uote|back\\slash|é|😀|1|soon|2024|2024-1-5|2024-01-15|2024-01-01T00:00:00.000Z";
const DATES: &str =
    "2023-06-01|2024-01-01|2024-01-15|2024-01-15T08:30:00Z|2024-01-01T00:00:00+02:00";
const KEYS: &str = "a|b|tags|score|when|obj|name";
const FIELDS: &str = "a|a|b|b|tags|tags|score|when|obj|obj.x|obj.y|a.x|nope|name|email|company|\
                      timezone|phone|attributes.name|attributes.a";

fn words(list: &'static str) -> Vec<&'static str> {
    list.split('|').collect()
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => select(words(COMMON)).prop_map(|s| json!(s)),
        2 => select(words(RARE)).prop_map(|s| json!(s)),
        4 => (-1_i64..2).prop_map(|i| json!(i)),
        1 => select(&[0.5, -1.25, 2.0, 1_000_000.5][..]).prop_map(|f| json!(f)),
        1 => Just(json!(1_000_000)),
        1 => any::<bool>().prop_map(|b| json!(b)),
        1 => Just(Value::Null),
    ]
}

fn object_of_scalars() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(select(&["x", "y"][..]), scalar(), 0..3)
        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
}

fn attribute_value() -> impl Strategy<Value = Value> {
    // Beyond scalars, arrays and objects: arrays of arrays and of objects, which the
    // semantics say never match through (one level of unwrapping, paths through objects).
    let element = prop_oneof![
        6 => scalar(),
        1 => prop::collection::vec(scalar(), 0..3).prop_map(Value::Array),
        1 => object_of_scalars()
    ];
    prop_oneof![
        6 => scalar(),
        3 => prop::collection::vec(scalar(), 0..4).prop_map(Value::Array),
        2 => object_of_scalars(),
        1 => prop::collection::vec(element, 0..3).prop_map(Value::Array),
    ]
}

fn new_contact() -> impl Strategy<Value = (Map<String, Value>, [Option<&'static str>; 4])> {
    let column = |values: &'static [&'static str]| prop::option::of(select(values));
    (
        prop::collection::btree_map(select(words(KEYS)), attribute_value(), 2..7)
            .prop_map(|m| m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()),
        [
            column(&["O'Brien", "2024-01-15", "mlaqa", "taadhi"]),
            column(&["ada@example.com", "2023-05-31"]),
            column(&["Acme", "mlaqa"]),
            column(&["America/New_York", "Asia/Riyadh"]),
        ],
    )
}

fn bound() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-2_i64..3).prop_map(|i| json!(i)),
        select(&[0.5, -1.25, 2.0, 1_000_000.0][..]).prop_map(|f| json!(f)),
        select(words(DATES)).prop_map(|s| json!(s)),
    ]
}

fn operators(with_not: bool) -> BoxedStrategy<Value> {
    let list = || prop::collection::vec(scalar(), 0..3).prop_map(Value::Array);
    let mut ops = vec![
        (Just("$eq"), scalar()).boxed(),
        (Just("$ne"), scalar()).boxed(),
        (select(&["$in", "$nin"][..]), list()).boxed(),
        (select(&["$gt", "$gte", "$lt", "$lte"][..]), bound()).boxed(),
        (Just("$exists"), any::<bool>().prop_map(Value::Bool)).boxed(),
    ];
    if with_not {
        ops.push((Just("$not"), operators(false)).boxed());
    }
    mostly_one(proptest::strategy::Union::new(ops).boxed())
}

/// An object of one entry, sometimes two (more, and too few queries match anyone).
fn mostly_one(entry: BoxedStrategy<(&'static str, Value)>) -> BoxedStrategy<Value> {
    let object = |entries: Vec<(&str, Value)>| {
        Value::Object(
            entries
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        )
    };
    prop_oneof![
        3 => prop::collection::vec(entry.clone(), 1..2),
        1 => prop::collection::vec(entry, 2..3),
    ]
    .prop_map(object)
    .boxed()
}

fn field_condition() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => scalar(),
        1 => prop::collection::vec(scalar(), 1..3).prop_map(Value::Array),
        4 => operators(true),
    ]
}

fn filter() -> impl Strategy<Value = Value> {
    let leaf = mostly_one((select(words(FIELDS)), field_condition()).boxed());
    leaf.prop_recursive(3, 24, 3, |inner| {
        prop_oneof![
            (
                select(&["$and", "$or"][..]),
                prop::collection::vec(inner.clone(), 1..3)
            )
                .prop_map(|(k, list)| json!({ k: list })),
            inner.clone().prop_map(|f| json!({"$not": f})),
            (select(words(FIELDS)), field_condition(), inner)
                .prop_map(|(k, c, f)| json!({k: c, "$or": [f]})),
        ]
    })
}

/// Runs random cases against one backend, a new tenant per case. `PROPTEST_CASES`
/// overrides the number of cases (for a longer run by hand).
fn database_and_memory_agree(db: &TestDb, rt: &tokio::runtime::Runtime, cases: u32) {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    let store = db.store();
    let strategy = (
        prop::collection::vec(new_contact(), 6..20),
        prop::collection::vec(filter(), 1..6),
    );
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    // Queries that match some but not all contacts: guards against a vacuous test.
    let discriminating = std::cell::Cell::new(0_u32);
    let result = TestRunner::new(config).run(&strategy, |(contacts, queries)| {
        rt.block_on(async {
            let mut new = Vec::new();
            for (i, (attributes, [name, email, company, timezone])) in
                contacts.into_iter().enumerate()
            {
                let mut c = NewContact::new(phone(i));
                c.attributes = attributes;
                (c.name, c.email) = (name.map(str::to_owned), email.map(str::to_owned));
                (c.company, c.timezone) = (company.map(str::to_owned), timezone.map(str::to_owned));
                new.push(c);
            }
            let (tenant, stored) = load(store, &new).await;
            for json in &queries {
                let query =
                    Query::parse(json).map_err(|e| TestCaseError::fail(format!("{json}: {e}")))?;
                let expected: Vec<ContactId> = stored
                    .iter()
                    .filter(|c| query.matches(c))
                    .map(|c| c.id)
                    .collect();
                let actual = store
                    .audience_contact_ids(tenant, &query)
                    .await
                    .map_err(|e| TestCaseError::fail(format!("{json}: {e}")))?;
                if !expected.is_empty() && expected.len() < stored.len() {
                    discriminating.set(discriminating.get() + 1);
                }
                let filter = compile(&query, store.backend(), 2);
                let attributes: Vec<_> = stored
                    .iter()
                    .map(|c| (c.id, &c.attributes, &c.name))
                    .collect();
                prop_assert_eq!(
                    &actual,
                    &expected,
                    "query {}\nsql {}\nparams {:?}\ncontacts {:?}",
                    json,
                    filter.sql,
                    filter.params,
                    attributes
                );
            }
            Ok(())
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    eprintln!(
        "{} discriminating queries in {cases} cases",
        discriminating.get()
    );
    assert!(
        discriminating.get() >= cases / 4,
        "too few queries tell contacts apart"
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn sqlite_and_memory_agree_on_random_queries() {
    let rt = runtime();
    let db = rt.block_on(TestDb::sqlite());
    database_and_memory_agree(&db, &rt, 128);
}

#[test]
fn postgres_and_memory_agree_on_random_queries() {
    let rt = runtime();
    let Some(db) = rt.block_on(TestDb::postgres()) else {
        return;
    };
    database_and_memory_agree(&db, &rt, 48);
}
