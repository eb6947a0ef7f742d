//! DNS messages seen on the wire (UDP or TCP port 53 to any resolver):
//! the question of a query, and the addresses of a response, which link a
//! lookup to the connection that follows (correlation). Decoding is
//! hickory-proto's, which is total (errors, never panics).

use std::net::IpAddr;

use hickory_proto::op::{Message, MessageType};
use hickory_proto::rr::RData;

/// A DNS message as far as warden cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dns {
    /// A query: normalised name and query type mnemonic.
    Query { name: String, qtype: String },
    /// A response: the question's name and the A/AAAA addresses answered.
    Response { name: String, addrs: Vec<IpAddr> },
}

/// Largest DNS message decoded (UDP with EDNS rarely exceeds 4 KiB).
const MAX_MESSAGE: usize = 8 * 1024;
/// At most this many addresses are kept from one response.
const MAX_ADDRS: usize = 32;

/// Decodes a DNS message carried in UDP.
pub fn parse_udp(payload: &[u8]) -> Option<Dns> {
    if payload.len() < 12 || payload.len() > MAX_MESSAGE {
        return None;
    }
    let msg = Message::from_vec(payload).ok()?;
    let query = msg.queries.first()?;
    let name = crate::matcher::normalize(&query.name().to_ascii()).ok()?.as_str().to_owned();
    match msg.metadata.message_type {
        MessageType::Query => Some(Dns::Query { name, qtype: query.query_type().to_string() }),
        MessageType::Response => {
            let addrs = msg.answers.iter().filter_map(|r| match &r.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            });
            Some(Dns::Response { name, addrs: addrs.take(MAX_ADDRS).collect() })
        }
    }
}

/// Decodes the first DNS message of a TCP stream (two-byte length prefix),
/// when the whole message is in `payload`.
pub fn parse_tcp(payload: &[u8]) -> Option<Dns> {
    let len = usize::from(super::wire::be16(payload, 0)?);
    parse_udp(payload.get(2..2 + len)?)
}
