//! Fuzzing entry point for DNS request handling (`fuzz/` and the corpus
//! replay test call it; not an API). Runs one datagram through both paths
//! exactly as the listeners do, minus the network: the fast path
//! (`wire::parse_query` and answer synthesis, refusals and cache hits) and
//! the full path (hickory parse, `Handler::local`, response building,
//! truncation, encoding, cache fill). Where the full path would ask the
//! upstream, the request's own answer and authority sections stand in for
//! the upstream's answer, so the fuzzer controls those records too; the
//! SERVFAIL of a failed upstream is built as well.
//!
//! Bytes in, response or drop out; it panics only when a response we would
//! send breaks an invariant: it must parse, echo the ID and fit the
//! client's UDP limit.

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hickory_proto::op::{Message, MessageType, ResponseCode};

use super::answer::{self, BlockMode};
use super::cache::{AnswerCache, Need, edns_flags};
use super::fast::Fast;
use super::handler::{Handler, HandlerConfig, upstream_failure};
use super::upstream::{Upstream, UpstreamAnswer, UpstreamError};
use super::wire;
use crate::audit::AuditHandle;

/// A client inside the allowed networks, and one outside (REFUSED).
const CLIENTS: [IpAddr; 2] = [IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))];
const MODES: [BlockMode; 4] = [BlockMode::Nxdomain, BlockMode::Nodata, BlockMode::Refused, BlockMode::Sinkhole];

/// One handler per block mode, over the built-in policy; never queried.
fn handlers() -> &'static [Handler] {
    static HANDLERS: OnceLock<Vec<Handler>> = OnceLock::new();
    HANDLERS.get_or_init(|| {
        let policy = Arc::new(ArcSwap::from_pointee(crate::policy::builtin().expect("built-in policy")));
        let discard = [SocketAddr::from((Ipv4Addr::LOCALHOST, 9))];
        MODES
            .iter()
            .map(|&block_response| {
                let upstream = Upstream::new(&discard, Duration::from_millis(1), 16).expect("upstream");
                let config = HandlerConfig {
                    block_response,
                    allowed_clients: vec!["127.0.0.0/8".parse().expect("net")],
                    blocked_ttl: 60,
                    log_allowed: true,
                    canary_nxdomain: true,
                    ddr_nodata: true,
                    // Short, so the repeat counter's table fills, and its
                    // windows close and reopen, from one input to the next.
                    aggregate_window_ms: 1,
                };
                Handler::new(policy.clone(), upstream, AuditHandle::disabled(), config)
            })
            .collect()
    })
}

thread_local! {
    /// Small, so eviction runs too.
    static CACHE: RefCell<AnswerCache> = RefCell::new(AnswerCache::new(32));
}

/// Feed one datagram (or TCP message) through the DNS request handling.
pub fn request(bytes: &[u8]) {
    // The ID's low bits pick the block mode: free for the fuzzer to vary.
    let handler = &handlers()[usize::from(bytes.get(1).copied().unwrap_or(0) & 3)];
    CACHE.with_borrow_mut(|cache| {
        let mut out = Vec::new();
        for client in CLIENTS {
            let mut pass = handler.pass();
            let fast = handler.fast_answer(bytes, client, &mut pass, cache, &mut out);
            handler.end_pass(&mut pass);
            handler.close_after_batch(pass.now.ms);
            if fast == Fast::Answered {
                let mut name = crate::matcher::NameBuf::new();
                let q = wire::parse_query(bytes, &mut name).expect("the fast path answered what it could not parse");
                check_response(bytes, &out, Some(q.udp_limit()));
            }
            full(handler, bytes, client, cache, true);
            full(handler, bytes, client, cache, false);
        }
    });
}

fn full(handler: &Handler, bytes: &[u8], client: IpAddr, cache: &mut AnswerCache, udp: bool) {
    let req = match Message::from_vec(bytes) {
        Ok(req) => req,
        Err(_) => {
            if bytes.len() >= 12
                && bytes[2] & 0x80 == 0
                && let Some(reply) = answer::raw_error(bytes, ResponseCode::FormErr)
            {
                check_response(bytes, &reply, None);
            }
            return;
        }
    };
    if req.metadata.message_type == MessageType::Response {
        return;
    }
    let limit = udp.then(|| answer::udp_limit(&req));
    let reply = match handler.local(&req, client, false) {
        Ok(reply) => reply,
        Err(ask) => {
            let (failed, _) = upstream_failure(&req, &UpstreamError::Timeout(Duration::from_millis(1)));
            if let Some(encoded) = answer::encode(&failed, limit) {
                check_response(bytes, &encoded, limit);
            }
            let upstream = UpstreamAnswer {
                rcode: req.metadata.response_code,
                answers: req.answers.clone(),
                authorities: req.authorities.clone(),
            };
            handler.answered(&req, client, &ask, upstream)
        }
    };
    let Some(encoded) = answer::encode(&reply.msg, limit) else { return };
    check_response(bytes, &encoded, limit);
    let Some(fill) = handler.cache_fill(&req, &encoded, &reply) else { return };
    let policy = fill.policy;
    cache.insert(fill, Instant::now());
    // A repeat of the query, answered from what was just cached.
    let mut name = crate::matcher::NameBuf::new();
    if let Some(q) = wire::parse_query(bytes, &mut name) {
        let flags = edns_flags(q.edns.map(|e| e.dnssec_ok));
        let mut out = Vec::new();
        let now = crate::time::now_ms();
        if cache.answer(name.as_bytes(), q.qtype, flags, &q, policy, Instant::now(), now, Need::Any, &mut out) {
            check_response(bytes, &out, Some(q.udp_limit()));
        }
    }
}

/// What every response we send must satisfy.
fn check_response(request: &[u8], response: &[u8], limit: Option<usize>) {
    let msg = Message::from_vec(response).unwrap_or_else(|e| panic!("our response does not parse: {e}"));
    assert_eq!(msg.metadata.message_type, MessageType::Response);
    assert_eq!(response[..2], request[..2], "response ID differs from the query's");
    if let Some(limit) = limit {
        assert!(response.len() <= limit, "{}-byte UDP response over the client's limit {limit}", response.len());
    }
}
