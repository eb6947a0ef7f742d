//! Which closed log files the retention limit deletes: a pure decision on
//! file names and the clock. Files that held vendor contacts can be kept
//! longer than the rest, and files that overlap a hold range are never
//! chosen. Deleting (after the `retention` record is on disk) is the
//! worker's job.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::rotation::ClosedFile;

/// A time range that must never be deleted (legal hold): `start/end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hold {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl std::str::FromStr for Hold {
    type Err = String;

    /// `2024-09-01T00:00:00Z/2025-01-01T00:00:00Z` (RFC 3339, both ends).
    fn from_str(s: &str) -> Result<Hold, String> {
        let (a, b) = s.split_once('/').ok_or_else(|| format!("hold range {s:?} is not START/END"))?;
        let parse = |t: &str| {
            DateTime::parse_from_rfc3339(t.trim())
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| format!("hold range {s:?}: {t:?} is not an RFC 3339 instant: {e}"))
        };
        let (start, end) = (parse(a)?, parse(b)?);
        if end < start {
            return Err(format!("hold range {s:?} ends before it starts"));
        }
        Ok(Hold { start, end })
    }
}

impl<'de> serde::Deserialize<'de> for Hold {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Hold, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The retention limit. Every field `None`/empty: keep everything.
#[derive(Clone, Debug, Default)]
pub struct RetentionConfig {
    /// At most this many closed files; files without contacts go first.
    pub max_files: Option<usize>,
    /// Delete closed files whose last record is older than this.
    pub max_age: Option<Duration>,
    /// Files that held contacts: this age instead of `max_age` (None: the same).
    pub contact_max_age: Option<Duration>,
    /// Never delete a file whose time span overlaps one of these.
    pub hold: Vec<Hold>,
}

impl RetentionConfig {
    fn held(&self, f: &ClosedFile) -> bool {
        self.hold.iter().any(|h| f.first_ts <= h.end && f.last_ts >= h.start)
    }

    fn expired(&self, f: &ClosedFile, now: DateTime<Utc>) -> bool {
        let limit = if f.contacts { self.contact_max_age.or(self.max_age) } else { self.max_age };
        limit.and_then(|d| chrono::Duration::from_std(d).ok()).is_some_and(|d| f.last_ts + d < now)
    }

    /// The files to delete, oldest first. `files` is sorted oldest first.
    pub fn select<'a>(&self, files: &'a [ClosedFile], now: DateTime<Utc>) -> Vec<&'a ClosedFile> {
        let mut delete: Vec<bool> = files.iter().map(|f| !self.held(f) && self.expired(f, now)).collect();
        if let Some(max) = self.max_files {
            let mut kept = delete.iter().filter(|d| !**d).count();
            for want_contacts in [false, true] {
                for (i, f) in files.iter().enumerate() {
                    if kept <= max {
                        break;
                    }
                    if !delete[i] && f.contacts == want_contacts && !self.held(f) {
                        delete[i] = true;
                        kept -= 1;
                    }
                }
            }
        }
        files.iter().zip(delete).filter_map(|(f, d)| d.then_some(f)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(seq: u64, day: u32, contacts: bool) -> ClosedFile {
        let ts = |h| format!("2024-10-{day:02}T{h:02}:00:00Z").parse().unwrap();
        ClosedFile { path: format!("f{seq}").into(), first_seq: seq, first_ts: ts(0), last_ts: ts(23), contacts }
    }

    fn seqs(v: Vec<&ClosedFile>) -> Vec<u64> {
        v.into_iter().map(|f| f.first_seq).collect()
    }

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn contact_files_outlive_quiet_files_and_holds_are_never_deleted() {
        let files = [file(1, 1, false), file(2, 2, true), file(3, 3, false), file(4, 9, false)];
        let now = "2024-10-10T12:00:00Z".parse().unwrap();
        let mut r = RetentionConfig { max_age: Some(3 * DAY), contact_max_age: Some(30 * DAY), ..Default::default() };
        assert_eq!(seqs(r.select(&files, now)), [1, 3]);
        r.hold.push("2024-10-03T12:00:00Z/2024-10-04T00:00:00Z".parse().unwrap());
        assert_eq!(seqs(r.select(&files, now)), [1]);
    }

    #[test]
    fn the_file_limit_deletes_quiet_files_before_contact_files() {
        let files = [file(1, 1, true), file(2, 2, false), file(3, 3, true), file(4, 4, false)];
        let now = "2024-10-10T00:00:00Z".parse().unwrap();
        let r = RetentionConfig { max_files: Some(1), ..Default::default() };
        assert_eq!(seqs(r.select(&files, now)), [1, 2, 4]);
        assert!(RetentionConfig::default().select(&files, now).is_empty());
        assert!("2024-10-02T00:00:00Z/2024-10-01T00:00:00Z".parse::<Hold>().is_err());
    }
}
