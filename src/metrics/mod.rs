//! Prometheus metrics (prometheus-client) and the small HTTP endpoint that
//! serves them with `/healthz` and `/readyz`.
//!
//! Owns the registry and every metric family. Layers report through the
//! cheap, cloneable [`Metrics`] handle (counters only; nothing here blocks or
//! allocates per query beyond a label lookup); values owned elsewhere (audit
//! counters, the policy in force, the rate limiter) are read at scrape time
//! by [`collect::Sources`]. It never decides anything and never does I/O
//! besides the HTTP endpoint in [`http`].
//!
//! Names follow Prometheus conventions: `warden_` prefix, `_total` for
//! counters, seconds for durations. docs/deployment.md lists them.

mod collect;
pub mod http;

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

pub use collect::Sources;

use crate::policy::Action;

/// What became of one DNS query (the `result` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryResult {
    /// Forwarded and answered, no rule matched (or an allow rule).
    Allowed,
    /// Forwarded and answered, logged by a monitor rule.
    Monitored,
    /// Refused by the policy (query name or its answer).
    Blocked,
    /// Client not in `allowed_clients`.
    Refused,
    /// Over the client's rate limit (dropped).
    RateLimited,
    /// Unparseable message.
    Malformed,
    /// The upstream failed (SERVFAIL sent).
    UpstreamFailed,
    /// Not a plain query we serve (opcode, class, zone transfer, …).
    Unsupported,
}

impl QueryResult {
    pub const ALL: [QueryResult; 8] = [
        QueryResult::Allowed,
        QueryResult::Monitored,
        QueryResult::Blocked,
        QueryResult::Refused,
        QueryResult::RateLimited,
        QueryResult::Malformed,
        QueryResult::UpstreamFailed,
        QueryResult::Unsupported,
    ];

    /// Position in [`QueryResult::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            QueryResult::Allowed => "allowed",
            QueryResult::Monitored => "monitored",
            QueryResult::Blocked => "blocked",
            QueryResult::Refused => "refused",
            QueryResult::RateLimited => "rate_limited",
            QueryResult::Malformed => "malformed",
            QueryResult::UpstreamFailed => "upstream_failed",
            QueryResult::Unsupported => "unsupported",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ContactLabels {
    layer: String,
    category: String,
    action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SetLabel {
    set: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    trigger: &'static str,
    result: &'static str,
}

/// Packet layers known now, registered with zero values.
const PACKET_LAYERS: [&str; 4] = ["dns", "sni", "http", "ip"];

#[derive(Debug)]
struct Inner {
    registry: Mutex<Registry>,
    queries: Family<ResultLabel, Counter>,
    /// The counters of `queries`, one per result, so counting takes no lock.
    query_counters: Vec<Counter>,
    answer_cache_hits: Counter,
    answer_cache_misses: Counter,
    contacts: Family<ContactLabels, Counter>,
    /// The counters of `contacts` seen so far, so counting a contact takes
    /// a shared read lock and a short scan, not a label allocation.
    contact_counters: RwLock<Vec<ContactCounter>>,
    upstream_latency: Histogram,
    upstream_errors: Family<KindLabel, Counter>,
    upstream_answers: Counter,
    packets_parsed: Family<KindLabel, Counter>,
    packets_dropped: Family<KindLabel, Counter>,
    nft_set_elements: Family<SetLabel, Gauge>,
    nft_apply_errors: Counter,
    reloads: Family<ReloadLabels, Counter>,
    ready: AtomicBool,
}

/// A counter of `contacts` with its labels: layer, category, action.
type ContactCounter = (&'static str, Box<str>, Action, Counter);

/// The handle every layer reports through. Clones share the registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every warden metric registered (zero values).
    pub fn new() -> Metrics {
        let inner = Inner {
            registry: Mutex::new(Registry::with_prefix("warden")),
            queries: Family::default(),
            query_counters: Vec::new(),
            answer_cache_hits: Counter::default(),
            answer_cache_misses: Counter::default(),
            contacts: Family::default(),
            contact_counters: RwLock::default(),
            upstream_latency: Histogram::new(exponential_buckets(0.000_25, 2.0, 15)),
            upstream_errors: Family::default(),
            upstream_answers: Counter::default(),
            packets_parsed: Family::default(),
            packets_dropped: Family::default(),
            nft_set_elements: Family::default(),
            nft_apply_errors: Counter::default(),
            reloads: Family::default(),
            ready: AtomicBool::new(false),
        };
        let mut inner = inner;
        inner.query_counters = QueryResult::ALL
            .iter()
            .map(|q| inner.queries.get_or_create(&ResultLabel { result: q.as_str() }).clone())
            .collect();
        let metrics = Metrics { inner: Arc::new(inner) };
        metrics.register();
        metrics
    }

    fn register(&self) {
        let i = &self.inner;
        let mut r = self.registry();
        r.register("dns_queries", "DNS queries by what became of them", i.queries.clone());
        r.register(
            "dns_answer_cache_hits",
            "Queries answered from the UDP fast path's answer cache",
            i.answer_cache_hits.clone(),
        );
        r.register(
            "dns_answer_cache_misses",
            "Allowed UDP queries the answer cache could not serve (sent to the upstream path)",
            i.answer_cache_misses.clone(),
        );
        r.register(
            "contacts",
            "Policy matches (blocked or monitored contacts) by layer and category",
            i.contacts.clone(),
        );
        r.register(
            "upstream_latency_seconds",
            "Time to an upstream answer (hickory cache or network)",
            i.upstream_latency.clone(),
        );
        r.register("upstream_errors", "Upstream failures by kind", i.upstream_errors.clone());
        r.register(
            "upstream_answers",
            "Upstream lookups answered (from hickory's cache or the network)",
            i.upstream_answers.clone(),
        );
        r.register("packets_parsed", "Packets parsed by the packet layer, by layer", i.packets_parsed.clone());
        r.register(
            "packets_dropped",
            "Packets the packet layer could not process, by reason",
            i.packets_dropped.clone(),
        );
        r.register("nft_set_elements", "Elements in each nftables set warden manages", i.nft_set_elements.clone());
        r.register("nft_apply_errors", "Failed nftables batches", i.nft_apply_errors.clone());
        r.register("policy_reloads", "Policy reloads by trigger and result", i.reloads.clone());
        for q in QueryResult::ALL {
            drop(i.queries.get_or_create(&ResultLabel { result: q.as_str() }));
        }
        for layer in PACKET_LAYERS {
            drop(i.packets_parsed.get_or_create(&KindLabel { kind: layer.to_owned() }));
        }
        for kind in ["timeout", "refused", "servfail", "unreachable"] {
            drop(i.upstream_errors.get_or_create(&KindLabel { kind: kind.to_owned() }));
        }
        for trigger in ["signal", "file"] {
            for result in ["ok", "failed"] {
                drop(i.reloads.get_or_create(&ReloadLabels { trigger, result }));
            }
        }
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.inner.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Attach the values read at scrape time (audit, policy, limiter, …).
    pub fn attach(&self, sources: Sources) {
        let attached = collect::Attached { sources, upstream_answers: self.inner.upstream_answers.clone() };
        self.registry().register_collector(Box::new(attached));
    }

    /// The text exposition (OpenMetrics text format).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry()) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        out
    }

    pub fn query(&self, result: QueryResult) {
        self.queries(result, 1);
    }

    /// `n` queries with `result` (a UDP worker adds a batch's at once).
    pub fn queries(&self, result: QueryResult, n: u64) {
        match self.inner.query_counters.get(result.index()) {
            Some(c) => drop(c.inc_by(n)),
            None => drop(self.inner.queries.get_or_create(&ResultLabel { result: result.as_str() }).inc_by(n)),
        }
    }

    /// The fast path's answer cache served `hits` queries and missed `misses`.
    pub fn answer_cache_counts(&self, hits: u64, misses: u64) {
        if hits > 0 {
            self.inner.answer_cache_hits.inc_by(hits);
        }
        if misses > 0 {
            self.inner.answer_cache_misses.inc_by(misses);
        }
    }

    /// `n` blocked or monitored contacts seen by `layer` (`dns`, `sni`, …).
    pub fn contacts(&self, layer: &'static str, category: &str, action: Action, n: u64) {
        let find = |list: &[ContactCounter]| {
            list.iter().position(|(l, c, a, _)| *l == layer && **c == *category && *a == action)
        };
        let list = self.inner.contact_counters.read().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = find(&list) {
            list[i].3.inc_by(n);
            return;
        }
        drop(list);
        let mut list = self.inner.contact_counters.write().unwrap_or_else(|e| e.into_inner());
        if find(&list).is_none() {
            let labels =
                ContactLabels { layer: layer.to_owned(), category: category.to_owned(), action: action.as_str() };
            let counter = self.inner.contacts.get_or_create(&labels).clone();
            list.push((layer, category.into(), action, counter));
        }
        if let Some(i) = find(&list) {
            list[i].3.inc_by(n);
        }
    }

    /// An upstream lookup that produced an answer, and how long it took.
    pub fn upstream_answer(&self, took: Duration) {
        self.inner.upstream_answers.inc();
        self.inner.upstream_latency.observe(took.as_secs_f64());
    }

    /// An upstream failure: `timeout`, `refused`, `servfail`, `unreachable`.
    pub fn upstream_error(&self, kind: &str) {
        self.inner.upstream_errors.get_or_create(&KindLabel { kind: kind.to_owned() }).inc();
    }

    /// For the packet layer: one packet parsed at `layer` (`sni`, `http`, `dns`, `ip`).
    pub fn packet_parsed(&self, layer: &str) {
        self.inner.packets_parsed.get_or_create(&KindLabel { kind: layer.to_owned() }).inc();
    }

    /// For the packet layer: one packet dropped unprocessed, and why.
    pub fn packet_dropped(&self, reason: &str) {
        self.inner.packets_dropped.get_or_create(&KindLabel { kind: reason.to_owned() }).inc();
    }

    /// For the enforcement layer: the element count of an nftables set.
    pub fn nft_set_size(&self, set: &str, elements: i64) {
        self.inner.nft_set_elements.get_or_create(&SetLabel { set: set.to_owned() }).set(elements);
    }

    /// For the enforcement layer: one nftables batch failed.
    pub fn nft_apply_error(&self) {
        self.inner.nft_apply_errors.inc();
    }

    /// A policy reload: `trigger` is `signal` or `file`.
    pub fn reload(&self, trigger: &'static str, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.inner.reloads.get_or_create(&ReloadLabels { trigger, result }).inc();
    }

    /// Whether `/readyz` says ready: set once serving, cleared at shutdown.
    pub fn set_ready(&self, ready: bool) {
        self.inner.ready.store(ready, Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_exposed_with_zero_values() {
        let m = Metrics::new();
        m.query(QueryResult::Blocked);
        m.contacts("dns", "update", Action::Block, 1);
        let text = m.encode();
        for want in [
            "warden_dns_queries_total{result=\"blocked\"} 1",
            "warden_dns_queries_total{result=\"allowed\"} 0",
            "warden_contacts_total{layer=\"dns\",category=\"update\",action=\"block\"} 1",
            "warden_packets_parsed_total{kind=\"sni\"} 0",
            "warden_nft_apply_errors_total 0",
            "warden_upstream_latency_seconds_count 0",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }

    #[test]
    fn each_result_indexes_its_own_counter() {
        for (i, result) in QueryResult::ALL.iter().enumerate() {
            assert_eq!(result.index(), i, "{result:?}");
        }
    }
}
