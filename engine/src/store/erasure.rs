//! Erasure of a contact: its personal data goes, its calls stay as anonymous counts, and
//! what its callee asked for stays in force under a keyed hash of the number.
//!
//! The contact's row is kept as a tombstone (`erased_at` set, phone `erased:<id>`, every
//! personal field cleared) because its calls refer to it and count in their campaigns'
//! figures; every contact read skips it. Its calls lose their number, their free text
//! (notes, transcripts, error messages) and their events' data; their times, statuses,
//! results and outcomes stay. Webhook deliveries about it lose the number they carried.
//!
//! A suppression of the number (or an exact do-not-call entry for it) is kept, re-keyed by
//! [`Store::phone_hash`]: HMAC-SHA256 over tenant and number with a server secret kept in
//! the database (`erasure_hash_key`). Its history is re-keyed the same way and records the
//! erasure. [`Store::suppression`] matches a number or its hash, so a number imported again
//! after its contact was erased is still never dialed. The hash hides the number from
//! someone reading the tables; it does not resist someone who holds the whole database and
//! tries every number (a phone number has few digits).

use super::{Backend, Conn, Store, in_write_tx, with_conn};
use crate::error::{Error, Result};
use crate::time::{from_millis, now, to_millis};
use crate::{ContactId, TenantId};
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::Sha256;
use sqlx::types::Json;
use std::sync::Arc;

/// The server setting that holds the key numbers are hashed with.
pub const HASH_KEY_SETTING: &str = "erasure_hash_key";

/// How a hashed number is stored: this prefix, then 64 hex digits (never an E.164 number).
pub const HASH_PREFIX: &str = "hmac-sha256:";

/// Keys of an attempt's detail that an erasure keeps: figures the campaign statistics
/// read, none of them about the person. Everything else (notes, transcript, error text
/// that may quote the number) goes.
const KEPT_DETAIL: [&str; 7] = [
    "answered_by",
    "abandoned",
    "abandonment_basis",
    "machine_detection_ms",
    "sip_status_code",
    "retryable",
    "agent_joined_at",
];

/// The hash key, loaded from the database on first use and shared by the store's clones.
#[derive(Clone, Default)]
pub(crate) struct HashKey(Arc<tokio::sync::OnceCell<Vec<u8>>>);

impl std::fmt::Debug for HashKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HashKey(..)")
    }
}

/// What an erasure did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErasureReport {
    /// The contact erased.
    pub contact_id: ContactId,
    /// When.
    pub erased_at: DateTime<Utc>,
    /// Its calls, kept without personal data.
    pub calls_anonymized: u64,
    /// Whether the number was suppressed (or on the do-not-call list): the suppression is
    /// kept under the number's hash.
    pub suppression_kept: bool,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The stored form of `phone`'s hash for `tenant` under `key`.
fn hash_with(key: &[u8], tenant: TenantId, phone: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(tenant.0.to_string().as_bytes());
    mac.update(b":");
    mac.update(phone.as_bytes());
    format!("{HASH_PREFIX}{}", hex(&mac.finalize().into_bytes()))
}

/// An attempt's detail without the keys an erasure drops.
fn kept_detail(detail: Map<String, Value>) -> Map<String, Value> {
    detail
        .into_iter()
        .filter(|(k, _)| KEPT_DETAIL.contains(&k.as_str()))
        .collect()
}

impl Store {
    async fn hash_key(&self) -> Result<&[u8]> {
        let key = self
            .hash_key
            .0
            .get_or_try_init(|| async {
                let mut bytes = [0u8; 32];
                getrandom::fill(&mut bytes).map_err(|e| {
                    Error::Database(sqlx::Error::Io(std::io::Error::other(format!(
                        "the operating system's random source failed: {e}"
                    ))))
                })?;
                let stored = self
                    .server_setting_or_init(HASH_KEY_SETTING, || hex(&bytes))
                    .await?;
                Ok::<_, Error>(stored.into_bytes())
            })
            .await?;
        Ok(key)
    }

    /// The keyed hash an erased number is kept under (`hmac-sha256:` and 64 hex digits),
    /// scoped to the tenant.
    pub async fn phone_hash(&self, tenant: TenantId, phone: &str) -> Result<String> {
        Ok(hash_with(self.hash_key().await?, tenant, phone))
    }

    /// Erases a contact's personal data (see the module doc), recording who did it and why.
    /// Not found when the contact does not exist or was already erased; a conflict while it
    /// has a live call (or one whose end its campaign has not settled yet): erase it once the
    /// call is over. All or nothing.
    pub async fn erase_contact(
        &self,
        tenant: TenantId,
        id: ContactId,
        actor: &str,
        reason: &str,
    ) -> Result<ErasureReport> {
        let key = self.hash_key().await?.to_vec();
        let at = to_millis(now());
        in_write_tx!(self, |conn| erase(
            conn, &key, tenant, id, actor, reason, at
        )
        .await)
    }
}

async fn erase(
    conn: Conn<'_>,
    key: &[u8],
    tenant: TenantId,
    id: ContactId,
    actor: &str,
    reason: &str,
    at: i64,
) -> Result<ErasureReport> {
    let backend = conn.backend();
    let copy_events = match backend {
        Backend::Sqlite => {
            "INSERT INTO call_events (attempt_id, at, kind, data) \
             SELECT e.attempt_id, e.at, e.kind, '{}' FROM call_events e \
             JOIN call_attempts a ON a.id = e.attempt_id WHERE a.contact_id = $1 ORDER BY e.id"
        }
        Backend::Postgres => {
            "INSERT INTO call_events (attempt_id, at, kind, data) \
             SELECT e.attempt_id, e.at, e.kind, '{}'::jsonb FROM call_events e \
             JOIN call_attempts a ON a.id = e.attempt_id WHERE a.contact_id = $1 ORDER BY e.id"
        }
    };
    let redact_payloads = match backend {
        Backend::Sqlite => {
            "UPDATE webhook_deliveries SET payload = json_set(payload, '$.phone', NULL) \
             WHERE tenant_id = $1 AND json_extract(payload, '$.contact_id') = $2 \
             AND json_type(payload, '$.phone') IS NOT NULL"
        }
        Backend::Postgres => {
            "UPDATE webhook_deliveries SET payload = jsonb_set(payload, '{phone}', 'null'::jsonb) \
             WHERE tenant_id = $1 AND payload->>'contact_id' = $2::bigint::text \
             AND payload ? 'phone'"
        }
    };
    with_conn!(conn, |c| {
        let phone: Option<String> = sqlx::query_scalar(
            "SELECT phone FROM contacts WHERE tenant_id = $1 AND id = $2 AND erased_at IS NULL",
        )
        .bind(tenant.0)
        .bind(id.0)
        .fetch_optional(&mut *c)
        .await?;
        let Some(phone) = phone else {
            return Err(Error::not_found("contact", id));
        };
        // Out of every queue first: a reservation racing with this erasure either committed
        // before (its call is live: refused below) or finds its queue entry done.
        sqlx::query(
            "UPDATE campaign_contacts SET state = 'done', last_result = 'erased' \
             WHERE contact_id = $1 AND state = 'queued'",
        )
        .bind(id.0)
        .execute(&mut *c)
        .await?;
        let (live, unsettled): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM call_attempts WHERE contact_id = $1 AND status <> 'ended'), \
                    (SELECT COUNT(*) FROM campaign_contacts WHERE contact_id = $1 AND state = 'in_progress')",
        )
        .bind(id.0)
        .fetch_one(&mut *c)
        .await?;
        if live > 0 || unsettled > 0 {
            return Err(Error::Conflict(format!(
                "contact {id} has a call in progress; erase it once the call has ended"
            )));
        }
        let hash = hash_with(key, tenant, &phone);

        // What the callee asked for stays, under the hash.
        let (plain, hashed, listed): (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM suppressions WHERE tenant_id = $1 AND phone = $2), \
                    (SELECT COUNT(*) FROM suppressions WHERE tenant_id = $1 AND phone = $3), \
                    (SELECT COUNT(*) FROM dnc_entries WHERE tenant_id = $1 AND kind = 'exact' AND pattern = $2)",
        )
        .bind(tenant.0)
        .bind(&phone)
        .bind(&hash)
        .fetch_one(&mut *c)
        .await?;
        if plain > 0 && hashed > 0 {
            sqlx::query("DELETE FROM suppressions WHERE tenant_id = $1 AND phone = $2")
                .bind(tenant.0)
                .bind(&phone)
                .execute(&mut *c)
                .await?;
        } else if plain > 0 {
            sqlx::query("UPDATE suppressions SET phone = $3 WHERE tenant_id = $1 AND phone = $2")
                .bind(tenant.0)
                .bind(&phone)
                .bind(&hash)
                .execute(&mut *c)
                .await?;
        } else if listed > 0 && hashed == 0 {
            let why = "on the do-not-call list when its contact was erased";
            sqlx::query(
                "INSERT INTO suppressions (tenant_id, phone, source, reason, requested_by, created_at) \
                 VALUES ($1, $2, 'dnc', $3, $4, $5)",
            )
            .bind(tenant.0)
            .bind(&hash)
            .bind(why)
            .bind(actor)
            .bind(at)
            .execute(&mut *c)
            .await?;
            sqlx::query(
                "INSERT INTO suppression_events (tenant_id, phone, action, source, actor, reason, at) \
                 VALUES ($1, $2, 'added', 'dnc', $3, $4, $5)",
            )
            .bind(tenant.0)
            .bind(&hash)
            .bind(actor)
            .bind(why)
            .bind(at)
            .execute(&mut *c)
            .await?;
        }
        sqlx::query("UPDATE suppression_events SET phone = $3 WHERE tenant_id = $1 AND phone = $2")
            .bind(tenant.0)
            .bind(&phone)
            .bind(&hash)
            .execute(&mut *c)
            .await?;
        let suppressed = plain > 0 || hashed > 0 || listed > 0;
        if suppressed {
            sqlx::query(
                "INSERT INTO suppression_events (tenant_id, phone, action, source, actor, reason, at) \
                 VALUES ($1, $2, 'erased', 'api', $3, $4, $5)",
            )
            .bind(tenant.0)
            .bind(&hash)
            .bind(actor)
            .bind(reason)
            .bind(at)
            .execute(&mut *c)
            .await?;
        }
        sqlx::query(
            "DELETE FROM dnc_entries WHERE tenant_id = $1 AND kind = 'exact' AND pattern = $2",
        )
        .bind(tenant.0)
        .bind(&phone)
        .execute(&mut *c)
        .await?;

        // The contact becomes a tombstone, out of every list. Another erasure of it that
        // committed meanwhile leaves nothing to do here.
        let n = sqlx::query(
            "UPDATE contacts SET phone = $3, name = NULL, email = NULL, company = NULL, \
             timezone = NULL, attributes = $4, consent_at = NULL, opted_out_at = NULL, \
             erased_at = $5, updated_at = $5 WHERE tenant_id = $1 AND id = $2 AND erased_at IS NULL",
        )
        .bind(tenant.0)
        .bind(id.0)
        .bind(format!("erased:{id}"))
        .bind(Json(Map::new()))
        .bind(at)
        .execute(&mut *c)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(Error::not_found("contact", id));
        }
        sqlx::query("DELETE FROM contact_list_members WHERE contact_id = $1")
            .bind(id.0)
            .execute(&mut *c)
            .await?;

        // Its calls keep their figures, not what was said or the number.
        let attempts: Vec<(i64, Json<Map<String, Value>>)> = sqlx::query_as(
            "SELECT id, detail FROM call_attempts WHERE contact_id = $1 ORDER BY id",
        )
        .bind(id.0)
        .fetch_all(&mut *c)
        .await?;
        for (attempt, detail) in &attempts {
            sqlx::query("UPDATE call_attempts SET phone = '', detail = $2 WHERE id = $1")
                .bind(attempt)
                .bind(Json(kept_detail(detail.0.clone())))
                .execute(&mut *c)
                .await?;
        }
        // Call events are append-only: their data goes by replacing each event with a copy
        // that keeps its call, time and kind (what the statistics count).
        let last: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM call_events")
            .fetch_one(&mut *c)
            .await?;
        sqlx::query(copy_events).bind(id.0).execute(&mut *c).await?;
        sqlx::query(
            "DELETE FROM call_events WHERE id <= $2 AND attempt_id IN \
             (SELECT id FROM call_attempts WHERE contact_id = $1)",
        )
        .bind(id.0)
        .bind(last.unwrap_or(0))
        .execute(&mut *c)
        .await?;
        sqlx::query(redact_payloads)
            .bind(tenant.0)
            .bind(id.0)
            .execute(&mut *c)
            .await?;

        sqlx::query(
            "INSERT INTO contact_erasures (tenant_id, contact_id, phone_hash, actor, reason, attempts, suppressed, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(tenant.0)
        .bind(id.0)
        .bind(&hash)
        .bind(actor)
        .bind(reason)
        .bind(attempts.len() as i64)
        .bind(suppressed)
        .bind(at)
        .execute(&mut *c)
        .await?;
        Ok(ErasureReport {
            contact_id: id,
            erased_at: from_millis(at),
            calls_anonymized: attempts.len() as u64,
            suppression_kept: suppressed,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_per_tenant_and_key_and_never_a_number() {
        let a = hash_with(b"k1", TenantId(1), "+14155550001");
        assert!(a.starts_with(HASH_PREFIX) && a.len() == HASH_PREFIX.len() + 64);
        assert!(!a.contains("4155550001"));
        assert_eq!(a, hash_with(b"k1", TenantId(1), "+14155550001"));
        assert_ne!(a, hash_with(b"k1", TenantId(2), "+14155550001"));
        assert_ne!(a, hash_with(b"k2", TenantId(1), "+14155550001"));
    }

    #[test]
    fn an_erased_calls_detail_keeps_only_its_figures() {
        let detail = serde_json::json!({
            "answered_by": "human", "abandoned": false, "notes": "Ann asked",
            "transcript": [{"text": "hi Ann"}], "dial_error": "+14155550001 unreachable"
        });
        let kept = kept_detail(detail.as_object().unwrap().clone());
        assert_eq!(
            Value::Object(kept),
            serde_json::json!({"answered_by": "human", "abandoned": false})
        );
    }
}
