//! Timestamps. Stored as milliseconds since the Unix epoch (portable across
//! SQLite and PostgreSQL, cheap to compare in keyset pagination), shown as
//! RFC 3339 in UTC.

use chrono::{DateTime, TimeZone, Utc};

/// A UTC instant.
pub type Timestamp = DateTime<Utc>;

/// Now, in UTC, at millisecond precision (what the store keeps).
pub fn now() -> Timestamp {
    from_millis(Utc::now().timestamp_millis())
}

/// Milliseconds since the epoch to a timestamp.
pub fn from_millis(ms: i64) -> Timestamp {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// A timestamp to milliseconds since the epoch.
pub fn to_millis(t: Timestamp) -> i64 {
    t.timestamp_millis()
}
