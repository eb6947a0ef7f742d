//! The fast path's answer cache: encoded responses keyed by (name, type,
//! EDNS flags), owned by one UDP worker thread, so reads take no lock and
//! allocate nothing. The full path fills it through a channel. A hit is the
//! stored response with the client's ID, flags and question spliced in and
//! every TTL counted down.
//!
//! An entry is served only under the policy it was checked against (by
//! [`crate::policy::Policy::generation`]) and before that verdict's
//! `valid_until`. Within those bounds the verdict cannot differ (`decide`
//! is a function of the policy, the name and the time), so an entry whose
//! verdict was a plain allow (nothing to log) is served without asking the
//! policy again ([`Need::Plain`]); any other is served only after the
//! caller took the verdict ([`Need::Any`]). The cache replaces the
//! upstream, never a decision.

use std::time::Instant;

use hashbrown::HashTable;

/// Longest a response is kept, whatever its TTLs say.
const MAX_TTL: u32 = 86_400;

/// Identity of a cached answer: normalised name, query type, EDNS flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheKey {
    bytes: Vec<u8>,
}

/// The EDNS part of a key: bit 0 = the client sent EDNS, bit 1 = DO
/// (`dnssec_ok`: `None` without EDNS).
pub fn edns_flags(dnssec_ok: Option<bool>) -> u8 {
    dnssec_ok.map_or(0, |d| 1 | (u8::from(d) << 1))
}

impl CacheKey {
    /// `flags`: see [`edns_flags`].
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
    /// Generation of the policy the answer was checked against.
    pub policy: u64,
    /// The verdict was an allow with nothing to log.
    pub plain: bool,
    /// When the response was made: its TTLs count down from here.
    pub created: Instant,
}

/// A cached response, header included, in one table slot of two cache
/// lines: a hit reads the table's control bytes and this slot, nothing
/// behind a pointer (a lookup that must follow one waits for two misses in
/// a row; under load the kernel's work between two queries evicts most of
/// the cache from L2, so each dependent miss is a wait). Answers longer
/// than [`INLINE`] bytes (long CNAME chains, many records) live in one
/// heap block behind the slot instead. Layout of the bytes:
/// `[header][key][response][each TTL offset as u16]`, integers
/// little-endian; the header is `expires`, `stored` (u64 ns after the
/// cache's epoch), `valid_until` (i64 Unix ms, `i64::MAX`: none), `policy`
/// (u64), `key_len`, `response_len`, `question_end` (u16), `plain` (u8, 0
/// or 1).
#[repr(align(64))]
struct Entry(Form);

/// What fits a slot: an `A` or `AAAA` answer of one record for a name of
/// up to about 25 characters, say.
const INLINE: usize = 126;

enum Form {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<[u8]>),
}

// Two cache lines, slot for slot (the table aligns its slots to `Entry`).
const _: () = assert!(std::mem::size_of::<Entry>() == 128);

const EXPIRES: usize = 0;
const STORED: usize = 8;
const VALID_UNTIL: usize = 16;
const POLICY: usize = 24;
const KEY_LEN: usize = 32;
const RESPONSE_LEN: usize = 34;
const QUESTION_END: usize = 36;
const PLAIN: usize = 38;
const HEADER: usize = 39;

/// Which entries a lookup may serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Only those of a plain allow: the caller has not taken the verdict.
    Plain,
    /// Any: the caller took the verdict, and it allows the query.
    Any,
}

impl Entry {
    /// `None` when the response or an offset does not fit the compact form
    /// (never for a UDP answer). Times are ns after `epoch`.
    fn new(fill: &Fill, stored: u64, expires: u64) -> Option<Entry> {
        let (key, response) = (&fill.key.bytes, &fill.response);
        let mut bytes = Vec::with_capacity(HEADER + key.len() + response.len() + 2 * fill.ttl_offsets.len());
        bytes.extend_from_slice(&expires.to_le_bytes());
        bytes.extend_from_slice(&stored.to_le_bytes());
        bytes.extend_from_slice(&fill.valid_until.unwrap_or(i64::MAX).to_le_bytes());
        bytes.extend_from_slice(&fill.policy.to_le_bytes());
        for len in [key.len(), response.len(), fill.question_end] {
            bytes.extend_from_slice(&u16::try_from(len).ok()?.to_le_bytes());
        }
        bytes.push(u8::from(fill.plain));
        bytes.extend_from_slice(key);
        bytes.extend_from_slice(response);
        for &at in &fill.ttl_offsets {
            // A TTL lies inside the response: its offset then fits too.
            if at + 4 > response.len() {
                return None;
            }
            bytes.extend_from_slice(&u16::try_from(at).ok()?.to_le_bytes());
        }
        let form = match u8::try_from(bytes.len()) {
            Ok(len) if bytes.len() <= INLINE => {
                let mut inline = [0; INLINE];
                inline[..bytes.len()].copy_from_slice(&bytes);
                Form::Inline { len, bytes: inline }
            }
            _ => Form::Heap(bytes.into_boxed_slice()),
        };
        Some(Entry(form))
    }

    /// The entry's bytes, to read its fields from (one look at the form
    /// per lookup, not per field).
    fn view(&self) -> View<'_> {
        View(match &self.0 {
            Form::Inline { len, bytes } => bytes.get(..usize::from(*len)).unwrap_or_default(),
            Form::Heap(bytes) => bytes,
        })
    }
}

/// The fields of an entry's bytes (see [`Entry`]).
#[derive(Clone, Copy)]
struct View<'a>(&'a [u8]);

impl<'a> View<'a> {
    fn u64_at(self, at: usize) -> u64 {
        self.0.get(at..at + 8).and_then(|b| <[u8; 8]>::try_from(b).ok()).map_or(0, u64::from_le_bytes)
    }

    fn u16_at(self, at: usize) -> usize {
        self.0.get(at..at + 2).map_or(0, |b| usize::from(u16::from_le_bytes([b[0], b[1]])))
    }

    fn expires(self) -> u64 {
        self.u64_at(EXPIRES)
    }

    fn stored(self) -> u64 {
        self.u64_at(STORED)
    }

    fn valid_until(self) -> i64 {
        self.u64_at(VALID_UNTIL) as i64
    }

    fn policy(self) -> u64 {
        self.u64_at(POLICY)
    }

    fn question_end(self) -> usize {
        self.u16_at(QUESTION_END)
    }

    fn plain(self) -> bool {
        self.0.get(PLAIN) == Some(&1)
    }

    fn key(self) -> &'a [u8] {
        self.0.get(HEADER..HEADER + self.u16_at(KEY_LEN)).unwrap_or_default()
    }

    fn response(self) -> &'a [u8] {
        let start = HEADER + self.u16_at(KEY_LEN);
        self.0.get(start..start + self.u16_at(RESPONSE_LEN)).unwrap_or_default()
    }

    fn ttl_offsets(self) -> impl Iterator<Item = usize> + 'a {
        let start = HEADER + self.u16_at(KEY_LEN) + self.u16_at(RESPONSE_LEN);
        let offsets = self.0.get(start..).unwrap_or_default();
        offsets.chunks_exact(2).map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])))
    }
}

pub struct AnswerCache {
    table: HashTable<Entry>,
    /// Keys the hashes (see [`hash_parts`]); random per cache.
    seed: u64,
    /// Origin of the entries' times.
    epoch: Instant,
    capacity: usize,
    /// The last `now` a lookup was given, in ns after the epoch: the
    /// queries of a batch share one, and the conversion is not free.
    last_now: (Instant, u64),
    pub hits: u64,
    pub misses: u64,
}

/// The hash of a stored key (see [`hash_parts`]).
fn hash(key: &[u8], seed: u64) -> u64 {
    let (name, rest) = key.split_at(key.len().saturating_sub(3));
    let [q0, q1, flags] = <[u8; 3]>::try_from(rest).unwrap_or_default();
    hash_parts(name, u16::from_be_bytes([q0, q1]), flags, seed)
}

/// The hash of the key of (`name`, `qtype`, `flags`), from its parts, so a
/// lookup builds no key: the name's hash (the one the policy's name tables
/// use, eight bytes a multiply) with the type and flags mixed in, then
/// keyed with the cache's random `seed` and spread by two multiplies over
/// the top bits the table's tags and the low bits its buckets are taken
/// from. The name hash is public, and names are the clients' to choose:
/// without the seed, names made to share a bucket and a tag would pile up
/// in one probe sequence and make every lookup there walk it.
fn hash_parts(name: &[u8], qtype: u16, flags: u8, seed: u64) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let rest = u64::from(qtype) << 8 | u64::from(flags);
    let x = (crate::matcher::hash_name(name) ^ rest).wrapping_add(seed).wrapping_mul(K);
    (x ^ (x >> 32)).wrapping_mul(K)
}

/// Whether `key` is the key of (`name`, `qtype`, `flags`).
fn key_is(key: &[u8], name: &[u8], qtype: u16, flags: u8) -> bool {
    let [q0, q1] = qtype.to_be_bytes();
    key.len() == name.len() + 3 && key[..name.len()] == *name && key[name.len()..] == [q0, q1, flags]
}

impl AnswerCache {
    pub fn new(capacity: usize) -> AnswerCache {
        let epoch = Instant::now();
        AnswerCache {
            table: HashTable::new(),
            seed: std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), epoch),
            epoch,
            capacity: capacity.max(1),
            last_now: (epoch, 0),
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
        let now = self.ns(now);
        let stored = self.ns(fill.created);
        let expires = stored.saturating_add(u64::from(ttl.min(MAX_TTL)) * 1_000_000_000);
        let Some(entry) = Entry::new(&fill, stored, expires) else { return };
        let h = hash(entry.view().key(), self.seed);
        // A new answer for a cached key takes its place; any other needs room.
        if let Some(slot) = self.table.find_mut(h, |e| e.view().key() == entry.view().key()) {
            *slot = entry;
            return;
        }
        if self.table.len() >= self.capacity {
            self.table.retain(|e| e.view().expires() > now);
            if self.table.len() >= self.capacity {
                return;
            }
        }
        let seed = self.seed;
        self.table.insert_unique(h, entry, |e| hash(e.view().key(), seed));
    }

    /// `at` in ns after the epoch (0 before it).
    fn ns(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Write the cached answer for this query into `out`, or `false`.
    /// `policy`: the generation of the policy in force; `need`: which
    /// entries may answer. A [`Need::Plain`] lookup that finds nothing is
    /// not counted as a miss (the caller asks again with the verdict).
    #[allow(clippy::too_many_arguments)]
    pub fn answer(
        &mut self,
        name: &[u8],
        qtype: u16,
        flags: u8,
        query: &super::wire::Query,
        policy: u64,
        now: Instant,
        now_ms: i64,
        need: Need,
        out: &mut Vec<u8>,
    ) -> bool {
        let now = match self.last_now {
            (at, ns) if at == now => ns,
            _ => {
                let ns = self.ns(now);
                self.last_now = (now, ns);
                ns
            }
        };
        let usable = |e: &View<'_>| {
            e.expires() > now
                && e.policy() == policy
                && now_ms < e.valid_until()
                && (need == Need::Any || e.plain())
                && e.question_end() == 12 + query.question.len()
                && e.response().len() <= query.udp_limit()
        };
        let found =
            self.table.find(hash_parts(name, qtype, flags, self.seed), |e| key_is(e.view().key(), name, qtype, flags));
        let Some(entry) = found.map(Entry::view).filter(usable) else {
            self.misses += u64::from(need == Need::Any);
            return false;
        };
        let response = entry.response();
        let question_end = entry.question_end();
        let elapsed = u32::try_from(now.saturating_sub(entry.stored()) / 1_000_000_000).unwrap_or(u32::MAX);
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
        q.push(name.len() as u8);
        q.extend_from_slice(name);
        q.extend_from_slice(b"\x04test\x00\x00\x01\x00\x01");
        q
    }

    /// The upstream's answer to `query(7, b"a")`: one A record, TTL 300,
    /// checked under policy generation `policy`.
    fn fill(policy: u64, created: Instant, plain: bool) -> Fill {
        fill_for(b"a", 1, policy, created, plain)
    }

    /// The upstream's answer to `query(7, label)`: one A record
    /// 198.18.0.`last`, TTL 300.
    fn fill_for(label: &[u8], last: u8, policy: u64, created: Instant, plain: bool) -> Fill {
        let mut response = query(7, label);
        response[2] = 0x81;
        response[3] = 0x80;
        response[7] = 1; // ANCOUNT
        response.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x01, 0x2c, 0, 4, 198, 18, 0, last]);
        let question_end = wire::question_end(&response).unwrap();
        let ttl_offsets = wire::ttl_offsets(&response, question_end).unwrap();
        let key = CacheKey::new(&[label.to_ascii_lowercase().as_slice(), b".test"].concat(), 1, 0);
        Fill { key, response, question_end, ttl_offsets, valid_until: None, policy, plain, created }
    }

    /// The address the cache answers `label`.test A with, if it does.
    fn cached_address(cache: &mut AnswerCache, label: &[u8], now: Instant) -> Option<[u8; 4]> {
        let bytes = query(3, label);
        let mut name = crate::matcher::NameBuf::new();
        let q = wire::parse_query(&bytes, &mut name).unwrap();
        let mut out = Vec::new();
        let hit = cache.answer(name.as_bytes(), q.qtype, 0, &q, 1, now, 0, Need::Any, &mut out);
        hit.then(|| out[out.len() - 4..].try_into().unwrap())
    }

    #[test]
    fn every_entry_of_a_full_cache_answers_a_refill_replaces_its_key_and_room_comes_from_expired_entries() {
        let created = Instant::now();
        let mut cache = AnswerCache::new(1_000);
        assert_eq!(cached_address(&mut cache, b"n0", created), None, "an empty cache answers nothing");
        let label = |i: usize| format!("n{i}").into_bytes();
        for i in 0..1_000 {
            cache.insert(fill_for(&label(i), (i % 250) as u8, 1, created, true), created);
        }
        for i in 0..1_000 {
            assert_eq!(cached_address(&mut cache, &label(i), created), Some([198, 18, 0, (i % 250) as u8]), "n{i}");
        }
        // The same key again, into a full cache: the new answer replaces
        // the old one.
        cache.insert(fill_for(b"n7", 99, 1, created, true), created);
        assert_eq!(cached_address(&mut cache, b"N7", created), Some([198, 18, 0, 99]));
        assert_eq!(cache.table.len(), 1_000);
        // Full, nothing expired: a new name is not cached, none is dropped.
        cache.insert(fill_for(b"late", 1, 1, created, true), created);
        assert_eq!(cached_address(&mut cache, b"late", created), None);
        assert_eq!(cached_address(&mut cache, b"n999", created), Some([198, 18, 0, 249]));
        // Once they have expired, they make room.
        let later = created + Duration::from_secs(301);
        cache.insert(fill_for(b"late", 1, 1, later, true), later);
        assert_eq!(cached_address(&mut cache, b"late", later), Some([198, 18, 0, 1]));
        assert_eq!(cached_address(&mut cache, b"n999", later), None);
        assert_eq!(cache.table.len(), 1);
    }

    #[test]
    fn names_chosen_to_share_hash_bits_in_one_cache_scatter_in_another() {
        // Some bits of a hash pick the bucket (and the tag). Names found to
        // share them for one cache (what a client flooding it would search
        // for) do not share them in another: each cache keys its hashes.
        let (a, b) = (AnswerCache::new(8), AnswerCache::new(8));
        let top = |c: &AnswerCache, name: &[u8]| hash_parts(name, 1, 0, c.seed) >> 58;
        let names: Vec<Vec<u8>> =
            (0..200_000).map(|i| format!("x{i}.test").into_bytes()).filter(|n| top(&a, n) == 0).take(640).collect();
        assert_eq!(names.len(), 640);
        let mut runs = [0usize; 64];
        for n in &names {
            runs[top(&b, n) as usize] += 1;
        }
        assert!(runs.iter().all(|&k| k < 40), "in the other cache they spread over all 64 (≈ 10 each): {runs:?}");
    }

    #[test]
    fn a_hit_is_the_stored_answer_with_the_clients_id_and_case_and_ttls_counted_down() {
        let mut cache = AnswerCache::new(8);
        let created = Instant::now();
        cache.insert(fill(1, created, true), created);
        let bytes = query(0xbeef, b"A");
        let mut name = crate::matcher::NameBuf::new();
        let q = wire::parse_query(&bytes, &mut name).unwrap();
        let (mut out, later) = (Vec::new(), created + Duration::from_secs(100));
        assert!(cache.answer(name.as_bytes(), q.qtype, 0, &q, 1, later, 0, Need::Any, &mut out));
        assert_eq!(&out[..2], &[0xbe, 0xef], "the client's ID");
        assert_eq!(&out[12..q.question.len() + 12], q.question, "the question as the client sent it");
        let ttl_at = out.len() - 10;
        assert_eq!(u32::from_be_bytes(out[ttl_at..ttl_at + 4].try_into().unwrap()), 200);
        assert_eq!(&out[out.len() - 4..], &[198, 18, 0, 1]);
        // Another policy, an expired entry: no answer from the cache.
        assert!(!cache.answer(name.as_bytes(), q.qtype, 0, &q, 2, later, 0, Need::Any, &mut out));
        let expired = created + Duration::from_secs(301);
        assert!(!cache.answer(name.as_bytes(), q.qtype, 0, &q, 1, expired, 0, Need::Any, &mut out));
        assert_eq!((cache.hits, cache.misses), (1, 2));
    }

    #[test]
    fn only_a_plain_allow_answers_before_the_verdict_and_never_past_its_validity() {
        let created = Instant::now();
        let bytes = query(9, b"a");
        let mut name = crate::matcher::NameBuf::new();
        let q = wire::parse_query(&bytes, &mut name).unwrap();
        let ask = |cache: &mut AnswerCache, need, now_ms| {
            cache.answer(name.as_bytes(), q.qtype, 0, &q, 1, created, now_ms, need, &mut Vec::new())
        };
        // Filled under a verdict that logs (monitor): only once the caller
        // took the verdict again.
        let mut cache = AnswerCache::new(8);
        cache.insert(fill(1, created, false), created);
        assert!(!ask(&mut cache, Need::Plain, 0));
        assert!(ask(&mut cache, Need::Any, 0));
        // A plain allow answers without the verdict, until its `valid_until`
        // (a phase change) and only under its own policy generation.
        let mut cache = AnswerCache::new(8);
        cache.insert(Fill { valid_until: Some(1_000), ..fill(1, created, true) }, created);
        assert!(ask(&mut cache, Need::Plain, 999));
        assert!(!ask(&mut cache, Need::Plain, 1_000));
        assert!(!cache.answer(name.as_bytes(), q.qtype, 0, &q, 2, created, 0, Need::Plain, &mut Vec::new()));
        assert_eq!((cache.hits, cache.misses), (1, 0), "a lookup before the verdict counts no miss");
    }

    #[test]
    fn answers_too_long_for_a_slot_are_kept_behind_it_and_answer_alike() {
        // One A record fits a slot; sixteen (a round-robin name) do not.
        let mut cache = AnswerCache::new(8);
        let created = Instant::now();
        let mut long = fill_for(b"rr", 1, 1, created, true);
        long.response[7] = 16; // ANCOUNT
        for last in 2..=16 {
            long.response.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x01, 0x2c, 0, 4, 198, 18, 1, last]);
        }
        long.ttl_offsets = wire::ttl_offsets(&long.response, long.question_end).unwrap();
        assert_eq!(long.ttl_offsets.len(), 16);
        cache.insert(long, created);
        cache.insert(fill_for(b"one", 7, 1, created, true), created);
        let forms: Vec<bool> = cache.table.iter().map(|e| matches!(e.0, Form::Inline { .. })).collect();
        assert_eq!(forms.iter().filter(|&&inline| inline).count(), 1, "one entry in its slot, one behind it");
        assert_eq!(cached_address(&mut cache, b"one", created), Some([198, 18, 0, 7]));
        let bytes = query(5, b"RR");
        let mut name = crate::matcher::NameBuf::new();
        let q = wire::parse_query(&bytes, &mut name).unwrap();
        let (mut out, later) = (Vec::new(), created + Duration::from_secs(60));
        assert!(cache.answer(name.as_bytes(), q.qtype, 0, &q, 1, later, 0, Need::Any, &mut out));
        assert_eq!(&out[..2], &[0, 5]);
        assert_eq!(&out[12..q.question.len() + 12], q.question);
        let records = &out[q.question.len() + 12..];
        assert_eq!(records.len(), 16 * 16);
        for (i, rr) in records.chunks_exact(16).enumerate() {
            assert_eq!(u32::from_be_bytes(rr[6..10].try_into().unwrap()), 240, "TTL of record {i} counted down");
            assert_eq!(rr[15], if i == 0 { 1 } else { i as u8 + 1 });
        }
    }

    #[test]
    fn a_fill_whose_ttl_offsets_lie_outside_its_response_is_not_cached() {
        let created = Instant::now();
        let mut cache = AnswerCache::new(8);
        let mut bad = fill(1, created, true);
        bad.ttl_offsets.push(bad.response.len() - 2);
        cache.insert(bad, created);
        let bytes = query(1, b"a");
        let mut name = crate::matcher::NameBuf::new();
        let q = wire::parse_query(&bytes, &mut name).unwrap();
        assert!(!cache.answer(name.as_bytes(), q.qtype, 0, &q, 1, created, 0, Need::Any, &mut Vec::new()));
    }
}
