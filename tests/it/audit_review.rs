//! `warden audit summary | hosts | timeline | export` give the right
//! numbers on logs with known contents, from several gateways and
//! compressed files, skip malformed lines by number, and exit quietly
//! into a closed pipe.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use warden::audit::compress::{Compression, write_compressed};

use crate::audit_fixture::*;

/// gw1 plain (with a malformed line 4 inserted), gw2 as zstd.
fn logs(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    let (a, b) = (dir.join("gw1.jsonl"), dir.join("gw2.jsonl.zst"));
    let mut lines = chain(&gw1(), "gw1");
    lines.insert(3, "{\"ts\":\"garbage\n".into());
    write(&a, &lines);
    write_compressed(&b, chain(&gw2(), "gw2").concat().as_bytes(), Compression::Zstd).expect("zstd");
    (a, b)
}

#[test]
fn summary_counts_what_the_logs_hold() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = logs(dir.path());
    let out = audit(&["summary", "--json", p(&a), p(&b)]);
    assert!(out.status.success());
    let s = json(&out);
    assert_eq!((s["records"].as_u64(), s["contacts"].as_u64()), (Some(15), Some(11)), "{s}");
    assert_eq!(s["contacts_after_prohibition"], 9);
    assert_eq!((s["clients"].as_u64(), s["clients_after_prohibition"].as_u64()), (Some(4), Some(4)));
    assert_eq!(s["by_category"], serde_json::json!({"activation": 1, "telemetry": 1, "update": 7, "web": 2}));
    assert_eq!(s["by_layer"], serde_json::json!({"dns": 9, "http": 1, "sni": 1}));
    assert_eq!(s["by_action"], serde_json::json!({"block": 9, "monitor": 2}));
    assert_eq!(s["by_gateway"], serde_json::json!({"gw1": 9, "gw2": 2}));
    assert_eq!(
        (s["first_contact"].as_str(), s["last_contact"].as_str()),
        (Some("2024-09-28T10:00:00.000Z"), Some("2024-10-03T12:00:00.000Z"))
    );
    assert_eq!(s["input"]["malformed"][0]["line"], 4, "{s}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("gw1.jsonl:4: skipped"), "{stderr}");
}

#[test]
fn hosts_rank_software_contacts_after_the_prohibition_first_and_name_leased_machines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = logs(dir.path());
    let leases = dir.path().join("dhcpd.leases");
    std::fs::write(&leases, "lease 192.168.1.20 {\n  starts 0 2024/09/28 00:00:00;\n  ends 0 2024/10/05 00:00:00;\n  hardware ethernet aa:bb:cc:00:00:20;\n  client-hostname \"fin-laptop-7\";\n}\n").expect("leases");
    let out = audit(&["hosts", "--json", "--leases", p(&leases), p(&a), p(&b)]);
    let h = json(&out);
    let rows = h["rows"].as_array().expect("rows");
    let order: Vec<&str> = rows.iter().map(|r| r["client"].as_str().unwrap_or("")).collect();
    // Software after the prohibition, most recent last contact first; the
    // browsing-only client (web category) last.
    assert_eq!(order, ["10.0.0.5", "192.168.1.20", "192.168.1.40", "192.168.1.30"]);
    let r = &rows[1];
    assert_eq!((r["contacts"].as_u64(), r["after_prohibition"].as_u64()), (Some(6), Some(5)));
    assert_eq!(r["first_contact"], "2024-09-28T10:00:00.000Z");
    assert_eq!(r["last_contact"], "2024-10-02T09:00:00.000Z");
    assert_eq!(r["top_names"][0], serde_json::json!(["s1.upd.kaspersky.com", 4]));
    assert_eq!(r["machines"][0]["hostname"], "fin-laptop-7");
    assert_eq!(r["machines"][0]["mac"], "aa:bb:cc:00:00:20");
    let table = stdout(&audit(&["hosts", p(&a), p(&b)]));
    assert!(table.lines().nth(1).is_some_and(|l| l.starts_with("10.0.0.5")), "{table}");
}

#[test]
fn timeline_counts_contacts_per_day_overall_and_per_client() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = logs(dir.path());
    let t = json(&audit(&["timeline", "--by", "day", "--json", p(&a), p(&b)]));
    let expect = serde_json::json!([
        ["2024-09-28T00:00:00Z", 2],
        ["2024-09-29T00:00:00Z", 2],
        ["2024-09-30T00:00:00Z", 3],
        ["2024-10-01T00:00:00Z", 2],
        ["2024-10-02T00:00:00Z", 1],
        ["2024-10-03T00:00:00Z", 1]
    ]);
    assert_eq!(t["buckets"], expect);
    let t = json(&audit(&["timeline", "--by", "hour", "--client", "192.168.1.30", "--json", p(&a)]));
    assert_eq!(t["buckets"], serde_json::json!([["2024-09-28T11:00:00Z", 1], ["2024-09-30T07:00:00Z", 1]]));
}

#[test]
fn export_filters_by_time_client_category_layer_and_prohibition() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = logs(dir.path());
    let rows = |args: &[&str]| {
        let mut all = vec!["export", "--format", "csv"];
        all.extend_from_slice(args);
        all.extend([p(&a), p(&b)]);
        let out = audit(&all);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        stdout(&out).lines().skip(1).map(str::to_owned).collect::<Vec<_>>()
    };
    assert_eq!(rows(&[]).len(), 11);
    assert_eq!(rows(&["--after-prohibition"]).len(), 9);
    assert_eq!(rows(&["--client", "192.168.1.0/24", "--category", "update"]).len(), 5);
    assert_eq!(
        rows(&["--layer", "sni"]),
        [
            "2024-09-29T05:30:00.000Z,gw1,5,192.168.1.20,sni,ksn-a.kaspersky-labs.com,A,,,block,telemetry,domain:ksn-a.kaspersky-labs.com,prohibition,us-bis-kaspersky-2024"
        ]
    );
    assert_eq!(rows(&["--since", "2024-10-01T00:00:00Z", "--until", "2024-10-02T00:00:00Z"]).len(), 2);
    let out = audit(&["export", "--format", "jsonl", "--client", "10.0.0.5", p(&b)]);
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout).expect("utf-8").lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(warden::audit::check_line(lines[0]).is_ok(), "jsonl export keeps the hashed lines intact");
}

#[test]
fn a_closed_pipe_ends_the_output_quietly_with_success() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.jsonl");
    let records: Vec<_> = (0..20_000)
        .map(|i| {
            contact(
                "2024-10-01T00:00:00Z",
                &format!("10.1.{}.{}", i / 250, i % 250),
                "s1.upd.kaspersky.com",
                "update",
                warden::audit::Layer::Dns,
            )
        })
        .collect();
    write(&path, &chain(&records, "gw1"));
    let mut child = Command::new(crate::support::warden::bin())
        .args(["audit", "export", "--format", "csv", p(&path)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut first).expect("read");
    assert!(first.starts_with("ts,gateway"), "{first}");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{out:?}");
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}
