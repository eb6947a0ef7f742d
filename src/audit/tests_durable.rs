//! Writer tests for the durable features: heartbeats and enforcement
//! failures, signed checkpoints, per-record fsync, rotation by age with
//! compression, all checked through the review verifier.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use super::compress::Compression;
use super::review::verify::verify;
use super::*;

fn contact(n: u8) -> Record {
    let client = std::net::IpAddr::from([192, 168, 1, n]);
    Record::contact(chrono::Utc::now(), client, Layer::Dns).with_name("s10.upd.kaspersky.com")
}

fn wait_for_line(path: &Path, what: &str, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = fs::read_to_string(path).unwrap_or_default();
        if let Some(v) = text.lines().filter_map(|l| serde_json::from_str(l).ok()).find(|v| pred(v)) {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}:\n{text}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn heartbeats_count_records_since_the_last_and_a_lost_enforcement_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let enforcing = Arc::new(AtomicBool::new(true));
    let config = AuditConfig {
        flush_interval: Duration::from_millis(20),
        heartbeat_interval: Duration::from_millis(100),
        enforcing: Some(Arc::clone(&enforcing)),
        ..AuditConfig::new(&path, "gw1")
    };
    let (handle, writer) = spawn(config).unwrap();
    for i in 0..3 {
        assert!(handle.submit(contact(i)));
    }
    let beat = wait_for_line(&path, "a heartbeat with 3 records", |v| v["heartbeat"]["written"] == 3);
    assert_eq!(
        (beat["heartbeat"]["enforcing"].as_bool(), beat["heartbeat"]["dropped"].as_u64()),
        (Some(true), Some(0))
    );
    enforcing.store(false, Relaxed);
    wait_for_line(&path, "a failure record", |v| v["type"] == "failure");
    wait_for_line(&path, "a heartbeat saying enforcement is off", |v| v["heartbeat"]["enforcing"] == false);
    drop(handle);
    writer.finish().unwrap();
    assert!(verify(&[path], None).unwrap().ok);
}

#[test]
fn checkpoints_sign_the_head_and_a_key_in_the_log_directory_is_refused() {
    let (logs, keys) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let path = logs.path().join("audit.jsonl");
    let (secret, public) = sign::keygen(keys.path()).unwrap();
    let config = AuditConfig { signing_key: Some(secret.clone()), ..AuditConfig::new(&path, "gw1") };
    let (handle, writer) = spawn(config).unwrap();
    handle.submit(contact(1));
    drop(handle);
    let summary = writer.finish().unwrap();
    let text = fs::read_to_string(&path).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(
        (last["type"].as_str(), last["checkpoint"]["seq"].as_u64()),
        (Some("checkpoint"), Some(summary.last_seq - 1))
    );
    let key = sign::load_public_key(&public).unwrap();
    let outcome = verify(std::slice::from_ref(&path), Some(&key)).unwrap();
    assert!(outcome.ok && outcome.chains[0].checkpoints_verified == 1, "{outcome:?}");

    let inside = logs.path().join("audit-signing.key");
    fs::copy(&secret, &inside).unwrap();
    let config = AuditConfig { signing_key: Some(inside), ..AuditConfig::new(&path, "gw1") };
    assert!(matches!(spawn(config), Err(AuditError::KeyInLogDir { .. })));
}

#[test]
fn per_record_fsync_writes_a_record_without_waiting_for_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let config = AuditConfig {
        flush_interval: Duration::from_secs(3600),
        fsync: FsyncPolicy::Record,
        ..AuditConfig::new(&path, "gw1")
    };
    let (handle, writer) = spawn(config).unwrap();
    handle.submit(contact(7));
    wait_for_line(&path, "the contact on disk", |v| v["type"] == "contact");
    drop(handle);
    writer.finish().unwrap();
}

#[test]
fn rotation_by_age_continues_the_chain_into_a_new_file_and_compresses_the_old() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let mut config = AuditConfig { flush_interval: Duration::from_millis(20), ..AuditConfig::new(&path, "gw1") };
    config.rotation.max_age = Some(Duration::from_millis(150));
    config.rotation.compress = Compression::Gzip;
    let (handle, writer) = spawn(config).unwrap();
    handle.submit(contact(1));
    wait_for_line(&path, "a rotate record", |v| v["type"] == "rotate");
    handle.submit(contact(2));
    drop(handle);
    writer.finish().unwrap();
    let closed = rotation::list_closed(&path).unwrap();
    assert!(!closed.is_empty() && closed.iter().all(|f| f.path.to_string_lossy().ends_with(".jsonl.gz")), "{closed:?}");
    assert!(closed[0].contacts && closed[0].first_seq == 1);
    let mut files: Vec<_> = closed.into_iter().map(|f| f.path).collect();
    files.push(path);
    let outcome = verify(&files, None).unwrap();
    assert!(outcome.ok, "{outcome:?}");
}
