//! Fuzzing entry points (not an API): the cargo-fuzz targets in `fuzz/` call
//! these, and the test below replays the committed seed corpora
//! (`fuzz/seeds/<target>/`) through them on every `cargo test`, so CI checks
//! the same code without cargo-fuzz. Each takes arbitrary bytes and must
//! return without panicking; see `docs/fuzzing.md`.

use crate::policy::{Blocklist, Subject};

/// DNS request handling, fast and full path (see `dns::fuzz`).
pub fn dns_request(data: &[u8]) {
    crate::dns::fuzz_request(data);
}

/// The policy compiler on arbitrary text; a compiled policy is asked
/// about a few names and its errors are rendered (positions included).
pub fn policy(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match crate::policy::compile(&text, "fuzz.toml") {
        Ok(policy) => {
            for name in ["kaspersky.com", "a.b.example", "x"] {
                let _ = policy.decide(Subject::Name(name), 1_727_582_400_000);
            }
            let _ = policy.rule_counts();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// A small valid policy the blocklist target compiles its lists beside.
const LIST_POLICY: &str = "[policy]\nid = \"fuzz\"\ntitle = \"t\"\nlegal_basis = \"l\"\nreference_url = \"u\"\n\n\
    [categories]\nupdate = \"u\"\n\n[[phases]]\nname = \"only\"\ndefault = \"block\"\n\n\
    [[rules]]\ncategory = \"update\"\ndomains = [\"upd.example\"]\n";

/// Blocklist parsing: the input is one list beside a small policy; every
/// name the list admits must then be blocked.
pub fn blocklist(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let list = Blocklist { source: "fuzz.list", text: &text };
    let (policy, stats) = crate::policy::compile_with(LIST_POLICY, "fuzz.toml", &[list]).expect("the policy compiles");
    for problem in &stats.problems {
        let _ = format!("{:?}", problem.1);
    }
    for line in text.lines().take(64) {
        let Ok(Some(name)) = crate::policy::blocklist::entry(line) else { continue };
        let Ok(normal) = crate::policy::blocklist::normalize_entry(name) else { continue };
        let verdict = policy.decide(Subject::Name(normal.as_str()), 0);
        assert_eq!(verdict.action, crate::policy::Action::Block, "list entry {name:?} is not blocked");
    }
}

/// The audit-log reader: each line through `check_line`, the whole input
/// through `verify_reader`.
pub fn audit_log(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        for line in text.split_inclusive('\n') {
            let _ = crate::audit::check_line(line);
        }
    }
    let report = crate::audit::verify_reader(data);
    let lines = data.split_inclusive(|&b| b == b'\n').count() as u64;
    assert!(report.lines <= lines, "{} lines reported, {lines} in the input", report.lines);
    for problem in &report.problems {
        let _ = problem.to_string();
    }
}

/// The reviews (`summary`, `hosts`, `timeline`) on arbitrary log bytes:
/// each must read them without panicking, and reading them in tiny chunks
/// on two threads (many chunk edges, clients split across shards) must give
/// exactly what reading them on one thread gives, errors included.
pub fn audit_review(data: &[u8]) {
    use crate::audit::review::rec::Filter;
    use crate::audit::review::timeline::Bucket;
    use crate::audit::review::{Reading, hosts, summary, timeline};

    // One file per fuzzing process (libFuzzer's jobs are processes).
    let path = std::env::temp_dir().join(format!("warden-fuzz-review-{}.jsonl", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let files = [path.clone()];
    let prohibition = Some("2024-09-29T04:00:00.000Z");
    let filter = Filter::default();
    let [one, many] = [Reading::sequential(), Reading { workers: 2, chunk: 64 }].map(|reading| {
        [
            as_json(summary::summarize_with(&files, prohibition, reading)),
            as_json(hosts::hosts_with(&files, prohibition, &filter, None, reading)),
            as_json(timeline::timeline_with(&files, Bucket::Hour, &filter, prohibition, reading)),
        ]
    });
    let _ = std::fs::remove_file(&path);
    for (review, (a, b)) in ["summary", "hosts", "timeline"].iter().zip(one.iter().zip(&many)) {
        assert_eq!(a, b, "{review}: one thread and two threads in small chunks disagree");
    }
}

/// A review's result as `--json` prints it, or its error.
fn as_json<T: serde::Serialize>(result: Result<T, crate::audit::review::ReviewError>) -> String {
    match result {
        Ok(v) => serde_json::to_string(&v).unwrap_or_else(|e| format!("unserializable: {e}")),
        Err(e) => format!("error: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Every file of `fuzz/seeds/<target>/`; fails when there is none.
    fn replay(target: &str, run: fn(&[u8])) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds").join(target);
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("directory entry").path())
            .collect();
        entries.sort();
        assert!(!entries.is_empty(), "no seeds in {}", dir.display());
        for path in entries {
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            run(&bytes);
        }
    }

    #[test]
    fn dns_request_seeds_replay() {
        replay("dns_request", super::dns_request);
    }

    #[test]
    fn policy_seeds_replay() {
        replay("policy", super::policy);
    }

    #[test]
    fn blocklist_seeds_replay() {
        replay("blocklist", super::blocklist);
    }

    #[test]
    fn audit_log_seeds_replay() {
        replay("audit_log", super::audit_log);
    }

    #[test]
    fn audit_review_seeds_replay() {
        replay("audit_review", super::audit_review);
    }
}
