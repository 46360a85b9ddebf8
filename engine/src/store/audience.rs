//! Audience queries evaluated by the database: how many contacts match, a sample of them,
//! and their ids. Opt-outs and the do-not-call list are applied later, before dialing.
//!
//! The statements are not kept prepared (`persistent(false)`): PostgreSQL then plans each
//! one for its actual jsonpath. A cached generic plan cannot see the jsonpath, and may
//! pick a full scan of the GIN index for a range test (seconds instead of milliseconds
//! over a million contacts).

use super::contacts::{CONTACT_SELECT, ContactRow};
use super::{Store, with_db};
use crate::audience::{Query, compile};
use crate::contact::Contact;
use crate::error::Result;
use crate::{ContactId, TenantId};

impl Store {
    /// How many of the tenant's contacts match the query.
    pub async fn audience_count(&self, tenant: TenantId, query: &Query) -> Result<u64> {
        let filter = compile(query, self.backend(), 2);
        let sql = format!(
            "SELECT COUNT(*) FROM contacts c WHERE c.tenant_id = $1 AND c.erased_at IS NULL AND ({})",
            filter.sql
        );
        let n: i64 = with_db!(self, |pool| {
            let query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .persistent(false)
                .bind(tenant.0);
            super::bind_sql_params!(query, filter.params)
                .fetch_one(pool)
                .await
        })?;
        Ok(super::count(n))
    }

    /// The first `limit` matching contacts of the tenant, ordered by id.
    pub async fn audience_sample(
        &self,
        tenant: TenantId,
        query: &Query,
        limit: u32,
    ) -> Result<Vec<Contact>> {
        let filter = compile(query, self.backend(), 3);
        let sql = format!(
            "SELECT {CONTACT_SELECT} FROM contacts c WHERE c.tenant_id = $1 AND c.erased_at IS NULL AND ({}) \
             ORDER BY c.id LIMIT $2",
            filter.sql
        );
        let rows: Vec<ContactRow> = with_db!(self, |pool| {
            let query = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .persistent(false)
                .bind(tenant.0)
                .bind(i64::from(limit));
            super::bind_sql_params!(query, filter.params)
                .fetch_all(pool)
                .await
        })?;
        rows.into_iter().map(ContactRow::into_contact).collect()
    }

    /// The ids of every matching contact of the tenant, in order.
    pub async fn audience_contact_ids(
        &self,
        tenant: TenantId,
        query: &Query,
    ) -> Result<Vec<ContactId>> {
        let filter = compile(query, self.backend(), 2);
        let sql = format!(
            "SELECT c.id FROM contacts c WHERE c.tenant_id = $1 AND c.erased_at IS NULL AND ({}) ORDER BY c.id",
            filter.sql
        );
        let ids: Vec<i64> = with_db!(self, |pool| {
            let query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .persistent(false)
                .bind(tenant.0);
            super::bind_sql_params!(query, filter.params)
                .fetch_all(pool)
                .await
        })?;
        Ok(ids.into_iter().map(ContactId).collect())
    }
}
