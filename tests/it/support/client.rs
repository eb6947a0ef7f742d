//! A minimal blocking DNS client for tests (loopback only).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::{Name, RData, RecordType};

/// Default timeout of the panicking helpers.
pub const TIMEOUT: Duration = Duration::from_secs(3);
/// EDNS option code of Extended DNS Errors (RFC 8914).
pub const EDE_OPTION: u16 = 15;

/// Builds a query with a random id and RD set; with `edns`, adds OPT (payload 1232).
pub fn build_query(name: &str, qtype: RecordType, edns: bool) -> Message {
    let fqdn = format!("{}.", name.trim_end_matches('.'));
    let parsed = if fqdn.is_ascii() { Name::from_ascii(&fqdn) } else { Name::from_utf8(&fqdn) };
    let name = parsed.unwrap_or_else(|e| panic!("invalid query name {fqdn:?}: {e}"));
    let mut msg = Message::query();
    msg.add_query(Query::query(name, qtype));
    msg.metadata.recursion_desired = true;
    if edns {
        let mut opt = Edns::new();
        opt.set_max_payload(1232);
        msg.set_edns(opt);
    }
    msg
}

/// UDP query with EDNS; panics on timeout (3 s), id mismatch or unparsable reply.
pub fn query_udp(server: SocketAddr, name: &str, qtype: RecordType) -> Message {
    query_udp_opts(server, name, qtype, true)
}

/// Like [`query_udp`], with or without EDNS.
pub fn query_udp_opts(server: SocketAddr, name: &str, qtype: RecordType, edns: bool) -> Message {
    let query = build_query(name, qtype, edns);
    let reply = send_raw_udp(server, &encode(&query), TIMEOUT)
        .unwrap_or_else(|| panic!("no UDP reply from {server} within {TIMEOUT:?} for {name} {qtype}"));
    decode_reply(&query, &reply, "UDP", server)
}

/// UDP query with EDNS; `None` on timeout, panics on id mismatch or unparsable reply.
pub fn try_query_udp(server: SocketAddr, name: &str, qtype: RecordType, timeout: Duration) -> Option<Message> {
    let query = build_query(name, qtype, true);
    let reply = send_raw_udp(server, &encode(&query), timeout)?;
    Some(decode_reply(&query, &reply, "UDP", server))
}

/// TCP query with EDNS; panics on timeout (3 s), close, id mismatch or unparsable reply.
pub fn query_tcp(server: SocketAddr, name: &str, qtype: RecordType) -> Message {
    let query = build_query(name, qtype, true);
    let reply = send_raw_tcp(server, &encode(&query), TIMEOUT)
        .unwrap_or_else(|| panic!("no TCP reply from {server} within {TIMEOUT:?} for {name} {qtype}"));
    decode_reply(&query, &reply, "TCP", server)
}

/// Sends one datagram and returns the first reply datagram, if any arrives in time.
pub fn send_raw_udp(server: SocketAddr, bytes: &[u8], timeout: Duration) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind(local_for(server)).expect("client: bind UDP socket");
    sock.connect(server).expect("client: connect UDP socket");
    sock.send(bytes).expect("client: send UDP datagram");
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 65535];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1)))).expect("client: set UDP read timeout");
        match sock.recv(&mut buf) {
            Ok(n) => return Some(buf[..n].to_vec()),
            // ICMP port unreachable surfaces as ConnectionRefused: treat as "no reply yet".
            Err(_) if Instant::now() < deadline => thread_nap(),
            Err(_) => return None,
        }
    }
}

/// Sends one length-framed message over a new TCP connection and returns the reply
/// payload; `None` on connect failure, close or timeout.
pub fn send_raw_tcp(server: SocketAddr, bytes: &[u8], timeout: Duration) -> Option<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let mut stream = TcpStream::connect_timeout(&server, timeout).ok()?;
    let len = u16::try_from(bytes.len()).expect("client: TCP message longer than 65535 bytes");
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    stream.set_write_timeout(Some(timeout)).ok()?;
    stream.write_all(&framed).ok()?;
    let mut len = [0u8; 2];
    read_exact_until(&mut stream, &mut len, deadline)?;
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
    read_exact_until(&mut stream, &mut reply, deadline)?;
    Some(reply)
}

fn read_exact_until(stream: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> Option<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let left = deadline.checked_duration_since(Instant::now())?;
        stream.set_read_timeout(Some(left.max(Duration::from_millis(1)))).ok()?;
        match stream.read(&mut buf[filled..]) {
            Ok(0) => return None,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(())
}

fn thread_nap() {
    std::thread::sleep(Duration::from_millis(10));
}

fn local_for(server: SocketAddr) -> SocketAddr {
    match server {
        SocketAddr::V4(_) => (Ipv4Addr::LOCALHOST, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::LOCALHOST, 0).into(),
    }
}

fn encode(msg: &Message) -> Vec<u8> {
    msg.to_vec().expect("client: encode query")
}

fn decode_reply(query: &Message, reply: &[u8], proto: &str, server: SocketAddr) -> Message {
    let msg = Message::from_vec(reply).unwrap_or_else(|e| {
        panic!("unparsable {proto} reply from {server} ({} bytes): {e}: {reply:02x?}", reply.len())
    });
    assert_eq!(
        msg.metadata.id, query.metadata.id,
        "{proto} reply from {server} has id {} but the query had id {}",
        msg.metadata.id, query.metadata.id
    );
    msg
}

/// Extended DNS Error (info-code, extra text) from the reply's OPT record, if any.
/// hickory-proto 0.26 has no EDE type: option 15 decodes as `EdnsOption::Unknown(15, bytes)`.
pub fn ede(msg: &Message) -> Option<(u16, String)> {
    let opt = msg.edns.as_ref()?.options();
    opt.as_ref().iter().find_map(|(code, option)| match option {
        EdnsOption::Unknown(EDE_OPTION, data) if u16::from(*code) == EDE_OPTION && data.len() >= 2 => {
            let info = u16::from_be_bytes([data[0], data[1]]);
            let text = String::from_utf8_lossy(&data[2..]);
            Some((info, text.trim_end_matches('\0').to_string()))
        }
        _ => None,
    })
}

pub fn a_records(msg: &Message) -> Vec<Ipv4Addr> {
    let data = msg.answers.iter().map(|r| &r.data);
    data.filter_map(|d| if let RData::A(a) = d { Some(a.0) } else { None }).collect()
}

pub fn aaaa_records(msg: &Message) -> Vec<Ipv6Addr> {
    let data = msg.answers.iter().map(|r| &r.data);
    data.filter_map(|d| if let RData::AAAA(a) = d { Some(a.0) } else { None }).collect()
}

pub fn rcode(msg: &Message) -> ResponseCode {
    msg.metadata.response_code
}
