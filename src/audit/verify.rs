//! Walking a whole log and reporting where its chain breaks. Reads only what
//! it is given; it never repairs or rewrites a log (`warden audit verify`
//! builds on this).

use std::fmt;
use std::io::{self, BufRead};

use super::chain::{ChainError, ChainLink, GENESIS, check_line, parse_link};

/// At most this many problems are listed; the rest are only counted.
pub const MAX_PROBLEMS: usize = 100;

/// What is wrong with one line.
#[derive(Debug)]
pub enum ProblemKind {
    /// The line is not UTF-8.
    NotUtf8,
    /// The line's own hash does not check, or the line does not parse.
    BadLine(ChainError),
    /// `prev_hash` is not the previous line's `hash` (GENESIS on line 1).
    BrokenLink { expected: String, found: String },
    /// `seq` is not the previous line's `seq` + 1 (1 on line 1).
    SeqGap { expected: u64, found: u64 },
    /// The last line has no trailing newline (a write cut short).
    TornTail { bytes: usize },
    /// Reading failed; nothing after this line was checked.
    Io(io::Error),
}

/// A problem and the 1-based line it is on.
#[derive(Debug)]
pub struct Problem {
    pub line: u64,
    pub kind: ProblemKind,
}

/// The outcome of [`verify_reader`].
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Lines read, the torn tail included.
    pub lines: u64,
    /// Chain fields of the last line that parsed.
    pub last: Option<ChainLink>,
    /// The first [`MAX_PROBLEMS`] problems, in file order.
    pub problems: Vec<Problem>,
    /// Problems found beyond those listed.
    pub omitted: u64,
}

impl VerifyReport {
    /// True when every line checks and links.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    fn push(&mut self, line: u64, kind: ProblemKind) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(Problem { line, kind });
        } else {
            self.omitted += 1;
        }
    }
}

/// Checks every line's hash, that each `prev_hash` is the previous `hash`
/// and that `seq` counts up by one from 1.
pub fn verify_reader(mut r: impl BufRead) -> VerifyReport {
    let mut report = VerifyReport::default();
    // The pseudo-link before line 1: seq 0, hash GENESIS.
    let mut prev = Some(ChainLink { seq: 0, prev_hash: String::new(), hash: GENESIS.into() });
    let mut buf = Vec::with_capacity(512);
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                report.push(report.lines + 1, ProblemKind::Io(e));
                break;
            }
        }
        report.lines += 1;
        let n = report.lines;
        if buf.last() != Some(&b'\n') {
            report.push(n, ProblemKind::TornTail { bytes: buf.len() });
            break;
        }
        let Ok(line) = std::str::from_utf8(&buf) else {
            report.push(n, ProblemKind::NotUtf8);
            prev = None;
            continue;
        };
        let link = match check_line(line) {
            Ok(link) => Some(link),
            Err(e) => {
                report.push(n, ProblemKind::BadLine(e));
                // An edited line still names its successor's prev_hash.
                parse_link(line.trim_end_matches('\n')).ok()
            }
        };
        if let (Some(p), Some(l)) = (&prev, &link) {
            check_link(&mut report, n, p, l);
        }
        if link.is_some() {
            report.last.clone_from(&link);
        }
        prev = link;
    }
    report
}

fn check_link(report: &mut VerifyReport, n: u64, prev: &ChainLink, link: &ChainLink) {
    if link.prev_hash != prev.hash {
        let (expected, found) = (prev.hash.clone(), link.prev_hash.clone());
        report.push(n, ProblemKind::BrokenLink { expected, found });
    }
    let expected = prev.seq.saturating_add(1);
    if link.seq != expected {
        report.push(n, ProblemKind::SeqGap { expected, found: link.seq });
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: ", self.line)?;
        match &self.kind {
            ProblemKind::NotUtf8 => f.write_str("not UTF-8"),
            ProblemKind::BadLine(e) => match std::error::Error::source(e) {
                Some(source) => write!(f, "{e}: {source}"),
                None => write!(f, "{e}"),
            },
            ProblemKind::BrokenLink { expected, found } => {
                write!(f, "broken link: prev_hash is {found}, expected {expected}")
            }
            ProblemKind::SeqGap { expected, found } => {
                write!(f, "seq gap: seq is {found}, expected {expected}")
            }
            ProblemKind::TornTail { bytes } => {
                write!(f, "torn last line: {bytes} bytes without a newline")
            }
            ProblemKind::Io(e) => write!(f, "read error: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::encode;
    use crate::audit::record::{Record, RecordType};

    fn log(n: u64) -> Vec<String> {
        let ts = "2024-09-29T04:00:00Z".parse().unwrap();
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let r = Record::event(ts, RecordType::Policy, format!("record {seq}"));
                let line = encode(&r, seq, &prev, "gw1").unwrap();
                prev = check_line(&line).unwrap().hash;
                line
            })
            .collect()
    }

    fn verify(lines: &[String]) -> VerifyReport {
        verify_reader(lines.concat().as_bytes())
    }

    #[test]
    fn intact_log_verifies() {
        let report = verify(&log(5));
        assert!(report.is_ok(), "{:?}", report.problems);
        assert_eq!((report.lines, report.last.map(|l| l.seq)), (5, Some(5)));
    }

    #[test]
    fn edited_line_is_reported_with_its_line_number() {
        let mut lines = log(5);
        lines[2] = lines[2].replace("record 3", "record 9");
        let report = verify(&lines);
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        let p = &report.problems[0];
        assert!(matches!(p.kind, ProblemKind::BadLine(ChainError::HashMismatch { .. })));
        assert_eq!(p.line, 3);
        assert!(p.to_string().starts_with("line 3: hash mismatch"), "{p}");
    }

    #[test]
    fn deleted_line_breaks_the_link_of_the_next() {
        let mut lines = log(5);
        lines.remove(1);
        let report = verify(&lines);
        let found: Vec<_> = report.problems.iter().map(|p| (p.line, &p.kind)).collect();
        assert!(
            matches!(
                found[..],
                [(2, ProblemKind::BrokenLink { .. }), (2, ProblemKind::SeqGap { expected: 2, found: 3 }),]
            ),
            "{found:?}"
        );
    }

    #[test]
    fn deleted_first_line_is_reported() {
        let mut lines = log(3);
        lines.remove(0);
        let report = verify(&lines);
        assert!(matches!(report.problems[0], Problem { line: 1, kind: ProblemKind::BrokenLink { .. } }));
    }

    #[test]
    fn torn_tail_and_garbage_are_reported() {
        let mut lines = log(3);
        lines.insert(1, "garbage\n".into());
        lines[3].truncate(20);
        let report = verify(&lines);
        let found: Vec<_> = report.problems.iter().map(|p| (p.line, &p.kind)).collect();
        assert!(
            matches!(
                found[..],
                [(2, ProblemKind::BadLine(ChainError::NoHash)), (4, ProblemKind::TornTail { bytes: 20 }),]
            ),
            "{found:?}"
        );
    }
}
