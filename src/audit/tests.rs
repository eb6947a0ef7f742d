//! Writer tests: the chain across runs, torn-tail recovery, loss records and
//! failed writes, all on real files in a temporary directory.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::log_file::Sink;
use super::writer::prepare;
use super::*;

fn config(path: &Path) -> AuditConfig {
    AuditConfig { flush_interval: Duration::from_millis(20), ..AuditConfig::new(path, "gw1") }
}

fn contact(n: u8) -> Record {
    let client = std::net::IpAddr::from([192, 168, 1, n]);
    Record::contact(chrono::Utc::now(), client, Layer::Dns).with_name("s10.upd.kaspersky.com")
}

/// Runs a writer over `path`, submits `n` contacts, stops it.
fn run_once(path: &Path, n: u8) -> WriterSummary {
    let (handle, writer) = spawn(config(path)).unwrap();
    for i in 0..n {
        assert!(handle.submit(contact(i)));
    }
    drop(handle);
    writer.finish().unwrap()
}

/// Every line as JSON, after checking that the whole file verifies.
fn read_verified(path: &Path) -> Vec<Value> {
    let text = fs::read_to_string(path).unwrap();
    let report = verify_reader(text.as_bytes());
    assert!(report.is_ok(), "{:?}\n{text}", report.problems);
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn types(lines: &[Value]) -> Vec<&str> {
    lines.iter().map(|l| l["type"].as_str().unwrap()).collect()
}

fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn chain_continues_across_two_writer_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let first = run_once(&path, 3);
    assert_eq!((first.written, first.dropped, first.last_seq), (3, 0, 5));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o007, 0, "audit log is world-accessible: {mode:o}");
    }
    let second = run_once(&path, 2);
    assert_eq!(second.last_seq, 9);
    let lines = read_verified(&path);
    assert_eq!(
        types(&lines),
        ["start", "contact", "contact", "contact", "stop", "start"]
            .into_iter()
            .chain(["contact", "contact", "stop"])
            .collect::<Vec<_>>()
    );
    assert_eq!(lines[5]["prev_hash"].as_str(), Some(first.last_hash.as_str()));
    assert!(lines[5]["message"].as_str().unwrap().ends_with("continuing after seq 5"));
    assert_eq!(lines[1]["host"], "gw1");
    assert_eq!(lines[4]["message"], "audit writer stopping: 3 records written, 0 dropped, 0 write errors");
}

#[test]
fn records_are_flushed_within_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let (handle, writer) = spawn(config(&path)).unwrap();
    handle.submit(contact(1));
    let stats = handle.stats();
    wait_for("the contact on disk", || stats.written.load(Relaxed) == 1);
    assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 2);
    drop(handle);
    writer.finish().unwrap();
}

#[test]
fn torn_tail_is_moved_aside_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    run_once(&path, 1);
    let torn = br#"{"ts":"2024-09-29T04:00:01.123Z","seq":4,"ty"#;
    OpenOptions::new().append(true).open(&path).unwrap().write_all(torn).unwrap();
    run_once(&path, 1);

    let lines = read_verified(&path);
    assert_eq!(types(&lines), ["start", "contact", "stop", "recovered", "start", "contact", "stop"]);
    let side: Vec<PathBuf> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".torn-"))
        .collect();
    assert_eq!(side.len(), 1);
    assert_eq!(fs::read(&side[0]).unwrap(), torn);
    let message = lines[3]["message"].as_str().unwrap();
    assert!(message.contains(&format!("moved {} bytes", torn.len())), "{message}");
    assert!(message.contains(&*side[0].to_string_lossy()), "{message}");
}

#[test]
fn corrupt_tail_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    run_once(&path, 1);
    let edited = fs::read_to_string(&path).unwrap().replace("stopping: 1", "stopping: 2");
    fs::write(&path, &edited).unwrap();
    let err = spawn(config(&path)).unwrap_err();
    assert!(matches!(err, AuditError::CorruptTail { .. }), "{err}");
    assert_eq!(fs::read_to_string(&path).unwrap(), edited);
}

#[test]
fn long_last_line_is_read_beyond_the_first_window() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let (handle, writer) = spawn(config(&path)).unwrap();
    handle.submit(Record::event(chrono::Utc::now(), RecordType::Policy, "x".repeat(200_000)));
    drop(handle);
    writer.finish().unwrap();
    let text = fs::read_to_string(&path).unwrap();
    let cut = text.len() - text.lines().last().unwrap().len() - 1;
    fs::write(&path, &text[..cut]).unwrap(); // the long policy record is now last
    assert_eq!(run_once(&path, 1).last_seq, 5); // policy was 2; start, contact, stop
    read_verified(&path);
}

#[test]
fn missing_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = spawn(config(&dir.path().join("nope/audit.jsonl"))).unwrap_err();
    assert!(matches!(err, AuditError::NoDirectory { .. }), "{err}");
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[test]
fn dropped_records_become_a_loss_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let cfg = AuditConfig { channel_capacity: 4, ..config(&path) };
    let (handle, pending) = prepare(cfg, |file| file).unwrap();
    let accepted = (0..100).filter(|&i| handle.submit(contact(i))).count();
    assert_eq!(accepted, 4);
    let stats = handle.stats();
    assert_eq!(stats.dropped.load(Relaxed), 96);
    let writer = pending.start().unwrap();
    drop(handle);
    let summary = writer.finish().unwrap();
    assert_eq!((summary.written, summary.dropped), (4, 96));

    let lines = read_verified(&path);
    let loss: Vec<&Value> = lines.iter().filter(|l| l["type"] == "loss").collect();
    assert_eq!(loss.len(), 1);
    assert_eq!(loss[0]["count"], 96);
    assert!(loss[0]["message"].as_str().unwrap().starts_with("96 records lost: 96 at a full channel"));
}

/// A file that fails every append half-way while `fail` is set.
struct DiskFull {
    file: File,
    fail: Arc<AtomicBool>,
}

impl Sink for DiskFull {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.fail.load(Relaxed) {
            self.file.write_all(&bytes[..bytes.len() / 2])?;
            return Err(io::Error::new(io::ErrorKind::StorageFull, "test: disk full"));
        }
        self.file.write_all(bytes)
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
}

#[test]
fn failed_writes_are_counted_cut_off_and_writing_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let fail = Arc::new(AtomicBool::new(false));
    let sink_fail = Arc::clone(&fail);
    let (handle, pending) =
        prepare(config(&path), move |file| DiskFull { file, fail: Arc::clone(&sink_fail) }).unwrap();
    fail.store(true, Relaxed);
    for i in 0..3 {
        assert!(handle.submit(contact(i)));
    }
    let stats = handle.stats();
    let writer = pending.start().unwrap();
    wait_for("a failed write", || stats.write_errors.load(Relaxed) >= 1);
    assert_eq!(stats.dropped.load(Relaxed), 3);
    fail.store(false, Relaxed);
    assert!(handle.submit(contact(9)));
    drop(handle);
    let summary = writer.finish().unwrap();
    assert_eq!((summary.written, summary.dropped), (1, 3));

    let lines = read_verified(&path);
    let mut kinds = types(&lines);
    kinds[1..3].sort_unstable(); // the contact may come before or after the loss record
    assert_eq!(kinds, ["start", "contact", "loss", "stop"]);
    let loss = lines.iter().find(|l| l["type"] == "loss").unwrap();
    assert_eq!(loss["count"], 3);
    let message = loss["message"].as_str().unwrap();
    assert!(message.contains("3 in failed log writes"), "{message}");
    let contact = lines.iter().find(|l| l["type"] == "contact").unwrap();
    assert_eq!(contact["client"], "192.168.1.9");
}

/// A disk whose every fsync takes `delay` (an SD card under load); counts
/// the syncs that ran off the writer's thread.
struct SlowSync {
    file: File,
    delay: Duration,
    background: Arc<AtomicUsize>,
}

impl Sink for SlowSync {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        std::thread::sleep(self.delay);
        self.file.sync_data()
    }
    fn sync_job(&self) -> Option<super::log_file::SyncJob> {
        let (file, delay, background) = (self.file.try_clone().ok()?, self.delay, Arc::clone(&self.background));
        Some(Box::new(move || {
            std::thread::sleep(delay);
            background.fetch_add(1, Relaxed);
            file.sync_data()
        }))
    }
}

#[test]
fn a_slow_fsync_does_not_stop_the_writer_taking_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let background = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&background);
    let wrap = move |file| SlowSync { file, delay: Duration::from_millis(800), background: Arc::clone(&counter) };
    // 2,048 records of room: 0.2 s at the rate below. A writer waiting out
    // an 800 ms fsync would lose thousands.
    let cfg = AuditConfig { channel_capacity: 2048, flush_interval: Duration::from_millis(50), ..config(&path) };
    let (handle, pending) = prepare(cfg, wrap).unwrap();
    let writer = pending.start().unwrap();
    let mut submitted = 0u64;
    for _ in 0..160 {
        for i in 0..100u8 {
            assert!(handle.submit(contact(i)), "record {submitted} dropped");
            submitted += 1;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(handle);
    let summary = writer.finish().unwrap();
    assert_eq!((summary.written, summary.dropped, summary.write_errors), (submitted, 0, 0));
    assert!(background.load(Relaxed) >= 1, "no fsync ran beside the writer");
    let lines = read_verified(&path);
    assert_eq!(lines.iter().filter(|l| l["type"] == "contact").count() as u64, submitted);
}
