//! `verify` across files and gateways: groups files by gateway, orders each
//! gateway's files by first `seq`, and walks the chain through them: each
//! line's hash, links and seq (across file boundaries too), checkpoint
//! signatures, torn lines, and gaps longer than the heartbeat interval.
//! Seq ranges deleted by retention are accepted only when a `retention`
//! record in the chain names them. Every finding carries file and line.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use super::ReviewError;
use super::input::{LineReader, file_head};
use super::rec::millis;
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
#[derive(Deserialize)]
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

/// Verifies every chain in `paths`; with `key`, checkpoint signatures too.
pub fn verify(paths: &[PathBuf], key: Option<&VerifyingKey>) -> Result<Outcome, ReviewError> {
    let mut out = Outcome { files: paths.len(), signatures_checked: key.is_some(), ..Outcome::default() };
    for (host, files) in group(paths)? {
        let mut walk = Walk::new(host, key);
        for (i, path) in files.iter().enumerate() {
            walk.file(path, i + 1 == files.len(), &mut out)?;
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
    prev: Option<(u64, String)>,
    at_start: bool,
    prev_ts: Option<(i64, PathBuf, u64)>,
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
            at_start: true,
            prev_ts: None,
            heartbeat_s: None,
            stopped: true,
            missing: Vec::new(),
            retention: HashMap::new(),
        }
    }

    fn file(&mut self, path: &Path, last_file: bool, out: &mut Outcome) -> Result<(), ReviewError> {
        self.report.files.push(path.to_owned());
        let mut reader = LineReader::open(path, 0)?;
        let mut first = true;
        let read_err = |source| ReviewError::Read { path: path.to_owned(), source };
        while let Some(line) = reader.next_line().map_err(read_err)? {
            self.report.records += 1;
            let n = line.number;
            if line.torn {
                let text = format!("torn last line: {} bytes without a newline", line.bytes.len());
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
                break;
            }
            if line.too_long {
                out.add(Severity::Problem, path, n, "bad-line", "line longer than 1 MiB".into());
                self.prev = None;
                continue;
            }
            let hash = match check_hash(line.bytes) {
                Ok(h) => Some(h.to_owned()),
                Err(e) => {
                    out.add(
                        Severity::Problem,
                        path,
                        n,
                        "bad-hash",
                        format!("{e} (the line was edited or is not a record)"),
                    );
                    None
                }
            };
            match serde_json::from_slice::<VLine<'_>>(line.bytes) {
                Ok(v) => self.line(&v, hash, path, n, first, out),
                Err(e) => {
                    out.add(Severity::Problem, path, n, "bad-line", format!("not an audit record: {e}"));
                    self.prev = None;
                }
            }
            first = false;
        }
        Ok(())
    }

    fn line(
        &mut self,
        v: &VLine<'_>,
        hash: Option<String>,
        path: &Path,
        n: u64,
        first_in_file: bool,
        out: &mut Outcome,
    ) {
        self.link(v, path, n, first_in_file, out);
        self.report.first_seq.get_or_insert(v.seq);
        self.report.last_seq = Some(v.seq);
        self.kind(v, path, n, out);
        self.gap(v, path, n, out);
        // An edited line still names its successor's prev_hash: go on from
        // the hash the line claims, so one edit is one finding.
        let claimed = hash.unwrap_or_else(|| v.hash.to_string());
        self.report.last_hash = Some(claimed.clone());
        self.prev = Some((v.seq, claimed));
        self.at_start = false;
    }

    fn link(&mut self, v: &VLine<'_>, path: &Path, n: u64, first_in_file: bool, out: &mut Outcome) {
        let missing = |before| Missing {
            before,
            after: v.seq,
            prev_hash: v.prev_hash.to_string(),
            file: path.to_owned(),
            line: n,
        };
        if self.at_start {
            if v.seq != 1 || v.prev_hash != GENESIS {
                self.missing.push(missing(0));
            }
            return;
        }
        let Some((pseq, phash)) = &self.prev else { return };
        if v.seq == pseq + 1 && v.prev_hash == phash.as_str() {
            return;
        }
        if first_in_file && v.seq > pseq + 1 {
            self.missing.push(missing(*pseq));
            return;
        }
        if v.prev_hash != phash.as_str() {
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

    fn kind(&mut self, v: &VLine<'_>, path: &Path, n: u64, out: &mut Outcome) {
        let msg = v.message.as_deref().unwrap_or("");
        match v.kind.as_ref() {
            "checkpoint" => self.checkpoint(v, path, n, out),
            "heartbeat" => self.heartbeat_s = v.heartbeat.as_ref().map(|h| h.interval_s),
            "retention" => {
                if let Some(r) = &v.retention {
                    self.retention.insert(r.last_seq, (r.first_seq, r.last_hash.clone()));
                    out.add(Severity::Note, path, n, "retention", msg.to_owned());
                }
            }
            "recovered" => {
                out.add(Severity::Note, path, n, "recovered", format!("torn tail recovered after a crash: {msg}"))
            }
            "loss" => {
                out.add(Severity::Warning, path, n, "loss", format!("{} records lost: {msg}", v.count.unwrap_or(0)))
            }
            "failure" => out.add(Severity::Warning, path, n, "failure", msg.to_owned()),
            "start" => {
                self.report.starts += 1;
                if !self.stopped {
                    let text =
                        "start without a stop before it: the previous run ended abruptly (crash, kill or power loss)";
                    out.add(Severity::Note, path, n, "unclean-stop", text.into());
                }
                self.stopped = false;
            }
            "stop" => self.stopped = true,
            _ => {}
        }
    }

    fn checkpoint(&mut self, v: &VLine<'_>, path: &Path, n: u64, out: &mut Outcome) {
        self.report.checkpoints += 1;
        let Some(cp) = &v.checkpoint else {
            return out.add(Severity::Problem, path, n, "checkpoint", "checkpoint record without its signature".into());
        };
        if cp.seq + 1 != v.seq || cp.hash != v.prev_hash {
            let text =
                format!("checkpoint signs seq {} but sits at seq {} (it must sign the line before it)", cp.seq, v.seq);
            return out.add(Severity::Problem, path, n, "checkpoint", text);
        }
        let Some(key) = self.key else { return };
        match sign::verify(key, &v.host, &v.ts, cp) {
            Ok(()) => {
                self.report.checkpoints_verified += 1;
                self.report.last_signed_seq = Some(v.seq);
            }
            Err(e) => out.add(Severity::Problem, path, n, "bad-signature", format!("checkpoint signature: {e}")),
        }
    }

    fn gap(&mut self, v: &VLine<'_>, path: &Path, n: u64, out: &mut Outcome) {
        let Some(ms) = millis(&v.ts) else { return };
        if let (Some((prev, ppath, pline)), Some(interval)) = (&self.prev_ts, self.heartbeat_s) {
            let limit = interval.saturating_mul(1500).saturating_add(5000) as i64;
            let gap = ms - prev;
            if gap > limit {
                let (from, mins) = (format!("{}:{pline}", ppath.display()), gap / 60_000);
                if v.kind == "start" {
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
        self.prev_ts = Some((ms, path.to_owned(), n));
    }

    /// Settles missing seq ranges against `retention` records, and states
    /// what signatures cover.
    fn finish(self, out: &mut Outcome) -> ChainReport {
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
