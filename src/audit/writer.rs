//! The single writer: owns the log file on its own thread, drains the
//! channel, appends, flushes and fsyncs on a timer, and writes `start`,
//! `stop`, `loss` and `recovered` records. Never runs on the async reactor
//! and never makes policy decisions.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use chrono::Utc;

use super::error::AuditError;
use super::handle::{AuditHandle, AuditStats};
use super::log_file::{LogFile, Sink};
use super::record::{Record, RecordType};
use super::tail;
use super::worker::Worker;

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
}

impl AuditConfig {
    pub const DEFAULT_CHANNEL_CAPACITY: usize = 65536;
    pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

    /// A config with the default capacity and flush interval.
    pub fn new(path: impl Into<PathBuf>, host: impl Into<String>) -> AuditConfig {
        AuditConfig {
            path: path.into(),
            host: host.into(),
            channel_capacity: Self::DEFAULT_CHANNEL_CAPACITY,
            flush_interval: Self::DEFAULT_FLUSH_INTERVAL,
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
    rx: Receiver<Box<Record>>,
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
    wrap: impl FnOnce(File) -> S,
) -> Result<(AuditHandle, Pending<S>), AuditError> {
    if config.channel_capacity == 0 {
        return Err(AuditError::Config("channel_capacity must be at least 1"));
    }
    if config.flush_interval < Duration::from_millis(1) {
        return Err(AuditError::Config("flush_interval must be at least 1 ms"));
    }
    let opened = tail::open_log(&config.path)?;
    let continues = opened.last.as_ref().map(|l| l.seq);
    let mut log = LogFile::new(wrap(opened.file), config.host, opened.len, opened.last.as_ref());
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
    let worker = Worker::new(log, Arc::clone(&stats), config.path, config.flush_interval);
    Ok((AuditHandle::new(tx, stats), Pending { worker, rx }))
}

fn who() -> String {
    format!("warden {} audit writer (pid {})", env!("CARGO_PKG_VERSION"), std::process::id())
}
