//! What only the operator (whoever runs Switchboard) sets: operator keys, which belong to
//! no tenant, and each tenant's LiveKit allowlist. Operator keys have their own table so
//! that no tenant-scoped query can ever meet a key without a tenant.

use super::{Store, with_db};
use crate::campaign::{AgentConfig, LivekitAllowlist};
use crate::error::{Error, Result};
use crate::time::{from_millis, now, to_millis};
use crate::{OperatorKeyId, TenantId};
use serde::Serialize;

/// Most trunk ids, and most agent names, one tenant's LiveKit allowlist holds.
pub const MAX_ALLOWLIST_ENTRIES: usize = 100;

/// Longest trunk id or agent name, in characters.
pub const MAX_ALLOWLIST_CHARS: usize = 128;

/// A trunk id or agent name: not empty, ASCII letters, digits and `_ . : @ / -`.
fn is_identifier(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:@/-".contains(&b))
}

/// A stored operator key (never the key itself).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperatorKeyRecord {
    /// Id.
    pub id: OperatorKeyId,
    /// A label for people (who holds it).
    pub name: String,
    /// The first characters of the key, to recognise it in lists.
    pub prefix: String,
    /// Created.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Revoked, if it was.
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

type OperatorRow = (i64, String, String, i64, Option<i64>);

fn operator_from_row((id, name, prefix, created_at, revoked_at): OperatorRow) -> OperatorKeyRecord {
    OperatorKeyRecord {
        id: OperatorKeyId(id),
        name,
        prefix,
        created_at: from_millis(created_at),
        revoked_at: revoked_at.map(from_millis),
    }
}

const TRUNK: &str = "trunk";
const AGENT_NAME: &str = "agent_name";

impl Store {
    /// Stores a new operator key by its hash. `prefix` is a short, non-secret start of it.
    pub async fn create_operator_key(
        &self,
        name: &str,
        prefix: &str,
        key_hash: &str,
    ) -> Result<OperatorKeyRecord> {
        let name = name.trim();
        if name.is_empty() {
            return Err(Error::invalid("operator key", "name", "must not be empty"));
        }
        let at = to_millis(now());
        let id: i64 = with_db!(self, |pool| {
            sqlx::query_scalar(
                "INSERT INTO operator_keys (name, prefix, key_hash, created_at) \
                 VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(name)
            .bind(prefix)
            .bind(key_hash)
            .bind(at)
            .fetch_one(pool)
            .await
        })?;
        Ok(OperatorKeyRecord {
            id: OperatorKeyId(id),
            name: name.to_owned(),
            prefix: prefix.to_owned(),
            created_at: from_millis(at),
            revoked_at: None,
        })
    }

    /// The live (not revoked) operator key with this hash.
    pub async fn operator_key_by_hash(&self, key_hash: &str) -> Result<Option<OperatorKeyRecord>> {
        let row: Option<OperatorRow> = with_db!(self, |pool| {
            sqlx::query_as(
                "SELECT id, name, prefix, created_at, revoked_at FROM operator_keys \
                 WHERE key_hash = $1 AND revoked_at IS NULL",
            )
            .bind(key_hash)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(operator_from_row))
    }

    /// Whether the operator key exists and is not revoked.
    pub async fn operator_key_is_live(&self, id: OperatorKeyId) -> Result<bool> {
        let row: Option<(i64,)> = with_db!(self, |pool| {
            sqlx::query_as("SELECT id FROM operator_keys WHERE id = $1 AND revoked_at IS NULL")
                .bind(id.0)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.is_some())
    }

    /// Every operator key, revoked ones included, by id.
    pub async fn list_operator_keys(&self) -> Result<Vec<OperatorKeyRecord>> {
        let rows: Vec<OperatorRow> = with_db!(self, |pool| {
            sqlx::query_as(
                "SELECT id, name, prefix, created_at, revoked_at FROM operator_keys ORDER BY id",
            )
            .fetch_all(pool)
            .await
        })?;
        Ok(rows.into_iter().map(operator_from_row).collect())
    }

    /// Revokes an operator key; it stops working at once.
    pub async fn revoke_operator_key(&self, id: OperatorKeyId) -> Result<()> {
        let n = with_db!(self, |pool| {
            sqlx::query(
                "UPDATE operator_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            )
            .bind(id.0)
            .bind(to_millis(now()))
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        if n == 0 {
            Err(Error::not_found("operator key", id))
        } else {
            Ok(())
        }
    }

    /// The LiveKit trunk ids and agent names the tenant may use (empty: none).
    pub async fn livekit_allowlist(&self, tenant: TenantId) -> Result<LivekitAllowlist> {
        let rows: Vec<(String, String)> = with_db!(self, |pool| {
            sqlx::query_as(
                "SELECT kind, value FROM tenant_livekit_allowlist WHERE tenant_id = $1 \
                 ORDER BY kind, value",
            )
            .bind(tenant.0)
            .fetch_all(pool)
            .await
        })?;
        let mut list = LivekitAllowlist::default();
        for (kind, value) in rows {
            match kind.as_str() {
                TRUNK => list.trunks.insert(value),
                _ => list.agent_names.insert(value),
            };
        }
        Ok(list)
    }

    /// Replaces the tenant's LiveKit allowlist, all at once. A blank value is refused.
    pub async fn set_livekit_allowlist(
        &self,
        tenant: TenantId,
        list: &LivekitAllowlist,
    ) -> Result<LivekitAllowlist> {
        for (field, values) in [("trunks", &list.trunks), ("agent_names", &list.agent_names)] {
            if values.len() > MAX_ALLOWLIST_ENTRIES {
                return Err(Error::invalid(
                    "livekit allowlist",
                    field,
                    format!("{} entries: at most {MAX_ALLOWLIST_ENTRIES}", values.len()),
                ));
            }
            if let Some(long) = values
                .iter()
                .find(|v| v.chars().count() > MAX_ALLOWLIST_CHARS)
            {
                return Err(Error::invalid(
                    "livekit allowlist",
                    field,
                    format!(
                        "`{}…` is longer than {MAX_ALLOWLIST_CHARS} characters",
                        long.chars().take(16).collect::<String>()
                    ),
                ));
            }
            if let Some(bad) = values.iter().find(|v| !is_identifier(v)) {
                return Err(Error::invalid(
                    "livekit allowlist",
                    field,
                    format!(
                        "`{bad}`: expected letters, digits and `_ . : @ / -` only (LiveKit ids and agent names)"
                    ),
                ));
            }
        }
        self.tenant(tenant).await?;
        let rows: Vec<(&str, &String)> = list
            .trunks
            .iter()
            .map(|v| (TRUNK, v))
            .chain(list.agent_names.iter().map(|v| (AGENT_NAME, v)))
            .collect();
        with_db!(self, |pool| {
            async {
                let mut tx = pool.begin().await?;
                sqlx::query("DELETE FROM tenant_livekit_allowlist WHERE tenant_id = $1")
                    .bind(tenant.0)
                    .execute(&mut *tx)
                    .await?;
                for (kind, value) in &rows {
                    sqlx::query(
                        "INSERT INTO tenant_livekit_allowlist (tenant_id, kind, value) \
                         VALUES ($1, $2, $3)",
                    )
                    .bind(tenant.0)
                    .bind(*kind)
                    .bind(value.as_str())
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await
            }
            .await
        })?;
        self.livekit_allowlist(tenant).await
    }

    /// Refuses (422, naming `agent.agent_name` / `agent.trunk_id` and the value) an agent
    /// that names a LiveKit trunk or agent name the tenant may not use.
    pub async fn check_livekit_agent(
        &self,
        tenant: TenantId,
        agent: Option<&AgentConfig>,
    ) -> Result<()> {
        if matches!(agent, Some(AgentConfig::MediaStream { .. }) | None) {
            return Ok(());
        }
        let errors = self.livekit_allowlist(tenant).await?.refusals(agent);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid {
                what: "campaign",
                errors,
            })
        }
    }
}
