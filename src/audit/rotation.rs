//! Names and discovery of closed (rotated) log files. A closed file is named
//! after the chain span and time span it holds, so retention can decide
//! without reading it:
//! `{stem}.{first seq, 12 digits}.{first ts}.{last ts}[.contacts].jsonl[.gz|.zst]`
//! with instants as `20240929T040000Z`. The live file keeps its configured
//! name. This module renames nothing; the worker does.

use std::fs;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, Utc};

use super::chain::parse_link;
use super::compress::{Compression, open_reader};

const TS_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// What a closed file's name says about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClosedFile {
    pub path: PathBuf,
    pub first_seq: u64,
    pub first_ts: DateTime<Utc>,
    pub last_ts: DateTime<Utc>,
    /// It holds at least one `contact` record (or may: unknown counts as yes).
    pub contacts: bool,
}

/// The stem of closed files: the live file's name without `.jsonl`.
fn stem(live: &Path) -> String {
    let name = live.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    name.strip_suffix(".jsonl").map(str::to_owned).unwrap_or(name)
}

/// The name the live file gets when it is closed.
pub fn closed_name(
    live: &Path,
    first_seq: u64,
    first_ts: DateTime<Utc>,
    last_ts: DateTime<Utc>,
    contacts: bool,
) -> PathBuf {
    let tag = if contacts { ".contacts" } else { "" };
    let name = format!(
        "{}.{first_seq:012}.{}.{}{tag}.jsonl",
        stem(live),
        first_ts.format(TS_FORMAT),
        last_ts.format(TS_FORMAT)
    );
    live.with_file_name(name)
}

/// Parses a closed file's name; `None` for anything else (the live file,
/// `.tmp` files, torn tails, other files).
pub fn parse_closed(live: &Path, path: &Path) -> Option<ClosedFile> {
    let name = path.file_name()?.to_str()?;
    let rest = name.strip_prefix(&stem(live))?.strip_prefix('.')?;
    let rest = rest.strip_suffix(Compression::of(path).suffix())?.strip_suffix(".jsonl")?;
    let (rest, contacts) = match rest.strip_suffix(".contacts") {
        Some(r) => (r, true),
        None => (rest, false),
    };
    let mut parts = rest.split('.');
    let first_seq = parts.next().filter(|s| s.len() == 12)?.parse().ok()?;
    let ts = |s: Option<&str>| NaiveDateTime::parse_from_str(s?, TS_FORMAT).ok().map(|t| t.and_utc());
    let (first_ts, last_ts) = (ts(parts.next())?, ts(parts.next())?);
    parts.next().is_none().then(|| ClosedFile { path: path.to_owned(), first_seq, first_ts, last_ts, contacts })
}

/// Closed files beside `live`, oldest (lowest first seq) first.
pub fn list_closed(live: &Path) -> io::Result<Vec<ClosedFile>> {
    let dir = match live.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut files: Vec<ClosedFile> =
        fs::read_dir(dir)?.filter_map(Result::ok).filter_map(|e| parse_closed(live, &e.path())).collect();
    files.sort_by_key(|f| f.first_seq);
    Ok(files)
}

/// Seq and hash of the last line of a (possibly compressed) file: reads it
/// all. `None` when no line parses.
pub fn last_link(path: &Path) -> io::Result<Option<(u64, String)>> {
    let mut reader = BufReader::with_capacity(1 << 16, open_reader(path)?);
    let (mut line, mut last) = (String::new(), None);
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(last);
        }
        if let Ok(link) = parse_link(line.trim_end()) {
            last = Some((link.seq, link.hash));
        }
    }
}

/// Seq and time of the first line of a plain log file (`None` if empty or
/// unreadable as a record).
pub fn first_record(path: &Path) -> io::Result<Option<(u64, DateTime<Utc>)>> {
    #[derive(serde::Deserialize)]
    struct First {
        seq: u64,
        ts: DateTime<Utc>,
    }
    let mut reader = BufReader::new(fs::File::open(path)?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    Ok(serde_json::from_str::<First>(line.trim_end()).ok().map(|f| (f.seq, f.ts)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_names_round_trip_and_other_files_are_ignored() {
        let live = Path::new("/var/log/warden/audit.jsonl");
        let (a, b) = ("2024-09-29T04:00:00Z".parse().unwrap(), "2024-09-29T05:30:00Z".parse().unwrap());
        let name = closed_name(live, 42, a, b, true);
        assert_eq!(
            name,
            Path::new("/var/log/warden/audit.000000000042.20240929T040000Z.20240929T053000Z.contacts.jsonl")
        );
        let mut gz = name.clone().into_os_string();
        gz.push(".gz");
        let parsed = parse_closed(live, Path::new(&gz)).unwrap();
        assert_eq!((parsed.first_seq, parsed.first_ts, parsed.last_ts, parsed.contacts), (42, a, b, true));
        for other in [
            "audit.jsonl",
            "audit.jsonl.torn-17",
            "audit.000000000042.x.y.jsonl",
            "other.000000000001.20240929T040000Z.20240929T040000Z.jsonl",
        ] {
            assert!(parse_closed(live, &live.with_file_name(other)).is_none(), "{other}");
        }
    }
}
