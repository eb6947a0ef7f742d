//! In-process harness of the UDP fast path for `benches/dns.rs` (not an
//! API): a handler over a policy, a worker's answer cache holding answers
//! for given names, and [`FastPath::run`], which feeds datagrams through
//! the fast path a batch at a time as a UDP worker does after its
//! `recvmmsg` (one clock read per batch), minus the sockets. It measures
//! the user-space cost of a query without the kernel's UDP path, which is
//! most of a dnsperf run's time and most of its noise.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hickory_proto::op::Message;

use super::answer::BlockMode;
use super::cache::{AnswerCache, Fill};
use super::fast::Fast;
use super::handler::{Handler, HandlerConfig, fill_for};
use super::upstream::Upstream;
use super::wire;
use crate::audit::AuditHandle;
use crate::policy::Policy;

/// A handler, a worker's cache and a worker's output buffers.
pub struct FastPath {
    handler: Handler,
    cache: AnswerCache,
    outs: Vec<Vec<u8>>,
}

impl FastPath {
    /// `policy` decides (the daemon's defaults otherwise: NXDOMAIN, a 1 s
    /// repeat window, loopback clients); contacts go to `audit`; the cache
    /// holds an A and an AAAA answer (TTL one day) for every `cached` name.
    pub fn new(policy: Policy, audit: AuditHandle, cached: &[String]) -> FastPath {
        let policy = Arc::new(ArcSwap::from_pointee(policy));
        let config = HandlerConfig {
            block_response: BlockMode::Nxdomain,
            allowed_clients: vec!["127.0.0.0/8".parse().unwrap_or_else(|_| unreachable!())],
            blocked_ttl: 60,
            log_allowed: false,
            canary_nxdomain: true,
            ddr_nodata: true,
            aggregate_window_ms: 1_000,
        };
        let pid = policy.load().generation();
        // Never asked: every query the harness sends is decided or cached.
        let discard = [SocketAddr::from((Ipv4Addr::LOCALHOST, 9))];
        let upstream = Upstream::new(&discard, Duration::from_millis(1), 16).unwrap_or_else(|_| unreachable!());
        let handler = Handler::new(policy, upstream, audit, config);
        let mut cache = AnswerCache::new(2 * cached.len() + 1);
        let now = Instant::now();
        for name in cached {
            for (qtype, rdata) in [(wire::TYPE_A, &[198, 18, 0, 1][..]), (wire::TYPE_AAAA, &[0xfd; 16][..])] {
                if let Some(fill) = fill(name, qtype, rdata, pid) {
                    cache.insert(fill, now);
                }
            }
        }
        FastPath { handler, cache, outs: Vec::new() }
    }

    /// Runs `datagrams` from `client` through the fast path, `batch` at a
    /// time; returns how many it answered.
    pub fn run(&mut self, datagrams: &[Vec<u8>], batch: usize, client: IpAddr) -> usize {
        let batch = batch.clamp(1, super::udp::BATCH);
        self.outs.resize_with(batch, || Vec::with_capacity(1232));
        let mut answered = 0;
        let mut pass = self.handler.pass();
        for chunk in datagrams.chunks(batch) {
            self.handler.start_pass(&mut pass);
            for (bytes, out) in chunk.iter().zip(self.outs.iter_mut()) {
                let fast = self.handler.fast_answer(bytes, client, &mut pass, &mut self.cache, out);
                answered += usize::from(fast == Fast::Answered);
            }
            self.handler.end_pass(&mut pass);
            self.handler.close_after_batch(pass.now.ms);
        }
        answered
    }

    /// Puts `policy` in force, as a reload does (the cache keeps its entries).
    pub fn set_policy(&self, policy: Policy) {
        self.handler.policy.store(Arc::new(policy));
    }

    /// The fast path's answer to one datagram; `None`: for the full path.
    pub fn answer(&mut self, datagram: &[u8], client: IpAddr) -> Option<Vec<u8>> {
        let (mut out, mut pass) = (Vec::new(), self.handler.pass());
        let fast = self.handler.fast_answer(datagram, client, &mut pass, &mut self.cache, &mut out);
        self.handler.end_pass(&mut pass);
        (fast == Fast::Answered).then_some(out)
    }
}

/// A query datagram for `name` (ASCII, dotted) and `qtype`, with EDNS.
pub fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q.extend_from_slice(&OPT);
    q
}

/// The OPT record of queries and answers: root, type 41, payload 1232, no
/// flags, no options.
const OPT: [u8; 11] = [0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0];

/// The cache fill of an answer to `query(_, name, qtype)`: one record,
/// made by the full path's own `fill_for` (a plain allow).
fn fill(name: &str, qtype: u16, rdata: &[u8], policy: u64) -> Option<Fill> {
    let request = query(0, name, qtype);
    let mut response = request[..request.len() - OPT.len()].to_vec();
    response[2] = 0x81;
    response[3] = 0x80;
    response[7] = 1; // ANCOUNT
    wire::record(&mut response, qtype, 86_400, rdata);
    response.extend_from_slice(&OPT);
    fill_for(&Message::from_vec(&request).ok()?, &response, None, policy, true)
}

/// The loopback client.
pub const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::handler::CLOSE_PER_BATCH;

    #[test]
    fn the_harness_answers_like_a_worker_blocked_and_cached_names_but_not_the_rest() {
        let policy = crate::policy::builtin().unwrap();
        let mut fast = FastPath::new(policy, AuditHandle::disabled(), &["h1.allowed.test".to_owned()]);
        let rcode = |answer: &[u8]| answer[3] & 0x0f;
        let blocked = fast.answer(&query(1, "s10.upd.kaspersky.com", wire::TYPE_A), CLIENT).unwrap();
        assert_eq!(rcode(&blocked), wire::RCODE_NXDOMAIN);
        let cached = fast.answer(&query(0xabcd, "H1.allowed.test", wire::TYPE_AAAA), CLIENT).unwrap();
        assert_eq!((&cached[..2], rcode(&cached), cached[7]), (&[0xab, 0xcd][..], wire::RCODE_NOERROR, 1));
        assert_eq!(fast.answer(&query(2, "h2.allowed.test", wire::TYPE_A), CLIENT), None, "not cached");
        let queries = [query(3, "s10.upd.kaspersky.com", wire::TYPE_AAAA), query(4, "h1.allowed.test", wire::TYPE_A)];
        assert_eq!(fast.run(&queries, 32, CLIENT), 2);
    }

    #[test]
    fn a_worker_closes_due_repeat_windows_after_its_batch_and_the_timer_steps_in_only_when_it_falls_behind() {
        use std::sync::atomic::Ordering::Relaxed;
        let audit = AuditHandle::disabled();
        let submitted = audit.stats();
        let mut fast = FastPath::new(crate::policy::builtin().unwrap(), audit, &[]);
        // 100 blocked names, each asked twice: 100 first sightings written
        // at once, a repeat counted in each one's 1 s window.
        let names: Vec<_> = (0..100).map(|i| format!("n{i}.upd.kaspersky.com")).collect();
        let queries: Vec<_> = names.iter().chain(&names).map(|n| query(7, n, wire::TYPE_A)).collect();
        let before = crate::time::now_ms();
        assert_eq!(fast.run(&queries, 32, CLIENT), 200);
        let after = crate::time::now_ms();
        let written = || submitted.submitted.load(Relaxed);
        assert_eq!(written(), 100, "first sightings");
        // A batch before any window is due closes nothing, and the timer
        // leaves due windows to a worker that has just closed and kept up.
        fast.handler.close_after_batch(before + 999);
        assert_eq!(written(), 100);
        fast.handler.close_repeats(after + 1_000);
        assert_eq!(written(), 100, "the timer stood by");
        // The next batch closes its share of the due windows (one repeat
        // record each); the rest are left, so the timer closes them.
        fast.handler.close_after_batch(after + 1_000);
        assert_eq!(written(), 100 + CLOSE_PER_BATCH as u64);
        fast.handler.close_repeats(after + 1_000);
        assert_eq!(written(), 200, "the timer closed what the worker left");
    }

    #[test]
    fn an_answer_cached_under_an_older_policy_is_not_served_once_a_reload_blocks_its_name() {
        let policy = crate::policy::builtin().unwrap();
        let mut fast = FastPath::new(policy, AuditHandle::disabled(), &["h1.allowed.test".to_owned()]);
        let ask = |fast: &mut FastPath| fast.answer(&query(5, "h1.allowed.test", wire::TYPE_A), CLIENT);
        let cached = ask(&mut fast).unwrap();
        assert_eq!((cached[3] & 0x0f, cached[7]), (wire::RCODE_NOERROR, 1), "answered from the cache");
        let lists = [crate::policy::Blocklist { source: "new.txt", text: "h1.allowed.test\n" }];
        let (blocking, _) = crate::policy::compile_with(crate::policy::BUILTIN_POLICY, "builtin.toml", &lists).unwrap();
        fast.set_policy(blocking);
        let refused = ask(&mut fast).unwrap();
        assert_eq!((refused[3] & 0x0f, refused[7]), (wire::RCODE_NXDOMAIN, 0), "the new policy's verdict");
        // Reloaded again without the entry: the old answer is not served
        // either (another generation), the full path must ask.
        fast.set_policy(crate::policy::builtin().unwrap());
        assert_eq!(ask(&mut fast), None);
    }
}
