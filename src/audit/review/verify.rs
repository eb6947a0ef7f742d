//! `verify` across files and gateways: groups files by gateway, orders each
//! gateway's files by first `seq`, and walks the chain through them: each
//! line's hash, links and seq (across file boundaries too), checkpoint
//! signatures, torn lines, and gaps longer than the heartbeat interval.
//! Seq ranges deleted by retention are accepted only when a `retention`
//! record in the chain names them. Every finding carries file and line.
//!
//! Each line's hash and fields are read on worker threads ([`Item`]); the
//! walk itself runs on the calling thread over the items in file order, so
//! findings are those of a walk line by line.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use super::input::{Chunk, Line, file_head};
use super::json::{self, Decline, Seen};
use super::par;
use super::rec::millis;
use super::{Reading, ReviewError};
use crate::audit::chain::{GENESIS, check_hash};
use crate::audit::record::{Checkpoint, Heartbeat, Retention};
use crate::audit::sign;

/// Findings listed per severity; more are counted.
const MAX_FINDINGS: usize = 200;

/// Where and what. `severity`: `problem` (integrity failure), `warning`
/// (loss, gap, torn tail: not tampering) or `note`.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub file: PathBuf,
    pub line: u64,
    pub kind: &'static str,
    pub message: String,
}

/// One gateway's chain.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ChainReport {
    pub host: String,
    pub files: Vec<PathBuf>,
    pub records: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub last_hash: Option<String>,
    pub checkpoints: u64,
    pub checkpoints_verified: u64,
    pub last_signed_seq: Option<u64>,
    pub starts: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Outcome {
    pub ok: bool,
    pub signatures_checked: bool,
    pub files: usize,
    pub records: u64,
    pub chains: Vec<ChainReport>,
    pub problems: Vec<Finding>,
    pub warnings: Vec<Finding>,
    pub notes: Vec<Finding>,
    pub omitted: u64,
}

impl Outcome {
    fn add(&mut self, severity: Severity, file: &Path, line: u64, kind: &'static str, message: String) {
        let list = match severity {
            Severity::Problem => &mut self.problems,
            Severity::Warning => &mut self.warnings,
            Severity::Note => &mut self.notes,
        };
        if list.len() < MAX_FINDINGS {
            list.push(Finding { file: file.to_owned(), line, kind, message });
        } else {
            self.omitted += 1;
        }
    }
}

#[derive(Clone, Copy)]
enum Severity {
    Problem,
    Warning,
    Note,
}

/// The fields `verify` reads from a line.
#[derive(Debug, Deserialize)]
struct VLine<'a> {
    #[serde(borrow)]
    ts: Cow<'a, str>,
    seq: u64,
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    host: Cow<'a, str>,
    #[serde(borrow)]
    prev_hash: Cow<'a, str>,
    #[serde(borrow)]
    hash: Cow<'a, str>,
    #[serde(default, borrow)]
    message: Option<Cow<'a, str>>,
    #[serde(default)]
    count: Option<u64>,
    #[serde(default)]
    checkpoint: Option<Checkpoint>,
    #[serde(default)]
    heartbeat: Option<Heartbeat>,
    #[serde(default)]
    retention: Option<Retention>,
}

impl<'a> VLine<'a> {
    /// What `serde_json::from_slice` gives, faster for the writer's lines.
    fn parse(line: &'a [u8]) -> Result<VLine<'a>, serde_json::Error> {
        match VLine::fast(line) {
            Ok(v) => Ok(v),
            Err(Decline) => serde_json::from_slice(line),
        }
    }

    /// The in-place reading of [`json`]; declines what `serde` would not
    /// read the same way, and the rare records with nested fields.
    fn fast(line: &'a [u8]) -> Result<VLine<'a>, Decline> {
        const REQUIRED: [u32; 5] = [0, 1, 2, 4, 5];
        let mut fields = json::object(line)?;
        let mut seen = Seen::default();
        let mut v = VLine {
            ts: Cow::Borrowed(""),
            seq: 0,
            kind: Cow::Borrowed(""),
            host: Cow::Borrowed(""),
            prev_hash: Cow::Borrowed(""),
            hash: Cow::Borrowed(""),
            message: None,
            count: None,
            checkpoint: None,
            heartbeat: None,
            retention: None,
        };
        while let Some((key, value)) = fields.next_field()? {
            let field = match key {
                "ts" => 0,
                "seq" => 1,
                "type" => 2,
                "host" => 3,
                "prev_hash" => 4,
                "hash" => 5,
                "message" => 6,
                "count" => 7,
                "checkpoint" | "heartbeat" | "retention" => return Err(Decline),
                _ => continue,
            };
            seen.mark(field)?;
            match field {
                0 => v.ts = Cow::Borrowed(value.str()?),
                1 => v.seq = value.num()?,
                2 => v.kind = Cow::Borrowed(value.str()?),
                3 => v.host = Cow::Borrowed(value.str()?),
                4 => v.prev_hash = Cow::Borrowed(value.str()?),
                5 => v.hash = Cow::Borrowed(value.str()?),
                6 => v.message = Some(Cow::Borrowed(value.str()?)),
                _ => v.count = Some(value.num()?),
            }
        }
        if REQUIRED.iter().any(|&f| !seen.has(f)) {
            return Err(Decline);
        }
        Ok(v)
    }
}

/// A hash as a line has it: inline when it is 64 bytes (as in every line
/// the writer wrote), so the common line allocates nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Hash {
    Inline([u8; 64]),
    Heap(Box<str>),
}

impl Hash {
    fn new(s: &str) -> Hash {
        match <[u8; 64]>::try_from(s.as_bytes()) {
            Ok(bytes) => Hash::Inline(bytes),
            Err(_) => Hash::Heap(s.into()),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // 64 bytes of a `str`: always UTF-8.
            Hash::Inline(bytes) => std::str::from_utf8(bytes).unwrap_or_default(),
            Hash::Heap(s) => s,
        }
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The record types the walk treats specially.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Checkpoint,
    Heartbeat,
    Retention,
    Recovered,
    Loss,
    Failure,
    Start,
    Stop,
    Other,
}

impl Kind {
    fn of(kind: &str) -> Kind {
        match kind {
            "checkpoint" => Kind::Checkpoint,
            "heartbeat" => Kind::Heartbeat,
            "retention" => Kind::Retention,
            "recovered" => Kind::Recovered,
            "loss" => Kind::Loss,
            "failure" => Kind::Failure,
            "start" => Kind::Start,
            "stop" => Kind::Stop,
            _ => Kind::Other,
        }
    }
}

/// The fields of a parsed line that the walk uses, owned.
#[derive(Debug)]
struct VRec {
    seq: u64,
    kind: Kind,
    /// `ts` in Unix ms, if it is an RFC 3339 instant.
    millis: Option<i64>,
    prev_hash: Hash,
    hash: Hash,
    /// The rest, for the record types that use it (not contacts).
    extra: Option<Box<Extra>>,
}

#[derive(Debug)]
struct Extra {
    ts: String,
    host: String,
    message: Option<String>,
    count: Option<u64>,
    checkpoint: Option<Checkpoint>,
    heartbeat: Option<Heartbeat>,
    retention: Option<Retention>,
}

impl VRec {
    fn new(v: VLine<'_>) -> VRec {
        let kind = Kind::of(&v.kind);
        let extra = match kind {
            Kind::Start | Kind::Stop | Kind::Other => None,
            _ => Some(Box::new(Extra {
                ts: v.ts.clone().into_owned(),
                host: v.host.into_owned(),
                message: v.message.map(Cow::into_owned),
                count: v.count,
                checkpoint: v.checkpoint,
                heartbeat: v.heartbeat,
                retention: v.retention,
            })),
        };
        VRec {
            seq: v.seq,
            kind,
            millis: millis(&v.ts),
            prev_hash: Hash::new(&v.prev_hash),
            hash: Hash::new(&v.hash),
            extra,
        }
    }
}

/// One line, read and checked on its own (on a worker thread). Nearly
/// every item is a `Line`: boxing it would cost an allocation per line.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum Item {
    /// No `\n` at the end of the file: so many bytes.
    Torn(usize),
    TooLong,
    /// The stored hash if the line's own hash checks, else the finding;
    /// the fields if they parse, else the finding.
    Line {
        hash: Result<Hash, String>,
        rec: Result<VRec, String>,
    },
}

impl Item {
    fn read(line: Line<'_>) -> Item {
        if line.torn {
            return Item::Torn(line.bytes.len());
        }
        if line.too_long {
            return Item::TooLong;
        }
        let hash =
            check_hash(line.bytes).map(Hash::new).map_err(|e| format!("{e} (the line was edited or is not a record)"));
        let rec = VLine::parse(line.bytes).map(VRec::new).map_err(|e| format!("not an audit record: {e}"));
        Item::Line { hash, rec }
    }
}

fn read_chunk(chunk: &Chunk) -> Vec<Item> {
    chunk.lines().map(Item::read).collect()
}

/// Verifies every chain in `paths`; with `key`, checkpoint signatures too.
pub fn verify(paths: &[PathBuf], key: Option<&VerifyingKey>) -> Result<Outcome, ReviewError> {
    verify_with(paths, key, Reading::auto())
}

/// [`verify`], reading as `reading` says.
pub fn verify_with(paths: &[PathBuf], key: Option<&VerifyingKey>, reading: Reading) -> Result<Outcome, ReviewError> {
    let mut out = Outcome { files: paths.len(), signatures_checked: key.is_some(), ..Outcome::default() };
    for (host, files) in group(paths)? {
        let mut walk = Walk::new(host, key);
        for (i, path) in files.iter().enumerate() {
            walk.file(path, i + 1 == files.len(), reading, &mut out)?;
        }
        let report = walk.finish(&mut out);
        out.records += report.records;
        out.chains.push(report);
    }
    out.ok = out.problems.is_empty();
    Ok(out)
}

/// Files by gateway, each gateway's files by first seq.
fn group(paths: &[PathBuf]) -> Result<BTreeMap<String, Vec<PathBuf>>, ReviewError> {
    let mut groups: BTreeMap<String, Vec<(Option<u64>, PathBuf)>> = BTreeMap::new();
    for path in paths {
        let head = file_head(path)?;
        let host = head.host.unwrap_or_else(|| "(unknown gateway)".into());
        groups.entry(host).or_default().push((head.first_seq, path.clone()));
    }
    Ok(groups
        .into_iter()
        .map(|(h, mut v)| {
            v.sort_by_key(|(s, _)| s.unwrap_or(u64::MAX));
            (h, v.into_iter().map(|(_, p)| p).collect())
        })
        .collect())
}

/// A seq range that must be explained by `retention` records.
struct Missing {
    /// Last seq before the range (0: the chain's start).
    before: u64,
    /// First seq after it, and the `prev_hash` that line carries.
    after: u64,
    prev_hash: String,
    file: PathBuf,
    line: u64,
}

/// State while walking one gateway's chain.
struct Walk<'k> {
    key: Option<&'k VerifyingKey>,
    report: ChainReport,
    /// Seq and hash of the previous line; `None` after an unreadable line.
    prev: Option<(u64, Hash)>,
    /// The hash the last line that parsed claims (`report.last_hash`).
    last_hash: Option<Hash>,
    at_start: bool,
    /// Instant of the last line with one, its file (in `report.files`)
    /// and line.
    prev_ts: Option<(i64, usize, u64)>,
    heartbeat_s: Option<u64>,
    stopped: bool,
    missing: Vec<Missing>,
    retention: HashMap<u64, (u64, String)>,
}

impl<'k> Walk<'k> {
    fn new(host: String, key: Option<&'k VerifyingKey>) -> Walk<'k> {
        Walk {
            key,
            report: ChainReport { host, ..ChainReport::default() },
            prev: None,
            last_hash: None,
            at_start: true,
            prev_ts: None,
            heartbeat_s: None,
            stopped: true,
            missing: Vec::new(),
            retention: HashMap::new(),
        }
    }

    fn file(&mut self, path: &Path, last_file: bool, reading: Reading, out: &mut Outcome) -> Result<(), ReviewError> {
        self.report.files.push(path.to_owned());
        let mut first = true;
        par::run(std::slice::from_ref(&path.to_owned()), reading, read_chunk, |chunk, items| {
            for (n, item) in (chunk.first_line..).zip(items) {
                self.report.records += 1;
                let (hash, rec) = match item {
                    Item::Torn(bytes) => {
                        self.torn(bytes, path, n, last_file, out);
                        return false;
                    }
                    Item::TooLong => {
                        out.add(Severity::Problem, path, n, "bad-line", "line longer than 1 MiB".into());
                        self.prev = None;
                        continue;
                    }
                    Item::Line { hash, rec } => (hash, rec),
                };
                let hash = match hash {
                    Ok(h) => Some(h),
                    Err(text) => {
                        out.add(Severity::Problem, path, n, "bad-hash", text);
                        None
                    }
                };
                match rec {
                    Ok(v) => self.line(&v, hash, path, n, first, out),
                    Err(text) => {
                        out.add(Severity::Problem, path, n, "bad-line", text);
                        self.prev = None;
                    }
                }
                first = false;
            }
            true
        })
    }

    fn torn(&mut self, bytes: usize, path: &Path, n: u64, last_file: bool, out: &mut Outcome) {
        let text = format!("torn last line: {bytes} bytes without a newline");
        if last_file {
            let text = format!(
                "{text} (a crash cut the last write short; warden moves it aside and writes a `recovered` record at its next start)"
            );
            out.add(Severity::Warning, path, n, "torn-tail", text);
        } else {
            out.add(
                Severity::Problem,
                path,
                n,
                "torn-line",
                format!("{text}, but the chain continues in a later file"),
            );
        }
    }

    fn line(&mut self, v: &VRec, hash: Option<Hash>, path: &Path, n: u64, first_in_file: bool, out: &mut Outcome) {
        self.link(v, path, n, first_in_file, out);
        self.report.first_seq.get_or_insert(v.seq);
        self.report.last_seq = Some(v.seq);
        self.kind(v, path, n, out);
        self.gap(v, path, n, out);
        // An edited line still names its successor's prev_hash: go on from
        // the hash the line claims, so one edit is one finding.
        let claimed = hash.unwrap_or_else(|| v.hash.clone());
        self.last_hash = Some(claimed.clone());
        self.prev = Some((v.seq, claimed));
        self.at_start = false;
    }

    fn link(&mut self, v: &VRec, path: &Path, n: u64, first_in_file: bool, out: &mut Outcome) {
        let missing = |before| Missing {
            before,
            after: v.seq,
            prev_hash: v.prev_hash.as_str().to_owned(),
            file: path.to_owned(),
            line: n,
        };
        if self.at_start {
            if v.seq != 1 || v.prev_hash.as_str() != GENESIS {
                self.missing.push(missing(0));
            }
            return;
        }
        let Some((pseq, phash)) = &self.prev else { return };
        if v.seq == pseq + 1 && v.prev_hash == *phash {
            return;
        }
        if first_in_file && v.seq > pseq + 1 {
            self.missing.push(missing(*pseq));
            return;
        }
        if v.prev_hash != *phash {
            let text = format!(
                "broken link: prev_hash is {}, the previous line's hash is {phash} (a line before it was deleted, inserted, reordered or edited)",
                v.prev_hash
            );
            out.add(Severity::Problem, path, n, "broken-link", text);
        }
        if v.seq != pseq + 1 {
            let text = format!("seq gap: seq is {}, expected {}", v.seq, pseq + 1);
            out.add(Severity::Problem, path, n, "seq-gap", text);
        }
    }

    fn kind(&mut self, v: &VRec, path: &Path, n: u64, out: &mut Outcome) {
        let extra = v.extra.as_deref();
        let msg = extra.and_then(|x| x.message.as_deref()).unwrap_or("");
        match v.kind {
            Kind::Checkpoint => self.checkpoint(v, path, n, out),
            Kind::Heartbeat => self.heartbeat_s = extra.and_then(|x| x.heartbeat.as_ref()).map(|h| h.interval_s),
            Kind::Retention => {
                if let Some(r) = extra.and_then(|x| x.retention.as_ref()) {
                    self.retention.insert(r.last_seq, (r.first_seq, r.last_hash.clone()));
                    out.add(Severity::Note, path, n, "retention", msg.to_owned());
                }
            }
            Kind::Recovered => {
                out.add(Severity::Note, path, n, "recovered", format!("torn tail recovered after a crash: {msg}"))
            }
            Kind::Loss => {
                let count = extra.and_then(|x| x.count).unwrap_or(0);
                out.add(Severity::Warning, path, n, "loss", format!("{count} records lost: {msg}"))
            }
            Kind::Failure => out.add(Severity::Warning, path, n, "failure", msg.to_owned()),
            Kind::Start => {
                self.report.starts += 1;
                if !self.stopped {
                    let text =
                        "start without a stop before it: the previous run ended abruptly (crash, kill or power loss)";
                    out.add(Severity::Note, path, n, "unclean-stop", text.into());
                }
                self.stopped = false;
            }
            Kind::Stop => self.stopped = true,
            Kind::Other => {}
        }
    }

    fn checkpoint(&mut self, v: &VRec, path: &Path, n: u64, out: &mut Outcome) {
        self.report.checkpoints += 1;
        let Some((x, cp)) = v.extra.as_deref().and_then(|x| Some((x, x.checkpoint.as_ref()?))) else {
            return out.add(Severity::Problem, path, n, "checkpoint", "checkpoint record without its signature".into());
        };
        if cp.seq + 1 != v.seq || cp.hash != v.prev_hash.as_str() {
            let text =
                format!("checkpoint signs seq {} but sits at seq {} (it must sign the line before it)", cp.seq, v.seq);
            return out.add(Severity::Problem, path, n, "checkpoint", text);
        }
        let Some(key) = self.key else { return };
        match sign::verify(key, &x.host, &x.ts, cp) {
            Ok(()) => {
                self.report.checkpoints_verified += 1;
                self.report.last_signed_seq = Some(v.seq);
            }
            Err(e) => out.add(Severity::Problem, path, n, "bad-signature", format!("checkpoint signature: {e}")),
        }
    }

    fn gap(&mut self, v: &VRec, path: &Path, n: u64, out: &mut Outcome) {
        let Some(ms) = v.millis else { return };
        if let (Some((prev, pfile, pline)), Some(interval)) = (self.prev_ts, self.heartbeat_s) {
            let limit = interval.saturating_mul(1500).saturating_add(5000) as i64;
            let gap = ms - prev;
            if gap > limit {
                let ppath = self.report.files.get(pfile).map_or(Path::new(""), PathBuf::as_path);
                let (from, mins) = (format!("{}:{pline}", ppath.display()), gap / 60_000);
                if v.kind == Kind::Start {
                    let text = format!("warden was not running for {mins} min (last record at {from})");
                    out.add(Severity::Note, path, n, "downtime", text);
                } else {
                    let text = format!(
                        "gap: no record for {mins} min since {from}, longer than the heartbeat interval ({interval} s)"
                    );
                    out.add(Severity::Warning, path, n, "gap", text);
                }
            }
        }
        self.prev_ts = Some((ms, self.report.files.len().saturating_sub(1), n));
    }

    /// Settles missing seq ranges against `retention` records, and states
    /// what signatures cover.
    fn finish(mut self, out: &mut Outcome) -> ChainReport {
        self.report.last_hash = self.last_hash.as_ref().map(|h| h.as_str().to_owned());
        for m in &self.missing {
            if !explained(&self.retention, m) {
                let text = if m.before == 0 {
                    format!(
                        "the chain starts at seq {} (prev_hash {}), not at seq 1: earlier records are missing and no retention record explains it",
                        m.after, m.prev_hash
                    )
                } else {
                    format!(
                        "seq {}..{} missing between files: deleted or a file is not given, and no retention record explains it",
                        m.before + 1,
                        m.after - 1
                    )
                };
                out.add(Severity::Problem, &m.file, m.line, "missing-records", text);
            }
        }
        let r = self.report;
        let first = r.files.first().cloned().unwrap_or_default();
        match self.key {
            None => out.add(
                Severity::Note,
                &first,
                0,
                "signatures",
                format!("{}: signatures not checked (no --key): a chain rewritten from the start would pass", r.host),
            ),
            Some(key) if r.checkpoints_verified == 0 => {
                let text = format!(
                    "{}: no checkpoint signed by key {}: the chain may have been rewritten",
                    r.host,
                    sign::key_id(key)
                );
                out.add(Severity::Problem, &first, 0, "unsigned", text);
            }
            Some(_) => {
                let (signed, last) = (r.last_signed_seq.unwrap_or(0), r.last_seq.unwrap_or(0));
                if last > signed {
                    let text = format!(
                        "{}: seq {}..{last} come after the last signed checkpoint and are covered by the chain only",
                        r.host,
                        signed + 1
                    );
                    out.add(Severity::Note, r.files.last().unwrap_or(&first), 0, "unsigned-tail", text);
                }
            }
        }
        r
    }
}

/// Whether retention records cover `before+1 .. after-1` as one run that
/// ends in the hash the next line links to. At the start of the given
/// files (`before == 0`) the file just before is enough: the records that
/// told of older deletions were themselves deleted later.
fn explained(retention: &HashMap<u64, (u64, String)>, m: &Missing) -> bool {
    if m.before == 0 {
        return retention.get(&(m.after - 1)).is_some_and(|(_, h)| *h == m.prev_hash);
    }
    let mut end = m.after - 1;
    let mut want = m.prev_hash.as_str();
    loop {
        let Some((first, last_hash)) = retention.get(&end) else { return false };
        if last_hash != want {
            return false;
        }
        if first.saturating_sub(1) == m.before {
            return true;
        }
        if *first <= m.before + 1 || *first == 0 {
            return false;
        }
        // The file before this one: its last hash is unknown here, so the
        // run continues on seq alone.
        end = first - 1;
        want = retention.get(&end).map_or("", |(_, h)| h.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::review::tests::{edits, sample_lines};

    #[test]
    fn in_place_parsing_reads_what_serde_json_reads() {
        let (mut fast, mut total) = (0, 0);
        for line in sample_lines() {
            for edited in std::iter::once(line.clone()).chain(edits(&line)) {
                total += 1;
                if let Ok(v) = VLine::fast(&edited) {
                    fast += 1;
                    let Ok(slow) = serde_json::from_slice::<VLine<'_>>(&edited) else {
                        panic!("only the fast path reads {}", String::from_utf8_lossy(&edited));
                    };
                    assert_eq!(format!("{v:?}"), format!("{slow:?}"), "{}", String::from_utf8_lossy(&edited));
                }
            }
        }
        assert!(fast > total / 4, "{fast} of {total}");
    }

    #[test]
    fn hashes_of_any_length_compare_as_text() {
        let (a, b) = (Hash::new(GENESIS), Hash::new(&"0".repeat(63)));
        assert_eq!(a.as_str(), GENESIS);
        assert_eq!(b.to_string(), "0".repeat(63));
        assert!(a != b && a == Hash::new(GENESIS) && matches!(Hash::new("é"), Hash::Heap(_)));
    }
}
