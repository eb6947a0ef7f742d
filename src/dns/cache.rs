//! The fast path's answer cache: encoded responses keyed by (name, type,
//! EDNS flags), owned by one UDP worker thread, so reads take no lock and
//! allocate nothing. The full path fills it through a channel. A hit is the
//! stored response with the client's ID, flags and question spliced in and
//! every TTL counted down. The policy is still asked on every query: the
//! cache only replaces the upstream, never the verdict.

use std::time::Instant;

use hashbrown::HashTable;

/// Longest a response is kept, whatever its TTLs say.
const MAX_TTL: u32 = 86_400;

/// Identity of a cached answer: normalised name, query type, EDNS flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheKey {
    bytes: Vec<u8>,
}

impl CacheKey {
    /// `flags`: bit 0 = client sent EDNS, bit 1 = DO.
    pub fn new(name: &[u8], qtype: u16, flags: u8) -> CacheKey {
        let mut bytes = Vec::with_capacity(name.len() + 3);
        write_key(&mut bytes, name, qtype, flags);
        CacheKey { bytes }
    }
}

fn write_key(out: &mut Vec<u8>, name: &[u8], qtype: u16, flags: u8) {
    out.extend_from_slice(name);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.push(flags);
}

/// A response the full path produced, ready to be cached.
#[derive(Debug)]
pub struct Fill {
    pub key: CacheKey,
    /// The encoded response (header, question, records, OPT).
    pub response: Vec<u8>,
    /// Where the question ends in `response`.
    pub question_end: usize,
    pub ttl_offsets: Vec<usize>,
    /// The policy's `valid_until` for this answer (Unix ms), if any.
    pub valid_until: Option<i64>,
    /// Identity of the policy the answer was checked against.
    pub policy: usize,
    /// When the response was made: its TTLs count down from here.
    pub created: Instant,
}

struct Entry {
    key: Vec<u8>,
    fill: Fill,
    stored: Instant,
    expires: Instant,
}

pub struct AnswerCache {
    table: HashTable<Entry>,
    capacity: usize,
    scratch: Vec<u8>,
    pub hits: u64,
    pub misses: u64,
}

fn hash(key: &[u8]) -> u64 {
    key.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)).rotate_left(29)
}

impl AnswerCache {
    pub fn new(capacity: usize) -> AnswerCache {
        AnswerCache {
            table: HashTable::new(),
            capacity: capacity.max(1),
            scratch: Vec::with_capacity(260),
            hits: 0,
            misses: 0,
        }
    }

    /// Store a response; skipped when it has no TTL to count down. `now`
    /// only decides which entries are expired when the cache is full.
    pub fn insert(&mut self, fill: Fill, now: Instant) {
        let Some(ttl) = min_ttl(&fill) else { return };
        if ttl == 0 {
            return;
        }
        if self.table.len() >= self.capacity {
            self.table.retain(|e| e.expires > now);
            if self.table.len() >= self.capacity {
                return;
            }
        }
        let key = fill.key.bytes.clone();
        let h = hash(&key);
        let stored = fill.created;
        let expires = stored + std::time::Duration::from_secs(u64::from(ttl.min(MAX_TTL)));
        let entry = Entry { key, fill, stored, expires };
        match self.table.find_mut(h, |e| e.key == entry.key) {
            Some(slot) => *slot = entry,
            None => {
                self.table.insert_unique(h, entry, |e| hash(&e.key));
            }
        }
    }

    /// Write the cached answer for this query into `out`, or `false`.
    #[allow(clippy::too_many_arguments)]
    pub fn answer(
        &mut self,
        name: &[u8],
        qtype: u16,
        flags: u8,
        query: &super::wire::Query,
        policy: usize,
        now: Instant,
        now_ms: i64,
        out: &mut Vec<u8>,
    ) -> bool {
        self.scratch.clear();
        write_key(&mut self.scratch, name, qtype, flags);
        let key = &self.scratch;
        let hit = self
            .table
            .find(hash(key), |e| &e.key == key)
            .filter(|e| e.expires > now && e.fill.policy == policy && e.fill.valid_until.is_none_or(|t| now_ms < t));
        let Some(entry) = hit else {
            self.misses += 1;
            return false;
        };
        let f = &entry.fill;
        let elapsed = u32::try_from(now.duration_since(entry.stored).as_secs()).unwrap_or(u32::MAX);
        out.clear();
        out.extend_from_slice(&f.response);
        if f.question_end != 12 + query.question.len() || out.len() > query.udp_limit() {
            self.misses += 1;
            return false;
        }
        out[0..2].copy_from_slice(&query.id.to_be_bytes());
        out[2] = (out[2] & !0x01) | u8::from(query.recursion_desired);
        out[3] = (out[3] & !0x10) | (u8::from(query.checking_disabled) << 4);
        out[12..f.question_end].copy_from_slice(query.question);
        for &at in &f.ttl_offsets {
            let ttl = u32::from_be_bytes([out[at], out[at + 1], out[at + 2], out[at + 3]]);
            out[at..at + 4].copy_from_slice(&ttl.saturating_sub(elapsed).to_be_bytes());
        }
        self.hits += 1;
        true
    }
}

fn min_ttl(fill: &Fill) -> Option<u32> {
    let r = &fill.response;
    fill.ttl_offsets
        .iter()
        .map(|&at| r.get(at..at + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])))
        .try_fold(u32::MAX, |min, ttl| ttl.map(|t| min.min(t)))
        .filter(|&t| t != u32::MAX)
}
