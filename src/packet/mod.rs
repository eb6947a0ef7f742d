//! The packet layer: sees the traffic that goes around warden's DNS.
//!
//! Owns capture (`capture`: pnet datalink channels, one blocking thread per
//! interface), the parsers (`wire` for Ethernet/802.1Q/IPv4/IPv6/TCP/UDP,
//! `tls` for the ClientHello SNI, `http` for Host and update paths, `dns`
//! for queries to other resolvers), bounded per-flow reassembly (`flow`),
//! the per-frame inspection that asks the policy (`inspect`), and the async
//! side (`sink`) that turns events into enforcement requests and audit
//! records, linked (`correlate`) and de-duplicated (`aggregate`).
//!
//! It never matches names or addresses itself: every decision comes from
//! [`crate::policy::Policy::decide`]. It never touches nftables: it asks
//! [`crate::enforce`] to act. Every parser is total: malformed frames are
//! counted and skipped.

pub mod aggregate;
pub mod capture;
pub mod correlate;
pub mod dns;
pub mod event;
pub mod flow;
pub mod http;
pub mod inspect;
pub mod sink;
#[doc(hidden)]
pub mod testdata;
pub mod tls;
pub mod wire;

#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::sync::atomic::AtomicU64;

use serde::Deserialize;

pub use capture::{Capture, CaptureError};
pub use correlate::Correlator;
pub use event::{Event, Finding, Sighting, TcpTrigger};
pub use inspect::Inspector;

/// How warden is deployed (see docs/deployment.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// LAN DNS server and router: DNS + capture + forward-path enforcement.
    #[default]
    Gateway,
    /// Beside an existing resolver on a Linux router: capture + nftables on
    /// the forward and output paths; DNS optional.
    Sidecar,
    /// Capture and log only (e.g. on a mirror port); no firewall changes.
    Monitor,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Gateway => "gateway",
            Mode::Sidecar => "sidecar",
            Mode::Monitor => "monitor",
        }
    }
}

/// `[packet]`: capture and inspection settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PacketConfig {
    /// LAN interfaces to capture on; empty: no packet layer (DNS only).
    pub capture: Vec<String>,
    pub mode: Mode,
    /// warden's own resolver addresses besides the capture interfaces'
    /// addresses: DNS sent to them is not a bypass.
    pub own_resolvers: Vec<IpAddr>,
    /// Events buffered between the capture threads and the async side.
    pub channel_capacity: usize,
    /// Streams reassembled at once per interface.
    pub max_flows: usize,
    /// Bytes held per reassembled stream.
    pub max_flow_bytes: usize,
    /// A stream is given up this long after its first segment (ms).
    pub flow_timeout_ms: u64,
    /// Identical contacts within this window become one record (ms).
    pub aggregate_window_ms: u64,
    /// A DNS lookup, connection and SNI are linked for this long (ms).
    pub correlation_ttl_ms: u64,
}

impl Default for PacketConfig {
    fn default() -> Self {
        PacketConfig {
            capture: Vec::new(),
            mode: Mode::Gateway,
            own_resolvers: Vec::new(),
            channel_capacity: 4096,
            max_flows: 4096,
            max_flow_bytes: tls::MAX_HELLO,
            flow_timeout_ms: 5_000,
            aggregate_window_ms: 10_000,
            correlation_ttl_ms: 600_000,
        }
    }
}

/// Counters of the packet layer (all interfaces).
#[derive(Debug, Default)]
pub struct PacketStats {
    pub frames: AtomicU64,
    /// Frames warden does not inspect (ARP, non-first fragments, ...).
    pub ignored: AtomicU64,
    /// Frames whose headers are truncated or inconsistent.
    pub malformed: AtomicU64,
    /// Streams that looked like TLS/HTTP/DNS but did not parse.
    pub invalid_streams: AtomicU64,
    /// Reassemblies given up (gap, size, age, table full).
    pub flows_dropped: AtomicU64,
    pub events: AtomicU64,
    /// Events lost because the channel to the async side was full.
    pub channel_overflow: AtomicU64,
    pub capture_errors: AtomicU64,
}
