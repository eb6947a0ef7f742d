//! `warden export` loaded into the real engines (unbound, dnsmasq, nft):
//! a vendor name refused, an exempt name and an ordinary name answered.
//! Engines run on loopback high ports with a FakeUpstream as forwarder.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

const AT: &str = "2025-01-01T00:00:00Z";
const VENDOR: &str = "s10.upd.kaspersky.com";
const EXEMPT: &str = "opentip.kaspersky.com";
const ORDINARY: &str = "www.example.org";

/// Whether `tool` is installed; skips with a reason, or fails under CI.
pub fn have(tool: &str, path: &str) -> bool {
    if Path::new(path).exists() {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "{tool} ({path}) is missing in CI: scripts/setup installs it");
    eprintln!("skipped: {tool} not installed ({path}); scripts/setup installs it");
    false
}

fn zone() -> Zone {
    Zone::new()
        .a(ORDINARY, Ipv4Addr::new(198, 18, 0, 10))
        .a(EXEMPT, Ipv4Addr::new(198, 18, 0, 11))
        .a(VENDOR, Ipv4Addr::new(198, 18, 0, 12))
}

fn export(format: &str) -> String {
    let out =
        Command::new(warden::bin()).args(["export", "--format", format, "--at", AT]).output().expect("run export");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 export")
}

fn free_port() -> u16 {
    for _ in 0..20 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = udp.local_addr().expect("addr").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port");
}

/// A running engine, killed on drop.
struct Engine(Child, SocketAddr);

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(cmd: &mut Command, port: u16) -> Engine {
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::inherit()).spawn().expect("spawn engine");
    let engine = Engine(child, SocketAddr::from(([127, 0, 0, 1], port)));
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if try_query_udp(engine.1, ORDINARY, RecordType::A, Duration::from_millis(300)).is_some() {
            return engine;
        }
    }
    panic!("engine on {} did not answer within 15 s", engine.1);
}

/// The vendor name refused (NXDOMAIN or a 0.0.0.0 sinkhole); the others answered.
fn assert_enforced(engine: &Engine, exempt_passes: bool) {
    let v = query_udp(engine.1, VENDOR, RecordType::A);
    let sinkholed = a_records(&v) == vec![Ipv4Addr::UNSPECIFIED];
    assert!(rcode(&v) == ResponseCode::NXDomain || sinkholed, "vendor name not refused: {v:?}");
    let o = query_udp(engine.1, ORDINARY, RecordType::A);
    assert_eq!(a_records(&o), vec![Ipv4Addr::new(198, 18, 0, 10)], "{o:?}");
    if exempt_passes {
        let e = query_udp(engine.1, EXEMPT, RecordType::A);
        assert_eq!(a_records(&e), vec![Ipv4Addr::new(198, 18, 0, 11)], "exempt name must pass: {e:?}");
    }
}

fn unbound(dir: &Path, upstream: SocketAddr, modules: &str, extra: &str) -> Engine {
    let port = free_port();
    let conf = format!(
        "server:\n  interface: 127.0.0.1\n  port: {port}\n  do-daemonize: no\n  use-syslog: no\n  logfile: \"\"\n  username: \"\"\n  chroot: \"\"\n  directory: \"{d}\"\n  pidfile: \"\"\n  num-threads: 1\n  do-not-query-localhost: no\n  access-control: 127.0.0.0/8 allow\n  module-config: \"{modules}\"\n{extra}\nforward-zone:\n  name: \".\"\n  forward-addr: 127.0.0.1@{up}\n",
        d = dir.display(),
        up = upstream.port()
    );
    let file = dir.join("unbound.conf");
    std::fs::write(&file, conf).expect("write unbound.conf");
    start(Command::new("/usr/sbin/unbound").arg("-d").arg("-c").arg(&file), port)
}

#[test]
fn unbound_local_zones_refuse_the_vendor() {
    if !have("unbound", "/usr/sbin/unbound") {
        return;
    }
    let up = FakeUpstream::start(zone());
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("warden.conf"), export("unbound")).expect("write export");
    let include = format!("include: \"{}\"", dir.path().join("warden.conf").display());
    let engine = unbound(dir.path(), up.addr(), "iterator", &include);
    assert_enforced(&engine, true);
}

#[test]
fn unbound_rpz_refuses_the_vendor() {
    if !have("unbound", "/usr/sbin/unbound") {
        return;
    }
    let up = FakeUpstream::start(zone());
    let dir = tempfile::tempdir().expect("tempdir");
    let zonefile = dir.path().join("warden.rpz");
    std::fs::write(&zonefile, export("rpz")).expect("write export");
    let rpz = format!("rpz:\n  name: \"rpz.warden.\"\n  zonefile: \"{}\"\n  rpz-log: yes", zonefile.display());
    let engine = unbound(dir.path(), up.addr(), "respip iterator", &rpz);
    assert_enforced(&engine, true);
}

fn dnsmasq(dir: &Path, upstream: SocketAddr, args: &[String]) -> Engine {
    let port = free_port();
    let mut cmd = Command::new("/usr/sbin/dnsmasq");
    cmd.args(["-k", "--no-resolv", "--no-hosts", "--bind-interfaces", "--listen-address=127.0.0.1", "--pid-file="])
        .arg(format!("--port={port}"))
        .arg(format!("--server=127.0.0.1#{}", upstream.port()))
        .arg("--conf-file=/dev/null")
        .args(args)
        .current_dir(dir);
    start(&mut cmd, port)
}

#[test]
fn dnsmasq_address_lines_refuse_the_vendor() {
    if !have("dnsmasq", "/usr/sbin/dnsmasq") {
        return;
    }
    let up = FakeUpstream::start(zone());
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("warden.conf");
    std::fs::write(&conf, export("dnsmasq")).expect("write export");
    let engine = dnsmasq(dir.path(), up.addr(), &[format!("--conf-file={}", conf.display())]);
    assert_enforced(&engine, true);
}

#[test]
fn a_hosts_file_sinkholes_the_vendor_in_dnsmasq() {
    if !have("dnsmasq", "/usr/sbin/dnsmasq") {
        return;
    }
    let up = FakeUpstream::start(zone().a("upd.kaspersky.com", Ipv4Addr::new(198, 18, 0, 13)));
    let dir = tempfile::tempdir().expect("tempdir");
    let hosts = dir.path().join("warden.hosts");
    std::fs::write(&hosts, export("hosts")).expect("write export");
    let engine = dnsmasq(dir.path(), up.addr(), &[format!("--addn-hosts={}", hosts.display())]);
    // hosts files match exact names only: the rule's own name is sinkholed.
    let v = query_udp(engine.1, "upd.kaspersky.com", RecordType::A);
    assert_eq!(a_records(&v), vec![Ipv4Addr::UNSPECIFIED], "{v:?}");
    let o = query_udp(engine.1, ORDINARY, RecordType::A);
    assert_eq!(a_records(&o), vec![Ipv4Addr::new(198, 18, 0, 10)]);
}

#[test]
fn the_nft_export_is_a_valid_ruleset() {
    if !have("nft", "/usr/sbin/nft") {
        return;
    }
    if !nix::unistd::Uid::effective().is_root() {
        assert!(std::env::var_os("CI").is_none(), "CI runs as root: `nft -c` needs CAP_NET_ADMIN");
        eprintln!("skipped: `nft -c -f` needs root");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("warden.nft");
    let text = export("nft");
    assert!(text.contains("77.74.176.0/21") || text.contains("elements"), "{text}");
    std::fs::write(&file, text).expect("write export");
    let out = Command::new("/usr/sbin/nft").arg("-c").arg("-f").arg(&file).output().expect("run nft");
    assert!(out.status.success(), "nft -c rejected the export: {}", String::from_utf8_lossy(&out.stderr));
}
