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

/// A cached response. Its key, response and TTL offsets share one
/// allocation, so a hit reads the table's slot and one block: each extra
/// heap object would be one more likely cache miss per query.
struct Entry {
    /// The key, the response, then each TTL offset as two bytes (LE).
    bytes: Box<[u8]>,
    key_len: u16,
    response_len: u16,
    /// Where the question ends in the response.
    question_end: u16,
    /// Identity of the policy the answer was checked against.
    policy: usize,
    /// The policy's `valid_until` for this answer (Unix ms); `i64::MAX`: none.
    valid_until: i64,
    stored: Instant,
    expires: Instant,
}

impl Entry {
    /// `None` when the response or an offset does not fit the compact form
    /// (never for a UDP answer).
    fn new(fill: &Fill, stored: Instant, expires: Instant) -> Option<Entry> {
        let (key, response) = (&fill.key.bytes, &fill.response);
        let mut bytes = Vec::with_capacity(key.len() + response.len() + 2 * fill.ttl_offsets.len());
        bytes.extend_from_slice(key);
        bytes.extend_from_slice(response);
        for &at in &fill.ttl_offsets {
            // A TTL lies inside the response: its offset then fits too.
            if at + 4 > response.len() {
                return None;
            }
            bytes.extend_from_slice(&u16::try_from(at).ok()?.to_le_bytes());
        }
        Some(Entry {
            bytes: bytes.into_boxed_slice(),
            key_len: u16::try_from(key.len()).ok()?,
            response_len: u16::try_from(response.len()).ok()?,
            question_end: u16::try_from(fill.question_end).ok()?,
            policy: fill.policy,
            valid_until: fill.valid_until.unwrap_or(i64::MAX),
            stored,
            expires,
        })
    }

    fn key(&self) -> &[u8] {
        &self.bytes[..usize::from(self.key_len)]
    }

    fn response(&self) -> &[u8] {
        let start = usize::from(self.key_len);
        &self.bytes[start..start + usize::from(self.response_len)]
    }

    fn ttl_offsets(&self) -> impl Iterator<Item = usize> + '_ {
        let start = usize::from(self.key_len) + usize::from(self.response_len);
        self.bytes[start..].chunks_exact(2).map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])))
    }
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
        let stored = fill.created;
        let expires = stored + std::time::Duration::from_secs(u64::from(ttl.min(MAX_TTL)));
        let Some(entry) = Entry::new(&fill, stored, expires) else { return };
        let h = hash(entry.key());
        match self.table.find_mut(h, |e| e.key() == entry.key()) {
            Some(slot) => *slot = entry,
            None => {
                self.table.insert_unique(h, entry, |e| hash(e.key()));
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
        let key = self.scratch.as_slice();
        let hit = self
            .table
            .find(hash(key), |e| e.key() == key)
            .filter(|e| e.expires > now && e.policy == policy && now_ms < e.valid_until);
        let Some(entry) = hit else {
            self.misses += 1;
            return false;
        };
        let response = entry.response();
        let question_end = usize::from(entry.question_end);
        if question_end != 12 + query.question.len() || response.len() > query.udp_limit() {
            self.misses += 1;
            return false;
        }
        let elapsed = u32::try_from(now.duration_since(entry.stored).as_secs()).unwrap_or(u32::MAX);
        out.clear();
        out.extend_from_slice(response);
        out[0..2].copy_from_slice(&query.id.to_be_bytes());
        out[2] = (out[2] & !0x01) | u8::from(query.recursion_desired);
        out[3] = (out[3] & !0x10) | (u8::from(query.checking_disabled) << 4);
        out[12..question_end].copy_from_slice(query.question);
        for at in entry.ttl_offsets() {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::dns::wire;

    /// A query for `a.test` A with `id`, and the question's bytes as sent.
    fn query(id: u16, name: &[u8]) -> Vec<u8> {
        let mut q = id.to_be_bytes().to_vec();
        q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        q.push(1);
        q.extend_from_slice(name);
        q.extend_from_slice(b"\x04test\x00\x00\x01\x00\x01");
        q
    }

    /// The upstream's answer to `query(7, b"a")`: one A record, TTL 300.
    fn fill(policy: usize, created: Instant) -> Fill {
        let mut response = query(7, b"a");
        response[2] = 0x81;
        response[3] = 0x80;
        response[7] = 1; // ANCOUNT
        response.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x01, 0x2c, 0, 4, 198, 18, 0, 1]);
        let question_end = wire::question_end(&response).unwrap();
        let ttl_offsets = wire::ttl_offsets(&response, question_end).unwrap();
        let key = CacheKey::new(b"a.test", 1, 0);
        Fill { key, response, question_end, ttl_offsets, valid_until: None, policy, created }
    }

    #[test]
    fn a_hit_is_the_stored_answer_with_the_clients_id_and_case_and_ttls_counted_down() {
        let created = Instant::now();
        let mut cache = AnswerCache::new(8);
        cache.insert(fill(1, created), created);
        let bytes = query(0xbeef, b"A");
        let q = wire::parse_query(&bytes).unwrap();
        let (mut out, later) = (Vec::new(), created + Duration::from_secs(100));
        assert!(cache.answer(q.name.as_bytes(), q.qtype, 0, &q, 1, later, 0, &mut out));
        assert_eq!(&out[..2], &[0xbe, 0xef], "the client's ID");
        assert_eq!(&out[12..q.question.len() + 12], q.question, "the question as the client sent it");
        let ttl_at = out.len() - 10;
        assert_eq!(u32::from_be_bytes(out[ttl_at..ttl_at + 4].try_into().unwrap()), 200);
        assert_eq!(&out[out.len() - 4..], &[198, 18, 0, 1]);
        // Another policy, an expired entry: no answer from the cache.
        assert!(!cache.answer(q.name.as_bytes(), q.qtype, 0, &q, 2, later, 0, &mut out));
        assert!(!cache.answer(q.name.as_bytes(), q.qtype, 0, &q, 1, created + Duration::from_secs(301), 0, &mut out));
        assert_eq!((cache.hits, cache.misses), (1, 2));
    }

    #[test]
    fn a_fill_whose_ttl_offsets_lie_outside_its_response_is_not_cached() {
        let created = Instant::now();
        let mut cache = AnswerCache::new(8);
        let mut bad = fill(1, created);
        bad.ttl_offsets.push(bad.response.len() - 2);
        cache.insert(bad, created);
        let bytes = query(1, b"a");
        let q = wire::parse_query(&bytes).unwrap();
        assert!(!cache.answer(q.name.as_bytes(), q.qtype, 0, &q, 1, created, 0, &mut Vec::new()));
    }
}
