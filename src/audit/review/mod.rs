//! Reading audit logs for review (`warden audit`): many files, plain or
//! compressed, from many gateways, streamed line by line so memory stays
//! flat however large the input (aggregates are fixed-size or per client).
//! It only reads; printing and exit codes belong to `cli::audit*`.
//!
//! * [`verify`]: the chain across rotated files, seq gaps, signatures.
//! * [`summary`], [`hosts`], [`timeline`], [`export`]: contact reviews.
//! * [`leases`]: DHCP leases (dnsmasq, ISC dhcpd, Kea CSV) for `hosts`.
//! * [`html`]: the self-contained HTML report.

pub mod export;
pub mod hosts;
pub mod html;
pub mod input;
mod json;
pub mod leases;
pub mod rec;
pub mod summary;
pub mod timeline;
pub mod verify;

use std::io;
use std::path::PathBuf;

use serde::Serialize;

use rec::Rec;

/// Why a review could not read its input.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("cannot open {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read leases file {path}")]
    Leases {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// At most this many malformed lines are listed; the rest are counted.
pub const MAX_LISTED: usize = 100;

/// A line that could not be read as a record; reading went on after it.
#[derive(Clone, Debug, Serialize)]
pub struct Malformed {
    pub file: PathBuf,
    pub line: u64,
    pub reason: String,
}

/// What a scan read, besides what its consumer counted.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ScanStats {
    pub files: usize,
    pub lines: u64,
    pub malformed_count: u64,
    pub malformed: Vec<Malformed>,
}

impl ScanStats {
    fn malformed(&mut self, file: &std::path::Path, line: u64, reason: String) {
        self.malformed_count += 1;
        if self.malformed.len() < MAX_LISTED {
            self.malformed.push(Malformed { file: file.to_owned(), line, reason });
        }
    }
}

/// Streams every record of `paths` to `f` with its canonical `ts` and its
/// bytes;
/// malformed lines are listed and skipped.
pub fn scan(paths: &[PathBuf], mut f: impl FnMut(&Rec<'_>, &str, &[u8])) -> Result<ScanStats, ReviewError> {
    let mut stats = ScanStats { files: paths.len(), ..ScanStats::default() };
    input::for_each_line(paths, |line| {
        stats.lines += 1;
        let path = &paths[line.file];
        if line.torn {
            let reason = format!("torn line: {} bytes without a newline (a write cut short)", line.bytes.len());
            return stats.malformed(path, line.number, reason);
        }
        if line.too_long {
            return stats.malformed(path, line.number, "line longer than 1 MiB".into());
        }
        match Rec::parse(line.bytes) {
            Ok(rec) => match rec.canonical_ts() {
                Some(ts) => f(&rec, &ts, line.bytes),
                None => stats.malformed(path, line.number, format!("ts {:?} is not an RFC 3339 instant", rec.ts)),
            },
            Err(e) => stats.malformed(path, line.number, format!("not an audit record: {e}")),
        }
    })?;
    Ok(stats)
}

/// Adds one to `map[key]`, allocating the key only the first time.
pub(crate) fn bump(map: &mut std::collections::BTreeMap<String, u64>, key: &str) {
    match map.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            map.insert(key.to_owned(), 1);
        }
    }
}
