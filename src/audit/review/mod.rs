//! Reading audit logs for review (`warden audit`): many files, plain or
//! compressed, from many gateways, streamed chunk by chunk so memory stays
//! flat however large the input (aggregates are fixed-size or per client).
//! Chunks are hashed, parsed and counted on every core ([`par`]); results
//! are merged in file order, so every report is what one thread reading
//! line by line would make. It only reads; printing and exit codes belong
//! to `cli::audit*`.
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
pub mod par;
pub mod rec;
pub mod summary;
pub mod timeline;
pub mod verify;

#[cfg(test)]
mod tests;

use std::io;
use std::path::PathBuf;

use serde::Serialize;

pub use par::Reading;
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

    /// Adds the stats of the lines after these.
    fn append(&mut self, later: ScanStats) {
        self.lines += later.lines;
        self.malformed_count += later.malformed_count;
        let room = MAX_LISTED.saturating_sub(self.malformed.len());
        self.malformed.extend(later.malformed.into_iter().take(room));
    }
}

/// Streams every record of `paths` to `add` with its canonical `ts` and
/// its bytes; malformed lines are listed and skipped. Chunks of lines are
/// read on worker threads as `reading` says, each into a fresh tally from
/// `new`; `merge` gets the tallies in file order and returns `false` to
/// stop reading.
pub fn scan<A: Send>(
    paths: &[PathBuf],
    reading: Reading,
    new: impl Fn() -> A + Sync,
    add: impl Fn(&mut A, &Rec<'_>, &str, &[u8]) + Sync,
    mut merge: impl FnMut(A) -> bool,
) -> Result<ScanStats, ReviewError> {
    let mut stats = ScanStats { files: paths.len(), ..ScanStats::default() };
    let work = |chunk: &input::Chunk| {
        let (mut tally, mut part) = (new(), ScanStats::default());
        let path = &paths[chunk.file];
        for line in chunk.lines() {
            part.lines += 1;
            if line.torn {
                let reason = format!("torn line: {} bytes without a newline (a write cut short)", line.bytes.len());
                part.malformed(path, line.number, reason);
            } else if line.too_long {
                part.malformed(path, line.number, "line longer than 1 MiB".into());
            } else {
                match Rec::parse(line.bytes) {
                    Ok(rec) => match rec.canonical_ts() {
                        Some(ts) => add(&mut tally, &rec, &ts, line.bytes),
                        None => {
                            let reason = format!("ts {:?} is not an RFC 3339 instant", rec.ts);
                            part.malformed(path, line.number, reason);
                        }
                    },
                    Err(e) => part.malformed(path, line.number, format!("not an audit record: {e}")),
                }
            }
        }
        (tally, part)
    };
    par::run(paths, reading, work, |_, (tally, part)| {
        stats.append(part);
        merge(tally)
    })?;
    Ok(stats)
}

/// Adds one to `map[key]`, allocating the key only the first time.
pub(crate) fn bump(map: &mut std::collections::BTreeMap<String, u64>, key: &str) {
    bump_by(map, key, 1);
}

pub(crate) fn bump_by(map: &mut std::collections::BTreeMap<String, u64>, key: &str, n: u64) {
    match map.get_mut(key) {
        Some(v) => *v += n,
        None => {
            map.insert(key.to_owned(), n);
        }
    }
}

/// Adds the counts of `later` to `map`.
pub(crate) fn add_counts(
    map: &mut std::collections::BTreeMap<String, u64>,
    later: std::collections::BTreeMap<String, u64>,
) {
    if map.is_empty() {
        *map = later;
        return;
    }
    for (key, n) in later {
        *map.entry(key).or_default() += n;
    }
}

/// Sets `slot` to `ts`, reusing its allocation.
pub(crate) fn set_text(slot: &mut Option<String>, ts: &str) {
    match slot {
        Some(s) => {
            s.clear();
            s.push_str(ts);
        }
        None => *slot = Some(ts.to_owned()),
    }
}
