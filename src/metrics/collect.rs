//! Values owned by other modules, read at scrape time: audit counters, the
//! policy in force (id, hash, phase — the phase changes with the clock, not
//! only on reload), the rate limiter and the upstream's network queries.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use arc_swap::ArcSwap;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::gauge::ConstGauge;

use crate::audit::AuditStats;
use crate::dns::ratelimit::RateLimiter;
use crate::policy::Policy;
use crate::time::now_ms;

/// Where the scrape-time values come from; leave out what does not exist.
#[derive(Debug, Default)]
pub struct Sources {
    pub audit: Option<Arc<AuditStats>>,
    pub policy: Option<Arc<ArcSwap<Policy>>>,
    pub limiter: Option<Arc<RateLimiter>>,
    /// Queries hickory sent over the network (UDP sockets + TCP connects).
    pub upstream_network: Option<Arc<AtomicU64>>,
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(v);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(v);
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

impl Sources {
    fn encode_audit(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(a) = &self.audit else { return Ok(()) };
        counter(e, "audit_records_written", "Audit records written to the log", a.written.load(Relaxed))?;
        counter(e, "audit_records_dropped", "Audit records lost (channel full, writer gone)", a.dropped.load(Relaxed))?;
        counter(
            e,
            "audit_write_errors",
            "Failed writes, flushes or syncs of the audit log",
            a.write_errors.load(Relaxed),
        )
    }

    fn encode_policy(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(p) = &self.policy else { return Ok(()) };
        let p = p.load();
        let phase = p.phase(p.phase_at(now_ms()));
        let labels = [
            ("id", p.meta.id.clone()),
            ("hash", p.meta.hash.clone()),
            ("phase", phase.name.clone()),
            ("prohibition", phase.prohibition.to_string()),
        ];
        let g = ConstGauge::new(1i64);
        let mut family =
            e.encode_descriptor("policy_info", "The policy in force and its current phase", None, g.metric_type())?;
        g.encode(family.encode_family(&labels)?)?;
        gauge(e, "policy_rules", "Rules in the policy in force", i64::try_from(p.rule_total()).unwrap_or(i64::MAX))
    }

    fn encode_limits(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (limited, tracked) = self.limiter.as_ref().map_or((0, 0), |l| (l.limited(), l.tracked()));
        counter(e, "dns_rate_limited", "Queries dropped by the per-client rate limit", limited)?;
        gauge(
            e,
            "dns_rate_limit_clients",
            "Client networks tracked by the rate limiter",
            i64::try_from(tracked).unwrap_or(i64::MAX),
        )
    }

    fn encode_cache(&self, e: &mut DescriptorEncoder, answers: u64) -> Result<(), std::fmt::Error> {
        let Some(network) = &self.upstream_network else { return Ok(()) };
        let sent = network.load(Relaxed);
        counter(
            e,
            "upstream_network_queries",
            "Queries hickory sent to the upstream (UDP sockets + TCP connections)",
            sent,
        )?;
        let ratio = if answers == 0 { 0.0 } else { (1.0 - sent as f64 / answers as f64).clamp(0.0, 1.0) };
        let g = ConstGauge::new(ratio);
        let help = "1 - network queries / answered lookups since start: the share served from hickory's cache (retries lower it)";
        g.encode(e.encode_descriptor("upstream_cache_hit_ratio", help, None, g.metric_type())?)
    }
}

/// [`Sources`] with the counter of answered upstream lookups.
#[derive(Debug)]
pub(super) struct Attached {
    pub(super) sources: Sources,
    pub(super) upstream_answers: Counter,
}

impl Collector for Attached {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.sources.encode_audit(&mut e)?;
        self.sources.encode_policy(&mut e)?;
        self.sources.encode_limits(&mut e)?;
        self.sources.encode_cache(&mut e, self.upstream_answers.get())
    }
}
