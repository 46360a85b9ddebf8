//! Contacts: upsert by phone per tenant (single or in bulk), read, search, update, delete.

use super::BeginWrite as _;
use super::{Db, Store, in_write_tx, with_db};
use crate::contact::{Contact, NewContact};
use crate::error::{Error, Result};
use crate::time::{from_millis, now, to_millis};
use crate::{ContactId, ContactListId, E164, TenantId};
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::types::Json;
use std::borrow::Cow;
use std::collections::HashMap;

/// The select list of a contact row for table alias `c`.
pub(crate) const CONTACT_SELECT: &str = "c.id, c.tenant_id, c.phone, c.name, c.email, c.company, \
     c.timezone, c.attributes, c.consent_at, c.opted_out_at, c.created_at, c.updated_at";

/// The condition on contact `c` that leaves erased contacts (tombstones) out.
pub(crate) const LIVE: &str = "c.erased_at IS NULL";

/// A contact as stored.
#[derive(sqlx::FromRow)]
pub(crate) struct ContactRow {
    id: i64,
    tenant_id: i64,
    phone: String,
    name: Option<String>,
    email: Option<String>,
    company: Option<String>,
    timezone: Option<String>,
    attributes: Json<Map<String, Value>>,
    consent_at: Option<i64>,
    opted_out_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl ContactRow {
    /// The domain contact.
    pub(crate) fn into_contact(self) -> Result<Contact> {
        Ok(Contact {
            id: ContactId(self.id),
            tenant_id: TenantId(self.tenant_id),
            phone: E164::from_stored(self.phone)?,
            name: self.name,
            email: self.email,
            company: self.company,
            timezone: self.timezone,
            attributes: self.attributes.0,
            consent_at: self.consent_at.map(from_millis),
            opted_out_at: self.opted_out_at.map(from_millis),
            created_at: from_millis(self.created_at),
            updated_at: from_millis(self.updated_at),
        })
    }
}

/// What a bulk upsert did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UpsertReport {
    /// New contacts.
    pub inserted: u64,
    /// Existing contacts (same phone) that were updated.
    pub updated: u64,
}

impl std::ops::AddAssign for UpsertReport {
    fn add_assign(&mut self, rhs: Self) {
        self.inserted += rhs.inserted;
        self.updated += rhs.updated;
    }
}

/// Which contacts to list.
#[derive(Debug, Clone, Default)]
pub struct ContactFilter {
    /// Case-insensitive substring of name, email, company or phone.
    pub search: Option<String>,
    /// Only contacts with an id greater than this (keyset pagination).
    pub after: Option<ContactId>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<u32>,
}

/// Rows per bulk statement. SQLite allows 32,766 parameters; 11 per row.
const SQLITE_BATCH: usize = 2000;
/// Rows per bulk statement on PostgreSQL (arrays: no parameter limit).
const POSTGRES_BATCH: usize = 10_000;

enum WriterTx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// An open contact upsert transaction; see [`Store::contact_writer`].
pub struct ContactWriter {
    tx: WriterTx,
    tenant: TenantId,
    report: UpsertReport,
    list: Option<ContactListId>,
}

impl ContactWriter {
    /// Also makes every written contact a member of this list (the caller checked it is
    /// the tenant's).
    pub fn adding_to(mut self, list: Option<ContactListId>) -> Self {
        self.list = list;
        self
    }

    /// Upserts a batch within the transaction.
    pub async fn write(&mut self, contacts: &[NewContact]) -> Result<()> {
        let merged = merge_duplicates(contacts);
        match &mut self.tx {
            WriterTx::Sqlite(tx) => {
                for chunk in merged.chunks(SQLITE_BATCH) {
                    self.report += upsert_sqlite(tx, self.tenant, chunk).await?;
                    if let Some(list) = self.list {
                        add_members(super::Conn::Sqlite(tx), self.tenant, list, chunk).await?;
                    }
                }
            }
            WriterTx::Postgres(tx) => {
                for chunk in merged.chunks(POSTGRES_BATCH) {
                    self.report += upsert_postgres(tx, self.tenant, chunk).await?;
                    if let Some(list) = self.list {
                        for part in chunk.chunks(SQLITE_BATCH) {
                            add_members(super::Conn::Postgres(tx), self.tenant, list, part).await?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Commits what was written without reconciling suppressions: for imports that commit
    /// in several transactions, which call [`Store::sync_suppressions`] after the last.
    /// (Dialing checks suppressions by number itself, so a contact written here is never
    /// dialed against its callee's request in between.)
    pub async fn commit_unsynced(self) -> Result<UpsertReport> {
        match self.tx {
            WriterTx::Sqlite(tx) => tx.commit().await?,
            WriterTx::Postgres(tx) => tx.commit().await?,
        }
        Ok(self.report)
    }

    /// What was written so far.
    pub fn report(&self) -> UpsertReport {
        self.report
    }

    /// Makes every batch visible at once.
    pub async fn commit(self) -> Result<UpsertReport> {
        // What callees asked for applies to every written contact with their number.
        match self.tx {
            WriterTx::Sqlite(mut tx) => {
                super::suppressions::sync(super::Conn::Sqlite(&mut tx), self.tenant).await?;
                tx.commit().await?
            }
            WriterTx::Postgres(mut tx) => {
                super::suppressions::sync(super::Conn::Postgres(&mut tx), self.tenant).await?;
                tx.commit().await?
            }
        }
        Ok(self.report)
    }

    /// Discards every batch.
    pub async fn rollback(self) -> Result<()> {
        match self.tx {
            WriterTx::Sqlite(tx) => tx.rollback().await?,
            WriterTx::Postgres(tx) => tx.rollback().await?,
        }
        Ok(())
    }
}

impl Store {
    /// Inserts or updates contacts by phone number within the tenant. A field left empty
    /// in the input keeps its stored value; attributes are merged key by key (the new
    /// value wins); an opt-out is never cleared by an upsert. Rows with the same phone in
    /// one call are merged in order. Runs in one transaction: all rows are stored or none.
    pub async fn upsert_contacts(
        &self,
        tenant: TenantId,
        contacts: &[NewContact],
    ) -> Result<UpsertReport> {
        let mut writer = self.contact_writer(tenant).await?;
        writer.write(contacts).await?;
        writer.commit().await
    }

    /// Opens a transaction that upserts contacts batch by batch (for streaming imports).
    /// Nothing is visible to others until [`ContactWriter::commit`]; dropping the writer
    /// rolls everything back.
    pub async fn contact_writer(&self, tenant: TenantId) -> Result<ContactWriter> {
        let tx = match &self.db {
            Db::Sqlite(pool) => WriterTx::Sqlite(pool.begin_write().await?),
            Db::Postgres(pool) => WriterTx::Postgres(pool.begin().await?),
        };
        Ok(ContactWriter {
            tx,
            tenant,
            report: UpsertReport::default(),
            list: None,
        })
    }

    /// Inserts or updates one contact and returns it as stored.
    pub async fn upsert_contact(&self, tenant: TenantId, contact: &NewContact) -> Result<Contact> {
        self.upsert_contacts(tenant, std::slice::from_ref(contact))
            .await?;
        self.contact_by_phone(tenant, &contact.phone)
            .await?
            .ok_or_else(|| Error::not_found("contact", &contact.phone))
    }

    /// One contact of the tenant.
    pub async fn contact(&self, tenant: TenantId, id: ContactId) -> Result<Contact> {
        let sql = format!(
            "SELECT {CONTACT_SELECT} FROM contacts c WHERE c.tenant_id = $1 AND c.id = $2 AND {LIVE}"
        );
        let row: Option<ContactRow> = with_db!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(tenant.0)
                .bind(id.0)
                .fetch_optional(pool)
                .await
        })?;
        row.ok_or_else(|| Error::not_found("contact", id))?
            .into_contact()
    }

    /// The tenant's contact with this number, if any.
    pub async fn contact_by_phone(
        &self,
        tenant: TenantId,
        phone: &E164,
    ) -> Result<Option<Contact>> {
        let sql = format!(
            "SELECT {CONTACT_SELECT} FROM contacts c WHERE c.tenant_id = $1 AND c.phone = $2 AND {LIVE}"
        );
        let row: Option<ContactRow> = with_db!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(tenant.0)
                .bind(phone.as_str())
                .fetch_optional(pool)
                .await
        })?;
        row.map(ContactRow::into_contact).transpose()
    }

    /// A page of the tenant's contacts, ordered by id.
    pub async fn list_contacts(
        &self,
        tenant: TenantId,
        filter: &ContactFilter,
    ) -> Result<Vec<Contact>> {
        let limit = i64::from(filter.limit.unwrap_or(100).clamp(1, 1000));
        let after = filter.after.map_or(0, |id| id.0);
        let pattern = filter
            .search
            .as_ref()
            .map(|s| format!("%{}%", escape_like(&s.to_lowercase())));
        let sql = format!(
            "SELECT {CONTACT_SELECT} FROM contacts c WHERE c.tenant_id = $1 AND c.id > $2 AND {LIVE} \
             AND ($3 IS NULL OR lower(c.phone) LIKE $3 ESCAPE '\\' OR lower(c.name) LIKE $3 ESCAPE '\\' \
             OR lower(c.email) LIKE $3 ESCAPE '\\' OR lower(c.company) LIKE $3 ESCAPE '\\') \
             ORDER BY c.id LIMIT $4"
        );
        let rows: Vec<ContactRow> = with_db!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(tenant.0)
                .bind(after)
                .bind(pattern)
                .bind(limit)
                .fetch_all(pool)
                .await
        })?;
        rows.into_iter().map(ContactRow::into_contact).collect()
    }

    /// How many contacts the tenant has.
    pub async fn count_contacts(&self, tenant: TenantId) -> Result<u64> {
        let n: i64 = with_db!(self, |pool| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM contacts WHERE tenant_id = $1 AND erased_at IS NULL",
            )
            .bind(tenant.0)
            .fetch_one(pool)
            .await
        })?;
        Ok(super::count(n))
    }

    /// Records opted-out contacts as suppressions and opts out contacts of suppressed
    /// numbers (see `suppressions`).
    pub async fn sync_suppressions(&self, tenant: TenantId) -> Result<()> {
        in_write_tx!(self, |conn| super::suppressions::sync(conn, tenant).await)
    }

    /// Replaces every field of a contact (the phone may change, to a number not yet used).
    /// An opt-out is kept when the input has none: only removing the number's suppression
    /// makes it callable again.
    pub async fn update_contact(
        &self,
        tenant: TenantId,
        id: ContactId,
        contact: &NewContact,
    ) -> Result<Contact> {
        let result = with_db!(self, |pool| {
            sqlx::query(
                "UPDATE contacts SET phone = $3, name = $4, email = $5, company = $6, timezone = $7, \
                 attributes = $8, consent_at = $9, opted_out_at = COALESCE($10, opted_out_at), updated_at = $11 \
                 WHERE tenant_id = $1 AND id = $2 AND erased_at IS NULL",
            )
            .bind(tenant.0)
            .bind(id.0)
            .bind(contact.phone.as_str())
            .bind(contact.name.as_deref())
            .bind(contact.email.as_deref())
            .bind(contact.company.as_deref())
            .bind(contact.timezone.as_deref())
            .bind(Json(&contact.attributes))
            .bind(contact.consent_at.map(to_millis))
            .bind(contact.opted_out_at.map(to_millis))
            .bind(to_millis(now()))
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        });
        match result {
            Ok(0) => Err(Error::not_found("contact", id)),
            Ok(_) => {
                self.sync_suppressions(tenant).await?;
                self.contact(tenant, id).await
            }
            Err(e) if is_unique_violation(&e) => Err(Error::Conflict(format!(
                "another contact already has phone {}",
                contact.phone
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Records that a contact opted out (or clears it with `None`).
    pub async fn set_opted_out(
        &self,
        tenant: TenantId,
        id: ContactId,
        at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<()> {
        let stamp = to_millis(now());
        let n = with_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let before: Option<(String, Option<i64>)> = sqlx::query_as(
                "SELECT phone, opted_out_at FROM contacts WHERE tenant_id = $1 AND id = $2 AND erased_at IS NULL",
            )
            .bind(tenant.0)
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await?;
            let n = sqlx::query("UPDATE contacts SET opted_out_at = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2 AND erased_at IS NULL")
                .bind(tenant.0)
                .bind(id.0)
                .bind(at.map(to_millis))
                .bind(stamp)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if let (Some((phone, None)), Some(at)) = (&before, at.map(to_millis)) {
                let payload = super::outbox::opt_out_payload(id, phone, at, "api", None);
                let event = crate::webhook::WebhookEvent::ContactOptedOut;
                super::outbox::emit_event!(tx, tenant, event, &payload, None::<i64>, stamp, stamp)?;
            }
            tx.commit().await?;
            Ok::<u64, sqlx::Error>(n)
        })?;
        if n == 0 {
            Err(Error::not_found("contact", id))
        } else {
            self.sync_suppressions(tenant).await
        }
    }

    /// Deletes a contact. Its call history goes with it.
    pub async fn delete_contact(&self, tenant: TenantId, id: ContactId) -> Result<()> {
        let n = with_db!(self, |pool| {
            sqlx::query(
                "DELETE FROM contacts WHERE tenant_id = $1 AND id = $2 AND erased_at IS NULL",
            )
            .bind(tenant.0)
            .bind(id.0)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        if n == 0 {
            Err(Error::not_found("contact", id))
        } else {
            Ok(())
        }
    }
}

/// Merges rows that share a phone number, in order, so one statement never touches a row
/// twice (PostgreSQL refuses that in `ON CONFLICT DO UPDATE`).
fn merge_duplicates(contacts: &[NewContact]) -> Cow<'_, [NewContact]> {
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(contacts.len());
    let has_duplicates = contacts
        .iter()
        .any(|c| index.insert(c.phone.as_str(), 0).is_some());
    if !has_duplicates {
        return Cow::Borrowed(contacts);
    }
    index.clear();
    let mut out: Vec<NewContact> = Vec::with_capacity(contacts.len());
    for c in contacts {
        match index.get(c.phone.as_str()) {
            Some(&i) => merge_into(&mut out[i], c),
            None => {
                index.insert(c.phone.as_str(), out.len());
                out.push(c.clone());
            }
        }
    }
    Cow::Owned(out)
}

fn merge_into(into: &mut NewContact, from: &NewContact) {
    fn take(into: &mut Option<String>, from: &Option<String>) {
        if from.is_some() {
            into.clone_from(from);
        }
    }
    take(&mut into.name, &from.name);
    take(&mut into.email, &from.email);
    take(&mut into.company, &from.company);
    take(&mut into.timezone, &from.timezone);
    into.consent_at = from.consent_at.or(into.consent_at);
    into.opted_out_at = from.opted_out_at.or(into.opted_out_at);
    for (k, v) in &from.attributes {
        into.attributes.insert(k.clone(), v.clone());
    }
}

async fn upsert_sqlite(
    tx: &mut sqlx::SqliteConnection,
    tenant: TenantId,
    chunk: &[NewContact],
) -> Result<UpsertReport> {
    // Existing attributes, merged here so that both backends merge the same way
    // (shallow, the new value wins, null values kept).
    let mut select = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
        "SELECT phone, attributes FROM contacts WHERE tenant_id = ",
    );
    select.push_bind(tenant.0).push(" AND phone IN (");
    let mut list = select.separated(", ");
    for c in chunk {
        list.push_bind(c.phone.as_str());
    }
    select.push(")");
    let existing: Vec<(String, Json<Map<String, Value>>)> =
        select.build_query_as().fetch_all(&mut *tx).await?;
    let existing: HashMap<String, Map<String, Value>> =
        existing.into_iter().map(|(p, a)| (p, a.0)).collect();

    let now = to_millis(now());
    let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
        "INSERT INTO contacts (tenant_id, phone, name, email, company, timezone, attributes, \
         consent_at, opted_out_at, created_at, updated_at) ",
    );
    insert.push_values(chunk, |mut row, c| {
        let attributes = match existing.get(c.phone.as_str()) {
            Some(old) => {
                let mut merged = old.clone();
                merged.extend(c.attributes.iter().map(|(k, v)| (k.clone(), v.clone())));
                merged
            }
            None => c.attributes.clone(),
        };
        row.push_bind(tenant.0)
            .push_bind(c.phone.as_str())
            .push_bind(c.name.as_deref())
            .push_bind(c.email.as_deref())
            .push_bind(c.company.as_deref())
            .push_bind(c.timezone.as_deref())
            .push_bind(Json(attributes))
            .push_bind(c.consent_at.map(to_millis))
            .push_bind(c.opted_out_at.map(to_millis))
            .push_bind(now)
            .push_bind(now);
    });
    insert.push(
        " ON CONFLICT (tenant_id, phone) DO UPDATE SET \
         name = COALESCE(excluded.name, contacts.name), \
         email = COALESCE(excluded.email, contacts.email), \
         company = COALESCE(excluded.company, contacts.company), \
         timezone = COALESCE(excluded.timezone, contacts.timezone), \
         attributes = excluded.attributes, \
         consent_at = COALESCE(excluded.consent_at, contacts.consent_at), \
         opted_out_at = COALESCE(excluded.opted_out_at, contacts.opted_out_at), \
         updated_at = excluded.updated_at",
    );
    insert.build().execute(&mut *tx).await?;
    let updated = existing.len() as u64;
    Ok(UpsertReport {
        inserted: chunk.len() as u64 - updated,
        updated,
    })
}

async fn upsert_postgres(
    tx: &mut sqlx::PgConnection,
    tenant: TenantId,
    chunk: &[NewContact],
) -> Result<UpsertReport> {
    let n = chunk.len();
    let mut phones = Vec::with_capacity(n);
    let mut names = Vec::with_capacity(n);
    let mut emails = Vec::with_capacity(n);
    let mut companies = Vec::with_capacity(n);
    let mut timezones = Vec::with_capacity(n);
    let mut attributes = Vec::with_capacity(n);
    let mut consents = Vec::with_capacity(n);
    let mut opt_outs = Vec::with_capacity(n);
    for c in chunk {
        phones.push(c.phone.as_str());
        names.push(c.name.as_deref());
        emails.push(c.email.as_deref());
        companies.push(c.company.as_deref());
        timezones.push(c.timezone.as_deref());
        attributes.push(serde_json::to_string(&c.attributes).unwrap_or_else(|_| "{}".to_owned()));
        consents.push(c.consent_at.map(to_millis));
        opt_outs.push(c.opted_out_at.map(to_millis));
    }
    let (inserted, total): (i64, i64) = sqlx::query_as(
        "WITH upserted AS ( \
           INSERT INTO contacts (tenant_id, phone, name, email, company, timezone, attributes, \
                                 consent_at, opted_out_at, created_at, updated_at) \
           SELECT $1, t.phone, t.name, t.email, t.company, t.timezone, t.attributes::jsonb, \
                  t.consent_at, t.opted_out_at, $2, $2 \
           FROM UNNEST($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], \
                       $9::int8[], $10::int8[]) \
                AS t(phone, name, email, company, timezone, attributes, consent_at, opted_out_at) \
           ON CONFLICT (tenant_id, phone) DO UPDATE SET \
             name = COALESCE(EXCLUDED.name, contacts.name), \
             email = COALESCE(EXCLUDED.email, contacts.email), \
             company = COALESCE(EXCLUDED.company, contacts.company), \
             timezone = COALESCE(EXCLUDED.timezone, contacts.timezone), \
             attributes = contacts.attributes || EXCLUDED.attributes, \
             consent_at = COALESCE(EXCLUDED.consent_at, contacts.consent_at), \
             opted_out_at = COALESCE(EXCLUDED.opted_out_at, contacts.opted_out_at), \
             updated_at = EXCLUDED.updated_at \
           RETURNING (xmax = 0) AS inserted) \
         SELECT COUNT(*) FILTER (WHERE inserted), COUNT(*) FROM upserted",
    )
    .bind(tenant.0)
    .bind(to_millis(now()))
    .bind(phones)
    .bind(names)
    .bind(emails)
    .bind(companies)
    .bind(timezones)
    .bind(attributes)
    .bind(consents)
    .bind(opt_outs)
    .fetch_one(&mut *tx)
    .await?;
    Ok(UpsertReport {
        inserted: super::count(inserted),
        updated: super::count(total - inserted),
    })
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// Escapes `%`, `_` and `\` for a LIKE pattern with `ESCAPE '\'`.
fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

impl Store {
    /// Every attribute key used by the tenant's contacts, sorted.
    pub async fn contact_attribute_keys(&self, tenant: TenantId) -> Result<Vec<String>> {
        let keys: Vec<String> = match &self.db {
            Db::Sqlite(pool) => {
                sqlx::query_scalar(
                    "SELECT DISTINCT j.key FROM contacts c, json_each(c.attributes) j \
                     WHERE c.tenant_id = $1 AND c.erased_at IS NULL ORDER BY j.key",
                )
                .bind(tenant.0)
                .fetch_all(pool)
                .await?
            }
            Db::Postgres(pool) => sqlx::query_scalar(
                "SELECT k FROM (SELECT DISTINCT jsonb_object_keys(attributes) AS k FROM contacts \
                     WHERE tenant_id = $1) keys ORDER BY k COLLATE \"C\"",
            )
            .bind(tenant.0)
            .fetch_all(pool)
            .await?,
        };
        Ok(keys)
    }
}

/// Adds the tenant's contacts with these numbers to the list (members already are kept).
async fn add_members(
    conn: super::Conn<'_>,
    tenant: TenantId,
    list: ContactListId,
    contacts: &[NewContact],
) -> Result<()> {
    if contacts.is_empty() {
        return Ok(());
    }
    let placeholders: Vec<String> = (0..contacts.len()).map(|i| format!("${}", i + 3)).collect();
    let sql = format!(
        "INSERT INTO contact_list_members (list_id, contact_id) \
         SELECT $1, id FROM contacts WHERE tenant_id = $2 AND phone IN ({}) \
         ON CONFLICT DO NOTHING",
        placeholders.join(", ")
    );
    super::with_conn!(conn, |c| {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(list.0)
            .bind(tenant.0);
        for contact in contacts {
            query = query.bind(contact.phone.as_str());
        }
        query.execute(&mut *c).await?;
    });
    Ok(())
}
