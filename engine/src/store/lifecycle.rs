//! Campaign status changes: each one checked by the lifecycle, written with its history
//! row and its webhook events in one transaction, and a change to `active` checked
//! against the tenant's `max_running_campaigns` inside that same transaction.
//!
//! The limit check cannot be a read before the write: two starts at once would both read
//! "below the limit" and both activate. Here the count and the write share one
//! transaction that holds the tenant's lock: on PostgreSQL `SELECT ... FOR UPDATE` on the
//! tenant's row, which the other activations of that tenant wait for; on SQLite the
//! write lock `BEGIN IMMEDIATE` takes at the start (one writer at a time).

use super::BeginWrite as _;
use super::{Backend, CampaignRecord, Store, with_db};
use crate::campaign::{CampaignStatus, Cause, Transition, transition};
use crate::error::{Error, Result};
use crate::time::{now, to_millis};
use crate::{CampaignId, TenantId};
use serde_json::Value;
use sqlx::types::Json;

/// What a set of changes came to inside the transaction.
enum Applied {
    Moved,
    Raced,
    OverLimit { max: i64, current: u64 },
}

impl Store {
    /// Moves a campaign to `to`, if the lifecycle allows it from its current status for
    /// this cause (and, to schedule a draft, its configuration is complete), and stores the
    /// change with its reason and figures. The status check and the write are one atomic
    /// step: a concurrent change makes this fail, never both win. A change to `active`
    /// fails with [`Error::LimitReached`] when the tenant already has
    /// `max_running_campaigns` active campaigns.
    pub async fn transition_campaign(
        &self,
        tenant: TenantId,
        id: CampaignId,
        to: CampaignStatus,
        cause: Cause,
        reason: &str,
        detail: Option<Value>,
    ) -> Result<CampaignRecord> {
        let current = self.campaign(tenant, id).await?;
        let change = transition(current.status, to, cause, reason)?;
        if to == CampaignStatus::Scheduled {
            ready_to_schedule(&current)?;
        }
        self.apply_changes(&current, &[change], detail).await
    }

    /// Starts a campaign now: a draft is scheduled (if complete) and activated, a
    /// scheduled one activated, in one transaction with the tenant's limit check, so a
    /// refused start leaves the campaign as it was.
    pub async fn start_campaign(
        &self,
        tenant: TenantId,
        id: CampaignId,
        cause: Cause,
        reason: &str,
    ) -> Result<CampaignRecord> {
        let current = self.campaign(tenant, id).await?;
        let mut changes = Vec::new();
        let mut from = current.status;
        if from == CampaignStatus::Draft {
            ready_to_schedule(&current)?;
            let scheduled = CampaignStatus::Scheduled;
            changes.push(transition(
                from,
                scheduled,
                cause,
                "scheduled to start now",
            )?);
            from = scheduled;
        }
        changes.push(transition(from, CampaignStatus::Active, cause, reason)?);
        self.apply_changes(&current, &changes, None).await
    }

    /// Writes `changes` (consecutive, starting from `current`'s status) in one
    /// transaction: the status, a history row and the webhook events of each.
    async fn apply_changes(
        &self,
        current: &CampaignRecord,
        changes: &[Transition],
        detail: Option<Value>,
    ) -> Result<CampaignRecord> {
        let (Some(first), Some(last)) = (changes.first(), changes.last()) else {
            return Ok(current.clone());
        };
        let (tenant, id) = (current.tenant_id, current.id);
        let at = to_millis(now());
        let payloads: Vec<Value> = changes
            .iter()
            .map(|change| super::outbox::transition_payload(current, change, &detail, at))
            .collect();
        let lock_tenant = match self.backend() {
            Backend::Postgres => {
                "SELECT max_running_campaigns FROM tenants WHERE id = $1 FOR UPDATE"
            }
            // The transaction already holds SQLite's only write lock.
            Backend::Sqlite => "SELECT max_running_campaigns FROM tenants WHERE id = $1",
        };
        let applied = with_db!(self, |pool| {
            async {
            let mut tx = pool.begin_write().await?;
            if last.to == CampaignStatus::Active {
                let max: Option<i64> = sqlx::query_scalar(lock_tenant)
                    .bind(tenant.0)
                    .fetch_one(&mut *tx)
                    .await?;
                if let Some(max) = max {
                    let active: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM campaigns WHERE tenant_id = $1 AND status = 'active'",
                    )
                    .bind(tenant.0)
                    .fetch_one(&mut *tx)
                    .await?;
                    if active >= max {
                        tx.rollback().await?;
                        let current = super::count(active);
                        return Ok::<Applied, Error>(Applied::OverLimit { max, current });
                    }
                }
            }
            let n = sqlx::query(
                "UPDATE campaigns SET status = $3, status_reason = $4, updated_at = $5 \
                 WHERE tenant_id = $1 AND id = $2 AND status = $6",
            )
            .bind(tenant.0)
            .bind(id.0)
            .bind(last.to.as_str())
            .bind(&last.reason)
            .bind(at)
            .bind(first.from.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n != 1 {
                tx.rollback().await?;
                return Ok(Applied::Raced);
            }
            for (change, payload) in changes.iter().zip(&payloads) {
                sqlx::query(
                    "INSERT INTO campaign_transitions (campaign_id, from_status, to_status, cause, reason, detail, at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(id.0)
                .bind(change.from.as_str())
                .bind(change.to.as_str())
                .bind(change.cause.as_str())
                .bind(&change.reason)
                .bind(detail.as_ref().map(Json))
                .bind(at)
                .execute(&mut *tx)
                .await?;
                for event in super::outbox::transition_events(change.to, change.cause) {
                    super::outbox::emit_event!(tx, tenant, event, payload, None::<i64>, at, at)?;
                }
            }
            tx.commit().await?;
            Ok(Applied::Moved)
        }
        .await
        })?;
        match applied {
            Applied::Moved => self.campaign(tenant, id).await,
            Applied::Raced => Err(Error::Conflict(format!(
                "campaign {id} changed status concurrently; it is no longer {}",
                current.status.as_str()
            ))),
            Applied::OverLimit { max, current } => Err(Error::LimitReached {
                limit: "max_running_campaigns",
                max,
                current,
            }),
        }
    }
}

/// Draft → scheduled only when everything a run needs is filled in.
fn ready_to_schedule(campaign: &CampaignRecord) -> Result<()> {
    campaign
        .config
        .readiness()
        .map_err(|errors| Error::Invalid {
            what: "campaign",
            errors,
        })
}
