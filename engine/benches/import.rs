//! CSV import throughput: 100,000 rows (contact fields plus typed attributes) into a fresh
//! tenant on SQLite and on PostgreSQL. Criterion reports rows per second.
//!
//! `cargo bench -p switchboard-engine --bench import`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::time::{Duration, Instant};
use switchboard_engine::import::{ImportOptions, import_csv};
use switchboard_engine::store::testing::TestDb;

const ROWS: usize = 100_000;

/// A realistic file: E.164 and national numbers, names, emails, a list, a date, numbers.
fn csv() -> Vec<u8> {
    let mut out = String::with_capacity(ROWS * 120);
    out.push_str("phone,name,email,company,neighborhoods,booking_status,last_contacted,property_value,customer_type\n");
    let hoods = ["mlaqa", "taadhi", "olaya", "malqa", "narjis"];
    for i in 0..ROWS {
        let (exchange, line) = (200 + i / 10_000, i % 10_000);
        let phone = if i % 2 == 0 {
            format!("+1 415 {exchange} {line:04}")
        } else {
            format!("(212) {exchange}-{line:04}")
        };
        out.push_str(&format!(
            "{phone},Person {i},person{i}@example.com,Company {},{};{},{},2023-{:02}-{:02},{},{}\n",
            i % 500,
            hoods[i % 5],
            hoods[(i / 5) % 5],
            if i % 3 == 0 { "pending" } else { "confirmed" },
            1 + i % 12,
            1 + i % 28,
            100_000 + (i * 37) % 2_000_000,
            if i % 4 == 0 { "existing" } else { "new" },
        ));
    }
    out.into_bytes()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let data = csv();
    let options = ImportOptions {
        default_region: Some("US".into()),
        ..Default::default()
    };
    let mut group = c.benchmark_group("import_csv_100k");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));

    let backends: Vec<(&str, TestDb)> = rt.block_on(async {
        let mut v = vec![("sqlite", TestDb::sqlite().await)];
        if let Some(pg) = TestDb::postgres().await {
            v.push(("postgres", pg));
        }
        v
    });
    for (name, db) in &backends {
        group.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let tenant = db.store().create_tenant("bench").await.unwrap().id;
                        let input = std::io::Cursor::new(data.clone());
                        let start = Instant::now();
                        let report = import_csv(db.store(), tenant, input, &options)
                            .await
                            .unwrap();
                        total += start.elapsed();
                        assert_eq!(report.inserted, ROWS as u64, "{:?}", report.errors.first());
                    }
                    total
                })
            })
        });
    }
    group.finish();
    rt.block_on(async { drop(backends) });
}

criterion_group!(benches, bench);
criterion_main!(benches);
