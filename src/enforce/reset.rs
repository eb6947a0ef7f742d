//! TCP reset injection: ends a connection warden has just seen carry a
//! blocked name, at once, in both directions, instead of waiting for the
//! next packet to hit the blocked-flows set. IPv4 only (a raw IPv4 socket
//! with a forged source, built with pnet); an IPv6 flow is ended by the
//! set's `reject with tcp reset` on its next packet. Blocking sends: used
//! on the enforcement thread only.

use std::net::{IpAddr, Ipv4Addr};

use pnet::packet::ip::IpNextHeaderProtocols;
use pnet::packet::ipv4::{self, MutableIpv4Packet};
use pnet::packet::tcp::{self, MutableTcpPacket, TcpFlags};
use pnet::transport::{TransportChannelType, TransportSender, transport_channel};

use super::EnforceError;
use crate::packet::TcpTrigger;

const LEN: usize = 40;

/// Sends forged resets through a raw IPv4 socket.
pub struct Resetter {
    tx: TransportSender,
}

/// One reset to send: addresses, ports, sequence and acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rst {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    /// With ACK set, acknowledging this.
    pub ack: Option<u32>,
}

impl Resetter {
    /// Opens the raw socket (needs root or CAP_NET_RAW).
    pub fn open() -> Result<Resetter, EnforceError> {
        let kind = TransportChannelType::Layer3(IpNextHeaderProtocols::Tcp);
        let (tx, _rx) = transport_channel(4096, kind).map_err(EnforceError::RawSocket)?;
        Ok(Resetter { tx })
    }

    /// Sends the resets for a flow; returns how many were sent.
    pub fn reset(&mut self, client: IpAddr, server: IpAddr, port: u16, t: &TcpTrigger) -> usize {
        let (IpAddr::V4(c), IpAddr::V4(s)) = (client.to_canonical(), server.to_canonical()) else { return 0 };
        resets(c, s, port, t).iter().filter(|r| self.send(r)).count()
    }

    fn send(&mut self, rst: &Rst) -> bool {
        let mut buf = [0u8; LEN];
        let Some(packet) = build(rst, &mut buf) else { return false };
        self.tx.send_to(packet, IpAddr::V4(rst.dst)).is_ok()
    }
}

/// The resets for a flow whose client segment is `t`: to the server at
/// the segment's end and start (whichever it expects next; RFC 5961 makes
/// an exact match necessary), and to the client at the server's next
/// sequence number.
pub fn resets(client: Ipv4Addr, server: Ipv4Addr, port: u16, t: &TcpTrigger) -> [Rst; 3] {
    let to_server = |seq| Rst { src: client, dst: server, sport: t.sport, dport: port, seq, ack: None };
    let to_client = Rst { src: server, dst: client, sport: port, dport: t.sport, seq: t.ack, ack: Some(t.seq_end) };
    [to_server(t.seq_end), to_server(t.seq), to_client]
}

/// Writes an IPv4 + TCP reset into `buf`; `None` if `buf` is too small.
pub fn build<'a>(rst: &Rst, buf: &'a mut [u8; LEN]) -> Option<MutableIpv4Packet<'a>> {
    {
        let mut tcp = MutableTcpPacket::new(&mut buf[20..])?;
        tcp.set_source(rst.sport);
        tcp.set_destination(rst.dport);
        tcp.set_sequence(rst.seq);
        tcp.set_acknowledgement(rst.ack.unwrap_or(0));
        tcp.set_data_offset(5);
        tcp.set_flags(if rst.ack.is_some() { TcpFlags::RST | TcpFlags::ACK } else { TcpFlags::RST });
        tcp.set_window(0);
        let sum = tcp::ipv4_checksum(&tcp.to_immutable(), &rst.src, &rst.dst);
        tcp.set_checksum(sum);
    }
    let mut ip = MutableIpv4Packet::new(&mut buf[..])?;
    ip.set_version(4);
    ip.set_header_length(5);
    ip.set_total_length(LEN as u16);
    ip.set_ttl(64);
    ip.set_next_level_protocol(IpNextHeaderProtocols::Tcp);
    ip.set_source(rst.src);
    ip.set_destination(rst.dst);
    let sum = ipv4::checksum(&ip.to_immutable());
    ip.set_checksum(sum);
    Some(ip)
}
