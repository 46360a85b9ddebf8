//! `Store::audience_count` on PostgreSQL over 1,000,000 contacts, for the seeds' five
//! audience queries (and `{}` as a baseline: a full count); prints each query's plan
//! (`EXPLAIN ANALYZE`) and timing.
//!
//! Run with `cargo bench -p switchboard-engine --bench audience`. It needs PostgreSQL
//! (`SWITCHBOARD_TEST_POSTGRES`, as the tests) and loads a fresh database, which takes a
//! minute; outside `cargo bench` (no `--bench` argument) it does nothing.

use criterion::Criterion;
use serde_json::json;
use sqlx::{Connection, PgConnection, Row};
use std::time::{Duration, Instant};
use switchboard_engine::TenantId;
use switchboard_engine::audience::{Query, SqlParam, compile};
use switchboard_engine::store::testing::TestDb;
use switchboard_engine::store::{Backend, Store};

const CONTACTS: i64 = 1_000_000;

/// Attributes like a real estate call center's: 40 neighborhoods (1 to 3 per contact),
/// dates over 2022–2025 (some missing), property values (5% written as strings).
const LOAD: &str = r#"
INSERT INTO contacts (tenant_id, phone, name, email, attributes, created_at, updated_at)
SELECT $1, '+1212' || lpad(g::text, 7, '0'), 'Contact ' || g, 'c' || g || '@example.com',
  jsonb_strip_nulls(jsonb_build_object(
    'neighborhoods', (SELECT jsonb_agg(x) FROM (SELECT nb[1 + floor(random() * 40)::int] AS x
                      FROM generate_series(1, 1 + (g % 3)) k) picked),
    'booking_status', CASE WHEN random() < 0.05 THEN 'pending' WHEN random() < 0.7
                      THEN 'confirmed' ELSE 'completed' END,
    'last_contacted', CASE WHEN random() < 0.8
                      THEN to_char(date '2022-01-01' + floor(random() * 900)::int, 'YYYY-MM-DD') END,
    'renewal_due', CASE WHEN random() < 0.7
                   THEN to_char(date '2023-06-01' + floor(random() * 730)::int, 'YYYY-MM-DD') END,
    'customer_type', CASE WHEN random() < 0.5 THEN 'existing' ELSE 'new' END,
    'property_value', CASE WHEN random() < 0.05
                      THEN to_jsonb((50000 + floor(random() * 3000000))::text)
                      ELSE to_jsonb(50000 + floor(random() * 3000000)) END,
    'last_interaction', to_char(timestamp '2022-01-01' + random() * interval '1000 days',
                                'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
    'status', CASE WHEN random() < 0.1 THEN 'inactive' WHEN random() < 0.8 THEN 'active'
              ELSE 'new' END,
    'score', floor(random() * 100)::int)),
  0, 0
FROM generate_series(1, $2) g,
  (SELECT ARRAY['mlaqa', 'taadhi', 'olaya', 'malqa', 'hittin', 'narjis', 'yasmin',
    'sahafa', 'aqiq', 'ghadir', 'wadi', 'nakheel', 'rawdah', 'rabwa', 'sulay', 'badiah',
    'manfuhah', 'diriyah', 'qurtubah', 'hamra', 'izdihar', 'masif', 'mursalat', 'nuzha',
    'wurud', 'sulimaniyah', 'malaz', 'futah', 'dhubbat', 'shumaisi', 'uraija', 'suwaidi',
    'dirab', 'arid', 'qirawan', 'nadhim', 'rimal', 'janadriyah', 'khaleej', 'munsiyah']
    AS nb) n
"#;

fn seeds() -> Vec<(&'static str, Query)> {
    let queries = [
        ("everyone (baseline)", json!({})),
        (
            "neighborhoods",
            json!({"neighborhoods": ["mlaqa", "taadhi"]}),
        ),
        (
            "booking_follow_up",
            json!({"booking_status": "pending", "last_contacted": {"$lt": "2024-01-01"}}),
        ),
        ("renewal", json!({"renewal_due": {"$lt": "2024-02-01"}})),
        (
            "upsell",
            json!({"customer_type": "existing", "property_value": {"$gt": 1000000}}),
        ),
        (
            "re_engagement",
            json!({"last_interaction": {"$lt": "2023-06-01"}, "status": "inactive"}),
        ),
    ];
    queries
        .map(|(name, q)| (name, Query::parse(&q).expect("seed query")))
        .into()
}

/// Loads the contacts with the GIN index dropped, then rebuilds it from its own
/// definition and analyzes the table.
async fn load(url: &str, tenant: TenantId) -> sqlx::Result<()> {
    let mut conn = PgConnection::connect(url).await?;
    let index: String =
        sqlx::query_scalar("SELECT pg_get_indexdef('contacts_attributes'::regclass)")
            .fetch_one(&mut conn)
            .await?;
    sqlx::query("SELECT setseed(0.42)")
        .execute(&mut conn)
        .await?;
    sqlx::query("SET maintenance_work_mem = '512MB'")
        .execute(&mut conn)
        .await?;
    sqlx::query("DROP INDEX contacts_attributes")
        .execute(&mut conn)
        .await?;
    let started = Instant::now();
    sqlx::query(LOAD)
        .bind(tenant.0)
        .bind(CONTACTS)
        .execute(&mut conn)
        .await?;
    eprintln!("inserted {CONTACTS} contacts in {:.1?}", started.elapsed());
    let started = Instant::now();
    sqlx::query(sqlx::AssertSqlSafe(index.clone()))
        .execute(&mut conn)
        .await?;
    sqlx::query("VACUUM ANALYZE contacts")
        .execute(&mut conn)
        .await?;
    eprintln!("{index}; VACUUM ANALYZE in {:.1?}", started.elapsed());
    Ok(())
}

/// The plan of the count query, exactly as `audience_count` sends it.
async fn explain(url: &str, tenant: TenantId, query: &Query) -> sqlx::Result<String> {
    let mut conn = PgConnection::connect(url).await?;
    let filter = compile(query, Backend::Postgres, 2);
    let sql = format!(
        "EXPLAIN (ANALYZE, BUFFERS) SELECT COUNT(*) FROM contacts c \
         WHERE c.tenant_id = $1 AND ({})",
        filter.sql
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant.0);
    for param in filter.params {
        q = match param {
            SqlParam::Text(v) => q.bind(v),
            SqlParam::Int(v) => q.bind(v),
            SqlParam::Float(v) => q.bind(v),
            SqlParam::Bool(v) => q.bind(v),
        };
    }
    let rows = q.fetch_all(&mut conn).await?;
    Ok(rows
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect::<Vec<_>>()
        .join("\n"))
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("audience bench: run it with `cargo bench`; skipping");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let Some(db) = rt.block_on(TestDb::postgres()) else {
        eprintln!("audience bench: PostgreSQL is unreachable; skipping");
        return;
    };
    let store: &Store = db.store();
    let tenant = rt
        .block_on(store.create_tenant("bench"))
        .expect("tenant")
        .id;
    rt.block_on(load(db.url(), tenant)).expect("load contacts");

    let seeds = seeds();
    println!("\n{:<22} {:>9} {:>10}", "query", "matches", "ms (min)");
    for (name, query) in &seeds {
        let mut best = Duration::MAX;
        let mut count = 0;
        for _ in 0..10 {
            let started = Instant::now();
            count = rt
                .block_on(store.audience_count(tenant, query))
                .expect("count");
            best = best.min(started.elapsed());
        }
        let ms = best.as_secs_f64() * 1000.0;
        println!("{name:<22} {count:>9} {ms:>10.1}");
    }
    for (name, query) in &seeds {
        let plan = rt
            .block_on(explain(db.url(), tenant, query))
            .expect("explain");
        println!("\n== {name}: {}\n{plan}", query.to_json());
    }

    let mut criterion = Criterion::default()
        .sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .configure_from_args();
    for (name, query) in &seeds {
        criterion.bench_function(&format!("audience_count/{name}"), |b| {
            b.iter(|| {
                rt.block_on(store.audience_count(tenant, query))
                    .expect("count")
            })
        });
    }
    criterion.final_summary();
}
