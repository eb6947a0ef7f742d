//! The fast path, run on the UDP worker threads: plain queries are parsed
//! from the wire, decided, and answered without building a message — blocked
//! names with a synthesized refusal, everything else from the worker's
//! answer cache. What it cannot answer goes to the full path (`handler`).

use std::net::IpAddr;
use std::sync::atomic::Ordering;

use hickory_proto::rr::RecordType;

use super::aggregate::Sighting;
use super::answer::BlockMode;
use super::cache::AnswerCache;
use super::handler::{Handler, policy_id};
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

impl Handler {
    /// Try to answer `buf` into `out` without leaving the worker thread.
    /// `now`: when the datagram's batch was received.
    pub(super) fn fast_answer(
        &self,
        buf: &[u8],
        client: IpAddr,
        now: Now,
        cache: &mut AnswerCache,
        out: &mut Vec<u8>,
    ) -> Fast {
        let mut name = NameBuf::new();
        let Some(q) = wire::parse_query(buf, &mut name) else { return Fast::Slow { recorded: false } };
        if !self.client_allowed(client) {
            self.stats.queries.fetch_add(1, Ordering::Relaxed);
            wire::begin(out, &q, wire::RCODE_REFUSED, 0, 0);
            wire::opt(out, &q, None);
            self.metrics.query(QueryResult::Refused);
            return Fast::Answered;
        }
        let policy = self.policy.load();
        let verdict = policy.decide_normalized(name.as_bytes(), now.ms);
        // Checked first so an unlogged query allocates nothing.
        let logged = (verdict.action.is_logged() || self.config.log_allowed) && {
            let name = Some(name.as_str());
            let qtype = RecordType::from(q.qtype);
            self.log_contact(&policy, Sighting { client, name, qtype, verdict: &verdict, via: None, now: now.ms })
        };
        if verdict.action == Action::Block {
            self.stats.queries.fetch_add(1, Ordering::Relaxed);
            self.blocked_wire(&policy, &verdict, &q, out);
            self.metrics.query(QueryResult::Blocked);
            return Fast::Answered;
        }
        let flags = q.edns.map_or(0, |e| 1 | (u8::from(e.dnssec_ok) << 1));
        let pid = policy_id(&policy);
        let hit = cache.answer(name.as_bytes(), q.qtype, flags, &q, pid, now.instant, now.ms, out);
        self.metrics.answer_cache(hit);
        if hit {
            self.stats.queries.fetch_add(1, Ordering::Relaxed);
            let result = if verdict.action == Action::Monitor { QueryResult::Monitored } else { QueryResult::Allowed };
            self.metrics.query(result);
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
