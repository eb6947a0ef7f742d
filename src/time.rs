//! Wall-clock instants as Unix milliseconds, the unit of the policy schedule.

use std::time::Instant;

use chrono::{DateTime, SecondsFormat, Utc};

/// One reading of both clocks: the wall clock (policy schedule, audit
/// times) and the monotonic one (cache ages, rate limits). A UDP worker
/// reads it once per batch of datagrams, which arrived together, instead
/// of three clock calls per query.
#[derive(Clone, Copy, Debug)]
pub struct Now {
    pub ms: i64,
    pub instant: Instant,
}

impl Now {
    pub fn read() -> Now {
        Now { ms: now_ms(), instant: Instant::now() }
    }
}

/// Now, in Unix milliseconds. Read on the query path: the clock and a
/// division, no calendar arithmetic (chrono's `Utc::now` does some).
pub fn now_ms() -> i64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    }
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

#[cfg(test)]
mod tests {
    #[test]
    fn now_ms_is_chronos_now() {
        let (before, now, after) =
            (chrono::Utc::now().timestamp_millis(), super::now_ms(), chrono::Utc::now().timestamp_millis());
        assert!(before <= now && now <= after, "{before} <= {now} <= {after}");
    }
}
