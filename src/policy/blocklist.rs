//! User-supplied blocklists beside the policy: plain lists (one name per
//! line), hosts files (`0.0.0.0 name`) and adblock-style `||name^` lines.
//! Every entry blocks the name and its subdomains in every phase, under the
//! category `blocklist`. Lines that are not a blockable name are skipped and
//! counted; the first few are reported with their line numbers.
//!
//! Owns the line format and the [`ListLoader`], which turns lines (of a
//! text, or streamed from a reader) into the policy's
//! [`FingerprintSet`]: entries are kept as fingerprints only, never as
//! text, so a million-entry list costs about 10 bytes per entry.

use std::io::BufRead;

use super::{PolicyError, Problem};
use crate::matcher::{
    FingerprintSet, FingerprintSetBuilder, NameBuf, NameTable, hash_name, validate_pattern_name_into,
};

/// The category blocklist entries get.
pub const CATEGORY: &str = "blocklist";
/// How many skipped lines are reported individually.
const REPORTED: usize = 5;

/// A blocklist's text and the name it is known by (its path).
#[derive(Debug, Clone, Copy)]
pub struct Blocklist<'a> {
    pub source: &'a str,
    pub text: &'a str,
}

/// What loading the lists did.
#[derive(Debug, Clone, Default)]
pub struct BlocklistStats {
    pub entries: usize,
    pub duplicates: usize,
    pub skipped: usize,
    /// The first skipped lines, per source.
    pub problems: Vec<(String, Problem)>,
}

/// Names that are never blocked from a list: hosts files map them locally.
const LOCAL_NAMES: &[&str] =
    &["localhost", "localhost.localdomain", "local", "broadcasthost", "ip6-localhost", "ip6-loopback"];

/// Bytes of a plain entry line that is just a name.
const NAME_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || c == b'.' || c == b'-' || c == b'_';
        b += 1;
    }
    t
};

/// The name an entry line blocks, `Ok(None)` for comments and blank lines.
pub fn entry(line: &str) -> Result<Option<&str>, &'static str> {
    // Fast path: a line that is nothing but name characters is the name.
    if !line.is_empty() && line.bytes().all(|b| NAME_BYTE[usize::from(b)]) {
        return Ok(Some(line));
    }
    let line = line.split('#').next().unwrap_or("").trim();
    if line.is_empty() || line.starts_with('!') || line.starts_with('[') {
        return Ok(None);
    }
    if let Some(rest) = line.strip_prefix("||") {
        let name = rest.split(['^', '$', '/']).next().unwrap_or("");
        return if name.is_empty() { Err("empty adblock rule") } else { Ok(Some(name)) };
    }
    if line.starts_with("@@") {
        return Err("exception rules (@@) are not supported in blocklists");
    }
    let mut fields = line.split_whitespace();
    let first = fields.next().unwrap_or("");
    match fields.next() {
        None => Ok(Some(first)),
        Some(name) if first.parse::<std::net::IpAddr>().is_ok() => {
            if LOCAL_NAMES.contains(&name) {
                Ok(None)
            } else {
                Ok(Some(name))
            }
        }
        Some(_) => Err("expected one name, or an address followed by a name"),
    }
}

/// Normalise and validate an entry's name.
pub fn normalize_entry(name: &str) -> Result<NameBuf, String> {
    let mut out = NameBuf::new();
    normalize_entry_into(name, &mut out)?;
    Ok(out)
}

/// [`normalize_entry`] into a buffer the caller reuses.
#[inline]
pub fn normalize_entry_into(name: &str, out: &mut NameBuf) -> Result<(), String> {
    validate_pattern_name_into(name, false, out).map_err(|e| format!("{name:?}: {e}"))
}

impl BlocklistStats {
    pub(crate) fn skip(&mut self, source: &str, line: usize, message: String) {
        self.skipped += 1;
        if self.problems.iter().filter(|(s, _)| s == source).count() < REPORTED {
            self.problems.push((source.to_owned(), Problem { line, column: 1, message }));
        }
    }
}

/// Reads blocklists, one after another, into a fingerprint set.
pub struct ListLoader<'a> {
    /// The policy's own rules: a list entry that is already one of its
    /// domain rules is a duplicate (the policy's rule decides).
    policy: &'a NameTable,
    set: FingerprintSetBuilder,
    stats: BlocklistStats,
    source: String,
    /// The entry being added, normalised.
    name: NameBuf,
}

impl<'a> ListLoader<'a> {
    pub(crate) fn new(policy: &'a NameTable) -> Self {
        ListLoader {
            policy,
            set: FingerprintSetBuilder::new(),
            stats: BlocklistStats::default(),
            source: String::new(),
            name: NameBuf::new(),
        }
    }

    /// Begin the list known as `source`; lines added next belong to it.
    pub(crate) fn begin(&mut self, source: &str) -> Result<(), PolicyError> {
        self.set.start_list().map_err(|_| PolicyError::TooManyBlocklists { max: usize::from(u16::MAX) })?;
        source.clone_into(&mut self.source);
        Ok(())
    }

    /// One line of the current list (`number` counts from 1).
    pub fn line(&mut self, number: usize, line: &str) {
        let name = match entry(line) {
            Ok(Some(name)) => name,
            Ok(None) => return,
            Err(e) => return self.stats.skip(&self.source, number, e.to_owned()),
        };
        if let Err(e) = normalize_entry_into(name, &mut self.name) {
            return self.stats.skip(&self.source, number, e);
        }
        let name = self.name.as_bytes();
        let hash = hash_name(name);
        if self.policy.has_domain(hash, name) {
            self.stats.duplicates += 1;
        } else {
            self.set.insert(hash, name);
        }
    }

    /// Every line of `text`.
    pub fn text(&mut self, text: &str) {
        for (i, line) in text.lines().enumerate() {
            self.line(i + 1, line);
        }
    }

    /// Every line of `reader`, one at a time (lines as [`str::lines`]
    /// splits them; the input must be UTF-8).
    pub fn read(&mut self, mut reader: impl BufRead) -> std::io::Result<()> {
        let mut buf = String::new();
        let mut number = 0;
        loop {
            buf.clear();
            if reader.read_line(&mut buf)? == 0 {
                return Ok(());
            }
            number += 1;
            let line = buf.strip_suffix('\n').unwrap_or(&buf);
            self.line(number, line.strip_suffix('\r').unwrap_or(line));
        }
    }

    /// The set of every list's entries, and what loading did.
    pub(crate) fn finish(self) -> (FingerprintSet, BlocklistStats) {
        let (set, duplicates) = self.set.build();
        let mut stats = self.stats;
        stats.entries = set.len();
        stats.duplicates += duplicates;
        (set, stats)
    }
}

#[cfg(test)]
mod tests {
    use super::{ListLoader, entry};
    use crate::matcher::NameTableBuilder;

    #[test]
    fn reads_plain_hosts_and_adblock_lines() {
        assert_eq!(entry("example.com"), Ok(Some("example.com")));
        assert_eq!(entry("0.0.0.0 ads.example.com # tracker"), Ok(Some("ads.example.com")));
        assert_eq!(entry("127.0.0.1 localhost"), Ok(None));
        assert_eq!(entry("||track.example.net^"), Ok(Some("track.example.net")));
        assert_eq!(entry("||track.example.net^$third-party"), Ok(Some("track.example.net")));
        assert_eq!(entry("! adblock comment"), Ok(None));
        assert_eq!(entry("[Adblock Plus 2.0]"), Ok(None));
        assert_eq!(entry("   # comment"), Ok(None));
        assert!(entry("@@||good.example^").is_err());
        assert!(entry("two names here").is_err());
    }

    #[test]
    fn reading_lines_from_a_reader_equals_reading_the_text() {
        let text = "a.example\r\n# comment\nbad name here\n\n||b.example^\nc.example";
        let table = NameTableBuilder::default().build();
        let mut from_text = ListLoader::new(&table);
        from_text.begin("t").unwrap();
        from_text.text(text);
        let mut from_reader = ListLoader::new(&table);
        from_reader.begin("t").unwrap();
        from_reader.read(text.as_bytes()).unwrap();
        let ((a, sa), (b, sb)) = (from_text.finish(), from_reader.finish());
        assert_eq!((sa.entries, sa.skipped, sa.problems[0].1.line), (3, 1, 3));
        assert_eq!((sb.entries, sb.skipped, sb.problems[0].1.line), (3, 1, 3));
        for name in ["a.example", "b.example", "c.example"] {
            assert!(a.find_name(name.as_bytes()).is_some() && b.find_name(name.as_bytes()).is_some(), "{name}");
        }
        let mut bad = ListLoader::new(&table);
        bad.begin("t").unwrap();
        assert!(bad.read(&b"a.example\n\xff\n"[..]).is_err(), "not UTF-8");
    }
}
