//! The Store: every read and write Switchboard makes, over SQLite (the embedded default)
//! or PostgreSQL (production, shared by several processes).
//!
//! One API for both backends. Most statements are the same text on both (sqlx accepts
//! `$1`-style parameters on SQLite too); where the dialects differ (JSON, bulk inserts) a
//! method says so with a `match` on the backend. Times are stored as UTC milliseconds.

mod attempt_writes;
mod attempts;
mod audience;
mod batch;
mod call_history;
mod call_signals;
mod campaign_audience;
mod campaign_edits;
mod campaigns;
mod contacts;
mod dial_slots;
mod dnc;
mod erasure;
pub use erasure::ErasureReport;
mod leases;
mod ledger;
mod lifecycle;
mod lists;
mod operators;
pub use operators::OperatorKeyRecord;
mod outbox;
mod outcomes;
mod reservations;
mod retention;
pub use retention::{PurgeReport, RetentionPolicy};
mod settings;
mod suppressions;
pub use suppressions::{Suppression, SuppressionEvent};
mod tenants;
#[cfg(feature = "testing")]
pub mod testing;
mod timeseries;
mod webhooks;

pub use attempts::{
    AttemptRecord, AttemptStatus, AttemptUpdate, CallEvent, NewAttempt, QueueCounts, QueueEntry,
};
pub use batch::{Applied, MAX_BATCH, Write};
pub use call_history::{CallFilter, CallStats};
pub use campaign_audience::{Audience, TemplateCoverage};
pub use campaign_edits::{RUNNING_EDITABLE, changed_fields};
pub use campaigns::{CampaignFilter, CampaignRecord, TransitionRecord};
pub use contacts::{ContactFilter, ContactWriter, UpsertReport};
pub use dial_slots::MAX_DIAL_SLOTS;
pub use leases::{CampaignLease, LeaseRenewal};

pub use outcomes::{CarrierUpdate, OutcomeReport, Recorded};
pub use reservations::MAX_RESERVATIONS;
pub use tenants::{ApiKeyRecord, ApiKeyScope};
pub use timeseries::{BUCKET_SECS, TimeBucket};
pub use webhooks::{
    DeliveryAttemptRecord, DeliveryRecord, DeliveryStatus, DueDelivery, SendReport, WebhookRecord,
};

use crate::error::{Error, Result};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};
use std::str::FromStr;
use std::time::Duration;

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite: one file, one process.
    Sqlite,
    /// PostgreSQL: shared by every Switchboard process.
    Postgres,
}

/// The connection pool of one backend.
#[derive(Debug, Clone)]
pub(crate) enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same sqlx code against whichever pool the store holds. The body is compiled
/// once per backend, so the types it binds must encode on both.
macro_rules! with_db {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.db {
            $crate::store::Db::Sqlite($pool) => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_db;

/// The database's clock in UTC milliseconds, as SQL text of one backend (`pg` or
/// `sqlite`). Leases and dial slots are stamped by the database, so processes on hosts
/// whose clocks disagree still agree on when a lease expires or a slot frees.
macro_rules! db_now_ms {
    (pg) => {
        "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT"
    };
    (sqlite) => {
        "CAST(unixepoch('subsec') * 1000 AS INTEGER)"
    };
}
pub(crate) use db_now_ms;

/// Binds compiled audience-filter parameters, in order, onto a query of either backend.
macro_rules! bind_sql_params {
    ($query:expr, $params:expr) => {{
        let mut query = $query;
        for param in $params {
            query = match param {
                $crate::audience::SqlParam::Text(v) => query.bind(v),
                $crate::audience::SqlParam::Int(v) => query.bind(v),
                $crate::audience::SqlParam::Float(v) => query.bind(v),
                $crate::audience::SqlParam::Bool(v) => query.bind(v),
            };
        }
        query
    }};
}
pub(crate) use bind_sql_params;

/// Opening a transaction that will write.
///
/// SQLite's default `BEGIN` is deferred: a transaction that reads and then writes must
/// upgrade its lock, and when another writer got there first the upgrade fails at once
/// with "database is locked" (the busy timeout does not apply). `BEGIN IMMEDIATE` takes
/// the write lock up front and waits for it. PostgreSQL needs nothing special.
pub(crate) trait BeginWrite {
    type Database: sqlx::Database;

    /// Begins a transaction that holds the right to write.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Self::Database>, sqlx::Error>;
}

impl BeginWrite for SqlitePool {
    type Database = sqlx::Sqlite;

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.begin_with("BEGIN IMMEDIATE").await
    }
}

impl BeginWrite for PgPool {
    type Database = sqlx::Postgres;

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.begin().await
    }
}

/// One connection of either backend, inside a transaction its caller owns: the writes a
/// call makes are written once against it and run alone ([`in_write_tx`]) or in a batch
/// ([`Store::apply_writes`]).
pub(crate) enum Conn<'c> {
    Sqlite(&'c mut sqlx::SqliteConnection),
    Postgres(&'c mut sqlx::PgConnection),
}

impl Conn<'_> {
    /// The backend the connection belongs to.
    pub(crate) fn backend(&self) -> Backend {
        match self {
            Conn::Sqlite(_) => Backend::Sqlite,
            Conn::Postgres(_) => Backend::Postgres,
        }
    }
}

impl<'c> From<&'c mut sqlx::SqliteConnection> for Conn<'c> {
    fn from(conn: &'c mut sqlx::SqliteConnection) -> Self {
        Conn::Sqlite(conn)
    }
}

impl<'c> From<&'c mut sqlx::PgConnection> for Conn<'c> {
    fn from(conn: &'c mut sqlx::PgConnection) -> Self {
        Conn::Postgres(conn)
    }
}

/// Runs the same sqlx code against whichever connection a [`Conn`] holds (the body is
/// compiled once per backend, like [`with_db`]).
macro_rules! with_conn {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::store::Conn::Sqlite($c) => $body,
            $crate::store::Conn::Postgres($c) => $body,
        }
    };
}
pub(crate) use with_conn;

/// Runs `body` (which gets a [`Conn`] and yields a `Result<T>`) in a write transaction of
/// its own, committed when the body succeeds. Expands to a `Result<T>`; use it as the tail
/// of a method returning `Result<T>`.
macro_rules! in_write_tx {
    ($store:expr, |$conn:ident| $body:expr) => {
        $crate::store::with_db!($store, |pool| {
            let mut tx = $crate::store::BeginWrite::begin_write(pool).await?;
            let out = {
                let $conn = $crate::store::Conn::from(&mut *tx);
                $body?
            };
            tx.commit().await?;
            Ok(out)
        })
    };
}
pub(crate) use in_write_tx;

/// Switchboard's storage. Cheap to clone: it holds a connection pool.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) db: Db,
    /// The key erased numbers are hashed with, loaded on first use (see `erasure`).
    pub(crate) hash_key: erasure::HashKey,
}

/// Connection settings for [`Store::connect_with`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Most connections the pool opens.
    pub max_connections: u32,
    /// How long to wait for a free connection.
    pub acquire_timeout: Duration,
    /// PostgreSQL cancels a statement that runs longer (`statement_timeout`); the query
    /// fails as a database error. SQLite has no such bound. `None`: no limit.
    pub statement_timeout: Option<Duration>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(10),
            statement_timeout: None,
        }
    }
}

impl Store {
    /// Opens the database at `url` (`sqlite://path.db` or `postgres://...`), creating a
    /// SQLite file if it does not exist. Does not run migrations.
    pub async fn connect(url: &str) -> Result<Store> {
        Self::connect_with(url, StoreOptions::default()).await
    }

    /// [`Store::connect`] with explicit pool settings.
    pub async fn connect_with(url: &str, options: StoreOptions) -> Result<Store> {
        match scheme(url) {
            Some("sqlite") => {
                let connect = SqliteConnectOptions::from_str(url)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(30));
                let pool = SqlitePoolOptions::new()
                    .max_connections(options.max_connections)
                    .acquire_timeout(options.acquire_timeout)
                    .connect_with(connect)
                    .await?;
                Ok(Store {
                    db: Db::Sqlite(pool),
                    hash_key: erasure::HashKey::default(),
                })
            }
            Some("postgres" | "postgresql") => {
                let mut connect = PgConnectOptions::from_str(url)?;
                if let Some(limit) = options.statement_timeout {
                    let ms = limit.as_millis().max(1).to_string();
                    connect = connect.options([("statement_timeout", ms.as_str())]);
                }
                let pool = PgPoolOptions::new()
                    .max_connections(options.max_connections)
                    .acquire_timeout(options.acquire_timeout)
                    .connect_with(connect)
                    .await?;
                Ok(Store {
                    db: Db::Postgres(pool),
                    hash_key: erasure::HashKey::default(),
                })
            }
            other => Err(Error::invalid(
                "database url",
                "database_url",
                format!(
                    "unsupported scheme {:?}: expected sqlite:// or postgres://",
                    other.unwrap_or("")
                ),
            )),
        }
    }

    /// Applies the embedded migrations of this backend.
    pub async fn migrate(&self) -> Result<()> {
        match &self.db {
            Db::Sqlite(pool) => sqlx::migrate!("../migrations/sqlite").run(pool).await?,
            Db::Postgres(pool) => sqlx::migrate!("../migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// Which backend this store uses.
    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// Answers when the database answers (for readiness checks).
    pub async fn ping(&self) -> Result<()> {
        with_db!(self, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Closes every connection; pending work finishes first.
    pub async fn close(&self) {
        with_db!(self, |pool| pool.close().await)
    }
}

/// The scheme of a database url, without exposing the rest (which may hold a password).
fn scheme(url: &str) -> Option<&str> {
    url.split_once(':').map(|(s, _)| s)
}

/// Converts a stored count (`i64` on both backends) to `u64`.
pub(crate) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
