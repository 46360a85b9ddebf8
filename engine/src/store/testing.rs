//! Fresh databases for tests: a SQLite file in a temporary directory, or a new PostgreSQL
//! database on `127.0.0.1:5432` that is dropped when the test ends.
//!
//! PostgreSQL is found through `SWITCHBOARD_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). When it cannot be reached, tests skip
//! with a message, except under `CI=true`, where they fail: CI must prove both backends.

use super::Store;
use crate::error::Result;
use sqlx::{Connection, PgConnection};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The administrative PostgreSQL url the tests create their databases through.
pub fn postgres_admin_url() -> String {
    std::env::var("SWITCHBOARD_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

/// A migrated database that lives as long as this value.
pub struct TestDb {
    store: Store,
    url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    File(PathBuf),
    Postgres { name: String },
}

impl TestDb {
    /// A fresh SQLite database in a new file.
    pub async fn sqlite() -> TestDb {
        let dir = std::env::temp_dir().join(unique_name("switchboard_test"));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        let url = format!("sqlite://{}", dir.join("switchboard.db").display());
        let store = Store::connect(&url).await.expect("open sqlite");
        store.migrate().await.expect("migrate sqlite");
        TestDb {
            store,
            url,
            cleanup: Cleanup::File(dir),
        }
    }

    /// A fresh PostgreSQL database, or `None` (with a message) when PostgreSQL is not
    /// reachable outside CI. Under `CI=true` an unreachable PostgreSQL panics.
    pub async fn postgres() -> Option<TestDb> {
        let admin = postgres_admin_url();
        let mut conn = match PgConnection::connect(&admin).await {
            Ok(conn) => conn,
            Err(e) => {
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!("CI=true and PostgreSQL at {admin} is unreachable: {e}");
                }
                eprintln!("skipping: PostgreSQL at {admin} is unreachable: {e}");
                return None;
            }
        };
        let name = unique_name("switchboard_test");
        let create = format!("CREATE DATABASE {name}");
        sqlx::query(sqlx::AssertSqlSafe(create))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let _ = conn.close().await;
        let url = database_url(&admin, &name);
        let store = Store::connect(&url)
            .await
            .expect("connect to test database");
        store.migrate().await.expect("migrate postgres");
        Some(TestDb {
            store,
            url,
            cleanup: Cleanup::Postgres { name },
        })
    }

    /// The store over this database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The url of this database (to start a server on it).
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// `admin` with its database name replaced by `name`.
fn database_url(admin: &str, name: &str) -> String {
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (admin, String::new()),
    };
    let root = match base.rfind('/') {
        Some(i) if base[..i].ends_with('/') => base.to_owned(),
        Some(i) => base[..i].to_owned(),
        None => base.to_owned(),
    };
    format!("{root}/{name}{query}")
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::File(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Postgres { name } => {
                let name = name.clone();
                let admin = postgres_admin_url();
                let store = self.store.clone();
                // Drop runs inside the test's runtime; do the async work on a thread of
                // its own so the database is gone when the test returns.
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build();
                    if let Ok(rt) = rt {
                        rt.block_on(async move {
                            store.close().await;
                            if let Ok(mut conn) = PgConnection::connect(&admin).await {
                                let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                                let _ = sqlx::query(sqlx::AssertSqlSafe(drop))
                                    .execute(&mut conn)
                                    .await;
                            }
                        });
                    }
                })
                .join();
            }
        }
    }
}

/// Runs a conformance case against SQLite and against PostgreSQL.
///
/// ```ignore
/// conformance!(creates_a_tenant, upserts_contacts);
/// async fn creates_a_tenant(store: &Store) { ... }
/// ```
#[macro_export]
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let db = $crate::store::testing::TestDb::sqlite().await;
                    super::$case(db.store()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(db) = $crate::store::testing::TestDb::postgres().await else { return };
                    super::$case(db.store()).await;
                }
            )*
        }
    };
}

/// Result alias for test helpers.
pub type TestResult = Result<()>;

impl Store {
    /// Runs a raw statement (tests of database-level guarantees only).
    pub async fn raw_execute_for_tests(&self, sql: &'static str) -> Result<u64> {
        Ok(super::with_db!(self, |pool| sqlx::query(sql)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?)
    }

    /// The tables (migrations' own aside) with a row whose text holds `needle`, in any
    /// column: where a value is kept in clear.
    pub async fn tables_containing_for_tests(&self, needle: &str) -> Result<Vec<String>> {
        let pattern = format!("%{needle}%");
        let mut found = Vec::new();
        match &self.db {
            super::Db::Sqlite(pool) => {
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT name FROM sqlite_master WHERE type = 'table' \
                     AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%' ORDER BY name",
                )
                .fetch_all(pool)
                .await?;
                for table in tables {
                    let columns: Vec<String> =
                        sqlx::query_scalar("SELECT name FROM pragma_table_info($1)")
                            .bind(&table)
                            .fetch_all(pool)
                            .await?;
                    let any: Vec<String> = columns
                        .iter()
                        .map(|c| format!("CAST(\"{c}\" AS TEXT) LIKE $1"))
                        .collect();
                    let sql = format!(
                        "SELECT COUNT(*) FROM \"{table}\" WHERE {}",
                        any.join(" OR ")
                    );
                    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                        .bind(&pattern)
                        .fetch_one(pool)
                        .await?;
                    if n > 0 {
                        found.push(table);
                    }
                }
            }
            super::Db::Postgres(pool) => {
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT table_name::text FROM information_schema.tables \
                     WHERE table_schema = 'public' AND table_type = 'BASE TABLE' \
                     AND table_name NOT LIKE '\\_sqlx%' ORDER BY 1",
                )
                .fetch_all(pool)
                .await?;
                for table in tables {
                    let sql = format!("SELECT COUNT(*) FROM \"{table}\" t WHERE t::text LIKE $1");
                    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                        .bind(&pattern)
                        .fetch_one(pool)
                        .await?;
                    if n > 0 {
                        found.push(table);
                    }
                }
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::database_url;

    #[test]
    fn database_url_replaces_the_database_name() {
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            database_url(
                "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
                "x"
            ),
            "postgres://postgres@127.0.0.1:5432/x?sslmode=disable"
        );
    }
}
