//! The producers' side of the audit channel: a cheap, cloneable handle whose
//! `submit` never blocks, and the shared counters. It never touches the file.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::Instant;

use super::chain::Prepared;
use super::contact::{Contact, Repeats};
use super::record::Record;

/// What a producer sends the writer. Each variant is one pointer, so a slot
/// of the channel (which `sync_channel` allocates up front) stays small.
#[derive(Debug)]
pub(crate) enum Entry {
    /// A [`Record`], encoded by the producer but for its chain fields.
    Record(Box<Prepared>),
    /// A contact's first sighting (shared with the DNS layer's repeat counter).
    Contact(Arc<Contact>),
    Repeats(Box<Repeats>),
}

/// Counters shared by every handle and the writer. `submitted` =
/// `written` + `dropped` + records still in flight.
#[derive(Debug, Default)]
pub struct AuditStats {
    /// Calls to [`AuditHandle::submit`].
    pub submitted: AtomicU64,
    /// Submitted records that reached the file.
    pub written: AtomicU64,
    /// Submitted records lost: channel full, writer gone, or write failed.
    pub dropped: AtomicU64,
    /// Failed writes, flushes or syncs of the log file.
    pub write_errors: AtomicU64,
}

/// Sends records to the writer. Clone it for every producer.
#[derive(Clone, Debug)]
pub struct AuditHandle {
    /// `None` for a disabled handle.
    tx: Option<SyncSender<Entry>>,
    /// The writer's gateway name, for records without `host`.
    host: Arc<str>,
    stats: Arc<AuditStats>,
    warn: Arc<RateLimit>,
}

impl AuditHandle {
    pub(crate) fn new(tx: SyncSender<Entry>, host: &str, stats: Arc<AuditStats>) -> AuditHandle {
        AuditHandle { tx: Some(tx), host: host.into(), stats, warn: Arc::new(RateLimit::new()) }
    }

    /// A handle that discards every record, counting only `submitted`. For
    /// tests and for running without an audit log.
    pub fn disabled() -> AuditHandle {
        AuditHandle { tx: None, host: "".into(), stats: Arc::default(), warn: Arc::new(RateLimit::new()) }
    }

    /// Queues `record` for the writer without ever blocking. Returns false
    /// (and counts it in `dropped`) when the channel is full or the writer
    /// is gone; the writer then logs a `loss` record. A disabled handle
    /// returns true. The record's line is encoded here, on the producer's
    /// thread, but for its chain fields (see [`Prepared`]).
    pub fn submit(&self, record: Record) -> bool {
        if self.tx.is_none() {
            self.stats.submitted.fetch_add(1, Relaxed);
            return true;
        }
        match Prepared::new(&record, &self.host) {
            Ok(prepared) => self.send(Entry::Record(Box::new(prepared))),
            Err(error) => {
                self.stats.submitted.fetch_add(1, Relaxed);
                self.dropped(&error.to_string())
            }
        }
    }

    /// [`Self::submit`] for a contact event: the writer builds its line.
    pub fn submit_contact(&self, contact: Arc<Contact>) -> bool {
        self.send(Entry::Contact(contact))
    }

    /// [`Self::submit`] for the counted repeats of a contact.
    pub fn submit_repeats(&self, repeats: Repeats) -> bool {
        self.send(Entry::Repeats(Box::new(repeats)))
    }

    fn send(&self, entry: Entry) -> bool {
        self.stats.submitted.fetch_add(1, Relaxed);
        let Some(tx) = &self.tx else {
            return true;
        };
        let reason = match tx.try_send(entry) {
            Ok(()) => return true,
            Err(TrySendError::Full(_)) => "channel full",
            Err(TrySendError::Disconnected(_)) => "writer stopped",
        };
        self.dropped(reason)
    }

    /// Counts a submitted record as lost and says why (once a second).
    fn dropped(&self, reason: &str) -> bool {
        let dropped = self.stats.dropped.fetch_add(1, Relaxed) + 1;
        if self.warn.allow() {
            tracing::warn!(reason, dropped, "audit record dropped");
        }
        false
    }

    /// The counters shared with the writer.
    pub fn stats(&self) -> Arc<AuditStats> {
        Arc::clone(&self.stats)
    }
}

/// Lets one event through per second, across threads, without locking.
#[derive(Debug)]
pub(crate) struct RateLimit {
    origin: Instant,
    /// Milliseconds after `origin` + 1 of the last event let through; 0: none yet.
    last: AtomicU64,
}

impl RateLimit {
    const PERIOD_MS: u64 = 1000;

    pub fn new() -> RateLimit {
        RateLimit { origin: Instant::now(), last: AtomicU64::new(0) }
    }

    pub fn allow(&self) -> bool {
        let now = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1;
        let last = self.last.load(Relaxed);
        if last != 0 && now < last.saturating_add(Self::PERIOD_MS) {
            return false;
        }
        self.last.compare_exchange(last, now, Relaxed, Relaxed).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::RecordType;

    #[test]
    fn disabled_handle_counts_submitted_only() {
        let h = AuditHandle::disabled();
        let ts = chrono::Utc::now();
        assert!(h.clone().submit(Record::event(ts, RecordType::Policy, "x")));
        let s = h.stats();
        assert_eq!(s.submitted.load(Relaxed), 1);
        assert_eq!(s.dropped.load(Relaxed), 0);
    }

    #[test]
    fn rate_limit_lets_one_through_per_period() {
        let r = RateLimit::new();
        assert!(r.allow());
        assert!(!r.allow());
    }
}
