//! Contact lists: named groups of a tenant's contacts, usable as a campaign audience.

use super::BeginWrite as _;
use super::contacts::{CONTACT_SELECT, ContactRow};
use super::{Store, with_db};
use crate::contact::{Contact, ContactList};
use crate::error::{Error, Result};
use crate::time::{from_millis, now, to_millis};
use crate::{ContactId, ContactListId, TenantId};

type ListRow = (i64, i64, String, i64);

fn list_from_row((id, tenant_id, name, created_at): ListRow) -> ContactList {
    ContactList {
        id: ContactListId(id),
        tenant_id: TenantId(tenant_id),
        name,
        created_at: from_millis(created_at),
    }
}

impl Store {
    /// Creates a list; names are unique within a tenant.
    pub async fn create_list(&self, tenant: TenantId, name: &str) -> Result<ContactList> {
        let name = name.trim();
        if name.is_empty() {
            return Err(Error::invalid("contact list", "name", "must not be empty"));
        }
        let at = to_millis(now());
        let result = with_db!(self, |pool| {
            sqlx::query_scalar::<_, i64>(
                "INSERT INTO contact_lists (tenant_id, name, created_at) VALUES ($1, $2, $3) RETURNING id",
            )
            .bind(tenant.0)
            .bind(name)
            .bind(at)
            .fetch_one(pool)
            .await
        });
        match result {
            Ok(id) => Ok(ContactList {
                id: ContactListId(id),
                tenant_id: tenant,
                name: name.to_owned(),
                created_at: from_millis(at),
            }),
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => Err(Error::Conflict(
                format!("a contact list named {name:?} already exists"),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// One list.
    pub async fn list(&self, tenant: TenantId, id: ContactListId) -> Result<ContactList> {
        let row: Option<ListRow> = with_db!(self, |pool| {
            sqlx::query_as("SELECT id, tenant_id, name, created_at FROM contact_lists WHERE tenant_id = $1 AND id = $2")
                .bind(tenant.0)
                .bind(id.0)
                .fetch_optional(pool)
                .await
        })?;
        row.map(list_from_row)
            .ok_or_else(|| Error::not_found("contact list", id))
    }

    /// The tenant's lists, by id.
    pub async fn lists(&self, tenant: TenantId) -> Result<Vec<ContactList>> {
        let rows: Vec<ListRow> = with_db!(self, |pool| {
            sqlx::query_as("SELECT id, tenant_id, name, created_at FROM contact_lists WHERE tenant_id = $1 ORDER BY id")
                .bind(tenant.0)
                .fetch_all(pool)
                .await
        })?;
        Ok(rows.into_iter().map(list_from_row).collect())
    }

    /// Deletes a list (its contacts stay).
    pub async fn delete_list(&self, tenant: TenantId, id: ContactListId) -> Result<()> {
        let n = with_db!(self, |pool| {
            sqlx::query("DELETE FROM contact_lists WHERE tenant_id = $1 AND id = $2")
                .bind(tenant.0)
                .bind(id.0)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        if n == 0 {
            Err(Error::not_found("contact list", id))
        } else {
            Ok(())
        }
    }

    /// Adds contacts to a list. Every contact must belong to the tenant; if one does not,
    /// nothing is added and the error names it. Returns how many were newly added.
    pub async fn add_to_list(
        &self,
        tenant: TenantId,
        list: ContactListId,
        contacts: &[ContactId],
    ) -> Result<u64> {
        self.list(tenant, list).await?;
        let mut added = 0;
        with_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            for id in contacts {
                let owned: Option<i64> =
                    sqlx::query_scalar("SELECT id FROM contacts WHERE tenant_id = $1 AND id = $2 AND erased_at IS NULL")
                        .bind(tenant.0)
                        .bind(id.0)
                        .fetch_optional(&mut *tx)
                        .await?;
                if owned.is_none() {
                    return Err(Error::not_found("contact", id));
                }
                added += sqlx::query(
                    "INSERT INTO contact_list_members (list_id, contact_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                )
                .bind(list.0)
                .bind(id.0)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            tx.commit().await?;
            Ok::<(), Error>(())
        })?;
        Ok(added)
    }

    /// Removes contacts from a list. Returns how many were members.
    pub async fn remove_from_list(
        &self,
        tenant: TenantId,
        list: ContactListId,
        contacts: &[ContactId],
    ) -> Result<u64> {
        self.list(tenant, list).await?;
        let mut removed = 0;
        with_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            for id in contacts {
                removed += sqlx::query(
                    "DELETE FROM contact_list_members WHERE list_id = $1 AND contact_id = $2",
                )
                .bind(list.0)
                .bind(id.0)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            tx.commit().await
        })?;
        Ok(removed)
    }

    /// The members of a list, by contact id.
    pub async fn list_members(
        &self,
        tenant: TenantId,
        list: ContactListId,
    ) -> Result<Vec<Contact>> {
        self.list(tenant, list).await?;
        let sql = format!(
            "SELECT {CONTACT_SELECT} FROM contacts c JOIN contact_list_members m ON m.contact_id = c.id \
             WHERE c.tenant_id = $1 AND m.list_id = $2 AND c.erased_at IS NULL ORDER BY c.id"
        );
        let rows: Vec<ContactRow> = with_db!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(tenant.0)
                .bind(list.0)
                .fetch_all(pool)
                .await
        })?;
        rows.into_iter().map(ContactRow::into_contact).collect()
    }
}
