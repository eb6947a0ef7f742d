//! One query, start to end: parse, access control, `decide`, refuse or
//! forward, check the upstream's answer, write audit records, encode.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, RData, Record, RecordType};
use ipnet::IpNet;

use super::answer::{self, BlockMode};
use super::upstream::{Upstream, UpstreamError};
use crate::audit::{AuditHandle, Layer};
use crate::packet::Correlator;
use crate::policy::{Action, Policy, Subject, Verdict};
use crate::time::now_ms;

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
}

/// Counters of what the DNS layer did.
#[derive(Debug, Default)]
pub struct DnsStats {
    pub queries: AtomicU64,
    pub blocked: AtomicU64,
    pub monitored: AtomicU64,
    pub refused_clients: AtomicU64,
    pub malformed: AtomicU64,
    /// Bypass canaries answered (`use-application-dns.net`, `_dns.resolver.arpa`).
    pub canaries: AtomicU64,
    pub upstream_errors: AtomicU64,
}

pub struct Handler {
    policy: Arc<ArcSwap<Policy>>,
    upstream: Upstream,
    audit: AuditHandle,
    config: HandlerConfig,
    pub stats: DnsStats,
    /// Links DNS records with the packet layer's (set when it runs).
    correlator: Option<Arc<Correlator>>,
}

/// Why a contact was logged: the query itself or something in its answer.
struct Finding {
    verdict: Verdict,
    /// What matched when it was not the query name (CNAME target, address).
    via: Option<String>,
}

impl Handler {
    pub fn new(policy: Arc<ArcSwap<Policy>>, upstream: Upstream, audit: AuditHandle, config: HandlerConfig) -> Handler {
        Handler { policy, upstream, audit, config, stats: DnsStats::default(), correlator: None }
    }

    /// Gives DNS records correlation ids shared with the packet layer.
    pub fn with_correlator(mut self, correlator: Arc<Correlator>) -> Handler {
        self.correlator = Some(correlator);
        self
    }

    /// Bypass neutralisation: the Firefox DoH canary gets NXDOMAIN (the
    /// browser keeps using this resolver), DDR gets NODATA (no designated
    /// encrypted resolver is advertised). Both are logged.
    fn canary(&self, req: &Message, query: &Query, client: IpAddr) -> Option<Message> {
        let name = query.name().to_ascii().trim_end_matches('.').to_ascii_lowercase();
        let rcode = match name.as_str() {
            "use-application-dns.net" if self.config.canary_nxdomain => ResponseCode::NXDomain,
            "_dns.resolver.arpa" if self.config.ddr_nodata => ResponseCode::NoError,
            _ => return None,
        };
        self.stats.canaries.fetch_add(1, Ordering::Relaxed);
        tracing::info!(%client, name, qtype = %query.query_type(), %rcode, "DNS bypass canary answered locally");
        Some(answer::response_to(req, rcode))
    }

    /// Answer one DNS message. `None` means send nothing (unparseable
    /// header, or a response sent to us).
    pub async fn handle(&self, bytes: &[u8], client: IpAddr, transport: Transport) -> Option<Vec<u8>> {
        self.stats.queries.fetch_add(1, Ordering::Relaxed);
        let req = match Message::from_vec(bytes) {
            Ok(req) => req,
            Err(_) => {
                self.stats.malformed.fetch_add(1, Ordering::Relaxed);
                let is_query = bytes.len() >= 12 && bytes[2] & 0x80 == 0;
                return if is_query { answer::raw_error(bytes, ResponseCode::FormErr) } else { None };
            }
        };
        if req.metadata.message_type == MessageType::Response {
            return None;
        }
        let limit = (transport == Transport::Udp).then(|| answer::udp_limit(&req));
        let response = self.respond(&req, client).await;
        answer::encode(&response, limit)
    }

    async fn respond(&self, req: &Message, client: IpAddr) -> Message {
        if !self.config.allowed_clients.iter().any(|n| n.contains(&client)) {
            self.stats.refused_clients.fetch_add(1, Ordering::Relaxed);
            return answer::response_to(req, ResponseCode::Refused);
        }
        if req.metadata.op_code != OpCode::Query {
            return answer::response_to(req, ResponseCode::NotImp);
        }
        if req.edns.as_ref().is_some_and(|e| e.version() > 0) {
            return answer::response_to(req, ResponseCode::BADVERS);
        }
        let [query] = req.queries.as_slice() else {
            return answer::response_to(req, ResponseCode::FormErr);
        };
        if query.query_class() != DNSClass::IN {
            return answer::response_to(req, ResponseCode::NotImp);
        }
        if matches!(query.query_type(), RecordType::AXFR | RecordType::IXFR | RecordType::OPT) {
            return answer::response_to(req, ResponseCode::Refused);
        }
        if let Some(answer) = self.canary(req, query, client) {
            return answer;
        }
        let policy = self.policy.load_full();
        let now = now_ms();
        let name = query.name().to_ascii();
        let verdict = policy.decide(Subject::Name(&name), now);
        let finding = Finding { verdict, via: None };
        self.record(&policy, &finding, client, query, now);
        if verdict.action == Action::Block {
            return self.refuse(req, query, &policy, &finding);
        }
        self.forward(req, query, client, &policy, verdict, now).await
    }

    async fn forward(
        &self,
        req: &Message,
        query: &Query,
        client: IpAddr,
        policy: &Policy,
        verdict: Verdict,
        now: i64,
    ) -> Message {
        let upstream = match self.upstream.resolve(query.name(), query.query_type()).await {
            Ok(a) => a,
            Err(e) => {
                self.stats.upstream_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(name = %query.name(), error = %e, "upstream failed");
                return upstream_failure(req, &e);
            }
        };
        let finding = check_answer(policy, &upstream.answers, now);
        if let Some(f) = &finding {
            self.record(policy, f, client, query, now);
            if f.verdict.action == Action::Block {
                return self.refuse(req, query, policy, f);
            }
        }
        let until =
            [Some(verdict), finding.map(|f| f.verdict)].into_iter().flatten().filter_map(|v| v.valid_until).min();
        let cap = until.map(|t| u32::try_from((t - now).max(0) / 1000).unwrap_or(u32::MAX));
        let mut msg = answer::response_to(req, upstream.rcode);
        msg.add_answers(upstream.answers.into_iter().map(|r| clamp(r, cap)));
        msg.add_authorities(upstream.authorities.into_iter().map(|r| clamp(r, cap)));
        msg
    }

    fn refuse(&self, req: &Message, query: &Query, policy: &Policy, finding: &Finding) -> Message {
        let category = finding.verdict.matched.map_or("", |(_, c)| policy.category(c).name.as_str());
        let text = format!("blocked by policy {} ({category})", policy.meta.id);
        let ede = policy.meta.blocked_ede.info_code();
        answer::blocked(req, query, self.config.block_response, self.config.blocked_ttl, ede, &text)
    }

    /// Write the audit record for a finding, when its action is logged.
    fn record(&self, policy: &Policy, finding: &Finding, client: IpAddr, query: &Query, now: i64) {
        let action = finding.verdict.action;
        match action {
            Action::Block => self.stats.blocked.fetch_add(1, Ordering::Relaxed),
            Action::Monitor => self.stats.monitored.fetch_add(1, Ordering::Relaxed),
            Action::Allow if self.config.log_allowed && finding.via.is_none() => 0,
            Action::Allow => return,
        };
        let name = crate::matcher::normalize(&query.name().to_ascii()).map(|n| n.as_str().to_owned()).ok();
        let mut record = crate::audit::contact_record(policy, &finding.verdict, now, client, Layer::Dns, name);
        record.qtype = Some(query.query_type().to_string());
        record.message = finding.via.clone();
        if let Some(c) = &self.correlator {
            record.correlation = Some(c.id(client, record.name.as_deref(), None, now));
        }
        self.audit.submit(record);
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

fn clamp(mut record: Record, cap: Option<u32>) -> Record {
    if let Some(cap) = cap {
        record.ttl = record.ttl.min(cap);
    }
    record
}

fn upstream_failure(req: &Message, error: &UpstreamError) -> Message {
    let (rcode, ede, text) = match error {
        UpstreamError::Timeout(_) => (ResponseCode::ServFail, 22, "upstream timeout"),
        UpstreamError::Rcode(ResponseCode::Refused) => (ResponseCode::ServFail, 23, "upstream refused"),
        UpstreamError::Rcode(_) => (ResponseCode::ServFail, 23, "upstream error"),
        _ => (ResponseCode::ServFail, 23, "upstream unreachable"),
    };
    let mut msg = answer::response_to(req, rcode);
    answer::add_ede(&mut msg, ede, text);
    msg
}
