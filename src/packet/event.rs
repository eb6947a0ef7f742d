//! What the capture threads hand to the async side: contacts the policy
//! logs (with the verdict taken on the capture thread) and DNS answers that
//! link lookups to connections. Owned data, sent over a bounded channel.

use std::net::IpAddr;
use std::sync::Arc;

use crate::audit::Layer;
use crate::policy::{Policy, Verdict};

/// Why a contact is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finding {
    /// The policy's verdict on the name or address (block or monitor).
    Policy(Verdict),
    /// A DNS-over-TLS connection (TCP 853) to a resolver other than warden.
    DnsOverTls,
    /// A plain-HTTP request for a vendor update path (the pattern), whatever
    /// the Host header says.
    UpdatePath(&'static str),
}

/// The TCP segment that carried the name, enough to forge resets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpTrigger {
    pub sport: u16,
    /// Sequence number of the segment's first byte.
    pub seq: u32,
    /// Sequence number after the segment (`seq` + payload length).
    pub seq_end: u32,
    /// The client's acknowledgement number (the server's next sequence).
    pub ack: u32,
    pub client_mac: [u8; 6],
    pub server_mac: [u8; 6],
    pub vlan: Option<u16>,
}

/// One contact seen on the wire.
#[derive(Debug, Clone)]
pub struct Sighting {
    pub ts_ms: i64,
    pub layer: Layer,
    pub client: IpAddr,
    pub dst: IpAddr,
    pub dport: u16,
    pub name: Option<String>,
    pub qtype: Option<String>,
    /// Extra evidence for the record's message (ECH, QUIC, update path).
    pub detail: Option<String>,
    pub finding: Finding,
    /// The policy that decided (the verdict's ids refer to it).
    pub policy: Arc<Policy>,
    /// Present for TCP contacts carrying a name (SNI, Host).
    pub tcp: Option<TcpTrigger>,
}

#[derive(Debug, Clone)]
pub enum Event {
    Contact(Box<Sighting>),
    /// A DNS response to `client` for a logged `name` with these addresses.
    Answer {
        client: IpAddr,
        name: String,
        addrs: Vec<IpAddr>,
    },
}
