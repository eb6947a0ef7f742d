//! The single writer: owns the log file on its own thread, drains the
//! channel, appends, flushes and fsyncs on a timer, and writes `start`,
//! `stop`, `loss` and `recovered` records, and on its timers `heartbeat`,
//! `checkpoint`, rotation and retention. Never runs on the async reactor
//! and never makes policy decisions.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{self, Receiver};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use chrono::Utc;
use ed25519_dalek::SigningKey;
use serde::Deserialize;

use super::compress::Compression;
use super::error::AuditError;
use super::handle::{AuditHandle, AuditStats, Entry};
use super::log_file::{LogFile, Sink};
use super::record::{Record, RecordType};
use super::retention::RetentionConfig;
use super::syslog::{Shipper, SyslogConfig};
use super::worker::Worker;
use super::{rotation, sign, tail};

/// Where and how the writer writes.
#[derive(Clone, Debug)]
pub struct AuditConfig {
    /// The log file. Its directory must exist.
    pub path: PathBuf,
    /// Gateway name, written as `host` when a record has none.
    pub host: String,
    /// Records that may wait for the writer before `submit` drops them.
    pub channel_capacity: usize,
    /// Longest time a written record waits before flush + fsync.
    pub flush_interval: Duration,
    /// When records reach the disk: per batch (`flush_interval`) or per record.
    pub fsync: FsyncPolicy,
    /// A `heartbeat` record this often (zero: none).
    pub heartbeat_interval: Duration,
    /// Ed25519 key file for `checkpoint` records (none: no checkpoints).
    /// Must not be inside the log's directory.
    pub signing_key: Option<PathBuf>,
    /// A `checkpoint` this often, and at every rotation and stop.
    pub checkpoint_interval: Duration,
    pub rotation: RotationConfig,
    /// Also ship every written line (or only checkpoints) to syslog.
    pub syslog: Option<SyslogConfig>,
    /// Set by the daemon while enforcement is active; reported in heartbeats.
    pub enforcing: Option<Arc<AtomicBool>>,
}

/// When the writer fsyncs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// Write and `fdatasync` once per flush interval (a crash loses at most
    /// one interval's worth of records).
    #[default]
    Interval,
    /// Write and `fdatasync` after every record (a crash loses at most the
    /// record being written; far fewer records per second).
    Record,
}

/// When the live file is closed and what happens to closed files.
#[derive(Clone, Debug, Default)]
pub struct RotationConfig {
    /// Rotate once the live file reaches this many bytes.
    pub max_bytes: Option<u64>,
    /// Rotate once the live file's first record is this old.
    pub max_age: Option<Duration>,
    pub compress: Compression,
    pub retention: RetentionConfig,
}

impl AuditConfig {
    pub const DEFAULT_CHANNEL_CAPACITY: usize = 65536;
    pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
    pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(300);
    pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(3600);

    /// A config with the defaults: no signing, rotation or syslog.
    pub fn new(path: impl Into<PathBuf>, host: impl Into<String>) -> AuditConfig {
        AuditConfig {
            path: path.into(),
            host: host.into(),
            channel_capacity: Self::DEFAULT_CHANNEL_CAPACITY,
            flush_interval: Self::DEFAULT_FLUSH_INTERVAL,
            fsync: FsyncPolicy::Interval,
            heartbeat_interval: Self::DEFAULT_HEARTBEAT_INTERVAL,
            signing_key: None,
            checkpoint_interval: Self::DEFAULT_CHECKPOINT_INTERVAL,
            rotation: RotationConfig::default(),
            syslog: None,
            enforcing: None,
        }
    }
}

/// What the writer did over its run. `written` and `dropped` count
/// submitted records only (not `start`/`stop`/`loss`/`recovered`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriterSummary {
    pub written: u64,
    pub dropped: u64,
    pub write_errors: u64,
    /// Seq and hash of the last line in the file (the `stop` record).
    pub last_seq: u64,
    pub last_hash: String,
}

/// The running writer thread.
#[derive(Debug)]
pub struct AuditWriter {
    join: JoinHandle<Result<WriterSummary, AuditError>>,
}

impl AuditWriter {
    /// Waits for the writer to drain, write `stop`, flush and fsync. The
    /// writer ends only once every [`AuditHandle`] clone has been dropped.
    pub fn finish(self) -> Result<WriterSummary, AuditError> {
        self.join.join().map_err(|_| AuditError::Join)?
    }
}

/// Opens (or creates) the log, continues its chain, writes `start`, and
/// starts the writer thread.
pub fn spawn(config: AuditConfig) -> Result<(AuditHandle, AuditWriter), AuditError> {
    let (handle, pending) = prepare(config, |file| file)?;
    Ok((handle, pending.start()?))
}

/// A writer whose log is open and whose `start` record is written, but
/// whose thread has not started yet (tests submit into it first).
pub(crate) struct Pending<S: Sink> {
    worker: Worker<S>,
    rx: Receiver<Entry>,
}

impl<S: Sink> Pending<S> {
    pub fn start(self) -> Result<AuditWriter, AuditError> {
        let Pending { worker, rx } = self;
        let join = thread::Builder::new()
            .name("warden-audit".into())
            .spawn(move || worker.run(&rx))
            .map_err(AuditError::Spawn)?;
        Ok(AuditWriter { join })
    }
}

/// Opens the log with `wrap` around the file (tests inject faults there).
pub(crate) fn prepare<S: Sink>(
    config: AuditConfig,
    wrap: impl Fn(File) -> S + Send + 'static,
) -> Result<(AuditHandle, Pending<S>), AuditError> {
    check(&config)?;
    let key = load_key(&config)?;
    let opened = tail::open_log(&config.path)?;
    let continues = opened.last.as_ref().map(|l| l.seq);
    let mut log = LogFile::new(wrap(opened.file), config.host.clone(), opened.len, opened.last.as_ref());
    if continues.is_some() {
        let first = rotation::first_record(&config.path).ok().flatten();
        log.span = super::log_file::FileSpan { first, last_ts: first.map(|f| f.1), contacts: true };
    }
    log.shipper = config.syslog.clone().map(Shipper::new);
    let now = Utc::now();
    if let Some((bytes, side)) = &opened.torn {
        let text = format!("moved {bytes} bytes of a torn last line to {}", side.display());
        log.push(&Record::event(now, RecordType::Recovered, text), false).map_err(AuditError::Encode)?;
    }
    let text = match continues {
        Some(seq) => format!("{} started, log format 1, continuing after seq {seq}", who()),
        None => format!("{} started, log format 1, new chain", who()),
    };
    log.push(&Record::event(now, RecordType::Start, text), false).map_err(AuditError::Encode)?;
    let write_err = |source| AuditError::WriteStart { path: config.path.clone(), source };
    log.write_out().map_err(|f| write_err(f.source))?;
    log.sync().map_err(write_err)?;

    let (tx, rx) = mpsc::sync_channel(config.channel_capacity);
    let stats = Arc::new(AuditStats::default());
    let handle = AuditHandle::new(tx, &config.host, Arc::clone(&stats));
    let worker = Worker::new(log, stats, config, key, Box::new(wrap));
    Ok((handle, Pending { worker, rx }))
}

fn check(config: &AuditConfig) -> Result<(), AuditError> {
    if config.channel_capacity == 0 {
        return Err(AuditError::Config("channel_capacity must be at least 1"));
    }
    if config.flush_interval < Duration::from_millis(1) {
        return Err(AuditError::Config("flush_interval must be at least 1 ms"));
    }
    if config.signing_key.is_some() && config.checkpoint_interval < Duration::from_secs(1) {
        return Err(AuditError::Config("checkpoint_interval must be at least 1 s"));
    }
    if config.rotation.max_bytes.is_some_and(|b| b < 4096) {
        return Err(AuditError::Config("rotation max_bytes must be at least 4096"));
    }
    Ok(())
}

/// The signing key, refused when it lies in the log's own directory
/// (whoever can rewrite the log could then re-sign it).
fn load_key(config: &AuditConfig) -> Result<Option<SigningKey>, AuditError> {
    let Some(path) = &config.signing_key else { return Ok(None) };
    let dir_of = |p: &Path| {
        let parent = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        parent.canonicalize().ok()
    };
    if dir_of(path).is_some() && dir_of(path) == dir_of(&config.path) {
        return Err(AuditError::KeyInLogDir { key: path.clone() });
    }
    sign::load_signing_key(path).map(Some).map_err(AuditError::Key)
}

fn who() -> String {
    format!("warden {} audit writer (pid {})", env!("CARGO_PKG_VERSION"), std::process::id())
}
