//! A campaign's call history as operators see it: attempts filtered and paged newest
//! first, and the figures behind a campaign's status (answer, connect, success and
//! abandonment counts, billed minutes).

use super::attempts::{ATTEMPT_SELECT, AttemptRow, AttemptStatus};
use super::{Backend, Store, with_db};
use crate::error::Result;
use crate::time::{now, to_millis};
use crate::{AttemptId, CampaignId, TenantId};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// Which attempts of a campaign to list.
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    /// Only attempts in this status.
    pub status: Option<AttemptStatus>,
    /// Only attempts with this agent outcome (`interested`, ...).
    pub outcome: Option<String>,
    /// Only attempts with this end result (`completed`, `no_answer`, `busy`, ...).
    pub result: Option<String>,
    /// Only attempts reserved at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only attempts reserved before this time.
    pub until: Option<DateTime<Utc>>,
    /// Only attempts with an id lower than this (keyset pagination, newest first).
    pub before: Option<AttemptId>,
    /// At most this many (default 50, at most 1000).
    pub limit: Option<u32>,
}

/// A campaign's attempts in figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CallStats {
    /// Attempts reserved.
    pub attempts: u64,
    /// Attempts over.
    pub ended: u64,
    /// Attempts answered (by a person or a machine).
    pub answered: u64,
    /// Attempts that reached the agent.
    pub connected: u64,
    /// Attempts answered by a person whose agent was not heard within 2 seconds (the
    /// runtime's verdict, once it judged the call).
    pub abandoned: u64,
    /// Answered attempts with a person on the line (`answered_by` human or unknown).
    pub answered_by_person: u64,
    /// Minutes billed: each answered call's duration from answer to end, rounded up to the
    /// whole minute, summed.
    pub billed_minutes: u64,
    /// Attempts per agent outcome.
    pub outcomes: BTreeMap<String, u64>,
    /// Ended attempts per result.
    pub results: BTreeMap<String, u64>,
}

/// How long an answered person may wait for the agent before the call counts as abandoned.
pub const ABANDON_AFTER_MS: i64 = 2000;

/// SQL over attempt `a`: a person is on the line (`answered_by` human, or no detection).
pub(super) fn person_sql(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "COALESCE(json_extract(a.detail, '$.answered_by'), 'human') = 'human'",
        Backend::Postgres => "COALESCE(a.detail->>'answered_by', 'human') = 'human'",
    }
}

/// SQL over attempt `a`: a person answered and was abandoned. The runtime's verdict
/// (`detail.abandoned`) once it judged the call; before that, once [`ABANDON_AFTER_MS`]
/// have passed since the answer (`settled`: the parameter holding now minus that), no
/// agent audio (`agent.first_audio`) within them.
pub(super) fn abandoned_sql(backend: Backend, settled: &str) -> String {
    let (abandoned, unjudged) = match backend {
        Backend::Sqlite => (
            "json_extract(a.detail, '$.abandoned') = 1",
            "json_type(a.detail, '$.abandoned') IS NULL",
        ),
        Backend::Postgres => (
            "(a.detail->>'abandoned') = 'true'",
            "NOT a.detail ? 'abandoned'",
        ),
    };
    let person = person_sql(backend);
    format!(
        "a.answered_at IS NOT NULL AND {person} AND ({abandoned} OR ({unjudged} \
         AND a.answered_at <= {settled} AND NOT EXISTS (SELECT 1 FROM call_events e \
         WHERE e.attempt_id = a.id AND e.kind = 'agent.first_audio' \
         AND e.at <= a.answered_at + {ABANDON_AFTER_MS})))"
    )
}

impl Store {
    /// A page of the campaign's attempts, newest first. Scoped to the tenant: another
    /// tenant's campaign yields nothing.
    pub async fn campaign_calls(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
        filter: &CallFilter,
    ) -> Result<Vec<super::AttemptRecord>> {
        let sql = format!(
            "{ATTEMPT_SELECT} WHERE tenant_id = $1 AND campaign_id = $2 AND id < $3 \
             AND ($4 IS NULL OR status = $4) AND ($5 IS NULL OR outcome = $5) \
             AND ($6 IS NULL OR result = $6) AND ($7 IS NULL OR reserved_at >= $7) \
             AND ($8 IS NULL OR reserved_at < $8) ORDER BY id DESC LIMIT $9"
        );
        let rows: Vec<AttemptRow> = with_db!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(tenant.0)
                .bind(campaign.0)
                .bind(filter.before.map_or(i64::MAX, |b| b.0))
                .bind(filter.status.map(AttemptStatus::as_str))
                .bind(filter.outcome.as_deref())
                .bind(filter.result.as_deref())
                .bind(filter.since.map(to_millis))
                .bind(filter.until.map(to_millis))
                .bind(i64::from(filter.limit.unwrap_or(50).clamp(1, 1000)))
                .fetch_all(pool)
                .await
        })?;
        rows.into_iter().map(AttemptRow::into_record).collect()
    }

    /// The campaign's attempts in figures (see [`CallStats`]). Scoped to the tenant.
    pub async fn call_stats(&self, tenant: TenantId, campaign: CampaignId) -> Result<CallStats> {
        let person = person_sql(self.backend());
        let bridged = "EXISTS (SELECT 1 FROM call_events e WHERE e.attempt_id = a.id AND e.kind = 'agent.bridged')";
        let sum = |cond: &str| {
            format!("CAST(COALESCE(SUM(CASE WHEN {cond} THEN 1 ELSE 0 END), 0) AS BIGINT)")
        };
        let sql = format!(
            "SELECT COUNT(*), {}, {}, {}, {}, {}, \
             CAST(COALESCE(SUM(CASE WHEN a.answered_at IS NOT NULL AND a.ended_at IS NOT NULL \
               THEN (a.ended_at - a.answered_at + 59999) / 60000 ELSE 0 END), 0) AS BIGINT) \
             FROM call_attempts a WHERE a.tenant_id = $1 AND a.campaign_id = $2",
            sum("a.status = 'ended'"),
            sum("a.answered_at IS NOT NULL"),
            sum(bridged),
            sum(&abandoned_sql(self.backend(), "$3")),
            sum(&format!("a.answered_at IS NOT NULL AND {person}")),
        );
        type Row = (i64, i64, i64, i64, i64, i64, i64);
        let settled = to_millis(now()) - ABANDON_AFTER_MS;
        let row: Row = with_db!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(tenant.0)
                .bind(campaign.0)
                .bind(settled)
                .fetch_one(pool)
                .await
        })?;
        let count = super::count;
        let mut stats = CallStats {
            attempts: count(row.0),
            ended: count(row.1),
            answered: count(row.2),
            connected: count(row.3),
            abandoned: count(row.4),
            answered_by_person: count(row.5),
            billed_minutes: count(row.6),
            ..CallStats::default()
        };
        for (column, into) in [
            ("outcome", &mut stats.outcomes),
            ("result", &mut stats.results),
        ] {
            let sql = format!(
                "SELECT {column}, COUNT(*) FROM call_attempts WHERE tenant_id = $1 \
                 AND campaign_id = $2 AND {column} IS NOT NULL GROUP BY {column}"
            );
            let rows: Vec<(String, i64)> = with_db!(self, |pool| {
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(tenant.0)
                    .bind(campaign.0)
                    .fetch_all(pool)
                    .await
            })?;
            into.extend(rows.into_iter().map(|(k, n)| (k, count(n))));
        }
        Ok(stats)
    }
}
