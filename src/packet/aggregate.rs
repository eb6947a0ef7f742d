//! Repeated identical contacts (same client, layer, name, destination and
//! port) within a window become one record with `count` and the first and
//! last sighting, so a retry storm cannot flood the log, yet every sighting
//! is counted. Bounded: when full, everything pending is written early.

use std::collections::HashMap;
use std::net::IpAddr;

use chrono::{DateTime, Utc};

use crate::audit::{Layer, Record};

/// Most distinct contacts pending at once.
pub const MAX_PENDING: usize = 16_384;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub client: IpAddr,
    pub layer: Layer,
    pub name: Option<String>,
    pub dst: Option<IpAddr>,
    pub dport: Option<u16>,
}

impl Key {
    pub fn of(record: &Record) -> Option<Key> {
        Some(Key {
            client: record.client?,
            layer: record.layer?,
            name: record.name.clone(),
            dst: record.dst,
            dport: record.dport,
        })
    }
}

struct Pending {
    record: Record,
    count: u64,
    first_ms: i64,
    last_ms: i64,
}

pub struct Aggregator {
    window_ms: i64,
    pending: HashMap<Key, Pending>,
}

impl Aggregator {
    pub fn new(window_ms: i64) -> Aggregator {
        Aggregator { window_ms, pending: HashMap::new() }
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Counts a sighting; returns records to write now (only when full).
    pub fn add(&mut self, record: Record, now_ms: i64) -> Vec<Record> {
        let Some(key) = Key::of(&record) else { return vec![record] };
        if let Some(p) = self.pending.get_mut(&key) {
            p.count += 1;
            p.last_ms = p.last_ms.max(now_ms);
            p.record.enforced = match (p.record.enforced, record.enforced) {
                (Some(a), Some(b)) => Some(a || b),
                (a, b) => a.or(b),
            };
            return Vec::new();
        }
        let flushed = if self.pending.len() >= MAX_PENDING { self.drain() } else { Vec::new() };
        self.pending.insert(key, Pending { record, count: 1, first_ms: now_ms, last_ms: now_ms });
        flushed
    }

    /// Records whose window has closed at `now_ms`.
    pub fn due(&mut self, now_ms: i64) -> Vec<Record> {
        let window = self.window_ms;
        let due: Vec<Key> =
            self.pending.iter().filter(|(_, p)| now_ms - p.first_ms >= window).map(|(k, _)| k.clone()).collect();
        let mut out: Vec<Record> = due.iter().filter_map(|k| self.pending.remove(k)).map(finish).collect();
        out.sort_by_key(|r| r.ts);
        out
    }

    /// Everything pending (shutdown, or when full).
    pub fn drain(&mut self) -> Vec<Record> {
        let mut out: Vec<Record> = self.pending.drain().map(|(_, p)| finish(p)).collect();
        out.sort_by_key(|r| r.ts);
        out
    }
}

fn finish(p: Pending) -> Record {
    let mut record = p.record;
    record.count = Some(p.count);
    if p.count > 1 {
        record.first_ts = DateTime::<Utc>::from_timestamp_millis(p.first_ms);
        record.last_ts = DateTime::<Utc>::from_timestamp_millis(p.last_ms);
    }
    record
}
