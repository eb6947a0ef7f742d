//! The writer's background syncer: one thread that runs the interval's
//! `fdatasync` of the live log, so the writer goes on taking records and
//! appending them while the disk flushes (which takes seconds on an SD
//! card; a writer blocked that long fills its channel and loses records).
//! One job at a time: while one runs, the writer does not start another,
//! and what it appends meanwhile is synced by the next. Syncs that must be
//! done before the writer goes on (rotation, retention, checkpoints,
//! `stop`, per-record fsync) stay on the writer's thread.

use std::io;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::thread::{self, JoinHandle};

use super::log_file::SyncJob;

pub(crate) struct Syncer {
    /// `None` once the thread is gone (could not start, or stopped).
    jobs: Option<SyncSender<SyncJob>>,
    done: Receiver<io::Result<()>>,
    thread: Option<JoinHandle<()>>,
    /// A job was handed over and its result not yet taken.
    busy: bool,
}

impl Syncer {
    /// Starts the thread; without it ([`Self::available`] is then false)
    /// the writer syncs on its own thread.
    pub fn start() -> Syncer {
        let (jobs, job_rx) = sync_channel::<SyncJob>(1);
        let (done_tx, done) = sync_channel(1);
        let spawned = thread::Builder::new().name("warden-audit-sync".into()).spawn(move || {
            for job in job_rx {
                if done_tx.send(job()).is_err() {
                    break;
                }
            }
        });
        match spawned {
            Ok(thread) => Syncer { jobs: Some(jobs), done, thread: Some(thread), busy: false },
            Err(error) => {
                tracing::warn!(%error, "cannot start the audit sync thread; the writer syncs itself");
                Syncer { jobs: None, done, thread: None, busy: false }
            }
        }
    }

    /// Whether the thread is there to take jobs.
    pub fn available(&self) -> bool {
        self.jobs.is_some()
    }

    /// Whether a job is running (or its result not yet taken).
    pub fn busy(&self) -> bool {
        self.busy
    }

    /// Hands `job` to the thread; call only when not [`Self::busy`]. False
    /// if the thread is gone (the caller then syncs itself).
    pub fn run(&mut self, job: SyncJob) -> bool {
        let Some(jobs) = &self.jobs else { return false };
        if jobs.send(job).is_err() {
            self.jobs = None;
            return false;
        }
        self.busy = true;
        true
    }

    /// The finished job's result, if one finished since the last call.
    pub fn finished(&mut self) -> Option<io::Result<()>> {
        self.result(false)
    }

    /// Waits for the running job, if any, and returns its result.
    pub fn wait(&mut self) -> Option<io::Result<()>> {
        self.result(true)
    }

    fn result(&mut self, block: bool) -> Option<io::Result<()>> {
        if !self.busy {
            return None;
        }
        let got = if block { self.done.recv().map_err(|_| TryRecvError::Disconnected) } else { self.done.try_recv() };
        match got {
            Ok(result) => {
                self.busy = false;
                Some(result)
            }
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => self.gone(),
        }
    }

    /// The thread died with a job (it panicked): report the job as failed.
    fn gone(&mut self) -> Option<io::Result<()>> {
        self.busy = false;
        self.jobs = None;
        Some(Err(io::Error::other("the audit sync thread stopped")))
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.jobs = None; // ends the thread's loop once its job is done
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::time::Duration;

    #[test]
    fn one_job_at_a_time_and_each_result_comes_back_once() {
        let mut syncer = Syncer::start();
        assert!(syncer.available() && !syncer.busy());
        assert!(syncer.finished().is_none());
        let ran = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&ran);
        assert!(syncer.run(Box::new(move || {
            thread::sleep(Duration::from_millis(50));
            counter.fetch_add(1, SeqCst);
            Ok(())
        })));
        assert!(syncer.busy());
        assert!(syncer.wait().is_some_and(|r| r.is_ok()));
        assert_eq!(ran.load(SeqCst), 1);
        assert!(!syncer.busy());
        assert!(syncer.wait().is_none() && syncer.finished().is_none());

        assert!(syncer.run(Box::new(|| Err(io::Error::other("test: sync failed")))));
        let failed = loop {
            if let Some(result) = syncer.finished() {
                break result;
            }
            thread::sleep(Duration::from_millis(1));
        };
        assert_eq!(failed.unwrap_err().to_string(), "test: sync failed");
        assert!(syncer.available() && !syncer.busy());
    }

    #[test]
    fn a_job_that_panics_is_reported_as_failed_and_the_writer_syncs_itself() {
        let mut syncer = Syncer::start();
        assert!(syncer.run(Box::new(|| panic!("test: sync job panics"))));
        assert!(syncer.wait().is_some_and(|r| r.is_err()));
        assert!(!syncer.available() && !syncer.busy());
        assert!(!syncer.run(Box::new(|| Ok(()))));
    }
}
