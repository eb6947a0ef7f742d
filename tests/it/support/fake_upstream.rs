//! A fake upstream DNS resolver on 127.0.0.1 (UDP and TCP on the same port),
//! answering from an in-memory [`Zone`]. Threads stop when it is dropped.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

const POLL: Duration = Duration::from_millis(100);
const TCP_IDLE_LIMIT: Duration = Duration::from_secs(30);
const MAX_CNAME_CHAIN: usize = 16;

/// How the fake upstream behaves; applies to UDP and TCP alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Answer from the zone.
    Normal,
    /// Receive (and record) queries but never answer.
    Down,
    /// Answer from the zone after the delay.
    Slow(Duration),
    /// Answer with 20 bytes that echo the id but do not parse as a DNS message.
    Garbage,
}

/// Builder for the records the fake upstream serves.
#[derive(Clone, Debug)]
pub struct Zone {
    records: Vec<(String, u32, RData)>,
    ttl: u32,
}

impl Default for Zone {
    fn default() -> Self {
        Self::new()
    }
}

impl Zone {
    pub fn new() -> Zone {
        Zone { records: Vec::new(), ttl: 300 }
    }
    pub fn a(self, name: &str, ip: Ipv4Addr) -> Zone {
        self.add(name, RData::A(A(ip)))
    }
    pub fn aaaa(self, name: &str, ip: Ipv6Addr) -> Zone {
        self.add(name, RData::AAAA(AAAA(ip)))
    }
    pub fn cname(self, name: &str, target: &str) -> Zone {
        self.add(name, RData::CNAME(CNAME(fqdn(target))))
    }
    pub fn txt(self, name: &str, text: &str) -> Zone {
        let chunks = text.as_bytes().chunks(255);
        let parts = chunks.map(|c| String::from_utf8_lossy(c).into_owned());
        self.add(name, RData::TXT(TXT::new(parts.collect())))
    }
    /// Default TTL for records added after this call.
    pub fn ttl(mut self, ttl: u32) -> Zone {
        self.ttl = ttl;
        self
    }
    fn add(mut self, name: &str, data: RData) -> Zone {
        self.records.push((normalize(name), self.ttl, data));
        self
    }

    /// (rcode, answers, authorities) for a question, following CNAMEs in the zone.
    fn answer(&self, qname: &Name, qtype: RecordType) -> (ResponseCode, Vec<Record>, Vec<Record>) {
        let mut answers = Vec::new();
        let mut key = normalize(&qname.to_ascii());
        let mut owner = qname.clone();
        for _ in 0..MAX_CNAME_CHAIN {
            let at_name: Vec<&(String, u32, RData)> = self.records.iter().filter(|r| r.0 == key).collect();
            if at_name.is_empty() {
                return (ResponseCode::NXDomain, answers, vec![soa()]);
            }
            let matching = at_name.iter().filter(|r| qtype == RecordType::ANY || r.2.record_type() == qtype);
            let matching: Vec<Record> = matching.map(|r| Record::from_rdata(owner.clone(), r.1, r.2.clone())).collect();
            if !matching.is_empty() {
                answers.extend(matching);
                return (ResponseCode::NoError, answers, Vec::new());
            }
            let Some((_, ttl, RData::CNAME(target))) = at_name.iter().find(|r| matches!(r.2, RData::CNAME(_))).copied()
            else {
                return (ResponseCode::NoError, answers, vec![soa()]);
            };
            answers.push(Record::from_rdata(owner, *ttl, RData::CNAME(target.clone())));
            owner = target.0.clone();
            key = normalize(&owner.to_ascii());
        }
        (ResponseCode::ServFail, answers, Vec::new())
    }
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn fqdn(name: &str) -> Name {
    let name = format!("{}.", name.trim_end_matches('.'));
    Name::from_ascii(&name).unwrap_or_else(|e| panic!("invalid zone name {name:?}: {e}"))
}

fn soa() -> Record {
    let (mname, rname) = (fqdn("ns.test"), fqdn("hostmaster.test"));
    let soa = SOA::new(mname, rname, 1, 3600, 600, 86400, 60);
    Record::from_rdata(fqdn("test"), 60, RData::SOA(soa))
}

struct Shared {
    zone: Zone,
    mode: Mutex<Mode>,
    queries: Mutex<Vec<(String, RecordType)>>,
    stop: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// Records the question(s) and returns the reply to send, if any.
    fn handle(&self, packet: &[u8], udp: bool) -> Option<Vec<u8>> {
        let query = Message::from_vec(packet).ok()?;
        lock(&self.queries).extend(query.queries.iter().map(|q| (normalize(&q.name().to_ascii()), q.query_type())));
        let mode = *lock(&self.mode); // not held while sleeping
        match mode {
            Mode::Normal => {}
            Mode::Down => return None,
            Mode::Slow(delay) => {
                let end = Instant::now() + delay;
                while !self.stop.load(Ordering::Relaxed) && Instant::now() < end {
                    thread::sleep(Duration::from_millis(10).min(end - Instant::now()));
                }
            }
            Mode::Garbage => {
                let id = query.metadata.id.to_be_bytes();
                // Claims 1 question + 3 answers, then a 63-byte label cut short.
                let mut bytes = vec![id[0], id[1], 0x81, 0x80, 0, 1, 0, 3, 0, 0, 0, 0, 63];
                bytes.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0xff, 0x00, 0x7f]);
                return Some(bytes);
            }
        }
        let mut resp = Message::response(query.metadata.id, query.metadata.op_code);
        resp.metadata.recursion_desired = query.metadata.recursion_desired;
        resp.metadata.recursion_available = true;
        resp.queries = query.queries.clone();
        if query.edns.is_some() {
            let mut edns = Edns::new();
            edns.set_max_payload(1232);
            resp.edns = Some(edns);
        }
        match query.queries.first() {
            Some(q) if query.metadata.message_type == MessageType::Query => {
                let (rcode, answers, authorities) = self.zone.answer(q.name(), q.query_type());
                resp.metadata.response_code = rcode;
                resp.answers = answers;
                resp.authorities = authorities;
            }
            _ => resp.metadata.response_code = ResponseCode::FormErr,
        }
        let bytes = resp.to_vec().ok()?;
        if udp && bytes.len() > usize::from(query.max_payload()) {
            return resp.truncate().to_vec().ok();
        }
        Some(bytes)
    }
}

/// Fake upstream resolver; see the module docs.
pub struct FakeUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl FakeUpstream {
    pub fn start(zone: Zone) -> FakeUpstream {
        let (udp, tcp) = bind_pair();
        let addr = udp.local_addr().expect("fake upstream: udp local_addr");
        udp.set_read_timeout(Some(POLL)).expect("fake upstream: udp timeout");
        tcp.set_nonblocking(true).expect("fake upstream: tcp nonblocking");
        let shared = Arc::new(Shared {
            zone,
            mode: Mutex::new(Mode::Normal),
            queries: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let (s1, s2) = (shared.clone(), shared.clone());
        let threads = vec![thread::spawn(move || udp_loop(&s1, &udp)), thread::spawn(move || accept_loop(&s2, &tcp))];
        FakeUpstream { addr, shared, threads }
    }
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    pub fn set_mode(&self, mode: Mode) {
        *lock(&self.shared.mode) = mode;
    }
    pub fn queries(&self) -> Vec<(String, RecordType)> {
        lock(&self.shared.queries).clone()
    }
    pub fn query_count(&self) -> usize {
        lock(&self.shared.queries).len()
    }
    pub fn saw(&self, name: &str) -> bool {
        let name = normalize(name);
        lock(&self.shared.queries).iter().any(|(n, _)| *n == name)
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn bind_pair() -> (UdpSocket, TcpListener) {
    for _ in 0..20 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("fake upstream: bind udp");
        let addr = udp.local_addr().expect("fake upstream: udp local_addr");
        if let Ok(tcp) = TcpListener::bind(addr) {
            return (udp, tcp);
        }
    }
    panic!("fake upstream: could not bind UDP and TCP on the same port after 20 tries");
}

/// Joins finished threads; with `all`, waits for every one.
fn reap(handles: &mut Vec<JoinHandle<()>>, all: bool) {
    let (done, busy): (Vec<_>, Vec<_>) = handles.drain(..).partition(|h| all || h.is_finished());
    handles.extend(busy);
    for h in done {
        let _ = h.join();
    }
}

fn udp_loop(shared: &Arc<Shared>, sock: &UdpSocket) {
    let mut buf = [0u8; 65535];
    let mut slow = Vec::new();
    while !shared.stop.load(Ordering::Relaxed) {
        let Ok((n, peer)) = sock.recv_from(&mut buf) else {
            continue; // timeout (poll the stop flag) or transient error
        };
        let packet = buf[..n].to_vec();
        let mode = *lock(&shared.mode);
        if matches!(mode, Mode::Slow(_)) {
            // Delay on its own thread so concurrent queries are all delayed in parallel.
            let (shared, Ok(sock)) = (shared.clone(), sock.try_clone()) else {
                continue;
            };
            slow.push(thread::spawn(move || {
                if let Some(reply) = shared.handle(&packet, true) {
                    let _ = sock.send_to(&reply, peer);
                }
            }));
            reap(&mut slow, false);
        } else if let Some(reply) = shared.handle(&packet, true) {
            let _ = sock.send_to(&reply, peer);
        }
    }
    reap(&mut slow, true);
}

fn accept_loop(shared: &Arc<Shared>, listener: &TcpListener) {
    let mut conns = Vec::new();
    while !shared.stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                let shared = shared.clone();
                conns.push(thread::spawn(move || tcp_conn(&shared, stream)));
            }
            Err(_) => thread::sleep(Duration::from_millis(10)), // WouldBlock: nothing pending
        }
        reap(&mut conns, false);
    }
    reap(&mut conns, true);
}

fn tcp_conn(shared: &Shared, mut stream: TcpStream) {
    if stream.set_nonblocking(false).is_err() || stream.set_read_timeout(Some(POLL)).is_err() {
        return;
    }
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    let mut last_activity = Instant::now();
    while !shared.stop.load(Ordering::Relaxed) && last_activity.elapsed() < TCP_IDLE_LIMIT {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                pending.extend_from_slice(&buf[..n]);
                last_activity = Instant::now();
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => return,
        }
        while pending.len() >= 2 {
            let len = usize::from(u16::from_be_bytes([pending[0], pending[1]]));
            if pending.len() < 2 + len {
                break;
            }
            let packet: Vec<u8> = pending.drain(..2 + len).skip(2).collect();
            if let Some(reply) = shared.handle(&packet, false) {
                let Ok(len) = u16::try_from(reply.len()) else {
                    continue;
                };
                let mut framed = len.to_be_bytes().to_vec();
                framed.extend_from_slice(&reply);
                if stream.write_all(&framed).is_err() {
                    return;
                }
            }
        }
    }
}
