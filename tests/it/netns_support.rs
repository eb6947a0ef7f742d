//! Network namespaces for end-to-end tests: creation with a Drop guard,
//! running code inside a namespace (a thread that `setns`es), and the fake
//! servers of the "outside" namespace. Addresses only from 198.18.0.0/15.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record};

/// Whether root-only tests can run here; prints why not, and panics
/// instead of skipping when `CI` is set.
pub fn root_or_skip(test: &str) -> bool {
    let missing = if !nix::unistd::geteuid().is_root() {
        Some("not root")
    } else if Command::new("nft").arg("--version").output().is_err() {
        Some("nft (nftables) not installed")
    } else if Command::new("ip").arg("-V").output().is_err() {
        Some("ip (iproute2) not installed")
    } else {
        None
    };
    match missing {
        None => true,
        Some(why) if std::env::var_os("CI").is_some() => panic!("{test}: cannot run in CI: {why}"),
        Some(why) => {
            eprintln!("skipping {test}: {why} (needs root, nftables and iproute2)");
            false
        }
    }
}

/// Runs `ip ARGS`, panicking with its stderr on failure.
pub fn ip(args: &[&str]) {
    run("ip", args);
}

pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program} {args:?}: {e}"));
    assert!(out.status.success(), "{program} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(role: &str) -> Netns {
        let name = format!("w{role}{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, cmd: &[&str]) -> String {
        let mut args = vec!["netns", "exec", &self.name];
        args.extend_from_slice(cmd);
        run("ip", &args)
    }

    /// Runs `f` on a thread whose network namespace is this one.
    pub fn spawn<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
    }

    /// Runs `f` inside the namespace and waits for it.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        self.spawn(f).join().expect("namespace thread panicked")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// A veth pair between two namespaces, with one address on each end.
/// Interfaces are named `<role><tag><pid>`, e.g. `gl1234`.
pub fn link(tag: &str, a: &Netns, a_addr: &str, b: &Netns, b_addr: &str) -> (String, String) {
    let id = std::process::id() % 100_000;
    let (ea, eb) = (format!("{}{tag}{id}", &a.name[1..2]), format!("{}{tag}{id}", &b.name[1..2]));
    ip(&["link", "add", &ea, "netns", &a.name, "type", "veth", "peer", "name", &eb, "netns", &b.name]);
    for (ns, dev, addr) in [(a, &ea, a_addr), (b, &eb, b_addr)] {
        ns.exec(&["ip", "addr", "add", addr, "dev", dev]);
        ns.exec(&["ip", "link", "set", dev, "up"]);
    }
    (ea, eb)
}

/// Background servers, stopped on drop.
pub struct Servers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Servers {
    pub fn new() -> Servers {
        Servers { stop: Arc::new(AtomicBool::new(false)), threads: Vec::new() }
    }

    /// A UDP DNS server on `addr` answering A records from `zone`, else NXDOMAIN.
    pub fn dns(&mut self, ns: &Netns, addr: SocketAddr, zone: HashMap<String, Ipv4Addr>) {
        let stop = self.stop.clone();
        self.threads.push(ns.spawn(move || {
            let sock = UdpSocket::bind(addr).expect("bind fake DNS");
            sock.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
            let mut buf = [0u8; 1500];
            while !stop.load(Ordering::Relaxed) {
                let Ok((n, peer)) = sock.recv_from(&mut buf) else { continue };
                if let Some(reply) = dns_reply(&buf[..n], &zone) {
                    let _ = sock.send_to(&reply, peer);
                }
            }
        }));
    }

    /// A TCP server on `addr`: each connection gets `reply` after `delay`
    /// (when `reply` is not empty), then is held open until the peer goes.
    pub fn tcp(&mut self, ns: &Netns, addr: SocketAddr, reply: &'static [u8], delay: Duration) {
        let stop = self.stop.clone();
        let (ready, bound) = std::sync::mpsc::channel();
        self.threads.push(ns.spawn(move || {
            let listener = match TcpListener::bind(addr) {
                Ok(l) => l,
                Err(e) => return ready.send(Err(e.to_string())).unwrap_or_default(),
            };
            listener.set_nonblocking(true).expect("nonblocking");
            let _ = ready.send(Ok(()));
            while !stop.load(Ordering::Relaxed) {
                let Ok((mut conn, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let stop = stop.clone();
                std::thread::spawn(move || serve(&mut conn, reply, delay, &stop));
            }
        }));
        let result = bound.recv_timeout(Duration::from_secs(5)).unwrap_or_else(|_| Err("no answer".into()));
        result.unwrap_or_else(|e| panic!("fake TCP server on {addr}: {e}"));
    }
}

fn serve(conn: &mut std::net::TcpStream, reply: &[u8], delay: Duration, stop: &AtomicBool) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = [0u8; 4096];
    let (mut replied, deadline) = (reply.is_empty(), Instant::now() + Duration::from_secs(10));
    let mut first = None;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        match conn.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => first = first.or(Some(Instant::now())),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return,
        }
        if !replied && first.is_some_and(|t| t.elapsed() >= delay) {
            replied = true;
            let _ = conn.write_all(reply);
        }
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn dns_reply(query: &[u8], zone: &HashMap<String, Ipv4Addr>) -> Option<Vec<u8>> {
    let q = Message::from_vec(query).ok()?;
    let question = q.queries.first()?.clone();
    let mut resp = Message::response(q.metadata.id, q.metadata.op_code);
    resp.metadata.message_type = MessageType::Response;
    resp.metadata.recursion_desired = q.metadata.recursion_desired;
    resp.queries = q.queries.clone();
    let name = question.name().to_ascii().trim_end_matches('.').to_ascii_lowercase();
    match zone.get(&name) {
        Some(addr) if question.query_type() == hickory_proto::rr::RecordType::A => {
            resp.answers.push(Record::from_rdata(question.name().clone(), 60, RData::A(A(*addr))));
        }
        Some(_) => {}
        None => resp.metadata.response_code = ResponseCode::NXDomain,
    }
    resp.to_vec().ok()
}

/// One DNS A query over UDP; the reply's rcode and addresses.
pub fn resolve(server: SocketAddr, name: &str) -> (ResponseCode, Vec<Ipv4Addr>) {
    let query = crate::support::build_query(name, hickory_proto::rr::RecordType::A, false);
    let sock = UdpSocket::bind("0.0.0.0:0").expect("bind client");
    sock.set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
    sock.send_to(&query.to_vec().expect("encode"), server).expect("send query");
    let mut buf = [0u8; 1500];
    let n = sock.recv(&mut buf).unwrap_or_else(|e| panic!("no DNS reply from {server} for {name}: {e}"));
    let msg = Message::from_vec(&buf[..n]).expect("parse reply");
    (msg.metadata.response_code, crate::support::a_records(&msg))
}
