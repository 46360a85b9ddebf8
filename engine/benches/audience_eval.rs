//! `Query::matches` in memory (no database): the seeds' audience queries over 100,000
//! contacts with real-estate attributes, as the campaign runtime checks a contact before
//! dialing and as a preview filters a sample.
//!
//! `cargo bench -p switchboard-engine --bench audience_eval`

use chrono::{TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Map, Value, json};
use std::hint::black_box;
use switchboard_engine::audience::Query;
use switchboard_engine::contact::Contact;
use switchboard_engine::{ContactId, E164, TenantId};

const CONTACTS: u64 = 100_000;
const NEIGHBORHOODS: [&str; 8] = [
    "mlaqa", "taadhi", "alsafa", "hittin", "narjis", "yasmin", "malqa", "olaya",
];

/// A deterministic pseudo-random stream (no dependency on a generator crate).
fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn contact(i: u64) -> Contact {
    let r = mix(i);
    let pick = |shift: u32, n: u64| ((r >> shift) % n) as usize;
    let mut attributes = Map::new();
    let hoods: Vec<Value> = (0..=pick(0, 3))
        .map(|k| json!(NEIGHBORHOODS[pick(8 + 4 * k as u32, 8)]))
        .collect();
    attributes.insert("neighborhoods".into(), Value::Array(hoods));
    let booking = ["pending", "confirmed", "completed"][pick(20, 3)];
    attributes.insert("booking_status".into(), json!(booking));
    let day = 1 + pick(24, 28);
    let month = 1 + pick(30, 12);
    let year = 2022 + pick(36, 4);
    attributes.insert(
        "last_contacted".into(),
        json!(format!("{year}-{month:02}-{day:02}")),
    );
    attributes.insert(
        "renewal_due".into(),
        json!(format!("2024-{month:02}-{day:02}")),
    );
    let customer = ["existing", "new"][pick(40, 2)];
    attributes.insert("customer_type".into(), json!(customer));
    let value = 50_000 + (r >> 42) % 3_000_000;
    attributes.insert(
        "property_value".into(),
        if i.is_multiple_of(20) {
            json!(value.to_string())
        } else {
            json!(value)
        },
    );
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    Contact {
        id: ContactId(i as i64),
        tenant_id: TenantId(1),
        // New York numbers: the exchange (after 212) cannot start with 0 or 1.
        phone: E164::parse(&format!("+1212{}{:04}", 200 + i / 10_000, i % 10_000), None)
            .expect("a valid test number"),
        name: Some(format!("Contact {i}")),
        email: None,
        company: None,
        timezone: None,
        attributes,
        consent_at: None,
        opted_out_at: None,
        created_at: now,
        updated_at: now,
    }
}

fn bench(c: &mut Criterion) {
    let contacts: Vec<Contact> = (0..CONTACTS).map(contact).collect();
    let queries = [
        (
            "neighborhoods",
            json!({"neighborhoods": ["mlaqa", "taadhi"]}),
        ),
        (
            "pending_stale",
            json!({"booking_status": "pending", "last_contacted": {"$lt": "2024-01-01"}}),
        ),
        ("renewal", json!({"renewal_due": {"$lt": "2024-02-01"}})),
        (
            "existing_high_value",
            json!({"customer_type": "existing", "property_value": {"$gt": 1000000}}),
        ),
    ];
    let mut group = c.benchmark_group("audience_eval");
    group.throughput(Throughput::Elements(CONTACTS));
    group.sample_size(20);
    for (name, query) in queries {
        let query = Query::parse(&query).expect("a valid query");
        let matched = contacts.iter().filter(|c| query.matches(c)).count();
        assert!(matched > 0 && matched < contacts.len(), "{name}: {matched}");
        group.bench_function(name, |b| {
            b.iter(|| {
                contacts
                    .iter()
                    .filter(|c| query.matches(black_box(c)))
                    .count()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
