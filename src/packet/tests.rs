//! Parsers and inspection on crafted frames.

use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::flow::{FlowKey, FlowLimits, FlowTable, Proto};
use super::testdata::*;
use super::*;
use crate::audit::Layer;
use crate::policy::Action;

#[test]
fn sni_with_grease_and_ech_outer_name() {
    let hello =
        client_hello(&[(0x0a0a, vec![]), sni_ext("Public.Example.NET"), (0xfe0d, vec![1, 2, 3]), (0x1a1a, vec![0])]);
    let tls::Hello::Complete(h) = tls::parse_client_hello(&hello) else { panic!("not complete") };
    assert_eq!(h.sni.as_deref(), Some("public.example.net"));
    assert!(h.ech);
}

#[test]
fn client_hello_split_over_records_and_prefixes() {
    let hello = client_hello(&[(0x0a0a, vec![0; 1500]), sni_ext("s10.upd.kaspersky.com")]);
    let split = split_records(&hello, 700);
    for cut in [1, 5, 6, 300, 701, split.len() - 1] {
        assert_eq!(tls::parse_client_hello(&split[..cut]), tls::Hello::Partial, "cut {cut}");
    }
    let tls::Hello::Complete(h) = tls::parse_client_hello(&split) else { panic!("not complete") };
    assert_eq!(h.sni.as_deref(), Some("s10.upd.kaspersky.com"));
}

#[test]
fn hostile_hello_lengths_are_invalid_not_partial_forever() {
    let mut huge = vec![22, 3, 1, 0, 8, 1, 0xff, 0xff, 0xff, 3, 3, 0, 0];
    assert_eq!(tls::parse_client_hello(&huge), tls::Hello::Invalid);
    huge[5] = 2; // ServerHello
    assert_eq!(tls::parse_client_hello(&huge), tls::Hello::Invalid);
    assert_eq!(tls::parse_client_hello(&[23, 3, 3, 0, 1, 0]), tls::Hello::Invalid);
}

#[test]
fn http_host_path_and_update_paths() {
    let req = b"GET /updaters/updater.xml.dif HTTP/1.1\r\nUser-Agent: x\r\nHOST: DNL-01.geo.kaspersky.com:80\r\n\r\n";
    let http::Request::Complete(r) = http::parse_request(req) else { panic!("not complete") };
    assert_eq!(r.host.as_deref(), Some("dnl-01.geo.kaspersky.com"));
    assert_eq!(http::update_path(&r.path), Some("/updaters/updater.xml*"));
    assert_eq!(http::update_path("/index/u0607g.xml.klz"), Some("/index/u*.xml*"));
    assert_eq!(http::update_path("/index/usage.html"), None);
    assert_eq!(http::parse_request(b"GET / HTTP/1.1\r\nAccept: */*\r\n"), http::Request::Partial);
    assert_eq!(http::parse_request(b"SSH-2.0-OpenSSH\r\n"), http::Request::Invalid);
    let http::Request::Complete(r) = http::parse_request(b"GET / HTTP/1.0\r\nHost: [fd00::1]:8080\r\n\r\n") else {
        panic!()
    };
    assert_eq!(r.host.as_deref(), Some("fd00::1"));
}

#[test]
fn vlan_and_ipv6_extension_headers() {
    let tcp = tcp_segment(40000, 443, 1, 0, 0x02, b"");
    let frame = ethernet(&[100, 200], 0x86dd, &ipv6_with_extensions(V6_CLIENT, V6_SERVER, 6, &tcp));
    let p = wire::parse_ethernet(&frame).unwrap();
    assert_eq!(p.vlan, Some(200));
    assert_eq!(p.dst, IpAddr::V6(V6_SERVER));
    let wire::Transport::Tcp(t) = p.transport else { panic!("not tcp") };
    assert_eq!((t.sport, t.dport, t.flags), (40000, 443, 0x02));
}

#[test]
fn every_prefix_of_every_frame_is_safe() {
    let hello = client_hello(&[sni_ext("x.kaspersky.com")]);
    let frames = [
        ipv4_frame(CLIENT, SERVER, 6, &tcp_segment(1, 443, 7, 9, 0x18, &hello)),
        ethernet(&[7], 0x86dd, &ipv6_with_extensions(V6_CLIENT, V6_SERVER, 17, &udp(5, 53, b"\x12\x34\x01\x00"))),
    ];
    let mut inspector = inspector(POLICY);
    let mut out = Vec::new();
    for frame in &frames {
        for cut in 0..frame.len() {
            inspector.inspect(&frame[..cut], 0, &mut out);
            let mut garbled = frame.clone();
            garbled[cut] ^= 0xff;
            inspector.inspect(&garbled, 0, &mut out);
        }
    }
}

#[test]
fn split_client_hello_across_tcp_segments_yields_one_sni_event() {
    let hello = split_records(&client_hello(&[(0x2a2a, vec![0; 1800]), sni_ext("s10.upd.kaspersky.com")]), 1000);
    let mut inspector = inspector(POLICY);
    let mut out = Vec::new();
    let mut seq = 1000u32;
    for chunk in hello.chunks(600) {
        let frame = ipv4_frame(CLIENT, SERVER, 6, &tcp_segment(40001, 8443, seq, 77, 0x18, chunk));
        inspector.inspect(&frame, 1, &mut out);
        seq += chunk.len() as u32;
    }
    assert_eq!(out.len(), 1, "{out:?}");
    let Event::Contact(s) = &out[0] else { panic!() };
    assert_eq!((s.layer, s.name.as_deref(), s.dport), (Layer::Sni, Some("s10.upd.kaspersky.com"), 8443));
    assert!(matches!(s.finding, Finding::Policy(v) if v.action == Action::Block));
    let t = s.tcp.unwrap();
    assert_eq!((t.seq_end, t.ack), (seq, 77));
    assert!(inspector.flows().is_empty());
}

#[test]
fn dns_query_to_another_resolver_and_vendor_ip_contact() {
    let query = dns_query("S10.upd.kaspersky.com");
    let mut inspector = inspector(POLICY);
    let mut out = Vec::new();
    inspector.inspect(&ipv4_frame(CLIENT, PUBLIC_DNS, 17, &udp(5353, 53, &query)), 1, &mut out);
    inspector.inspect(&ipv4_frame(CLIENT, VENDOR_NET, 17, &udp(5353, 443, b"quic")), 1, &mut out);
    inspector.inspect(&ipv4_frame(CLIENT, SERVER, 17, &udp(5353, 443, b"quic")), 1, &mut out);
    let layers: Vec<_> =
        out.iter().map(|e| if let Event::Contact(s) = e { (s.layer, s.dst) } else { panic!() }).collect();
    assert_eq!(layers, vec![(Layer::DnsBypass, IpAddr::V4(PUBLIC_DNS)), (Layer::Ip, IpAddr::V4(VENDOR_NET))]);
}

#[test]
fn flow_table_is_bounded() {
    let limits = FlowLimits { max_flows: 2, max_bytes: 10, timeout_ms: 100 };
    let mut table = FlowTable::new(limits);
    let key = |p| FlowKey { src: CLIENT.into(), dst: SERVER.into(), sport: p, dport: 443 };
    assert!(table.track(key(1), Proto::Tls, 0, b"abc", 0));
    assert!(table.track(key(2), Proto::Tls, 0, b"abc", 0));
    assert!(!table.track(key(3), Proto::Tls, 0, b"abc", 0), "full");
    assert_eq!(table.append(&key(1), 3, b"0123456789", 1), flow::Append::Dropped, "too many bytes");
    assert_eq!(table.append(&key(2), 9, b"x", 1), flow::Append::Dropped, "gap");
    assert!(table.track(key(3), Proto::Tls, 0, b"abc", 500), "expired flows swept");
    assert_eq!(table.len(), 1);
}

fn inspector(policy: &str) -> Inspector {
    let policy = crate::policy::compile(policy, "test.toml").unwrap();
    Inspector::new(Arc::new(ArcSwap::from_pointee(policy)), vec![], FlowLimits::default(), Arc::default())
}
