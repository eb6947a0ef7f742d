//! One query, start to end: parse, access control, `decide`, refuse or
//! forward, check the upstream's answer, write audit records, encode.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, RData, Record, RecordType};
use ipnet::IpNet;

use super::aggregate::{Aggregator, Sighting};
use super::answer::{self, BlockMode};
use super::cache::{CacheKey, Fill, edns_flags};
use super::ratelimit::RateLimiter;
use super::tally::Tally;
use super::upstream::{Upstream, UpstreamAnswer, UpstreamError};
use super::wire;
use crate::audit::{AuditHandle, Contact, Layer, Repeats};
use crate::metrics::{Metrics, QueryResult};
use crate::packet::Correlator;
use crate::policy::{Action, Policy, Subject, Verdict};
use crate::time::now_ms;

/// Repeat windows the timer closes per hold of the aggregator's lock (about
/// 0.1 ms of work), see [`Handler::close_repeats`].
const CLOSE_SLICE: usize = 512;
/// Repeat windows a UDP worker closes after a batch, see
/// [`Handler::close_after_batch`].
pub(super) const CLOSE_PER_BATCH: usize = 64;
/// How long after a worker last looked for due windows, having left none, the
/// timer leaves the closing to the workers (the workers wake at least every
/// 100 ms, see `udp::WAKE`).
const WORKERS_CLOSE_FOR_MS: i64 = 250;
/// How stale a worker lets its mark in `workers_looked_at` get: the mark is
/// a store to a line every worker shares, so not one per batch.
const WORKER_MARK_MS: i64 = 50;

/// How the query arrived; decides truncation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// Per-query settings of the handler.
#[derive(Debug, Clone)]
pub struct HandlerConfig {
    pub block_response: BlockMode,
    pub allowed_clients: Vec<IpNet>,
    pub blocked_ttl: u32,
    pub log_allowed: bool,
    /// Answer the Firefox canary `use-application-dns.net` with NXDOMAIN.
    pub canary_nxdomain: bool,
    /// Answer Discovery of Designated Resolvers (`_dns.resolver.arpa`) with NODATA.
    pub ddr_nodata: bool,
    /// Repeats of a contact within this many milliseconds after its first
    /// sighting are counted into one record (0: a record per query).
    pub aggregate_window_ms: u64,
}

/// Counters of what the DNS layer did.
#[derive(Debug, Default)]
pub struct DnsStats {
    pub queries: AtomicU64,
    pub blocked: AtomicU64,
    pub monitored: AtomicU64,
    pub refused_clients: AtomicU64,
    pub malformed: AtomicU64,
    pub upstream_errors: AtomicU64,
    /// Bypass canaries answered (`use-application-dns.net`, `_dns.resolver.arpa`).
    pub canaries: AtomicU64,
}

pub struct Handler {
    pub(super) policy: Arc<ArcSwap<Policy>>,
    upstream: Upstream,
    pub(super) audit: AuditHandle,
    pub(super) config: HandlerConfig,
    pub stats: DnsStats,
    pub(super) metrics: Metrics,
    limiter: Option<Arc<RateLimiter>>,
    /// Links DNS records with the packet layer's (set when it runs).
    pub(super) correlator: Option<Arc<Correlator>>,
    /// Contacts whose repeats are being counted.
    repeats: Mutex<Aggregator>,
    /// When the next repeat window closes (Unix ms), kept by whoever holds
    /// `repeats`, so a worker with nothing to close takes no lock.
    next_due: AtomicI64,
    /// When a UDP worker last looked for due windows (Unix ms, to within
    /// [`WORKER_MARK_MS`]), and whether it left any due: see
    /// [`Handler::close_repeats`].
    workers_looked_at: AtomicI64,
    workers_behind: AtomicBool,
}

/// A response and whether the fast path may cache it.
pub(super) struct Reply {
    pub msg: Message,
    pub result: QueryResult,
    /// `Some(valid_until)` when the answer came from the upstream and passed
    /// the answer check without anything to log.
    pub cacheable: Option<Option<i64>>,
    /// [`Policy::generation`] of the policy that decided.
    pub policy: u64,
}

impl Reply {
    fn local(msg: Message, result: QueryResult) -> Reply {
        Reply { msg, result, cacheable: None, policy: 0 }
    }
}

/// A query `local` could not answer: the upstream must.
pub(super) struct Ask<'a> {
    pub query: &'a Query,
    pub policy: Arc<Policy>,
    pub verdict: Verdict,
    pub now: i64,
}

/// Why a contact was logged: the query itself or something in its answer.
struct Finding {
    verdict: Verdict,
    /// What matched when it was not the query name (CNAME target, address).
    via: Option<String>,
}

impl Handler {
    pub fn new(policy: Arc<ArcSwap<Policy>>, upstream: Upstream, audit: AuditHandle, config: HandlerConfig) -> Handler {
        Handler {
            policy,
            upstream,
            audit,
            stats: DnsStats::default(),
            metrics: Metrics::new(),
            limiter: None,
            correlator: None,
            repeats: Mutex::new(Aggregator::new(config.aggregate_window_ms)),
            next_due: AtomicI64::new(i64::MAX),
            workers_looked_at: AtomicI64::new(i64::MIN),
            workers_behind: AtomicBool::new(false),
            config,
        }
    }

    /// Report to `metrics` (default: a private registry nobody reads).
    pub fn with_metrics(mut self, metrics: Metrics) -> Handler {
        self.metrics = metrics;
        self
    }

    /// Gives DNS records correlation ids shared with the packet layer.
    pub fn with_correlator(mut self, correlator: Arc<Correlator>) -> Handler {
        self.correlator = Some(correlator);
        self
    }

    /// Bypass neutralisation: the Firefox DoH canary gets NXDOMAIN (the
    /// browser keeps using this resolver), DDR gets NODATA (no designated
    /// encrypted resolver is advertised). Both are logged.
    fn canary(&self, req: &Message, query: &Query, name: &str, client: IpAddr) -> Option<Message> {
        let rcode = match name {
            "use-application-dns.net" if self.config.canary_nxdomain => ResponseCode::NXDomain,
            "_dns.resolver.arpa" if self.config.ddr_nodata => ResponseCode::NoError,
            _ => return None,
        };
        self.stats.canaries.fetch_add(1, Ordering::Relaxed);
        tracing::info!(%client, name, qtype = %query.query_type(), %rcode, "DNS bypass canary answered locally");
        Some(answer::response_to(req, rcode))
    }

    /// Limit each client network's query rate (see [`RateLimiter`]).
    pub fn with_rate_limiter(mut self, limiter: Arc<RateLimiter>) -> Handler {
        self.limiter = Some(limiter);
        self
    }

    /// Whether `client` is within its rate limit; listeners call this before
    /// spending any work on the query.
    pub fn admit(&self, client: IpAddr) -> bool {
        self.admit_n(client, std::time::Instant::now(), 1) == 1
    }

    /// [`Self::admit`] for `n` queries from `client` received at `now` (a
    /// UDP worker reads the clock once per batch and admits each run of
    /// datagrams from one client at once): how many of them, the first
    /// that many, are within its rate limit.
    pub fn admit_n(&self, client: IpAddr, now: std::time::Instant, n: usize) -> usize {
        let admitted = self.limiter.as_ref().map_or(n, |l| l.allow_n(client, now, n));
        if admitted < n {
            self.metrics.queries(QueryResult::RateLimited, (n - admitted) as u64);
        }
        admitted
    }

    /// Answer one DNS message. `None` means send nothing (unparseable
    /// header, or a response sent to us).
    pub async fn handle(&self, bytes: &[u8], client: IpAddr, transport: Transport) -> Option<Vec<u8>> {
        self.handle_full(bytes, client, transport, false).await.map(|(bytes, _)| bytes)
    }

    /// The full path: any message hickory can parse. `recorded` says the
    /// fast path already wrote the query's audit record. Returns the
    /// encoded response and, for cacheable answers, what to cache.
    pub(super) async fn handle_full(
        &self,
        bytes: &[u8],
        client: IpAddr,
        transport: Transport,
        recorded: bool,
    ) -> Option<(Vec<u8>, Option<Fill>)> {
        self.stats.queries.fetch_add(1, Ordering::Relaxed);
        let req = match Message::from_vec(bytes) {
            Ok(req) => req,
            Err(_) => {
                self.stats.malformed.fetch_add(1, Ordering::Relaxed);
                self.metrics.query(QueryResult::Malformed);
                let is_query = bytes.len() >= 12 && bytes[2] & 0x80 == 0;
                return if is_query {
                    answer::raw_error(bytes, ResponseCode::FormErr).map(|b| (b, None))
                } else {
                    None
                };
            }
        };
        if req.metadata.message_type == MessageType::Response {
            return None;
        }
        let limit = (transport == Transport::Udp).then(|| answer::udp_limit(&req));
        let reply = self.respond(&req, client, recorded).await;
        self.metrics.query(reply.result);
        let encoded = answer::encode(&reply.msg, limit)?;
        let fill = self.cache_fill(&req, &encoded, &reply);
        Some((encoded, fill))
    }

    /// What the fast path may cache of `reply`, sent as `encoded`.
    pub(super) fn cache_fill(&self, req: &Message, encoded: &[u8], reply: &Reply) -> Option<Fill> {
        // A plain allow (nothing logged, not even with `log_allowed`): a
        // hit on it needs no verdict (see `cache`).
        let plain = reply.result == QueryResult::Allowed && !self.config.log_allowed;
        reply.cacheable.and_then(|until| fill_for(req, encoded, until, reply.policy, plain))
    }

    async fn respond(&self, req: &Message, client: IpAddr, recorded: bool) -> Reply {
        match self.local(req, client, recorded) {
            Ok(reply) => reply,
            Err(ask) => self.forward(req, client, ask).await,
        }
    }

    /// Everything of `respond` that needs no upstream: the reply when the
    /// query is answered here, else what `forward` needs.
    pub(super) fn local<'a>(&self, req: &'a Message, client: IpAddr, recorded: bool) -> Result<Reply, Ask<'a>> {
        if !self.client_allowed(client) {
            return Ok(Reply::local(answer::response_to(req, ResponseCode::Refused), QueryResult::Refused));
        }
        if req.metadata.op_code != OpCode::Query {
            return Ok(Reply::local(answer::response_to(req, ResponseCode::NotImp), QueryResult::Unsupported));
        }
        if req.edns.as_ref().is_some_and(|e| e.version() > 0) {
            return Ok(Reply::local(answer::response_to(req, ResponseCode::BADVERS), QueryResult::Unsupported));
        }
        let [query] = req.queries.as_slice() else {
            // One question or none (RFC 9619): the questions are not echoed,
            // so the error stays small however many were sent.
            let mut formerr = answer::response_to(req, ResponseCode::FormErr);
            formerr.queries.clear();
            return Ok(Reply::local(formerr, QueryResult::Unsupported));
        };
        if query.query_class() != DNSClass::IN {
            return Ok(Reply::local(answer::response_to(req, ResponseCode::NotImp), QueryResult::Unsupported));
        }
        if matches!(query.query_type(), RecordType::AXFR | RecordType::IXFR | RecordType::OPT) {
            return Ok(Reply::local(answer::response_to(req, ResponseCode::Refused), QueryResult::Unsupported));
        }
        let name = query.name().to_ascii();
        let normalized = crate::matcher::normalize(&name).ok();
        if let Some(answer) = normalized.as_ref().and_then(|n| self.canary(req, query, n.as_str(), client)) {
            return Ok(Reply::local(answer, QueryResult::Allowed));
        }
        let policy = self.policy.load_full();
        let now = now_ms();
        let verdict = match &normalized {
            Some(n) => policy.decide_normalized(n.as_bytes(), now),
            None => policy.decide(Subject::Name(&name), now),
        };
        let finding = Finding { verdict, via: None };
        if !recorded {
            self.record(&policy, &finding, client, query, now);
        }
        if verdict.action == Action::Block {
            return Ok(Reply::local(self.refuse(req, query, &policy, &finding), QueryResult::Blocked));
        }
        Err(Ask { query, policy, verdict, now })
    }

    pub(super) fn client_allowed(&self, client: IpAddr) -> bool {
        let allowed = self.config.allowed_clients.iter().any(|n| n.contains(&client));
        if !allowed {
            self.stats.refused_clients.fetch_add(1, Ordering::Relaxed);
        }
        allowed
    }

    async fn forward(&self, req: &Message, client: IpAddr, ask: Ask<'_>) -> Reply {
        let query = ask.query;
        let started = std::time::Instant::now();
        let upstream = match self.upstream.resolve(query.name(), query.query_type()).await {
            Ok(a) => a,
            Err(e) => {
                self.stats.upstream_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(name = %query.name(), error = %e, "upstream failed");
                let (msg, kind) = upstream_failure(req, &e);
                self.metrics.upstream_error(kind);
                return Reply::local(msg, QueryResult::UpstreamFailed);
            }
        };
        self.metrics.upstream_answer(started.elapsed());
        self.answered(req, client, &ask, upstream)
    }

    /// The reply built from the upstream's answer, after the answer check.
    pub(super) fn answered(&self, req: &Message, client: IpAddr, ask: &Ask<'_>, upstream: UpstreamAnswer) -> Reply {
        let Ask { query, ref policy, verdict, now } = *ask;
        let finding = check_answer(policy, &upstream.answers, now);
        if let Some(f) = &finding {
            self.record(policy, f, client, query, now);
            if f.verdict.action == Action::Block {
                return Reply::local(self.refuse(req, query, policy, f), QueryResult::Blocked);
            }
        }
        let until = [Some(verdict), finding.as_ref().map(|f| f.verdict)]
            .into_iter()
            .flatten()
            .filter_map(|v| v.valid_until)
            .min();
        let cap = until.map(|t| u32::try_from((t - now).max(0) / 1000).unwrap_or(u32::MAX));
        let mut msg = answer::response_to(req, upstream.rcode);
        msg.add_answers(upstream.answers.into_iter().map(|r| clamp(r, cap)));
        msg.add_authorities(upstream.authorities.into_iter().map(|r| clamp(r, cap)));
        let monitored =
            [Some(verdict), finding.as_ref().map(|f| f.verdict)].iter().flatten().any(|v| v.action == Action::Monitor);
        let result = if monitored { QueryResult::Monitored } else { QueryResult::Allowed };
        let cacheable = finding.is_none().then_some(until);
        Reply { msg, result, cacheable, policy: policy.generation() }
    }

    fn refuse(&self, req: &Message, query: &Query, policy: &Policy, finding: &Finding) -> Message {
        let text = policy.refusal_text(finding.verdict.matched.map(|(_, c)| c));
        let ede = policy.meta.blocked_ede.info_code();
        answer::blocked(req, query, self.config.block_response, self.config.blocked_ttl, ede, text)
    }

    /// Write the audit record for a finding, when its action is logged.
    fn record(&self, policy: &Arc<Policy>, finding: &Finding, client: IpAddr, query: &Query, now: i64) {
        if finding.verdict.action == Action::Allow && finding.via.is_some() {
            return;
        }
        let name = crate::matcher::normalize(&query.name().to_ascii()).ok();
        let (verdict, via) = (&finding.verdict, finding.via.as_deref());
        let sighting =
            Sighting { client, name: name.as_ref().map(|n| n.as_str()), qtype: query.query_type(), verdict, via, now };
        let mut tally = Tally::default();
        self.log_contact(policy, sighting, &mut tally);
        tally.add_to(&self.stats, &self.metrics, policy);
    }

    /// Count a DNS contact and write its audit record when its action is
    /// logged (block, monitor; allow only with `log_allowed`): at once for
    /// the first sighting, as part of a `count` record for repeats (see
    /// `aggregate`). Shared by the fast and the full path; allocates only
    /// for a first sighting; counts into `tally` (categories of `policy`).
    /// `true` when the contact was logged (false: the action is not logged).
    pub(super) fn log_contact(&self, policy: &Arc<Policy>, s: Sighting<'_>, tally: &mut Tally) -> bool {
        let verdict = s.verdict;
        if verdict.action == Action::Allow && !self.config.log_allowed {
            return false;
        }
        tally.contact(verdict.action, verdict.matched.map(|(_, c)| c));
        let make = || self.contact(policy, s);
        let mut closed = Vec::new();
        let first = self.with_repeats(|agg| agg.sight(policy, s, &mut closed, make));
        self.write_repeats(closed);
        if let Some(contact) = first {
            // Written or counted as lost by the audit handle: either way done.
            self.audit.submit_contact(contact);
        }
        true
    }

    /// The audit event of a first sighting.
    fn contact(&self, policy: &Arc<Policy>, s: Sighting<'_>) -> Contact {
        let mut contact = Contact::new(Arc::clone(policy), *s.verdict, s.now, s.client, Layer::Dns);
        if let Some(name) = s.name {
            contact = contact.with_name(name);
        }
        contact.qtype = Some(<&'static str>::from(s.qtype));
        contact.message = s.via.map(Box::from);
        if let Some(c) = &self.correlator {
            contact.correlation = Some(c.id(contact.client, contact.name.as_deref(), None, s.now).into());
        }
        contact
    }

    /// Closes up to [`CLOSE_PER_BATCH`] repeat windows due by `now` and
    /// writes their records. A UDP worker calls it after each batch, once
    /// the answers have left (and on its idle wake-ups), so while it serves,
    /// the windows close on the thread that counts them: no other thread
    /// holds the aggregator's lock while a query waits for it. (A timer
    /// thread that holds it can be preempted there by the audit writer, and
    /// after a burst, when tens of thousands of windows close, the worker
    /// then waited milliseconds for the lock.)
    pub fn close_after_batch(&self, now: i64) {
        let behind = now >= self.next_due.load(Ordering::Relaxed) && {
            let mut closed = Vec::new();
            let behind = self.with_repeats(|agg| agg.close_due(now, CLOSE_PER_BATCH, &mut closed));
            self.write_repeats(closed);
            behind
        };
        if behind != self.workers_behind.load(Ordering::Relaxed) {
            self.workers_behind.store(behind, Ordering::Relaxed);
        }
        if now.saturating_sub(self.workers_looked_at.load(Ordering::Relaxed)) >= WORKER_MARK_MS {
            self.workers_looked_at.store(now, Ordering::Relaxed);
        }
    }

    /// Writes the repeat records of the windows closed by `now`. Called on a
    /// timer, so a server without UDP workers, or one whose workers have
    /// fallen behind (see [`Handler::close_after_batch`]), still writes them
    /// on time; otherwise the workers do. Takes the aggregator's lock for
    /// [`CLOSE_SLICE`] windows at a time and lets other threads run in
    /// between: after a burst, a second's worth of windows closes at once,
    /// and a query must not wait behind all of them.
    pub fn close_repeats(&self, now: i64) {
        let since_workers_looked = now.saturating_sub(self.workers_looked_at.load(Ordering::Relaxed));
        if since_workers_looked < WORKERS_CLOSE_FOR_MS && !self.workers_behind.load(Ordering::Relaxed) {
            return;
        }
        loop {
            let mut closed = Vec::new();
            let more = self.with_repeats(|agg| agg.close_due(now, CLOSE_SLICE, &mut closed));
            self.write_repeats(closed);
            if !more {
                return;
            }
            std::thread::yield_now();
        }
    }

    fn repeats(&self) -> MutexGuard<'_, Aggregator> {
        self.repeats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the aggregator under its lock and notes when its next
    /// window closes.
    fn with_repeats<R>(&self, f: impl FnOnce(&mut Aggregator) -> R) -> R {
        let mut agg = self.repeats();
        let result = f(&mut agg);
        self.next_due.store(agg.next_due(), Ordering::Relaxed);
        result
    }

    fn write_repeats(&self, closed: Vec<Repeats>) {
        for mut r in closed {
            if let Some(c) = &self.correlator {
                r.correlation = Some(c.id(r.contact.client, r.contact.name.as_deref(), None, r.first_ms).into());
            }
            self.audit.submit_repeats(r);
        }
    }
}

impl Drop for Handler {
    /// The counted repeats still open are written before the audit handle goes.
    fn drop(&mut self) {
        let mut closed = Vec::new();
        self.repeats().close_all(&mut closed);
        self.write_repeats(closed);
    }
}

/// The strictest verdict for anything the answer points at: CNAME targets
/// (cloaking) and addresses inside blocked networks.
fn check_answer(policy: &Policy, answers: &[Record], now: i64) -> Option<Finding> {
    let mut worst: Option<Finding> = None;
    for record in answers {
        let (verdict, via) = match &record.data {
            RData::CNAME(target) => {
                let t = target.0.to_ascii();
                (policy.decide(Subject::Name(&t), now), format!("answer: CNAME {}", t.trim_end_matches('.')))
            }
            RData::A(a) => (policy.decide(Subject::Ip(IpAddr::V4(a.0)), now), format!("answer: A {}", a.0)),
            RData::AAAA(a) => (policy.decide(Subject::Ip(IpAddr::V6(a.0)), now), format!("answer: AAAA {}", a.0)),
            _ => continue,
        };
        if verdict.action != Action::Allow && worst.as_ref().is_none_or(|w| verdict.action > w.verdict.action) {
            worst = Some(Finding { verdict, via: Some(via) });
        }
    }
    worst
}

/// What the fast path caches for an encoded upstream answer, checked under
/// the policy of generation `policy`; `plain`: its verdict was an allow
/// with nothing to log.
pub(super) fn fill_for(
    req: &Message,
    encoded: &[u8],
    valid_until: Option<i64>,
    policy: u64,
    plain: bool,
) -> Option<Fill> {
    let query = req.queries.first()?;
    let tc = encoded.get(2).is_some_and(|b| b & 0x02 != 0);
    let rcode = encoded.get(3).map(|b| b & 0x0f);
    if tc || !matches!(rcode, Some(0) | Some(3)) {
        return None;
    }
    let name = crate::matcher::normalize(&query.name().to_ascii()).ok()?;
    let flags = edns_flags(req.edns.as_ref().map(|e| e.flags().dnssec_ok));
    let question_end = wire::question_end(encoded)?;
    let ttl_offsets = wire::ttl_offsets(encoded, question_end)?;
    let key = CacheKey::new(name.as_bytes(), u16::from(query.query_type()), flags);
    let created = std::time::Instant::now();
    Some(Fill { key, response: encoded.to_vec(), question_end, ttl_offsets, valid_until, policy, plain, created })
}

fn clamp(mut record: Record, cap: Option<u32>) -> Record {
    if let Some(cap) = cap {
        record.ttl = record.ttl.min(cap);
    }
    record
}

/// The SERVFAIL for an upstream failure, and the failure's metric kind.
pub(super) fn upstream_failure(req: &Message, error: &UpstreamError) -> (Message, &'static str) {
    let (rcode, ede, text, kind) = match error {
        UpstreamError::Timeout(_) => (ResponseCode::ServFail, 22, "upstream timeout", "timeout"),
        UpstreamError::Rcode(ResponseCode::Refused) => (ResponseCode::ServFail, 23, "upstream refused", "refused"),
        UpstreamError::Rcode(_) => (ResponseCode::ServFail, 23, "upstream error", "servfail"),
        _ => (ResponseCode::ServFail, 23, "upstream unreachable", "unreachable"),
    };
    let mut msg = answer::response_to(req, rcode);
    answer::add_ede(&mut msg, ede, text);
    (msg, kind)
}
