//! Crafted frames for tests and benches: ClientHellos, Ethernet/VLAN,
//! IPv4, IPv6 with extension headers, TCP, UDP and DNS queries. Checksums
//! are left zero (warden never checks them).

use std::net::{Ipv4Addr, Ipv6Addr};

pub const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const SERVER: Ipv4Addr = Ipv4Addr::new(198, 19, 1, 10);
pub const PUBLIC_DNS: Ipv4Addr = Ipv4Addr::new(198, 19, 1, 53);
pub const VENDOR_NET: Ipv4Addr = Ipv4Addr::new(198, 19, 2, 20);
pub const V6_CLIENT: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
pub const V6_SERVER: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 1, 0, 0, 0, 0, 10);

/// A policy blocking Kaspersky names and the network 198.19.2.0/24.
pub const POLICY: &str = r#"
[policy]
id = "test"
title = "t"
legal_basis = "t"
reference_url = "https://example.invalid/"
[categories]
update = "u"
vendor-network = "n"
[[phases]]
name = "prohibition"
default = "block"
[[rules]]
category = "update"
domains = ["kaspersky.com"]
[[rules]]
category = "vendor-network"
networks = ["198.19.2.0/24"]
"#;

/// The server_name extension for `name`.
pub fn sni_ext(name: &str) -> (u16, Vec<u8>) {
    let n = name.as_bytes();
    let mut list = vec![0u8];
    list.extend_from_slice(&(n.len() as u16).to_be_bytes());
    list.extend_from_slice(n);
    let mut data = (list.len() as u16).to_be_bytes().to_vec();
    data.extend_from_slice(&list);
    (0, data)
}

/// One TLS record holding a ClientHello with these extensions.
pub fn client_hello(exts: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7; 32]);
    body.push(32);
    body.extend_from_slice(&[9; 32]);
    body.extend_from_slice(&[0, 4, 0x13, 0x01, 0x0a, 0x0a]);
    body.extend_from_slice(&[1, 0]);
    let mut ext_bytes = Vec::new();
    for (kind, data) in exts {
        ext_bytes.extend_from_slice(&kind.to_be_bytes());
        ext_bytes.extend_from_slice(&(data.len() as u16).to_be_bytes());
        ext_bytes.extend_from_slice(data);
    }
    body.extend_from_slice(&(ext_bytes.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext_bytes);
    let mut hs = vec![1];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    record(&hs)
}

fn record(fragment: &[u8]) -> Vec<u8> {
    let mut out = vec![22, 3, 1];
    out.extend_from_slice(&(fragment.len() as u16).to_be_bytes());
    out.extend_from_slice(fragment);
    out
}

/// Re-frames a single-record handshake into records of at most `max` bytes.
pub fn split_records(single: &[u8], max: usize) -> Vec<u8> {
    single[5..].chunks(max).flat_map(record).collect()
}

pub fn ethernet(vlans: &[u16], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    for v in vlans {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&v.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

pub fn ipv4_frame(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    ip.extend_from_slice(l4);
    ethernet(&[], 0x0800, &ip)
}

/// IPv6 with hop-by-hop, destination options and an atomic fragment header.
pub fn ipv6_with_extensions(src: Ipv6Addr, dst: Ipv6Addr, proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut ext = vec![60, 0, 1, 4, 0, 0, 0, 0]; // hop-by-hop → dest opts
    ext.extend_from_slice(&[44, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // dest opts (16 bytes) → fragment
    ext.extend_from_slice(&[proto, 0, 0, 0, 0, 0, 0, 1]); // fragment, offset 0, M=0
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend_from_slice(&((ext.len() + l4.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 64]);
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    ip.extend_from_slice(&ext);
    ip.extend_from_slice(l4);
    ip
}

pub fn tcp_segment(sport: u16, dport: u16, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(20 + payload.len());
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t.extend_from_slice(payload);
    t
}

pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::with_capacity(8 + payload.len());
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

/// A DNS query (A, RD) for `name`.
pub fn dns_query(name: &str) -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}
