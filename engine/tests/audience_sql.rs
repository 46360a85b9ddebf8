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

/// Contacts named by label, with these attributes.
fn labelled(contacts: &[(&str, Value)]) -> Vec<NewContact> {
    let mut out = Vec::new();
    for (i, (label, attributes)) in contacts.iter().enumerate() {
        let mut c = NewContact::new(phone(i));
        c.name = Some((*label).to_owned());
        c.attributes = attributes.as_object().cloned().unwrap_or_default();
        out.push(c);
    }
    out
}

/// The labels of the contacts the database matches, checking that memory agrees and that
/// count and sample are consistent.
async fn matched(store: &Store, query: &Value, contacts: &[(&str, Value)]) -> BTreeSet<String> {
    let query = Query::parse(query).expect("query parses");
    let (tenant, stored) = load(store, &labelled(contacts)).await;
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
    assert_eq!(
        sample.iter().map(|c| c.id).collect::<Vec<_>>(),
        ids.iter().copied().take(2).collect::<Vec<_>>()
    );
    let label = |id: &ContactId| {
        stored
            .iter()
            .find(|c| c.id == *id)
            .and_then(|c| c.name.clone())
    };
    ids.iter().filter_map(label).collect()
}

fn set(labels: &[&str]) -> BTreeSet<String> {
    labels.iter().map(|s| (*s).to_owned()).collect()
}

async fn the_seed_queries_match_exactly_the_expected_contacts(store: &Store) {
    let neighborhoods = json!({"neighborhoods": ["mlaqa", "taadhi"]});
    let contacts = [
        ("both", json!({"neighborhoods": ["mlaqa", "taadhi"]})),
        ("either", json!({"neighborhoods": ["olaya", "taadhi"]})),
        ("scalar", json!({"neighborhoods": "mlaqa"})),
        ("neither", json!({"neighborhoods": ["olaya", "hittin"]})),
        ("other case", json!({"neighborhoods": ["MLAQA"]})),
        ("missing", json!({})),
    ];
    assert_eq!(
        matched(store, &neighborhoods, &contacts).await,
        set(&["both", "either", "scalar"])
    );

    let booking = json!({"booking_status": "pending", "last_contacted": {"$lt": "2024-01-01"}});
    let contacts = [
        (
            "day before",
            json!({"booking_status": "pending", "last_contacted": "2023-12-31"}),
        ),
        (
            "time before",
            json!({"booking_status": "pending", "last_contacted": "2023-11-02T10:00:00Z"}),
        ),
        (
            "same day",
            json!({"booking_status": "pending", "last_contacted": "2024-01-01"}),
        ),
        (
            "after",
            json!({"booking_status": "pending", "last_contacted": "2024-03-01"}),
        ),
        ("never contacted", json!({"booking_status": "pending"})),
        (
            "not a date",
            json!({"booking_status": "pending", "last_contacted": 20231231}),
        ),
        (
            "confirmed",
            json!({"booking_status": "confirmed", "last_contacted": "2023-01-01"}),
        ),
    ];
    assert_eq!(
        matched(store, &booking, &contacts).await,
        set(&["day before", "time before"])
    );

    let renewal = json!({"renewal_due": {"$lt": "2024-02-01"}});
    let contacts = [
        ("due", json!({"renewal_due": "2024-01-31"})),
        ("on the day", json!({"renewal_due": "2024-02-01"})),
        ("later", json!({"renewal_due": "2025-01-01"})),
        (
            "one of several",
            json!({"renewal_due": ["2025-01-01", "2024-01-15"]}),
        ),
        ("soon", json!({"renewal_due": "soon"})),
        ("none", json!({})),
    ];
    assert_eq!(
        matched(store, &renewal, &contacts).await,
        set(&["due", "one of several"])
    );

    let upsell = json!({"customer_type": "existing", "property_value": {"$gt": 1000000}});
    let contacts = [
        (
            "above",
            json!({"customer_type": "existing", "property_value": 1500000}),
        ),
        (
            "just above",
            json!({"customer_type": "existing", "property_value": 1000000.5}),
        ),
        (
            "equal",
            json!({"customer_type": "existing", "property_value": 1000000}),
        ),
        (
            "below",
            json!({"customer_type": "existing", "property_value": 999999.99}),
        ),
        (
            "string",
            json!({"customer_type": "existing", "property_value": "2000000"}),
        ),
        ("unknown value", json!({"customer_type": "existing"})),
        (
            "new",
            json!({"customer_type": "new", "property_value": 2000000}),
        ),
    ];
    assert_eq!(
        matched(store, &upsell, &contacts).await,
        set(&["above", "just above"])
    );

    let reengage = json!({"last_interaction": {"$lt": "2023-06-01"}, "status": "inactive"});
    let contacts = [
        (
            "lapsed",
            json!({"last_interaction": "2023-05-31", "status": "inactive"}),
        ),
        (
            "recent",
            json!({"last_interaction": "2023-06-01", "status": "inactive"}),
        ),
        (
            "active",
            json!({"last_interaction": "2023-01-01", "status": "active"}),
        ),
        (
            "capitalized",
            json!({"last_interaction": "2023-01-01", "status": "Inactive"}),
        ),
        ("no history", json!({"status": "inactive"})),
    ];
    assert_eq!(matched(store, &reengage, &contacts).await, set(&["lapsed"]));
}

async fn strings_with_quotes_backslashes_and_unicode_match_exactly(store: &Store) {
    let nasty = "O'Brien \"the\" \\ é 😀 \u{1} $.x ? (@ == 1)";
    let contacts = [
        ("nasty", json!({"q": nasty, "list": [nasty, "plain"]})),
        ("plain", json!({"q": "plain"})),
    ];
    assert_eq!(
        matched(store, &json!({"q": nasty}), &contacts).await,
        set(&["nasty"])
    );
    assert_eq!(
        matched(store, &json!({"list": {"$in": [nasty]}}), &contacts).await,
        set(&["nasty"])
    );
    assert_eq!(
        matched(store, &json!({"q": {"$gt": "2024-01-01"}}), &contacts).await,
        set(&[])
    );
    assert_eq!(
        matched(store, &json!({"name": {"$in": ["nasty", "x'"]}}), &contacts).await,
        set(&["nasty"])
    );
    assert_eq!(
        matched(store, &json!({"q": {"$ne": nasty}}), &contacts).await,
        set(&["plain"])
    );
}

switchboard_engine::conformance!(
    the_seed_queries_match_exactly_the_expected_contacts,
    strings_with_quotes_backslashes_and_unicode_match_exactly,
);

#[test]
fn malformed_queries_are_refused_with_the_path_of_the_problem() {
    let cases = [
        (
            json!({"$or": [{"a": 1}, {"last_contacted": {"$lt": "soon"}}]}),
            "$or[1].last_contacted.$lt",
        ),
        (json!([1]), ""),
        (json!({"$and": []}), "$and"),
        (json!({"$or": [5]}), "$or[0]"),
        (json!({"$nor": [{"a": 1}]}), "$nor"),
        (json!({"a": {"$foo": 1}}), "a.$foo"),
        (json!({"a": {}}), "a"),
        (json!({"a": {"b": 1}}), "a"),
        (json!({"a": {"$in": 5}}), "a.$in"),
        (json!({"a": {"$in": [1, {"b": 2}]}}), "a.$in[1]"),
        (json!({"a": {"$eq": [1]}}), "a.$eq"),
        (json!({"a": {"$gt": true}}), "a.$gt"),
        (json!({"a": {"$lte": "2024-13-01"}}), "a.$lte"),
        (json!({"a": {"$exists": "yes"}}), "a.$exists"),
        (
            json!({"$and": [{"x": {"$not": {"$lt": []}}}]}),
            "$and[0].x.$not.$lt",
        ),
        (json!({"$and": [{"bad key!": 1}]}), "$and[0]"),
        (json!({"attributes": 1}), ""),
    ];
    for (query, path) in cases {
        let err = Query::parse(&query).expect_err(&query.to_string());
        assert_eq!(err.path, path, "{query}: {err}");
        let message = switchboard_engine::Error::from(err).to_string();
        let prefix = if path.is_empty() {
            "at the top level".to_owned()
        } else {
            format!("at {path}: ")
        };
        assert!(message.starts_with(&prefix), "{query}: {message}");
    }
    let err =
        Query::parse(&json!({"$or": [{"a": 1}, {"last_contacted": {"$lt": "soon"}}]})).unwrap_err();
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

/// Runs random cases against one backend, a new tenant per case.
fn database_and_memory_agree(db: &TestDb, rt: &tokio::runtime::Runtime, cases: u32) {
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
                eprintln!("STAT {} {} {}", stored.len(), expected.len(), json);
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
        discriminating.get() >= cases,
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
