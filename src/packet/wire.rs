//! Link, network and transport headers: Ethernet (with up to two 802.1Q /
//! 802.1ad tags), IPv4, IPv6 (with its extension-header chain), TCP and
//! UDP. Total over any input: every length is checked before it is used and
//! every failure is a [`WireError`]; nothing allocates.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use thiserror::Error;

/// Why a frame was not turned into a [`Packet`]. `Ignored*` variants are
/// ordinary traffic warden does not look at; the rest are malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum WireError {
    #[error("frame shorter than its Ethernet header and tags")]
    TruncatedEthernet,
    #[error("not IPv4 or IPv6 (ethertype {0:#06x})")]
    IgnoredEtherType(u16),
    #[error("IPv4 header truncated or inconsistent")]
    BadIpv4,
    #[error("IPv6 header truncated or inconsistent")]
    BadIpv6,
    #[error("IPv6 extension header chain truncated or too long")]
    BadIpv6Extension,
    #[error("non-first fragment")]
    IgnoredFragment,
    #[error("TCP header truncated or inconsistent")]
    BadTcp,
    #[error("UDP header truncated or inconsistent")]
    BadUdp,
}

impl WireError {
    /// Ordinary traffic not parsed further, as opposed to a malformed frame.
    pub fn is_ignored(self) -> bool {
        matches!(self, WireError::IgnoredEtherType(_) | WireError::IgnoredFragment)
    }
}

/// TCP flag bits.
pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const ACK: u8 = 0x10;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tcp<'a> {
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub payload: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Udp<'a> {
    pub sport: u16,
    pub dport: u16,
    pub payload: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport<'a> {
    Tcp(Tcp<'a>),
    Udp(Udp<'a>),
    /// Another IP protocol (number), not parsed.
    Other(u8),
}

/// One parsed frame: addresses and the transport payload, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    /// Innermost VLAN id, when tagged.
    pub vlan: Option<u16>,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub transport: Transport<'a>,
}

const MAX_VLAN_TAGS: usize = 2;
const MAX_IPV6_EXTENSIONS: usize = 8;

/// Parses an Ethernet frame down to the transport payload.
pub fn parse_ethernet(frame: &[u8]) -> Result<Packet<'_>, WireError> {
    let (dst_mac, src_mac) = (mac(frame, 0), mac(frame, 6));
    let mut ethertype = be16(frame, 12).ok_or(WireError::TruncatedEthernet)?;
    let mut offset = 14;
    let mut vlan = None;
    for _ in 0..MAX_VLAN_TAGS {
        if ethertype != 0x8100 && ethertype != 0x88a8 {
            break;
        }
        let tci = be16(frame, offset).ok_or(WireError::TruncatedEthernet)?;
        vlan = Some(tci & 0x0fff);
        ethertype = be16(frame, offset + 2).ok_or(WireError::TruncatedEthernet)?;
        offset += 4;
    }
    let body = frame.get(offset..).ok_or(WireError::TruncatedEthernet)?;
    let (src, dst, transport) = match ethertype {
        0x0800 => parse_ipv4(body)?,
        0x86dd => parse_ipv6(body)?,
        other => return Err(WireError::IgnoredEtherType(other)),
    };
    Ok(Packet { src_mac: src_mac.unwrap_or_default(), dst_mac: dst_mac.unwrap_or_default(), vlan, src, dst, transport })
}

/// Parses an IPv4 or IPv6 packet (no link header), e.g. from a tun device.
pub fn parse_ip(packet: &[u8]) -> Result<(IpAddr, IpAddr, Transport<'_>), WireError> {
    match packet.first().map(|b| b >> 4) {
        Some(6) => parse_ipv6(packet),
        _ => parse_ipv4(packet),
    }
}

fn parse_ipv4(b: &[u8]) -> Result<(IpAddr, IpAddr, Transport<'_>), WireError> {
    let first = *b.first().ok_or(WireError::BadIpv4)?;
    let ihl = usize::from(first & 0x0f) * 4;
    let total = usize::from(be16(b, 2).ok_or(WireError::BadIpv4)?);
    if first >> 4 != 4 || ihl < 20 || total < ihl || total > b.len() {
        return Err(WireError::BadIpv4);
    }
    let frag = be16(b, 6).ok_or(WireError::BadIpv4)?;
    if frag & 0x1fff != 0 {
        return Err(WireError::IgnoredFragment);
    }
    let src = Ipv4Addr::from(be32(b, 12).ok_or(WireError::BadIpv4)?);
    let dst = Ipv4Addr::from(be32(b, 16).ok_or(WireError::BadIpv4)?);
    let payload = b.get(ihl..total).ok_or(WireError::BadIpv4)?;
    Ok((src.into(), dst.into(), transport(b[9], payload)?))
}

fn parse_ipv6(b: &[u8]) -> Result<(IpAddr, IpAddr, Transport<'_>), WireError> {
    if b.len() < 40 || b[0] >> 4 != 6 {
        return Err(WireError::BadIpv6);
    }
    let len = usize::from(be16(b, 4).ok_or(WireError::BadIpv6)?);
    let body = b.get(40..40 + len).ok_or(WireError::BadIpv6)?;
    let src = Ipv6Addr::from(be128(b, 8).ok_or(WireError::BadIpv6)?);
    let dst = Ipv6Addr::from(be128(b, 24).ok_or(WireError::BadIpv6)?);
    let (next, offset) = skip_extensions(b[6], body)?;
    let payload = body.get(offset..).ok_or(WireError::BadIpv6Extension)?;
    Ok((src.into(), dst.into(), transport(next, payload)?))
}

/// Walks hop-by-hop, routing, fragment, destination-options and AH headers;
/// returns the upper-layer protocol and its offset in `body`.
fn skip_extensions(mut next: u8, body: &[u8]) -> Result<(u8, usize), WireError> {
    let mut offset = 0usize;
    for _ in 0..MAX_IPV6_EXTENSIONS {
        let len = match next {
            0 | 43 | 60 => (usize::from(*body.get(offset + 1).ok_or(WireError::BadIpv6Extension)?) + 1) * 8,
            51 => (usize::from(*body.get(offset + 1).ok_or(WireError::BadIpv6Extension)?) + 2) * 4,
            44 => {
                let frag = be16(body, offset + 2).ok_or(WireError::BadIpv6Extension)?;
                if frag & 0xfff8 != 0 {
                    return Err(WireError::IgnoredFragment);
                }
                8
            }
            _ => return Ok((next, offset)),
        };
        next = *body.get(offset).ok_or(WireError::BadIpv6Extension)?;
        offset += len;
        if offset > body.len() {
            return Err(WireError::BadIpv6Extension);
        }
    }
    Err(WireError::BadIpv6Extension)
}

fn transport(proto: u8, b: &[u8]) -> Result<Transport<'_>, WireError> {
    match proto {
        6 => {
            let data = usize::from(b.get(12).ok_or(WireError::BadTcp)? >> 4) * 4;
            if data < 20 || data > b.len() {
                return Err(WireError::BadTcp);
            }
            Ok(Transport::Tcp(Tcp {
                sport: be16(b, 0).ok_or(WireError::BadTcp)?,
                dport: be16(b, 2).ok_or(WireError::BadTcp)?,
                seq: be32(b, 4).ok_or(WireError::BadTcp)?,
                ack: be32(b, 8).ok_or(WireError::BadTcp)?,
                flags: *b.get(13).ok_or(WireError::BadTcp)?,
                payload: &b[data..],
            }))
        }
        17 => {
            let len = usize::from(be16(b, 4).ok_or(WireError::BadUdp)?);
            if len < 8 || len > b.len() {
                return Err(WireError::BadUdp);
            }
            let (sport, dport) = (be16(b, 0).ok_or(WireError::BadUdp)?, be16(b, 2).ok_or(WireError::BadUdp)?);
            Ok(Transport::Udp(Udp { sport, dport, payload: &b[8..len] }))
        }
        other => Ok(Transport::Other(other)),
    }
}

fn mac(b: &[u8], at: usize) -> Option<[u8; 6]> {
    b.get(at..at + 6)?.try_into().ok()
}

pub(crate) fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at.checked_add(2)?)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be128(b: &[u8], at: usize) -> Option<u128> {
    Some(u128::from_be_bytes(b.get(at..at + 16)?.try_into().ok()?))
}
