//! Hostile and broken packets: answered with FORMERR when the header can be
//! read, dropped otherwise, and never harm the service.

use std::net::Ipv4Addr;
use std::time::Duration;

use hickory_proto::op::Query;
use hickory_proto::rr::Name;

use crate::support::*;

const WAIT: Duration = Duration::from_millis(300);

fn header(id: u16, flags: u16, qd: u16) -> Vec<u8> {
    let mut h = Vec::new();
    for v in [id, flags, qd, 0, 0, 0] {
        h.extend_from_slice(&v.to_be_bytes());
    }
    h
}

/// The service still answers. Retried like a stub resolver (3 tries): a
/// burst of hundreds of datagrams can overflow the socket's receive buffer
/// on a loaded machine, and the kernel then drops datagrams, ours included.
fn still_serving(w: &Warden) {
    let msg = (0..3)
        .find_map(|_| try_query_udp(w.addr, "www.example.test", RecordType::A, std::time::Duration::from_secs(2)))
        .unwrap_or_else(|| panic!("no answer after the malformed input; warden said:\n{}", w.stderr()));
    assert_eq!(a_records(&msg), vec![Ipv4Addr::new(198, 18, 1, 1)]);
}

#[test]
fn malformed_packets_get_formerr_or_nothing() {
    let upstream = FakeUpstream::start(Zone::new().a("www.example.test", Ipv4Addr::new(198, 18, 1, 1)));
    let w = Warden::start(upstream.addr(), None, &[]);
    assert_eq!(send_raw_udp(w.addr, &[], WAIT), None, "empty datagram");
    assert_eq!(send_raw_udp(w.addr, &[0x12, 0x34, 0x01], WAIT), None, "shorter than a header");
    // A header announcing one question that is not there.
    let reply = send_raw_udp(w.addr, &header(0xbeef, 0x0100, 1), WAIT).expect("FORMERR reply");
    let msg = Message::from_vec(&reply).expect("parseable reply");
    assert_eq!((msg.metadata.id, rcode(&msg)), (0xbeef, ResponseCode::FormErr));
    // A name whose compression pointer points at itself.
    let mut looped = header(0x4242, 0x0100, 1);
    looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    let reply = send_raw_udp(w.addr, &looped, WAIT).expect("FORMERR reply");
    assert_eq!(rcode(&Message::from_vec(&reply).expect("parse")), ResponseCode::FormErr);
    // Two questions.
    let mut two = build_query("www.example.test", RecordType::A, false);
    two.add_query(two.queries[0].clone());
    let reply = send_raw_udp(w.addr, &two.to_vec().expect("encode"), WAIT).expect("reply");
    assert_eq!(rcode(&Message::from_vec(&reply).expect("parse")), ResponseCode::FormErr);
    // Eighteen questions for different names, over 1,000 bytes of them
    // (found by the fuzzer: the FORMERR echoed every question, 520 bytes
    // to a client that takes 512).
    let mut many = build_query("q00.www.example.test", RecordType::A, false);
    for i in 1..18 {
        let name = Name::from_ascii(format!("q{i:02}-{}.www.example.test.", "x".repeat(50))).expect("name");
        many.add_query(Query::query(name, RecordType::A));
    }
    let reply = send_raw_udp(w.addr, &many.to_vec().expect("encode"), WAIT).expect("reply");
    assert!(reply.len() <= 512, "{}-byte reply to a client without EDNS", reply.len());
    let msg = Message::from_vec(&reply).expect("parse");
    assert_eq!((rcode(&msg), msg.queries.len()), (ResponseCode::FormErr, 0));
    // A response sent to us is not answered (no reflection loops).
    assert_eq!(send_raw_udp(w.addr, &header(7, 0x8180, 0), WAIT), None);
    still_serving(&w);
}

#[test]
fn random_bytes_do_not_harm_the_service() {
    let upstream = FakeUpstream::start(Zone::new().a("www.example.test", Ipv4Addr::new(198, 18, 1, 1)));
    let w = Warden::start(upstream.addr(), None, &[]);
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    for i in 0..500usize {
        let len = i % 300;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        socket.send_to(&bytes, w.addr).expect("send");
    }
    // Truncated and garbage frames over TCP close the connection only.
    assert_eq!(send_raw_tcp(w.addr, &[0xff; 40], WAIT), None);
    still_serving(&w);
    let reply = send_raw_tcp(
        w.addr,
        &build_query("www.example.test", RecordType::A, true).to_vec().expect("encode"),
        Duration::from_secs(3),
    );
    assert!(reply.is_some(), "TCP still answers");
}

#[test]
fn unsupported_opcodes_and_classes_are_refused_cleanly() {
    let upstream = FakeUpstream::start(Zone::new().a("www.example.test", Ipv4Addr::new(198, 18, 1, 1)));
    let w = Warden::start(upstream.addr(), None, &[]);
    let mut notify = build_query("www.example.test", RecordType::SOA, false);
    notify.metadata.op_code = hickory_proto::op::OpCode::Notify;
    let reply = send_raw_udp(w.addr, &notify.to_vec().expect("encode"), WAIT).expect("reply");
    let msg = Message::from_vec(&reply).expect("parse");
    assert_eq!((msg.metadata.id, rcode(&msg)), (notify.metadata.id, ResponseCode::NotImp));
    let axfr = build_query("example.test", RecordType::AXFR, false);
    let reply = send_raw_tcp(w.addr, &axfr.to_vec().expect("encode"), Duration::from_secs(3)).expect("reply");
    assert_eq!(rcode(&Message::from_vec(&reply).expect("parse")), ResponseCode::Refused);
}
