//! Wall-clock instants as Unix milliseconds, the unit of the policy schedule.

use chrono::{DateTime, SecondsFormat, Utc};

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Unix milliseconds as RFC 3339 UTC, e.g. `2024-09-29T04:00:00Z`.
pub fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| format!("@{ms}ms"))
}

/// Parse an RFC 3339 instant (any offset) into Unix milliseconds.
pub fn parse_rfc3339(text: &str) -> Result<i64, chrono::ParseError> {
    DateTime::parse_from_rfc3339(text).map(|t| t.timestamp_millis())
}
