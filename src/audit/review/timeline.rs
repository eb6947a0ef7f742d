//! `timeline`: contacts per hour or per day (UTC), overall or for one
//! client. One counter per bucket; buckets are cut from the canonical `ts`
//! text, so no instant is parsed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::rec::{Filter, Rec};
use super::{Reading, ReviewError, ScanStats, add_counts, bump_by, scan};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    Hour,
    Day,
}

impl Bucket {
    /// Prefix of the canonical `ts` that names the bucket.
    fn width(self) -> usize {
        match self {
            Bucket::Hour => 13, // 2024-09-29T04
            Bucket::Day => 10,  // 2024-09-29
        }
    }

    /// A bucket key as an instant (`2024-09-29T04:00:00Z`).
    pub fn start(self, key: &str) -> String {
        match self {
            Bucket::Hour => format!("{key}:00:00Z"),
            Bucket::Day => format!("{key}T00:00:00Z"),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Timeline {
    pub by: Bucket,
    pub prohibition: Option<String>,
    /// Bucket start (`2024-09-29T04:00:00Z`) → contacts, oldest first.
    pub buckets: Vec<(String, u64)>,
    pub input: ScanStats,
}

pub fn timeline(
    paths: &[PathBuf],
    by: Bucket,
    filter: &Filter,
    prohibition: Option<&str>,
) -> Result<Timeline, ReviewError> {
    timeline_with(paths, by, filter, prohibition, Reading::auto())
}

/// [`timeline`], reading as `reading` says.
pub fn timeline_with(
    paths: &[PathBuf],
    by: Bucket,
    filter: &Filter,
    prohibition: Option<&str>,
    reading: Reading,
) -> Result<Timeline, ReviewError> {
    let mut counts = BTreeMap::new();
    let add = |part: &mut BTreeMap<String, u64>, r: &Rec<'_>, ts: &str, _: &[u8]| {
        if filter.keep(r, ts) {
            bump_by(part, &ts[..by.width().min(ts.len())], r.attempts());
        }
    };
    let input = scan(paths, reading, BTreeMap::new, add, |part| {
        add_counts(&mut counts, part);
        true
    })?;
    let buckets = counts.into_iter().map(|(k, n)| (by.start(&k), n)).collect();
    Ok(Timeline { by, prohibition: prohibition.map(str::to_owned), buckets, input })
}
