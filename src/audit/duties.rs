//! The writer's timed duties: `heartbeat` records with counters since the
//! last one, signed `checkpoint` records, a `failure` record when
//! enforcement stops being active, and the rotation triggers. Runs on the
//! writer thread between records; never blocks on anything but the file.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use chrono::Utc;

use super::chain::format_ts;
use super::log_file::Sink;
use super::record::{Heartbeat, Record, RecordType};
use super::sign;
use super::worker::Worker;
use super::writer::AuditConfig;

/// When each duty is next due, and the counters at the last heartbeat.
pub(crate) struct Timers {
    next_heartbeat: Option<Instant>,
    next_checkpoint: Instant,
    written_at_heartbeat: u64,
    dropped_at_heartbeat: u64,
    was_enforcing: bool,
}

impl Timers {
    pub fn new(config: &AuditConfig) -> Timers {
        let now = Instant::now();
        let hb = config.heartbeat_interval;
        Timers {
            next_heartbeat: (!hb.is_zero()).then(|| now + hb),
            next_checkpoint: now + config.checkpoint_interval,
            written_at_heartbeat: 0,
            dropped_at_heartbeat: 0,
            was_enforcing: config.enforcing.as_ref().is_some_and(|f| f.load(Relaxed)),
        }
    }
}

impl<S: Sink> Worker<S> {
    /// Runs whatever is due. Called after every record and timer tick.
    pub(super) fn duties(&mut self) {
        let now = Instant::now();
        self.watch_enforcement();
        if self.timers.next_heartbeat.is_some_and(|t| now >= t) {
            self.heartbeat();
            self.timers.next_heartbeat = Some(now + self.config.heartbeat_interval);
        }
        if self.key.is_some() && now >= self.timers.next_checkpoint {
            self.checkpoint();
            self.flush();
        }
        self.rotate_if_due();
    }

    fn enforcing(&self) -> bool {
        self.config.enforcing.as_ref().is_some_and(|f| f.load(Relaxed))
    }

    fn watch_enforcement(&mut self) {
        let now = self.enforcing();
        if self.timers.was_enforcing && !now {
            let text = "enforcement is no longer active: contacts are not being blocked";
            self.push(&Record::event(Utc::now(), RecordType::Failure, text), false);
            self.flush();
        }
        self.timers.was_enforcing = now;
    }

    fn heartbeat(&mut self) {
        let (written, dropped) = (self.stats.written.load(Relaxed), self.stats.dropped.load(Relaxed));
        let enforcing = self.enforcing();
        let t = &mut self.timers;
        let beat = Heartbeat {
            interval_s: self.config.heartbeat_interval.as_secs().max(1),
            written: written.saturating_sub(t.written_at_heartbeat),
            dropped: dropped.saturating_sub(t.dropped_at_heartbeat),
            enforcing,
        };
        (t.written_at_heartbeat, t.dropped_at_heartbeat) = (written, dropped);
        let text = if beat.enforcing { "alive, enforcing" } else { "alive, enforcement not active" };
        let record = Record { heartbeat: Some(beat), ..Record::event(Utc::now(), RecordType::Heartbeat, text) };
        self.push(&record, false);
    }

    /// Pushes a signed `checkpoint` over the current head (if a key is set).
    pub(super) fn checkpoint(&mut self) {
        let Some(key) = &self.key else { return };
        let ts = Utc::now();
        let (seq, hash) = self.log.head();
        let cp = sign::sign(key, self.log.host(), seq, hash, &format_ts(&ts));
        let text = format!("chain head seq {seq} signed by key {}", cp.key);
        let record = Record { checkpoint: Some(cp), ..Record::event(ts, RecordType::Checkpoint, text) };
        self.push(&record, false);
        self.timers.next_checkpoint = Instant::now() + self.config.checkpoint_interval;
    }

    /// Rotate now if the current file is full or old enough.
    pub(super) fn rotate_if_due(&mut self) {
        if self.rotation_due() {
            self.rotate();
        }
    }

    fn rotation_due(&self) -> bool {
        let r = &self.config.rotation;
        let by_size = r.max_bytes.is_some_and(|max| self.log.pending_len() >= max);
        let by_age = match (r.max_age, self.log.span.first) {
            (Some(age), Some((_, first))) => {
                let age = chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
                Utc::now() - first >= age
            }
            _ => false,
        };
        (by_size || by_age) && self.log.span.first.is_some()
    }
}
