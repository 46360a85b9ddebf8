//! Time as Switchboard stores it: UTC instants, kept as milliseconds since the epoch in the
//! database so both backends compare and index them the same way.

use chrono::{DateTime, TimeZone, Utc};

/// Milliseconds since the Unix epoch.
pub fn to_millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The instant for milliseconds since the epoch (saturating at chrono's range).
pub fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The current instant, truncated to milliseconds (what the database can hold).
pub fn now() -> DateTime<Utc> {
    from_millis(to_millis(Utc::now()))
}
