//! What the call path learns while a call is live, written the moment it is known: the
//! agent's first audio (the abandonment rule's clock) and the carrier's asynchronous
//! answering machine detection. Each is a detail on the attempt plus a call event, in one
//! transaction, so a call actor in another process reads both together.

use super::{Backend, Conn, Store, in_write_tx, with_conn};
use crate::AttemptId;
use crate::error::{Error, Result};
use crate::time::to_millis;
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::types::Json;

impl Store {
    /// Records the agent's first audio on a call: `detail.first_agent_audio_ms` (from the
    /// media stream's start, as the relay measured it) and `detail.first_agent_audio_at`
    /// (when it was heard), and the event `agent.first_audio` at that time. The first
    /// report wins; a repeated one changes nothing.
    pub async fn record_first_agent_audio(
        &self,
        id: AttemptId,
        at: DateTime<Utc>,
        ms: u64,
    ) -> Result<()> {
        in_write_tx!(self, |conn| first_agent_audio(conn, id, at, ms).await)
    }

    /// Records an asynchronous machine detection result: `detail.answered_by` (it replaces
    /// what a status callback may have said: detection has the last word),
    /// `detail.machine_detection_ms` when given, and the event `carrier.amd`. Returns the
    /// `answered_by` stored before, if any.
    pub async fn record_machine_detection(
        &self,
        id: AttemptId,
        answered_by: &str,
        detection_ms: Option<u64>,
        at: DateTime<Utc>,
    ) -> Result<Option<String>> {
        in_write_tx!(self, |conn| machine_detection(
            conn,
            id,
            answered_by,
            detection_ms,
            at
        )
        .await)
    }
}

/// See [`Store::record_first_agent_audio`].
pub(super) async fn first_agent_audio(
    conn: Conn<'_>,
    id: AttemptId,
    at: DateTime<Utc>,
    ms: u64,
) -> Result<()> {
    let detail = Json(json!({ "first_agent_audio_ms": ms, "first_agent_audio_at": at }));
    let merge = match conn.backend() {
        Backend::Sqlite => {
            "UPDATE call_attempts SET detail = json_patch(detail, $2) WHERE id = $1 \
             AND json_extract(detail, '$.first_agent_audio_ms') IS NULL"
        }
        Backend::Postgres => {
            "UPDATE call_attempts SET detail = detail || $2 WHERE id = $1 \
             AND NOT detail ? 'first_agent_audio_ms'"
        }
    };
    with_conn!(conn, |tx| {
        let changed = sqlx::query(merge)
            .bind(id.0)
            .bind(&detail)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if changed == 1 {
            sqlx::query(
                "INSERT INTO call_events (attempt_id, at, kind, data) VALUES ($1, $2, 'agent.first_audio', $3)",
            )
            .bind(id.0)
            .bind(to_millis(at))
            .bind(Json(json!({ "ms": ms })))
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    })
}

/// See [`Store::record_machine_detection`].
pub(super) async fn machine_detection(
    conn: Conn<'_>,
    id: AttemptId,
    answered_by: &str,
    detection_ms: Option<u64>,
    at: DateTime<Utc>,
) -> Result<Option<String>> {
    let mut detail = serde_json::Map::new();
    detail.insert("answered_by".into(), json!(answered_by));
    if let Some(ms) = detection_ms {
        detail.insert("machine_detection_ms".into(), json!(ms));
    }
    let merge = match conn.backend() {
        Backend::Sqlite => "UPDATE call_attempts SET detail = json_patch(detail, $2) WHERE id = $1",
        Backend::Postgres => "UPDATE call_attempts SET detail = detail || $2 WHERE id = $1",
    };
    let event = json!({ "answered_by": answered_by, "machine_detection_ms": detection_ms });
    with_conn!(conn, |tx| {
        let before: Option<(Json<serde_json::Map<String, serde_json::Value>>,)> =
            sqlx::query_as("SELECT detail FROM call_attempts WHERE id = $1")
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((Json(before),)) = before else {
            return Err(Error::not_found("attempt", id));
        };
        sqlx::query(merge)
            .bind(id.0)
            .bind(Json(&detail))
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO call_events (attempt_id, at, kind, data) VALUES ($1, $2, 'carrier.amd', $3)",
        )
        .bind(id.0)
        .bind(to_millis(at))
        .bind(Json(&event))
        .execute(&mut *tx)
        .await?;
        let previous = before
            .get("answered_by")
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        Ok(previous)
    })
}
