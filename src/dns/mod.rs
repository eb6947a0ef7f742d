//! The DNS filtering proxy.
//!
//! Owns the listeners (`server`: UDP and TCP on every configured address),
//! the per-query logic (`handler`: access control, `Policy::decide`, upstream
//! forwarding, the answer check against CNAME cloaking and vendor IPs, audit
//! records), answer synthesis (`answer`) and the upstream client (`upstream`,
//! hickory-resolver with its TTL-respecting cache). It never matches names
//! itself: every decision comes from [`crate::policy::Policy::decide`].

mod aggregate;
mod answer;
mod cache;
mod counting;
mod fast;
mod fuzz;
mod handler;
#[doc(hidden)]
pub mod harness;
pub mod ratelimit;
mod server;
mod tally;
mod udp;
mod upstream;
mod wire;

use std::net::SocketAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

pub use answer::BlockMode;
/// Fuzzing entry point, not an API: see [`crate::fuzzing`].
#[doc(hidden)]
pub use fuzz::request as fuzz_request;
pub use handler::{DnsStats, Handler, HandlerConfig, Transport};
pub use server::{Limits, Listeners, ServerError, StdListeners, bind_udp, serve};
pub use upstream::{Upstream, UpstreamError};

/// Entries of the worker's tables of 128-byte slots (the answer cache by
/// default, the repeat counter at most): 7/8 of 2^16, what a table of 2^16
/// slots holds before it would double, so each stays within 8 MiB.
pub(crate) const SLOT_TABLE_ENTRIES: usize = (1 << 16) / 8 * 7;

/// Client networks answered by default: loopback, private (RFC 1918),
/// shared address space (RFC 6598), link-local and unique-local IPv6.
pub const DEFAULT_ALLOWED_CLIENTS: &[&str] = &[
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
];

/// Settings of the DNS layer (the `[dns]` table of the config file).
/// Unknown keys are reported by `config` (all of them, with lines).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DnsConfig {
    /// Addresses to serve on (UDP and TCP each).
    pub listen: Vec<SocketAddr>,
    /// Upstream resolvers; empty means the system's resolv.conf.
    pub upstreams: Vec<SocketAddr>,
    /// How blocked names are answered.
    pub block_response: BlockMode,
    /// Clients that get answers; everyone else gets REFUSED.
    pub allowed_clients: Vec<IpNet>,
    /// TTL of blocked answers and their SOA, in seconds.
    pub blocked_ttl: u32,
    /// Give up on the upstream after this long and answer SERVFAIL.
    #[serde(with = "millis")]
    pub upstream_timeout: Duration,
    /// Entries of the upstream answer cache.
    pub cache_size: u64,
    /// Write audit records for allowed queries too (privacy, volume: off).
    pub log_allowed: bool,
    /// Most UDP queries in the full path at once (cache misses, upstream
    /// lookups); beyond it queries are dropped.
    pub max_inflight: usize,
    /// Fast-path threads per UDP listen address.
    pub udp_workers: usize,
    /// Entries of each UDP worker's answer cache.
    pub answer_cache_entries: usize,
    /// Most TCP connections at once.
    pub max_tcp_connections: usize,
    /// An idle TCP connection is closed after this long.
    #[serde(with = "millis")]
    pub tcp_idle_timeout: Duration,
    /// Answer the Firefox DoH canary `use-application-dns.net` with NXDOMAIN.
    pub canary_nxdomain: bool,
    /// Answer `_dns.resolver.arpa` (Discovery of Designated Resolvers) with NODATA.
    pub ddr_nodata: bool,
    /// Repeats of a DNS contact (same client, name, qtype and verdict) within
    /// this many milliseconds after its first sighting are counted into one
    /// audit record with `count` (0: one record per query).
    pub aggregate_window_ms: u64,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 8053))],
            upstreams: Vec::new(),
            block_response: BlockMode::Nxdomain,
            allowed_clients: DEFAULT_ALLOWED_CLIENTS.iter().filter_map(|n| n.parse().ok()).collect(),
            blocked_ttl: 60,
            upstream_timeout: Duration::from_millis(2000),
            cache_size: 16_384,
            log_allowed: false,
            max_inflight: 4096,
            udp_workers: 1,
            answer_cache_entries: SLOT_TABLE_ENTRIES,
            max_tcp_connections: 256,
            tcp_idle_timeout: Duration::from_secs(10),
            canary_nxdomain: true,
            ddr_nodata: true,
            aggregate_window_ms: 1_000,
        }
    }
}

/// Durations in the config file are written in milliseconds.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}
