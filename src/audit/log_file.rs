//! The open log as the writer thread sees it: encodes records into a buffer,
//! appends the buffer, and keeps the chain consistent when a write fails.
//! Only bytes that reached the file advance the committed `seq`/`hash`; a
//! failed write is cut back off the file before anything else is written.

use std::fs::File;
use std::io::{self, Write};

use chrono::{DateTime, Utc};

use super::chain::{self, ChainError, ChainLink, GENESIS, LineHash};
use super::contact::millis;
use super::contact_line::ContactEncoder;
use super::handle::Entry;
use super::record::{Record, RecordType};
use super::syslog::Shipper;

/// Buffered bytes at which the writer appends without waiting for the timer.
const FLUSH_AT: usize = 64 * 1024;
/// Appended, unsynced bytes at which a background sync starts before the
/// timer (spreads the disk's work over the interval, as databases'
/// `bytes_per_sync` does, instead of one large flush a tick).
const SYNC_AT: u64 = 1024 * 1024;

/// An `fdatasync` of the live file that can run on another thread.
pub(crate) type SyncJob = Box<dyn FnOnce() -> io::Result<()> + Send>;

/// Where the writer's bytes go. `File` in production; tests inject faults.
pub(crate) trait Sink: Send + 'static {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    fn sync_data(&mut self) -> io::Result<()>;
    /// [`Self::sync_data`] as a job for the background syncer, if this sink
    /// can sync off the writer's thread.
    fn sync_job(&self) -> Option<SyncJob> {
        None
    }
}

impl Sink for File {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_all(bytes)
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        File::sync_data(self)
    }
    fn sync_job(&self) -> Option<SyncJob> {
        let file = self.try_clone().ok()?;
        Some(Box::new(move || file.sync_data()))
    }
}

/// Chain position: the last record's seq and hash.
#[derive(Clone, Debug)]
struct Head {
    seq: u64,
    hash: String,
}

/// A failed write: how many submitted records it lost, and why.
#[derive(Debug)]
pub(crate) struct WriteFailure {
    pub lost: u64,
    pub source: io::Error,
}

pub(crate) struct LogFile<S: Sink> {
    sink: S,
    host: String,
    buf: Vec<u8>,
    /// Position including buffered records.
    head: Head,
    /// Position of the bytes in the file, and the file's length.
    committed: Head,
    committed_len: u64,
    /// Submitted (not writer-made) records in `buf`.
    buffered_submitted: u64,
    /// Bytes appended since the last sync (or sync job) began.
    unsynced: u64,
    /// A failed write may have left bytes past `committed_len`.
    must_cut: bool,
    /// What the current file holds, for naming it when it is closed.
    pub span: FileSpan,
    /// Ships written lines to syslog, if configured.
    pub shipper: Option<Shipper>,
    /// Encodes contact events (and keeps what their lines share).
    contacts: ContactEncoder,
}

/// The chain and time span of the current file, and whether it holds
/// contacts (`true` when unknown: a file continued after a restart).
#[derive(Clone, Debug, Default)]
pub(crate) struct FileSpan {
    pub first: Option<(u64, DateTime<Utc>)>,
    pub last_ts: Option<DateTime<Utc>>,
    pub contacts: bool,
}

impl<S: Sink> LogFile<S> {
    /// Continues after `last` (a new chain when `None`); `len` is the file's length.
    pub fn new(sink: S, host: String, len: u64, last: Option<&ChainLink>) -> Self {
        let head = match last {
            Some(l) => Head { seq: l.seq, hash: l.hash.clone() },
            None => Head { seq: 0, hash: GENESIS.to_owned() },
        };
        LogFile {
            sink,
            host,
            buf: Vec::with_capacity(2 * FLUSH_AT),
            committed: head.clone(),
            head,
            committed_len: len,
            buffered_submitted: 0,
            unsynced: 0,
            must_cut: false,
            span: FileSpan::default(),
            shipper: None,
            contacts: ContactEncoder::default(),
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// Seq and hash of the last record, buffered ones included.
    pub fn head(&self) -> (u64, &str) {
        (self.head.seq, &self.head.hash)
    }

    /// Length of the file once the buffer is written out.
    pub fn pending_len(&self) -> u64 {
        self.committed_len + self.buf.len() as u64
    }

    /// Continues the chain in a new, empty file. The buffer must have been
    /// written out (the caller writes out before rotating).
    pub fn replace_sink(&mut self, sink: S) -> S {
        self.committed_len = 0;
        self.span = FileSpan::default();
        std::mem::replace(&mut self.sink, sink)
    }

    /// Seq of the last record written to the file.
    pub fn committed_seq(&self) -> u64 {
        self.committed.seq
    }

    pub fn committed_hash(&self) -> &str {
        &self.committed.hash
    }

    /// Encodes `record` into the buffer. `submitted`: it came from a producer
    /// (and so counts as written or dropped).
    pub fn push(&mut self, record: &Record, submitted: bool) -> Result<(), ChainError> {
        let seq = self.head.seq + 1;
        let hash = chain::encode_into(&mut self.buf, record, seq, &self.head.hash, &self.host)?;
        self.pushed(seq, hash, record.ts, record.kind, submitted);
        Ok(())
    }

    /// [`Self::push`] for what a producer sent.
    pub fn push_entry(&mut self, entry: &Entry, submitted: bool) -> Result<(), ChainError> {
        let (contact, repeats) = match entry {
            Entry::Record(record) => {
                let seq = self.head.seq + 1;
                let hash = chain::encode_prepared_into(&mut self.buf, record, seq, &self.head.hash)?;
                self.pushed(seq, hash, record.ts, record.kind, submitted);
                return Ok(());
            }
            Entry::Contact(contact) => (&**contact, None),
            Entry::Repeats(repeats) => (&*repeats.contact, Some(&**repeats)),
        };
        let seq = self.head.seq + 1;
        let (buf, prev, host) = (&mut self.buf, &self.head.hash, &self.host);
        let hash = self.contacts.encode(buf, contact, repeats, seq, prev, host)?;
        let ts = millis(repeats.map_or(contact.ts_ms, |r| r.first_ms));
        self.pushed(seq, hash, ts, RecordType::Contact, submitted);
        Ok(())
    }

    fn pushed(&mut self, seq: u64, hash: LineHash, ts: DateTime<Utc>, kind: RecordType, submitted: bool) {
        self.head.seq = seq;
        self.head.hash.clear();
        self.head.hash.push_str(hash.as_str());
        self.buffered_submitted += u64::from(submitted);
        self.span.first.get_or_insert((seq, ts));
        self.span.last_ts = Some(ts);
        self.span.contacts |= kind == RecordType::Contact;
    }

    /// Whether the buffer is big enough to be written out now.
    pub fn buffer_full(&self) -> bool {
        self.buf.len() >= FLUSH_AT
    }

    /// Appends the buffer to the file. Returns how many submitted records
    /// reached it. On failure the buffer is discarded, the file is cut back
    /// to its last good length and the chain continues from there.
    pub fn write_out(&mut self) -> Result<u64, WriteFailure> {
        if self.buf.is_empty() {
            return Ok(0);
        }
        let result = self.cut_if_needed().and_then(|()| self.sink.append(&self.buf));
        let written = std::mem::take(&mut self.buffered_submitted);
        match result {
            Ok(()) => {
                self.committed_len += self.buf.len() as u64;
                self.unsynced += self.buf.len() as u64;
                self.committed = self.head.clone();
                if let Some(shipper) = &mut self.shipper {
                    shipper.ship(&self.buf, &self.host);
                }
                self.buf.clear();
                Ok(written)
            }
            Err(source) => {
                self.buf.clear();
                self.head = self.committed.clone();
                self.must_cut = true;
                // Best effort now; retried before the next write if it fails.
                let _ = self.cut_if_needed();
                Err(WriteFailure { lost: written, source })
            }
        }
    }

    /// `sync_data` if anything was appended since the last sync.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.unsynced > 0 {
            self.sink.sync_data()?;
            self.unsynced = 0;
        }
        Ok(())
    }

    /// A job that syncs what was appended so far, when there is something
    /// to sync and the sink can sync off this thread. If the job fails,
    /// call [`Self::sync_failed`].
    pub fn sync_job(&mut self) -> Option<SyncJob> {
        if self.unsynced == 0 {
            return None;
        }
        let job = self.sink.sync_job()?;
        self.unsynced = 0;
        Some(job)
    }

    /// Whether enough is unsynced to start a sync before the timer.
    pub fn sync_due(&self) -> bool {
        self.unsynced >= SYNC_AT
    }

    /// A sync job failed: the next interval syncs again.
    pub fn sync_failed(&mut self) {
        self.unsynced = self.unsynced.max(1);
    }

    fn cut_if_needed(&mut self) -> io::Result<()> {
        if self.must_cut {
            self.sink.set_len(self.committed_len)?;
            self.must_cut = false;
        }
        Ok(())
    }
}
