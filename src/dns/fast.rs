//! The fast path, run on the UDP worker threads: plain queries are parsed
//! from the wire, decided, and answered without building a message — blocked
//! names with a synthesized refusal, everything else from the worker's
//! answer cache. What it cannot answer goes to the full path (`handler`).

use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::RecordType;

use super::aggregate::Sighting;
use super::answer::BlockMode;
use super::cache::{AnswerCache, Need, edns_flags};
use super::handler::Handler;
use super::tally::Tally;
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

/// What the queries of one `recvmmsg` batch share on the fast path: the
/// clocks, the policy snapshot (one load of the `ArcSwap` per batch), a
/// name buffer, and the counts they add up, which [`Handler::end_pass`]
/// adds to the shared counters once, before the batch's answers leave.
/// A worker keeps one and starts it anew for each batch.
pub struct Pass {
    pub(super) now: Now,
    policy: Arc<Policy>,
    name: NameBuf,
    tally: Tally,
}

impl Handler {
    /// A pass for the next batch; see [`Handler::start_pass`].
    pub fn pass(&self) -> Pass {
        Pass { now: Now::read(), policy: self.policy.load_full(), name: NameBuf::new(), tally: Tally::default() }
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

    /// Try to answer `buf` into `out` without leaving the worker thread,
    /// as one query of `pass`'s batch.
    pub(super) fn fast_answer(
        &self,
        buf: &[u8],
        client: IpAddr,
        pass: &mut Pass,
        cache: &mut AnswerCache,
        out: &mut Vec<u8>,
    ) -> Fast {
        let Pass { now, policy, name, tally } = pass;
        let Some(q) = wire::parse_query(buf, name) else { return Fast::Slow { recorded: false } };
        if !self.client_allowed(client) {
            wire::begin(out, &q, wire::RCODE_REFUSED, 0, 0);
            wire::opt(out, &q, None);
            tally.answered(QueryResult::Refused);
            return Fast::Answered;
        }
        let flags = edns_flags(q.edns.map(|e| e.dnssec_ok));
        let generation = policy.generation();
        let mut from_cache = |need, out: &mut Vec<u8>| {
            cache.answer(name.as_bytes(), q.qtype, flags, &q, generation, now.instant, now.ms, need, out)
        };
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
            self.blocked_wire(policy, &verdict, &q, out);
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
