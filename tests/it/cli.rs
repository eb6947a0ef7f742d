//! The command-line contract: check, lookup, refusing a broken policy,
//! exit codes.

use std::process::Command;

use crate::support::warden::bin;

fn warden(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin()).args(args).output().expect("run warden");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const BROKEN: &str = r#"[policy]
id = "broken"
title = "t"
legal_basis = "l"
reference_url = "u"

[categories]
update = "u"

[[phases]]
name = "only"
default = "block"

[[rules]]
category = "updates"
domains = ["a..example"]
"#;

#[test]
fn a_broken_policy_is_refused_with_its_line_numbers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("broken.toml");
    std::fs::write(&file, BROKEN).expect("write");
    let path = file.to_str().expect("utf-8 path");
    let (code, _, err) = warden(&["check", path]);
    assert_eq!(code, 1);
    assert!(err.contains(&format!("{path}:15:12: unknown category \"updates\"")), "{err}");
    let (code, _, err) = warden(&["run", "--listen", "127.0.0.1:0", "--policy", path, "--audit-log", "/dev/null"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("refusing to start") && err.contains(":15:12:"), "{err}");
}

#[test]
fn check_summarises_the_builtin_policy() {
    let (code, out, err) = warden(&["check", "--at", "2024-10-01T00:00:00Z"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("policy us-bis-kaspersky-2024"), "{out}");
    assert!(out.contains("2024-09-29T04:00:00Z"), "{out}");
    assert!(out.contains("in force at 2024-10-01T00:00:00Z: phase prohibition"), "{out}");
    assert!(out.lines().any(|l| l.trim_start().starts_with("update") && l.contains("block")), "{out}");
}

#[test]
fn check_reports_blocklist_entries_and_the_lines_it_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = dir.path().join("list.txt");
    std::fs::write(
        &list,
        "# comment\nads.example.net\n0.0.0.0 tracker.example.org\nnot a name!\n||pixel.example.com^\n",
    )
    .expect("write");
    let path = list.to_str().expect("utf-8 path");
    let (code, out, err) = warden(&["check", "--blocklist", path]);
    assert_eq!(code, 0, "a skipped line is a warning, not a failure: {err}");
    assert!(out.contains("blocklists: 3 entries, 0 duplicates, 1 lines skipped"), "{out}");
    assert!(err.contains(&format!("{path}:4: skipped:")), "{err}");
}

#[test]
fn lookup_explains_the_verdict_over_time() {
    let (code, out, _) = warden(&["lookup", "s10.upd.kaspersky.com", "--at", "2024-10-01T00:00:00Z"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("s10.upd.kaspersky.com: block (phase prohibition"), "{out}");
    assert!(out.contains("rule:     domain:upd.kaspersky.com"), "{out}");
    let (_, out, _) = warden(&["lookup", "s10.upd.kaspersky.com", "--at", "2024-09-28T23:59:59-04:00"]);
    assert!(out.starts_with("s10.upd.kaspersky.com: monitor"), "{out}");
    assert!(out.contains("changes:  at 2024-09-29T04:00:00Z"), "{out}");
    let (_, out, _) = warden(&["lookup", "notkaspersky.com", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!((v["action"].as_str(), v["rule"].is_null()), (Some("allow"), true));
    let (_, out, _) = warden(&["lookup", "77.74.176.9", "--at", "2025-01-01T00:00:00Z", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["action"], "block");
}

#[test]
fn unknown_flags_are_usage_errors() {
    let (code, _, err) = warden(&["run", "--no-such-flag"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, _) = warden(&["lookup", "x.example", "--at", "yesterday"]);
    assert_eq!(code, 1);
}
