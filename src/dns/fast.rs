//! The fast path, run on the UDP worker threads: plain queries are parsed
//! from the wire, decided, and answered without building a message — blocked
//! names with a synthesized refusal, everything else from the worker's
//! answer cache. What it cannot answer goes to the full path (`handler`).

use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::RecordType;

use super::aggregate::Sighting;
use super::answer::BlockMode;
use super::cache::{AnswerCache, Lookup, Need, edns_flags};
use super::handler::Handler;
use super::tally::Tally;
use super::udp::BATCH;
use super::wire::{self, Query};
use crate::matcher::NameBuf;
use crate::metrics::QueryResult;
use crate::policy::{Action, Policy, Verdict};
use crate::time::Now;

/// What the fast path did with a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fast {
    /// `out` holds the response.
    Answered,
    /// Hand to the full path; `recorded` when the audit record is written.
    Slow { recorded: bool },
}

/// A datagram of a batch after [`Handler::read_query`].
#[derive(Debug)]
pub enum Read<'a> {
    /// A plain query, its name in the pass.
    Query(Query<'a>),
    /// Anything else: for the full path.
    Other,
}

/// What the queries of one `recvmmsg` batch share on the fast path: the
/// clocks, the policy snapshot (one load of the `ArcSwap` per batch), the
/// names of its queries and the hashes of their answer cache keys, and the
/// counts they add up, which [`Handler::end_pass`] adds to the shared
/// counters once, before the batch's answers leave. A worker keeps one and
/// starts it anew for each batch.
///
/// A batch is answered in two steps: every datagram is read first
/// ([`Handler::read_query`]), so the answer cache can fetch the whole
/// batch's entries at once ([`Handler::warm`]), and then each is answered
/// ([`Handler::answer_read`]).
pub struct Pass {
    pub(super) now: Now,
    policy: Arc<Policy>,
    names: Box<[NameBuf; BATCH]>,
    hashes: [u64; BATCH],
    tally: Tally,
}

impl Handler {
    /// A pass for the next batch; see [`Handler::start_pass`].
    pub fn pass(&self) -> Pass {
        Pass {
            now: Now::read(),
            policy: self.policy.load_full(),
            names: Box::new([const { NameBuf::new() }; BATCH]),
            hashes: [0; BATCH],
            tally: Tally::default(),
        }
    }

    /// Starts `pass` over for a batch received now, with the current policy.
    pub fn start_pass(&self, pass: &mut Pass) {
        pass.now = Now::read();
        if !Arc::ptr_eq(&pass.policy, &self.policy.load()) {
            pass.policy = self.policy.load_full();
        }
    }

    /// Adds the batch's counts to the shared counters.
    pub fn end_pass(&self, pass: &mut Pass) {
        pass.tally.add_to(&self.stats, &self.metrics, &pass.policy);
    }

    /// Reads datagram `i` (below [`BATCH`]) of `pass`'s batch: its name goes
    /// to the pass, with the hash of its answer cache key for
    /// [`Handler::warm`].
    pub(super) fn read_query<'a>(&self, buf: &'a [u8], i: usize, pass: &mut Pass, cache: &AnswerCache) -> Read<'a> {
        let (Some(name), Some(hash)) = (pass.names.get_mut(i), pass.hashes.get_mut(i)) else { return Read::Other };
        let Some(q) = wire::parse_query(buf, name) else { return Read::Other };
        *hash = cache.lookup(name.as_bytes(), q.qtype, edns_flags(q.edns.map(|e| e.dnssec_ok))).hash();
        Read::Query(q)
    }

    /// Fetches the answer cache entries of the batch's first `n` datagrams
    /// (see [`AnswerCache::warm`]), once they are all read.
    pub(super) fn warm(&self, pass: &Pass, n: usize, cache: &AnswerCache) {
        cache.warm(&pass.hashes[..n.min(BATCH)]);
    }

    /// Try to answer `buf` into `out` without leaving the worker thread,
    /// as a batch of one.
    pub(super) fn fast_answer(
        &self,
        buf: &[u8],
        client: IpAddr,
        pass: &mut Pass,
        cache: &mut AnswerCache,
        out: &mut Vec<u8>,
    ) -> Fast {
        let read = self.read_query(buf, 0, pass, cache);
        self.answer_read(&read, 0, client, pass, cache, out)
    }

    /// Try to answer datagram `i` of `pass`'s batch, as
    /// [`Handler::read_query`] read it, into `out` without leaving the
    /// worker thread.
    pub(super) fn answer_read(
        &self,
        read: &Read<'_>,
        i: usize,
        client: IpAddr,
        pass: &mut Pass,
        cache: &mut AnswerCache,
        out: &mut Vec<u8>,
    ) -> Fast {
        let Pass { now, policy, names, hashes, tally } = pass;
        let (Read::Query(q), Some(name), Some(&hash)) = (read, names.get(i), hashes.get(i)) else {
            return Fast::Slow { recorded: false };
        };
        if !self.client_allowed(client) {
            wire::begin(out, q, wire::RCODE_REFUSED, 0, 0);
            wire::opt(out, q, None);
            tally.answered(QueryResult::Refused);
            return Fast::Answered;
        }
        let key = Lookup::hashed(name.as_bytes(), q.qtype, edns_flags(q.edns.map(|e| e.dnssec_ok)), hash);
        let generation = policy.generation();
        let mut from_cache = |need, out: &mut Vec<u8>| cache.answer(key, q, generation, now.instant, now.ms, need, out);
        // An answer cached under this very policy for a plain allow: the
        // verdict would be the same again (see `cache`), so none is taken.
        if from_cache(Need::Plain, out) {
            tally.cache(true);
            tally.answered(QueryResult::Allowed);
            return Fast::Answered;
        }
        let verdict = policy.decide_normalized(name.as_bytes(), now.ms);
        // Checked first so an unlogged query allocates nothing.
        let logged = (verdict.action.is_logged() || self.config.log_allowed) && {
            let name = Some(name.as_str());
            let qtype = RecordType::from(q.qtype);
            let s = Sighting { client, name, qtype, verdict: &verdict, via: None, now: now.ms };
            self.log_contact(policy, s, tally)
        };
        if verdict.action == Action::Block {
            self.blocked_wire(policy, &verdict, q, out);
            tally.answered(QueryResult::Blocked);
            return Fast::Answered;
        }
        let hit = from_cache(Need::Any, out);
        tally.cache(hit);
        if hit {
            let result = if verdict.action == Action::Monitor { QueryResult::Monitored } else { QueryResult::Allowed };
            tally.answered(result);
            return Fast::Answered;
        }
        // The full path counts this query.
        Fast::Slow { recorded: logged }
    }

    fn blocked_wire(&self, policy: &Policy, verdict: &Verdict, q: &Query, out: &mut Vec<u8>) {
        let text = policy.refusal_text(verdict.matched.map(|(_, c)| c));
        let ede = Some((policy.meta.blocked_ede.info_code(), text));
        let ttl = self.config.blocked_ttl;
        let mode = self.config.block_response;
        let sink = match (mode, q.qtype) {
            (BlockMode::Sinkhole, wire::TYPE_A) => Some((wire::TYPE_A, &[0u8; 4][..])),
            (BlockMode::Sinkhole, wire::TYPE_AAAA) => Some((wire::TYPE_AAAA, &[0u8; 16][..])),
            _ => None,
        };
        match (mode, sink) {
            (_, Some((rtype, rdata))) => {
                wire::begin(out, q, wire::RCODE_NOERROR, 1, 0);
                wire::record(out, rtype, ttl, rdata);
            }
            (BlockMode::Refused, None) => wire::begin(out, q, wire::RCODE_REFUSED, 0, 0),
            (BlockMode::Nxdomain, None) => {
                wire::begin(out, q, wire::RCODE_NXDOMAIN, 0, 1);
                wire::soa(out, ttl);
            }
            (_, None) => {
                wire::begin(out, q, wire::RCODE_NOERROR, 0, 1);
                wire::soa(out, ttl);
            }
        }
        wire::opt(out, q, ede);
    }
}
