//! `GET /api/v1/campaigns/{id}/timeseries`: the campaign's attempts over time, behind the
//! dashboard's charts.

use super::{Params, path_id};
use crate::app::AppState;
use crate::auth::Auth;
use crate::problem::Problem;
use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use serde::Serialize;
use switchboard_engine::CampaignId;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Bucket size when `bucket_secs` is not given.
pub const DEFAULT_BUCKET_SECS: u32 = 60;

/// The time series route.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(timeseries))
}

/// One bucket of reservation time.
#[derive(Debug, Serialize, ToSchema)]
pub struct Bucket {
    /// Where the bucket starts.
    #[schema(value_type = String, format = DateTime)]
    pub start: DateTime<Utc>,
    /// Attempts reserved in it.
    pub dialed: u64,
    /// Of those, answered.
    pub answered: u64,
    /// Of those, connected to the agent.
    pub connected: u64,
    /// Of those answered by a person, not connected to the agent within 2 s.
    pub abandoned: u64,
    /// Answered / dialed (none without attempts).
    pub answer_rate: Option<f64>,
    /// Abandoned / answered (none without answers).
    pub abandonment_rate: Option<f64>,
    /// Dialed per minute over the bucket.
    pub dial_rate_per_min: f64,
}

/// A campaign's attempts over time.
#[derive(Debug, Serialize, ToSchema)]
pub struct Timeseries {
    /// The campaign.
    #[schema(value_type = i64)]
    pub campaign_id: CampaignId,
    /// The bucket size.
    pub bucket_secs: u32,
    /// Buckets with attempts, oldest first (empty ones are left out).
    pub items: Vec<Bucket>,
}

fn ratio(n: u64, d: u64) -> Option<f64> {
    (d > 0).then(|| n as f64 / d as f64)
}

/// The campaign's attempts in buckets by reservation time, with answer rate, abandonment
/// rate and dial rate per bucket.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/timeseries", tag = "campaigns",
    params(("id" = i64, Path, description = "Campaign id"),
           ("bucket_secs" = Option<u32>, Query, description = "Bucket size, 1 to 86400 (default 60)")),
    responses((status = 200, description = "The buckets", body = Timeseries),
              (status = 400, description = "`bucket_secs` out of range"),
              (status = 404, description = "No such campaign")))]
pub async fn timeseries(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    params: Params,
) -> Result<Json<Timeseries>, Problem> {
    let id: CampaignId = path_id(&id, "id")?;
    let bucket_secs = params
        .parse::<u32>("bucket_secs")?
        .unwrap_or(DEFAULT_BUCKET_SECS);
    let range = switchboard_engine::store::BUCKET_SECS;
    if !range.contains(&bucket_secs) {
        return Err(Problem::bad_request(
            "bucket_secs",
            format!(
                "{bucket_secs} is out of range: expected {} to {}",
                range.start(),
                range.end()
            ),
        ));
    }
    state.store.campaign(auth.tenant, id).await?;
    let buckets = state
        .store
        .campaign_timeseries(auth.tenant, id, bucket_secs)
        .await?;
    let items = buckets
        .iter()
        .map(|b| Bucket {
            start: b.start,
            dialed: b.dialed,
            answered: b.answered,
            connected: b.connected,
            abandoned: b.abandoned,
            answer_rate: ratio(b.answered, b.dialed),
            abandonment_rate: ratio(b.abandoned, b.answered),
            dial_rate_per_min: b.dialed as f64 * 60.0 / f64::from(bucket_secs),
        })
        .collect();
    Ok(Json(Timeseries {
        campaign_id: id,
        bucket_secs,
        items,
    }))
}
