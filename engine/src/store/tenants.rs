//! Tenants and their API keys. A key is stored only as a hash; the plain key is shown
//! once, by whoever created it.

use super::{Store, with_db};
use crate::contact::Tenant;
use crate::error::{Error, Result};
use crate::time::{from_millis, now, to_millis};
use crate::{ApiKeyId, TenantId};
use serde::{Deserialize, Serialize};

/// What a tenant's key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiKeyScope {
    /// Everything within its own tenant.
    Tenant,
    /// Supervisors: also the live view and controls (`/admin/...`) of its own tenant's
    /// campaigns and calls. Stored as `admin`, its former name, which is still accepted.
    #[serde(alias = "admin")]
    Supervisor,
}

impl ApiKeyScope {
    /// The name shown to people.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiKeyScope::Tenant => "tenant",
            ApiKeyScope::Supervisor => "supervisor",
        }
    }

    /// The stored name (a supervisor key keeps its former name, `admin`, so that stored
    /// keys need no migration).
    fn stored(self) -> &'static str {
        match self {
            ApiKeyScope::Tenant => "tenant",
            ApiKeyScope::Supervisor => "admin",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "tenant" => Ok(ApiKeyScope::Tenant),
            "admin" | "supervisor" => Ok(ApiKeyScope::Supervisor),
            other => Err(Error::Database(sqlx::Error::Decode(
                format!("unknown key scope {other:?}").into(),
            ))),
        }
    }
}

/// A stored API key (never the key itself).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiKeyRecord {
    /// Id.
    pub id: ApiKeyId,
    /// Owner.
    pub tenant_id: TenantId,
    /// A label for people.
    pub name: String,
    /// The first characters of the key, to recognise it in lists.
    pub prefix: String,
    /// What it may do.
    pub scope: ApiKeyScope,
    /// Created.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Revoked, if it was.
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

type TenantRow = (i64, String, Option<i64>, Option<i64>, i64);
type KeyRow = (i64, i64, String, String, String, i64, Option<i64>);

fn tenant_from_row(
    (id, name, max_running_campaigns, max_concurrent_calls, created_at): TenantRow,
) -> Tenant {
    Tenant {
        id: TenantId(id),
        name,
        max_running_campaigns,
        max_concurrent_calls,
        created_at: from_millis(created_at),
    }
}

fn key_from_row(
    (id, tenant_id, name, prefix, scope, created_at, revoked_at): KeyRow,
) -> Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: ApiKeyId(id),
        tenant_id: TenantId(tenant_id),
        name,
        prefix,
        scope: ApiKeyScope::parse(&scope)?,
        created_at: from_millis(created_at),
        revoked_at: revoked_at.map(from_millis),
    })
}

impl Store {
    /// Creates a tenant.
    pub async fn create_tenant(&self, name: &str) -> Result<Tenant> {
        let name = name.trim();
        if name.is_empty() {
            return Err(Error::invalid("tenant", "name", "must not be empty"));
        }
        let at = to_millis(now());
        let id: i64 = with_db!(self, |pool| {
            sqlx::query_scalar(
                "INSERT INTO tenants (name, created_at) VALUES ($1, $2) RETURNING id",
            )
            .bind(name)
            .bind(at)
            .fetch_one(pool)
            .await
        })?;
        self.tenant(TenantId(id)).await
    }

    /// One tenant.
    pub async fn tenant(&self, id: TenantId) -> Result<Tenant> {
        let row: Option<TenantRow> = with_db!(self, |pool| {
            sqlx::query_as(
                "SELECT id, name, max_running_campaigns, max_concurrent_calls, created_at \
                 FROM tenants WHERE id = $1",
            )
            .bind(id.0)
            .fetch_optional(pool)
            .await
        })?;
        row.map(tenant_from_row)
            .ok_or_else(|| Error::not_found("tenant", id))
    }

    /// Every tenant, by id.
    pub async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        let rows: Vec<TenantRow> = with_db!(self, |pool| {
            sqlx::query_as(
                "SELECT id, name, max_running_campaigns, max_concurrent_calls, created_at \
                 FROM tenants ORDER BY id",
            )
            .fetch_all(pool)
            .await
        })?;
        Ok(rows.into_iter().map(tenant_from_row).collect())
    }

    /// Sets the tenant's limits (`None`: no limit).
    pub async fn set_tenant_limits(
        &self,
        id: TenantId,
        max_running_campaigns: Option<i64>,
        max_concurrent_calls: Option<i64>,
    ) -> Result<Tenant> {
        for (field, v) in [
            ("max_running_campaigns", max_running_campaigns),
            ("max_concurrent_calls", max_concurrent_calls),
        ] {
            if let Some(v) = v.filter(|v| *v < 1) {
                return Err(Error::invalid(
                    "tenant",
                    field,
                    format!("must be at least 1, got {v}"),
                ));
            }
        }
        let n = with_db!(self, |pool| {
            sqlx::query("UPDATE tenants SET max_running_campaigns = $2, max_concurrent_calls = $3 WHERE id = $1")
                .bind(id.0)
                .bind(max_running_campaigns)
                .bind(max_concurrent_calls)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        if n == 0 {
            return Err(Error::not_found("tenant", id));
        }
        self.tenant(id).await
    }

    /// Stores a new API key by its hash. `prefix` is a short, non-secret start of the key.
    pub async fn create_api_key(
        &self,
        tenant: TenantId,
        name: &str,
        prefix: &str,
        key_hash: &str,
        scope: ApiKeyScope,
    ) -> Result<ApiKeyRecord> {
        let at = to_millis(now());
        let id: i64 = with_db!(self, |pool| {
            sqlx::query_scalar(
                "INSERT INTO api_keys (tenant_id, name, prefix, key_hash, scope, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(tenant.0)
            .bind(name)
            .bind(prefix)
            .bind(key_hash)
            .bind(scope.stored())
            .bind(at)
            .fetch_one(pool)
            .await
        })?;
        Ok(ApiKeyRecord {
            id: ApiKeyId(id),
            tenant_id: tenant,
            name: name.to_owned(),
            prefix: prefix.to_owned(),
            scope,
            created_at: from_millis(at),
            revoked_at: None,
        })
    }

    /// The live (not revoked) key with this hash.
    pub async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>> {
        let row: Option<KeyRow> = with_db!(self, |pool| {
            sqlx::query_as(
                "SELECT id, tenant_id, name, prefix, scope, created_at, revoked_at FROM api_keys \
                 WHERE key_hash = $1 AND revoked_at IS NULL",
            )
            .bind(key_hash)
            .fetch_optional(pool)
            .await
        })?;
        row.map(key_from_row).transpose()
    }

    /// Whether the key exists and is not revoked (long-lived streams check it while they
    /// run).
    pub async fn api_key_is_live(&self, id: ApiKeyId) -> Result<bool> {
        let row: Option<(i64,)> = with_db!(self, |pool| {
            sqlx::query_as("SELECT id FROM api_keys WHERE id = $1 AND revoked_at IS NULL")
                .bind(id.0)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.is_some())
    }

    /// The tenant's keys, revoked ones included.
    pub async fn list_api_keys(&self, tenant: TenantId) -> Result<Vec<ApiKeyRecord>> {
        let rows: Vec<KeyRow> = with_db!(self, |pool| {
            sqlx::query_as(
                "SELECT id, tenant_id, name, prefix, scope, created_at, revoked_at FROM api_keys \
                 WHERE tenant_id = $1 ORDER BY id",
            )
            .bind(tenant.0)
            .fetch_all(pool)
            .await
        })?;
        rows.into_iter().map(key_from_row).collect()
    }

    /// Revokes a key; it stops working at once.
    pub async fn revoke_api_key(&self, tenant: TenantId, id: ApiKeyId) -> Result<()> {
        let n = with_db!(self, |pool| {
            sqlx::query(
                "UPDATE api_keys SET revoked_at = $3 WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL",
            )
            .bind(tenant.0)
            .bind(id.0)
            .bind(to_millis(now()))
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        if n == 0 {
            Err(Error::not_found("api key", id))
        } else {
            Ok(())
        }
    }
}
