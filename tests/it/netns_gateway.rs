//! End to end, as root: client ─ gateway (the real `warden run` with DNS,
//! capture and nftables) ─ outside (fake upstream, fake public resolver,
//! fake vendor HTTPS/HTTP, a vendor-network host, an ordinary server).
//! Only 198.18.0.0/15 addresses, in namespaces this test creates.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use serde_json::Value;

use crate::netns_support::{Netns, Servers, link, resolve, root_or_skip};
use crate::support::read_records;
use crate::support::warden::bin;

const GW: &str = "198.18.0.1";
const UPSTREAM: &str = "198.18.1.53:53";
const PUBLIC_DNS: &str = "198.18.1.54:53";
const CDN: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 80); // serves the vendor name, not a vendor network
const ORDINARY: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 90);
const VENDOR_NET_HOST: Ipv4Addr = Ipv4Addr::new(198, 19, 2, 20);
const VENDOR_NAME: &str = "s10.upd.kaspersky.com";

const POLICY: &str = r#"
[policy]
id = "netns-test"
title = "test"
legal_basis = "test"
reference_url = "https://example.invalid/"
[categories]
update = "updates"
vendor-network = "vendor prefixes (test: 198.19.2.0/24)"
[[phases]]
name = "prohibition"
default = "block"
prohibition = true
[[rules]]
category = "update"
domains = ["kaspersky.com"]
hosts = ["s10.upd.kaspersky.com"]
[[rules]]
category = "vendor-network"
networks = ["198.19.2.0/24"]
"#;

const CONFIG: &str = "[packet]\naggregate_window_ms = 1000\n[enforce]\nrequired = true\nlearn_interval_s = 1\n";

struct Net {
    client: Netns,
    gateway: Netns,
    outside: Netns,
    lan: String,
}

fn network() -> Net {
    let (client, gateway, outside) = (Netns::new("c"), Netns::new("g"), Netns::new("o"));
    let (_, lan) = link("l", &client, "198.18.0.2/24", &gateway, "198.18.0.1/24");
    let (wan, dev) = link("w", &gateway, "198.18.1.1/24", &outside, "198.18.1.2/24");
    for extra in
        ["198.18.1.53/32", "198.18.1.54/32", "198.18.1.80/32", "198.18.1.90/32", "198.19.2.20/32", "198.19.2.21/32"]
    {
        outside.exec(&["ip", "addr", "add", extra, "dev", &dev]);
    }
    client.exec(&["ip", "route", "add", "default", "via", GW]);
    outside.exec(&["ip", "route", "add", "198.18.0.0/24", "via", "198.18.1.1"]);
    gateway.exec(&["ip", "route", "add", "198.19.2.0/24", "via", "198.18.1.2", "dev", &wan]);
    gateway.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    Net { client, gateway, outside, lan }
}

fn servers(outside: &Netns) -> Servers {
    let zone: HashMap<String, Ipv4Addr> = [
        (VENDOR_NAME.to_owned(), CDN),
        ("dnl-01.geo.kaspersky.com".to_owned(), CDN),
        ("kaspersky.com".to_owned(), Ipv4Addr::new(198, 19, 2, 21)),
        ("ordinary.test".to_owned(), ORDINARY),
    ]
    .into();
    let mut s = Servers::new();
    s.dns(outside, UPSTREAM.parse().expect("addr"), zone.clone());
    s.dns(outside, PUBLIC_DNS.parse().expect("addr"), zone);
    let ok: &'static [u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
    // The vendor's HTTP answer is delayed: warden watches a copy of the
    // traffic and cannot win a race against a response already on the wire.
    s.tcp(outside, SocketAddr::from((CDN, 80)), ok, Duration::from_millis(300));
    s.tcp(outside, SocketAddr::from((CDN, 443)), b"", Duration::ZERO);
    s.tcp(outside, SocketAddr::from((ORDINARY, 80)), ok, Duration::ZERO);
    s.tcp(outside, SocketAddr::from((ORDINARY, 443)), b"", Duration::ZERO);
    s.tcp(outside, SocketAddr::from((VENDOR_NET_HOST, 443)), b"", Duration::ZERO);
    s
}

/// `warden run` inside the gateway namespace; waits for "packet capture started".
fn start_warden(net: &Net, dir: &std::path::Path) -> (Child, mpsc::Receiver<String>) {
    std::fs::write(dir.join("policy.toml"), POLICY).expect("write policy");
    std::fs::write(dir.join("warden.toml"), CONFIG).expect("write config");
    let d = |f: &str| dir.join(f).display().to_string();
    let args = [
        "run",
        "--listen",
        "198.18.0.1:53",
        "--upstream",
        UPSTREAM,
        "--host",
        "test-gw",
        "--allow-client",
        "198.18.0.0/24",
    ];
    let mut child = Command::new("ip")
        .args(["netns", "exec", &net.gateway.name, bin()])
        .args(args)
        .args(["--policy", &d("policy.toml"), "--audit-log", &d("audit.jsonl"), "--config", &d("warden.toml")])
        .args(["--capture", &net.lan, "--mode", "gateway"])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn warden");
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("warden: {line}");
            let _ = tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("packet capture started") => break,
            Ok(line) if line.contains("ERROR") => panic!("warden failed: {line}"),
            Ok(_) => {}
            Err(_) => {
                let _ = child.kill();
                panic!("warden did not start its packet layer within 20 s");
            }
        }
    }
    (child, rx)
}

/// Sends a ClientHello for `sni` in two TCP segments and reports how the
/// connection ended: "reset", "closed" or "open" (nothing within 2 s).
fn tls_attempt(server: Ipv4Addr, sni: &str) -> &'static str {
    let hello = warden::packet::testdata::client_hello(&[
        (0x0a0a, vec![]),
        (0x0033, vec![0x11; 1400]), // a post-quantum-sized key share
        warden::packet::testdata::sni_ext(sni),
        (0x1a1a, vec![0]),
    ]);
    let target = SocketAddr::from((server, 443));
    let mut conn = match TcpStream::connect_timeout(&target, Duration::from_secs(3)) {
        Ok(c) => c,
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => return "refused",
        Err(e) => panic!("connect {target}: {e}"),
    };
    conn.set_nodelay(true).expect("nodelay");
    let (a, b) = hello.split_at(900);
    conn.write_all(a).expect("first segment");
    std::thread::sleep(Duration::from_millis(50));
    let _ = conn.write_all(b);
    ending(&mut conn)
}

fn http_attempt(server: Ipv4Addr, host: &str, path: &str) -> (&'static str, String) {
    let mut conn =
        TcpStream::connect_timeout(&SocketAddr::from((server, 80)), Duration::from_secs(3)).expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: test\r\n\r\n");
    conn.write_all(req.as_bytes()).expect("send request");
    let mut got = Vec::new();
    conn.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
    let end = loop {
        let mut buf = [0u8; 512];
        match conn.read(&mut buf) {
            Ok(0) => break "closed",
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break "reset",
            Err(_) => break "open",
        }
    };
    (end, String::from_utf8_lossy(&got).into_owned())
}

fn ending(conn: &mut TcpStream) -> &'static str {
    conn.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
    let mut buf = [0u8; 64];
    match conn.read(&mut buf) {
        Ok(0) => "closed",
        Ok(_) => "data",
        Err(e) if e.kind() == ErrorKind::ConnectionReset => "reset",
        Err(_) => "open",
    }
}

#[test]
fn gateway_blocks_bypass_by_dns_ip_sni_and_host_and_logs_each_contact_once() {
    if !root_or_skip("netns_gateway") {
        return;
    }
    let net = network();
    let _servers = servers(&net.outside);
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut warden, _log) = start_warden(&net, dir.path());

    let outcome = net.client.run(move || {
        let gw_dns: SocketAddr = "198.18.0.1:53".parse().expect("addr");
        let blocked = resolve(gw_dns, VENDOR_NAME);
        let vendor_net = SocketAddr::from((VENDOR_NET_HOST, 443));
        let refused: Vec<_> = (0..3)
            .map(|_| TcpStream::connect_timeout(&vendor_net, Duration::from_secs(3)).err().map(|e| e.kind()))
            .collect();
        let bypass = resolve(PUBLIC_DNS.parse().expect("addr"), VENDOR_NAME);
        let _again = resolve(PUBLIC_DNS.parse().expect("addr"), VENDOR_NAME);
        let tls: Vec<_> = (0..3).map(|_| tls_attempt(CDN, VENDOR_NAME)).collect();
        let http = http_attempt(CDN, "dnl-01.geo.kaspersky.com", "/updaters/updater.xml.dif");
        let ordinary_dns = resolve(gw_dns, "ordinary.test");
        let ordinary_http = http_attempt(ORDINARY, "ordinary.test", "/");
        let ordinary_tls = tls_attempt(ORDINARY, "ordinary.test");
        (blocked, refused, bypass, tls, http, ordinary_dns, ordinary_http, ordinary_tls)
    });
    let (blocked, refused, bypass, tls, http, ordinary_dns, ordinary_http, ordinary_tls) = outcome;
    assert_eq!(blocked.0, ResponseCode::NXDomain, "vendor name via the gateway's DNS");
    assert_eq!(refused, vec![Some(ErrorKind::ConnectionRefused); 3], "TCP to a vendor network address");
    assert_eq!(bypass, (ResponseCode::NoError, vec![CDN]), "the fake public resolver answers (bypass)");
    // The first attempt is cut by SNI (reset); once the flow is in the
    // blocked-flows set (tens of ms later) retries are refused at once.
    assert_eq!(tls[0], "reset", "HTTPS to the vendor name is cut by SNI: {tls:?}");
    assert!(tls.iter().all(|t| *t == "reset" || *t == "refused"), "{tls:?}");
    let cut_by_sni = tls.iter().filter(|t| **t == "reset").count() as u64;
    assert_eq!(http.0, "reset", "plain HTTP with a vendor Host is cut, got {:?}", http.1);
    assert_eq!(ordinary_dns, (ResponseCode::NoError, vec![ORDINARY]));
    assert!(ordinary_http.1.ends_with("hello"), "ordinary HTTP works: {ordinary_http:?}");
    assert_eq!(ordinary_tls, "open", "ordinary TLS is not touched");

    let listed = net.gateway.exec(&["nft", "list", "table", "inet", "warden"]);
    eprintln!("{listed}");
    assert!(listed.contains("198.19.2.21"), "learned vendor address (inside the vendor network)");
    assert!(!listed.contains("198.18.1.80 ") || listed.contains("flows4"), "CDN address never learned");
    stop(&mut warden);
    let mut gone = Command::new("ip");
    gone.args(["netns", "exec", &net.gateway.name, "nft", "list", "table", "inet", "warden"]);
    assert!(!gone.output().expect("nft").status.success(), "table deleted on clean shutdown");
    check_audit(&read_records(&dir.path().join("audit.jsonl")), cut_by_sni);
}

fn stop(child: &mut Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    for _ in 0..150 {
        if let Ok(Some(status)) = child.try_wait() {
            assert!(status.success(), "warden exit status {status}");
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    panic!("warden did not stop within 15 s");
}

fn check_audit(records: &[Value], sni_count: u64) {
    let contacts: Vec<&Value> = records.iter().filter(|r| r["type"] == "contact").collect();
    for c in &contacts {
        eprintln!("{c}");
    }
    let find = |layer: &str, name: Option<&str>| -> Vec<&Value> {
        let hit = |c: &&&Value| c["layer"] == layer && name.is_none_or(|n| c["name"] == n);
        contacts.iter().filter(hit).copied().collect()
    };
    let one = |layer: &str, name: Option<&str>| -> &Value {
        let found = find(layer, name);
        assert_eq!(found.len(), 1, "exactly one {layer} record for {name:?}: {found:?}");
        found[0]
    };
    let dns = one("dns", Some(VENDOR_NAME));
    assert_eq!(dns["action"], "block");
    let ip = one("ip", None);
    assert_eq!((ip["dst"].as_str(), ip["enforced"].as_bool()), (Some("198.19.2.20"), Some(true)));
    assert_eq!(ip["count"], 3, "three refused attempts, one record: {ip}");
    assert!(ip["first_ts"].is_string() && ip["last_ts"].is_string());
    let bypass = one("dns-bypass", Some(VENDOR_NAME));
    assert_eq!((bypass["dst"].as_str(), bypass["count"].as_u64()), (Some("198.18.1.54"), Some(2)), "{bypass}");
    let sni = one("sni", Some(VENDOR_NAME));
    assert_eq!((sni["count"].as_u64(), sni["enforced"].as_bool()), (Some(sni_count), Some(true)), "{sni}");
    assert_eq!(sni["correlation"], bypass["correlation"], "lookup and SNI are one story");
    let http = one("http", Some("dnl-01.geo.kaspersky.com"));
    assert_ne!(http["correlation"], sni["correlation"], "another name is another story");
    assert_eq!((http["dst"].as_str(), http["enforced"].as_bool()), (Some("198.18.1.80"), Some(true)));
    assert!(find("sni", Some("ordinary.test")).is_empty() && find("http", Some("ordinary.test")).is_empty());
}
