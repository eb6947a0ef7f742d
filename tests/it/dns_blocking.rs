//! Vendor names are refused with NXDOMAIN + SOA + EDE over UDP and TCP for
//! every query type; everything else resolves through the upstream.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::support::*;

const EDE_CENSORED: u16 = 16;

fn zone() -> Zone {
    Zone::new()
        .a("www.example.test", Ipv4Addr::new(198, 18, 1, 1))
        .a("notkaspersky.com", Ipv4Addr::new(198, 18, 1, 2))
        .a("xkaspersky.com", Ipv4Addr::new(198, 18, 1, 3))
        .a("kaspersky.com.example.org", Ipv4Addr::new(198, 18, 1, 4))
        .a("s10.upd.kaspersky.com", Ipv4Addr::new(198, 18, 9, 10))
        .a("opentip.kaspersky.com", Ipv4Addr::new(198, 18, 9, 11))
        .cname("cdn.example.test", "s10.upd.kaspersky.com")
        .cname("cloak.example.test", "edge.example.test")
        .cname("edge.example.test", "dc1.ksn.kaspersky-labs.com")
        .a("dc1.ksn.kaspersky-labs.com", Ipv4Addr::new(198, 18, 9, 12))
        .a("vendor-ip.example.test", Ipv4Addr::new(77, 74, 176, 5))
}

fn assert_blocked(msg: &Message, category: &str) {
    assert_eq!(rcode(msg), ResponseCode::NXDomain, "{msg:?}");
    assert!(msg.answers.is_empty(), "{msg:?}");
    assert!(msg.authorities.iter().any(|r| r.record_type() == RecordType::SOA), "SOA missing: {msg:?}");
    let text = format!("blocked by policy us-bis-kaspersky-2024 ({category})");
    assert_eq!(ede(msg), Some((EDE_CENSORED, text)));
}

#[test]
fn vendor_names_are_refused_for_every_type_over_udp_and_tcp() {
    let upstream = FakeUpstream::start(zone());
    let w = Warden::start(upstream.addr(), None, &[]);
    let types = [
        RecordType::A,
        RecordType::AAAA,
        RecordType::HTTPS,
        RecordType::SVCB,
        RecordType::TXT,
        RecordType::MX,
        RecordType::ANY,
    ];
    for qtype in types {
        assert_blocked(&query_udp(w.addr, "s10.upd.kaspersky.com", qtype), "update");
    }
    for qtype in [RecordType::A, RecordType::AAAA, RecordType::HTTPS] {
        assert_blocked(&query_tcp(w.addr, "S10.UPD.Kaspersky.COM", qtype), "update");
    }
    assert_blocked(&query_udp(w.addr, "ksn-file-geo.kaspersky-labs.com", RecordType::A), "telemetry");
    assert_blocked(&query_udp(w.addr, "activation-v2.kaspersky.com", RecordType::AAAA), "activation");
    assert_blocked(&query_udp(w.addr, "brand-new-host.kaspersky.com", RecordType::A), "vendor");
    assert!(!upstream.saw("s10.upd.kaspersky.com"), "a blocked name reached the upstream");
    assert!(!upstream.saw("brand-new-host.kaspersky.com"));
}

#[test]
fn lookalikes_and_ordinary_names_resolve_through_the_upstream() {
    let upstream = FakeUpstream::start(zone());
    let w = Warden::start(upstream.addr(), None, &[]);
    for (name, last) in
        [("www.example.test", 1), ("notkaspersky.com", 2), ("xkaspersky.com", 3), ("kaspersky.com.example.org", 4)]
    {
        let msg = query_udp(w.addr, name, RecordType::A);
        assert_eq!(rcode(&msg), ResponseCode::NoError, "{name}");
        assert_eq!(a_records(&msg), vec![Ipv4Addr::new(198, 18, 1, last)], "{name}");
        assert!(upstream.saw(name));
    }
    let msg = query_tcp(w.addr, "www.example.test", RecordType::A);
    assert_eq!(a_records(&msg), vec![Ipv4Addr::new(198, 18, 1, 1)]);
    let msg = query_udp(w.addr, "missing.example.test", RecordType::A);
    assert_eq!(rcode(&msg), ResponseCode::NXDomain);
    assert_eq!(ede(&msg), None, "an upstream NXDOMAIN is not a block");
}

#[test]
fn threat_intelligence_is_exempt_and_not_logged() {
    let upstream = FakeUpstream::start(zone());
    let w = Warden::start(upstream.addr(), None, &[]);
    let msg = query_udp(w.addr, "opentip.kaspersky.com", RecordType::A);
    assert_eq!(a_records(&msg), vec![Ipv4Addr::new(198, 18, 9, 11)]);
    query_udp(w.addr, "s10.upd.kaspersky.com", RecordType::A);
    let records = w.wait_records(1, |r| r["type"] == "contact");
    assert!(records.iter().all(|r| r["name"] != "opentip.kaspersky.com"), "{records:?}");
}

#[test]
fn cname_into_a_vendor_zone_blocks_the_answer() {
    let upstream = FakeUpstream::start(zone());
    let w = Warden::start(upstream.addr(), None, &[]);
    assert_blocked(&query_udp(w.addr, "cdn.example.test", RecordType::A), "update");
    assert_blocked(&query_udp(w.addr, "cloak.example.test", RecordType::A), "telemetry");
    let records = w.wait_records(2, |r| r["type"] == "contact");
    let cdn = records.iter().find(|r| r["name"] == "cdn.example.test").expect("record for cdn");
    assert_eq!(cdn["action"], "block");
    assert_eq!(cdn["rule"], "domain:upd.kaspersky.com");
    assert!(cdn["message"].as_str().unwrap_or("").contains("CNAME s10.upd.kaspersky.com"), "{cdn}");
}

#[test]
fn vendor_address_in_an_answer_blocks_it() {
    let upstream = FakeUpstream::start(zone());
    let w = Warden::start(upstream.addr(), None, &[]);
    let msg = query_udp(w.addr, "vendor-ip.example.test", RecordType::A);
    assert_eq!(rcode(&msg), ResponseCode::NXDomain);
    let (code, text) = ede(&msg).expect("EDE");
    assert_eq!(code, EDE_CENSORED);
    assert!(text.starts_with("blocked by policy us-bis-kaspersky-2024"), "{text}");
}

#[test]
fn block_response_modes() {
    let upstream = FakeUpstream::start(zone());
    let w = Warden::start(upstream.addr(), None, &["--block-response", "sinkhole"]);
    let msg = query_udp(w.addr, "s10.upd.kaspersky.com", RecordType::A);
    assert_eq!((rcode(&msg), a_records(&msg)), (ResponseCode::NoError, vec![Ipv4Addr::UNSPECIFIED]));
    let msg = query_udp(w.addr, "s10.upd.kaspersky.com", RecordType::AAAA);
    assert_eq!(aaaa_records(&msg), vec![std::net::Ipv6Addr::UNSPECIFIED]);
    drop(w);
    let w = Warden::start(upstream.addr(), None, &["--block-response", "refused"]);
    let msg = query_udp(w.addr, "s10.upd.kaspersky.com", RecordType::A);
    assert_eq!(rcode(&msg), ResponseCode::Refused);
    assert!(ede(&msg).is_some());
    drop(w);
    let w = Warden::start(upstream.addr(), None, &["--block-response", "nodata"]);
    let msg = query_udp(w.addr, "s10.upd.kaspersky.com", RecordType::A);
    assert_eq!((rcode(&msg), msg.answers.len()), (ResponseCode::NoError, 0));
}

#[test]
fn blocking_keeps_working_when_the_upstream_is_down() {
    let upstream = FakeUpstream::start(zone());
    upstream.set_mode(Mode::Down);
    let w = Warden::start(upstream.addr(), None, &[]);
    let started = Instant::now();
    assert_blocked(&query_udp(w.addr, "s10.upd.kaspersky.com", RecordType::A), "update");
    assert!(started.elapsed() < Duration::from_millis(500), "blocked answer waited for the upstream");
    let started = Instant::now();
    let msg = try_query_udp(w.addr, "www.example.test", RecordType::A, Duration::from_secs(5)).expect("an answer");
    assert_eq!(rcode(&msg), ResponseCode::ServFail);
    assert!(started.elapsed() < Duration::from_secs(4), "SERVFAIL took {:?}", started.elapsed());
    upstream.set_mode(Mode::Normal);
    let msg = query_udp(w.addr, "www.example.test", RecordType::A);
    assert_eq!(a_records(&msg), vec![Ipv4Addr::new(198, 18, 1, 1)], "recovers when the upstream returns");
}

#[test]
fn clients_outside_the_allowed_networks_are_refused() {
    let upstream = FakeUpstream::start(zone());
    let w = Warden::start(upstream.addr(), None, &["--allow-client", "10.0.0.0/8"]);
    let msg = query_udp(w.addr, "www.example.test", RecordType::A);
    assert_eq!(rcode(&msg), ResponseCode::Refused);
    assert!(!upstream.saw("www.example.test"));
}

#[test]
fn large_answers_truncate_over_udp_and_complete_over_tcp() {
    let mut zone = zone();
    for i in 0..40 {
        zone = zone.a("big.example.test", Ipv4Addr::new(198, 18, 2, i));
    }
    let upstream = FakeUpstream::start(zone);
    let w = Warden::start(upstream.addr(), None, &[]);
    let msg = query_udp_opts(w.addr, "big.example.test", RecordType::A, false);
    assert!(msg.metadata.truncation, "TC not set on a 512-byte UDP answer");
    assert!(msg.answers.is_empty());
    assert_eq!(msg.queries.len(), 1, "question echoed");
    let msg = query_tcp(w.addr, "big.example.test", RecordType::A);
    assert_eq!(a_records(&msg).len(), 40);
}

#[test]
fn repeated_answers_come_from_the_cache_with_ttls_counted_down() {
    let upstream = FakeUpstream::start(Zone::new().ttl(300).a("www.example.test", Ipv4Addr::new(198, 18, 1, 1)));
    let w = Warden::start(upstream.addr(), None, &[]);
    let first = query_udp(w.addr, "www.example.test", RecordType::A);
    std::thread::sleep(Duration::from_millis(1100));
    let second = query_udp(w.addr, "WWW.Example.Test", RecordType::A);
    assert_eq!(a_records(&second), vec![Ipv4Addr::new(198, 18, 1, 1)]);
    assert_eq!(second.queries[0].name().to_ascii(), "WWW.Example.Test.", "question echoed as asked");
    assert!(
        second.answers[0].ttl < first.answers[0].ttl,
        "TTL counted down: {} then {}",
        first.answers[0].ttl,
        second.answers[0].ttl
    );
    let asked = upstream.queries().iter().filter(|(n, _)| n == "www.example.test").count();
    assert_eq!(asked, 1, "second answer came from the cache");
    let without_edns = query_udp_opts(w.addr, "www.example.test", RecordType::A, false);
    assert!(without_edns.edns.is_none(), "no OPT for a client without EDNS");
}

/// Many clients send at once, so the server takes datagrams in batches:
/// every query still gets exactly its own answer (id, name, verdict) at
/// the address that asked, blocked, forwarded and cached alike, and
/// garbage in the same batch is dropped without disturbing the rest.
#[test]
fn queries_arriving_together_each_get_their_own_answer() {
    let upstream = FakeUpstream::start(zone());
    let w = Warden::start(upstream.addr(), None, &[]);
    let names = ["s10.upd.kaspersky.com", "www.example.test", "dnl-03.geo.kaspersky.com", "notkaspersky.com"];
    let sockets: Vec<std::net::UdpSocket> =
        (0..8).map(|_| std::net::UdpSocket::bind("127.0.0.1:0").expect("bind client")).collect();
    let mut sent = Vec::new();
    for round in 0..4u16 {
        for (i, sock) in sockets.iter().enumerate() {
            let name = names[(i + usize::from(round)) % names.len()];
            let mut q = build_query(name, RecordType::A, true);
            q.metadata.id = round * 100 + i as u16;
            sock.send_to(&q.to_vec().expect("encode"), w.addr).expect("send");
            sock.send_to(b"\x12\x34garbage", w.addr).expect("send garbage");
            sent.push((i, q.metadata.id, name));
        }
    }
    let mut answered = 0;
    for (i, sock) in sockets.iter().enumerate() {
        sock.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let mut want: Vec<(u16, &str)> = sent.iter().filter(|s| s.0 == i).map(|s| (s.1, s.2)).collect();
        while !want.is_empty() {
            let mut buf = [0u8; 4096];
            let (len, _) = sock.recv_from(&mut buf).expect("every query answered");
            let msg = Message::from_vec(&buf[..len]).expect("parse answer");
            let pos = want.iter().position(|w| w.0 == msg.metadata.id).expect("an answer to one of this socket's ids");
            let (_, name) = want.remove(pos);
            let qname = msg.queries.first().map(|q| q.name().to_ascii()).unwrap_or_default();
            assert_eq!(qname, format!("{name}."), "answer echoes its own question");
            let vendor = name.ends_with(".kaspersky.com");
            assert_eq!(rcode(&msg) == ResponseCode::NXDomain, vendor, "{name}: {msg:?}");
            if !vendor {
                assert_eq!(a_records(&msg).len(), 1, "{name}: {msg:?}");
            }
            answered += 1;
        }
    }
    assert_eq!(answered, 32);
}
