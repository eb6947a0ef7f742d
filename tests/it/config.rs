//! `warden check --config`: the example config is valid; a bad one reports
//! every problem with its line; `warden run` refuses the same file.

use std::process::Command;

use crate::support::warden::bin;

fn warden(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin()).args(args).output().expect("run warden");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

#[test]
fn the_example_config_is_valid() {
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/warden.toml")).expect("example");
    let policy = concat!(env!("CARGO_MANIFEST_DIR"), "/policies/kaspersky.toml");
    let text = example.replace("user = \"warden\"", "user = \"root\"").replace("/etc/warden/kaspersky.toml", policy);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("warden.toml");
    std::fs::write(&file, text).expect("write");
    let (code, out, err) = warden(&["check", "--config", file.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("config ") && out.contains(": ok"), "{out}");
}

#[test]
fn every_config_error_is_reported_with_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.toml");
    let text = "user = \"no-such-user-warden\"\n[dns]\nlisten = [\"127.0.0.1:8053\"]\nmax_inflight = 0\ncache = 5\n[rate_limit]\nipv6_prefix = 200\n[metrics]\nlisten = \"127.0.0.1:8053\"\n[audit]\nflush_interval_ms = 0\n";
    std::fs::write(&file, text).expect("write");
    let path = file.to_str().expect("utf-8");
    let (code, _, err) = warden(&["check", "--config", path]);
    assert_eq!(code, 1, "{err}");
    for want in [
        format!("{path}:4:1: dns.max_inflight"),
        format!("{path}:5:1: unknown field `cache` in [dns]"),
        format!("{path}:7:1: rate_limit.ipv6_prefix"),
        format!("{path}:9:1: metrics.listen"),
        format!("{path}:11:1: audit.flush_interval_ms"),
    ] {
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    }
    let (code, _, err) = warden(&["run", "--config", path, "--audit-log", "/dev/null"]);
    assert_eq!(code, 1);
    assert!(err.contains(":4:1: dns.max_inflight"), "{err}");
}

#[test]
fn check_reports_an_unknown_user() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "user = \"no-such-user-warden\"\n").expect("write");
    let (code, _, err) = warden(&["check", "--config", file.to_str().expect("utf-8")]);
    assert_eq!(code, 1);
    assert!(err.contains("user \"no-such-user-warden\" does not exist"), "{err}");
}
