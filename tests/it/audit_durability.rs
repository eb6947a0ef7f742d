//! The real daemon's log survives what happens to a gateway: rotation
//! (compressed, with retention) keeps one signed chain across files, and a
//! crash's torn tail is moved aside and reported as recovered.

use std::io::Write;

use crate::audit_fixture::{audit, p, stdout};
use crate::support::*;

/// Starts warden with `[audit]` settings and a signing key outside the log dir.
fn start_with(audit_toml: &str, keys: &std::path::Path) -> Warden {
    let upstream = FakeUpstream::start(Zone::new());
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("warden.toml");
    let key = keys.join(::warden::audit::sign::SECRET_FILE);
    std::fs::write(&config, format!("[audit]\nsigning_key = \"{}\"\n{audit_toml}", key.display())).expect("config");
    let w = Warden::start_in(dir, upstream.addr(), None, &["--config", p(&config)]);
    std::mem::forget(upstream); // lives until the test process ends
    w
}

fn keys() -> tempfile::TempDir {
    let keys = tempfile::tempdir().expect("tempdir");
    assert!(audit(&["keygen", "--out", p(keys.path())]).status.success());
    keys
}

fn log_files(dir: &std::path::Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .filter_map(Result::ok)
        .map(|e| e.path().to_string_lossy().into_owned())
        .filter(|f| f.contains("audit.") && !f.ends_with(".toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn rotation_with_compression_and_retention_keeps_one_verifiable_signed_chain() {
    let keys = keys();
    let mut w = start_with("rotate_max_bytes = 4096\ncompress = \"zstd\"\nkeep_files = 2\n", keys.path());
    for i in 0..60 {
        query_udp(w.addr, &format!("s{i}.upd.kaspersky.com"), RecordType::A);
    }
    assert!(w.stop().success(), "{}", w.stderr());
    let files = log_files(w.dir.path());
    let closed: Vec<_> = files.iter().filter(|f| f.ends_with(".contacts.jsonl.zst")).collect();
    assert_eq!(closed.len(), 2, "retention keeps 2 closed files: {files:?}");
    let public = keys.path().join(::warden::audit::sign::PUBLIC_FILE);
    let mut args = vec!["verify", "--key", p(&public)];
    args.extend(files.iter().map(String::as_str));
    let out = audit(&args);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("[retention] retention limit: deleting audit.0000000000"), "{text}");
    assert!(text.contains("signatures checked"), "{text}");

    // Without the oldest kept file, the chain has a hole nobody explained.
    let partial: Vec<&str> = files.iter().filter(|f| *f != closed[0]).map(String::as_str).collect();
    let mut args = vec!["verify"];
    args.extend(partial);
    let out = audit(&args);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("[missing-records]"), "{}", stdout(&out));
}

#[test]
fn a_torn_tail_after_a_crash_is_moved_aside_and_reported_as_recovered() {
    let keys = keys();
    let w = start_with("", keys.path());
    query_udp(w.addr, "s1.upd.kaspersky.com", RecordType::A);
    w.wait_records(1, |r| r["type"] == "contact");
    let dir = w.into_dir();
    // A crash in the middle of a write: half a line, no newline.
    let log = dir.path().join("audit.jsonl");
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).expect("open");
    f.write_all(b"{\"ts\":\"2024-10-01T00:00:00.000Z\",\"seq\":99,\"type\":\"cont").expect("write");
    drop(f);
    let before = audit(&["verify", p(&log)]);
    assert!(before.status.success(), "{}", stdout(&before));
    assert!(stdout(&before).contains("[torn-tail]"), "{}", stdout(&before));

    let upstream = FakeUpstream::start(Zone::new());
    let mut w = Warden::start_in(dir, upstream.addr(), None, &[]);
    query_udp(w.addr, "s2.upd.kaspersky.com", RecordType::A);
    w.wait_records(2, |r| r["type"] == "contact");
    let status = w.stop();
    assert!(status.success(), "{status:?}: {}", w.stderr());
    let after = audit(&["verify", p(&w.audit)]);
    let text = stdout(&after);
    assert!(after.status.success(), "{text}");
    assert!(text.contains("[recovered] torn tail recovered after a crash: moved 54 bytes"), "{text}");
    assert!(!text.contains("FAIL") && !text.contains("torn-tail"), "{text}");
}
