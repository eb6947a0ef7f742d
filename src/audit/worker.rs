//! The writer thread's loop and bookkeeping: counts what reached the file,
//! turns drops into `loss` records, and rate-limits its error logs. It owns
//! the `LogFile` for the thread's lifetime; nothing else touches it. Its
//! timed duties (heartbeat, checkpoint) are in `duties`, rotation and
//! retention in `rotate`.

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use chrono::Utc;
use ed25519_dalek::SigningKey;

use super::chain::ChainError;
use super::duties::Timers;
use super::error::AuditError;
use super::handle::{AuditStats, Entry, RateLimit};
use super::log_file::{LogFile, Sink};
use super::record::{Record, RecordType};
use super::syncer::Syncer;
use super::writer::{AuditConfig, FsyncPolicy, WriterSummary};

/// Losses already told in a `loss` record.
#[derive(Clone, Copy, Debug, Default)]
struct Reported {
    dropped: u64,
    write_failed: u64,
}

/// Pause after draining the channel, so records arrive in batches.
const BATCH_PAUSE: Duration = Duration::from_millis(2);

pub(crate) struct Worker<S: Sink> {
    pub(super) log: LogFile<S>,
    pub(super) stats: Arc<AuditStats>,
    pub(super) path: PathBuf,
    flush_interval: Duration,
    pub(super) config: AuditConfig,
    pub(super) key: Option<SigningKey>,
    pub(super) wrap: Box<dyn Fn(File) -> S + Send>,
    pub(super) timers: Timers,
    /// Compression of the last closed file, running beside the writer.
    pub(super) compressing: Option<std::thread::JoinHandle<()>>,
    /// Runs the interval's fsync beside the writer.
    syncer: Syncer,
    /// Including `loss` records still in the buffer.
    reported: Reported,
    /// Only `loss` records that reached the file.
    reported_committed: Reported,
    /// Submitted records this writer lost to failed writes.
    write_failed: u64,
    pub(super) error_log: RateLimit,
}

impl<S: Sink> Worker<S> {
    pub fn new(
        log: LogFile<S>,
        stats: Arc<AuditStats>,
        config: AuditConfig,
        key: Option<SigningKey>,
        wrap: Box<dyn Fn(File) -> S + Send>,
    ) -> Self {
        Worker {
            log,
            stats,
            path: config.path.clone(),
            flush_interval: config.flush_interval,
            timers: Timers::new(&config),
            config,
            key,
            wrap,
            compressing: None,
            syncer: Syncer::start(),
            reported: Reported::default(),
            reported_committed: Reported::default(),
            write_failed: 0,
            error_log: RateLimit::new(),
        }
    }

    /// The thread's body: drain, flush on the timer, stop on disconnect.
    pub fn run(mut self, rx: &Receiver<Entry>) -> Result<WriterSummary, AuditError> {
        let interval = self.flush_interval;
        let mut last_flush = Instant::now();
        loop {
            match rx.recv_timeout(interval.saturating_sub(last_flush.elapsed())) {
                Ok(entry) => {
                    self.push_entry(&entry);
                    if self.config.fsync == FsyncPolicy::Record {
                        self.flush();
                    } else {
                        // Take what is already queued, then pause so a burst
                        // is written as one batch instead of waking this
                        // thread (and context-switching the query path) once
                        // per record.
                        while let Ok(more) = rx.try_recv() {
                            self.push_entry(&more);
                            if self.log.buffer_full() {
                                let _ = self.write_out();
                            }
                            // Rotation by size stays exact within a batch.
                            self.rotate_if_due();
                        }
                        // Hand the batch to the kernel now (fsync stays on the
                        // timer): a killed process then loses only what was
                        // still queued, not a buffer's worth.
                        if self.write_out().is_ok() && self.log.sync_due() {
                            self.sync_in_background();
                        }
                        std::thread::sleep(BATCH_PAUSE);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if last_flush.elapsed() >= interval {
                self.note_loss();
                self.sync_in_background();
                last_flush = Instant::now();
            }
            self.duties();
        }
        self.stop()
    }

    /// Writes what is left, a `loss` record if needed and `stop`; fsyncs.
    fn stop(mut self) -> Result<WriterSummary, AuditError> {
        if let Some(result) = self.syncer.wait() {
            self.synced(result);
        }
        self.note_loss();
        let _ = self.write_out();
        self.note_loss();
        let written = self.stats.written.load(Relaxed);
        let dropped = self.stats.dropped.load(Relaxed);
        let write_errors = self.stats.write_errors.load(Relaxed);
        let text =
            format!("audit writer stopping: {written} records written, {dropped} dropped, {write_errors} write errors");
        self.push(&Record::event(Utc::now(), RecordType::Stop, text), false);
        self.checkpoint();
        if let Some(job) = self.compressing.take() {
            let _ = job.join();
        }
        let path = self.path.clone();
        let close_err = |source| AuditError::Close { path: path.clone(), source };
        self.write_out().map_err(close_err)?;
        self.log.sync().map_err(close_err)?;
        Ok(WriterSummary {
            written,
            dropped,
            write_errors,
            last_seq: self.log.committed_seq(),
            last_hash: self.log.committed_hash().to_owned(),
        })
    }

    /// Writes a `loss` record if `dropped` grew since the last one. Called
    /// once per flush interval, so an overload adds at most one line a tick.
    fn note_loss(&mut self) {
        let dropped = self.stats.dropped.load(Relaxed);
        let Some(count) = dropped.checked_sub(self.reported.dropped).filter(|&n| n > 0) else {
            return;
        };
        let failed = self.write_failed.saturating_sub(self.reported.write_failed);
        let channel = count.saturating_sub(failed);
        let text = format!(
            "{count} records lost: {channel} at a full channel or stopped writer, {failed} in failed log writes"
        );
        let record = Record::event(Utc::now(), RecordType::Loss, text).with_count(count);
        if self.push(&record, false) {
            self.reported = Reported { dropped, write_failed: self.write_failed };
        }
    }

    /// Encodes one of the writer's own records (not counted as submitted).
    pub(super) fn push(&mut self, record: &Record, submitted: bool) -> bool {
        let pushed = self.log.push(record, submitted);
        self.pushed(pushed, submitted)
    }

    /// Encodes what a producer submitted.
    fn push_entry(&mut self, entry: &Entry) -> bool {
        let pushed = self.log.push_entry(entry, true);
        self.pushed(pushed, true)
    }

    fn pushed(&mut self, pushed: Result<(), ChainError>, submitted: bool) -> bool {
        match pushed {
            Ok(()) => true,
            Err(error) => {
                if submitted {
                    self.stats.dropped.fetch_add(1, Relaxed);
                }
                tracing::error!(%error, "audit record could not be encoded; dropped");
                false
            }
        }
    }

    /// Appends the buffer; on failure counts the lost records as dropped.
    pub(super) fn write_out(&mut self) -> io::Result<()> {
        match self.log.write_out() {
            Ok(written) => {
                self.stats.written.fetch_add(written, Relaxed);
                self.reported_committed = self.reported;
                Ok(())
            }
            Err(failure) => {
                self.stats.write_errors.fetch_add(1, Relaxed);
                self.stats.dropped.fetch_add(failure.lost, Relaxed);
                self.write_failed += failure.lost;
                self.reported = self.reported_committed;
                if self.error_log.allow() {
                    let (path, error, lost) = (self.path.display(), &failure.source, failure.lost);
                    tracing::error!(%path, %error, lost, "audit log write failed; records dropped");
                }
                Err(failure.source)
            }
        }
    }

    /// Appends the buffer and starts an fsync on the syncer's thread (or,
    /// without one, fsyncs here). While a sync runs, nothing new starts:
    /// what is appended meanwhile waits for the next call.
    fn sync_in_background(&mut self) {
        if let Some(result) = self.syncer.finished() {
            self.synced(result);
        }
        if !self.syncer.available() {
            self.flush();
            return;
        }
        if self.write_out().is_err() || self.syncer.busy() {
            return;
        }
        let Some(job) = self.log.sync_job() else {
            self.flush(); // nothing to sync, or a sink that syncs only here
            return;
        };
        if !self.syncer.run(job) {
            self.log.sync_failed();
            self.flush();
        }
    }

    /// Takes a background fsync's result: a failure counts like one of
    /// [`Self::flush`], and the next interval syncs again.
    fn synced(&mut self, result: io::Result<()>) {
        if let Err(error) = result {
            self.log.sync_failed();
            self.sync_error(&error);
        }
    }

    fn sync_error(&self, error: &io::Error) {
        self.stats.write_errors.fetch_add(1, Relaxed);
        if self.error_log.allow() {
            tracing::error!(path = %self.path.display(), %error, "audit log fsync failed");
        }
    }

    /// Appends the buffer and fsyncs; false if either failed.
    pub(super) fn flush(&mut self) -> bool {
        if self.write_out().is_err() {
            return false;
        }
        if let Err(error) = self.log.sync() {
            self.sync_error(&error);
            return false;
        }
        true
    }
}
