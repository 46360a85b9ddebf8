//! Server-wide settings kept in the database, shared by every Switchboard process.

use super::BeginWrite as _;
use super::{Store, with_db};
use crate::error::Result;
use crate::time::{now, to_millis};

impl Store {
    /// The value of a server setting, created from `init` the first time it is asked
    /// for. Concurrent first calls (even from several processes) all get the same value.
    pub async fn server_setting_or_init(
        &self,
        key: &str,
        init: impl FnOnce() -> String,
    ) -> Result<String> {
        let candidate = init();
        let value: String = with_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO server_settings (key, value, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO NOTHING",
            )
            .bind(key)
            .bind(&candidate)
            .bind(to_millis(now()))
            .execute(&mut *tx)
            .await?;
            let value = sqlx::query_scalar("SELECT value FROM server_settings WHERE key = $1")
                .bind(key)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<String, sqlx::Error>(value)
        })?;
        Ok(value)
    }
}
