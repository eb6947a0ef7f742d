//! The metrics endpoint after known traffic, and per-client rate limiting
//! under a bounded flood from one loopback address.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use crate::support::*;

/// `GET path` over HTTP/1.0: (status line, body).
pub fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).expect("connect to metrics");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    write!(s, "GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").expect("send request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read response");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.lines().next().unwrap_or("").to_owned(), body.to_owned())
}

/// The metrics address a warden logged.
pub fn metrics_addr(w: &Warden) -> SocketAddr {
    let rest = w.wait_log("metrics endpoint on http://");
    rest.split('/').next().and_then(|a| a.parse().ok()).expect("metrics address in log")
}

/// The value of one sample line (`name{labels}`), 0 when absent.
pub fn sample(body: &str, series: &str) -> f64 {
    body.lines().find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok())).unwrap_or(0.0)
}

#[test]
fn metrics_count_known_traffic() {
    let up = FakeUpstream::start(Zone::new().a("www.example.org", Ipv4Addr::new(198, 18, 0, 10)));
    let w = Warden::start(up.addr(), None, &["--metrics-listen", "127.0.0.1:0"]);
    let m = metrics_addr(&w);
    assert_eq!(http_get(m, "/healthz").0, "HTTP/1.0 200 OK");
    assert_eq!(http_get(m, "/readyz").0, "HTTP/1.0 200 OK");
    for _ in 0..3 {
        assert_eq!(rcode(&query_udp(w.addr, "s10.upd.kaspersky.com", RecordType::A)), ResponseCode::NXDomain);
    }
    query_udp(w.addr, "ksn-a.kaspersky-labs.com", RecordType::A);
    for _ in 0..2 {
        assert_eq!(a_records(&query_udp(w.addr, "www.example.org", RecordType::A)).len(), 1);
    }
    // The first s10 lookup and ksn-a at once; the two s10 repeats as one
    // record with count 2 when their 1 s window closes.
    let contacts = w.wait_records(3, |r| r["type"] == "contact");
    let attempts: u64 = contacts.iter().map(|r| r["count"].as_u64().unwrap_or(1)).sum();
    assert_eq!(attempts, 4, "every attempt counted: {contacts:?}");
    let repeat = contacts.iter().find(|r| r["count"] == 2).expect("a repeat record");
    assert_eq!(repeat["name"], "s10.upd.kaspersky.com");
    assert!(repeat["first_ts"].as_str() <= repeat["last_ts"].as_str(), "{repeat}");
    let (status, body) = http_get(m, "/metrics");
    assert_eq!(status, "HTTP/1.0 200 OK");
    assert_eq!(sample(&body, "warden_dns_queries_total{result=\"blocked\"}"), 4.0, "{body}");
    assert_eq!(sample(&body, "warden_dns_queries_total{result=\"allowed\"}"), 2.0, "{body}");
    assert_eq!(
        sample(&body, "warden_contacts_total{layer=\"dns\",category=\"update\",action=\"block\"}"),
        3.0,
        "{body}"
    );
    // The second lookup comes from a cache: the UDP worker's answer cache
    // when the first answer reached it in time, else the resolver's.
    let upstream = sample(&body, "warden_upstream_answers_total");
    assert_eq!(upstream + sample(&body, "warden_dns_answer_cache_hits_total"), 2.0, "{body}");
    assert_eq!(sample(&body, "warden_upstream_latency_seconds_count"), upstream, "{body}");
    assert_eq!(sample(&body, "warden_upstream_network_queries_total"), 1.0, "second lookup from cache: {body}");
    let ratio = if upstream == 2.0 { 0.5 } else { 0.0 };
    assert_eq!(sample(&body, "warden_upstream_cache_hit_ratio"), ratio, "{body}");
    assert!(sample(&body, "warden_audit_records_written_total") >= 3.0, "{body}");
    assert_eq!(sample(&body, "warden_audit_records_dropped_total"), 0.0);
    assert!(body.contains("warden_policy_info{id=\"us-bis-kaspersky-2024\",hash=\"sha256:"), "{body}");
    assert!(body.contains("phase=\"prohibition\""), "{body}");
    for zero in ["warden_packets_parsed_total{kind=\"sni\"} 0", "warden_nft_apply_errors_total 0"] {
        assert!(body.contains(zero), "{zero} missing: {body}");
    }
}

fn flood(from: Ipv4Addr, to: SocketAddr, count: usize, limit: Duration) {
    let sock = UdpSocket::bind((from, 0)).expect("bind flood socket");
    let query = build_query("www.example.org", RecordType::A, false).to_vec().expect("encode");
    let start = Instant::now();
    for _ in 0..count {
        if start.elapsed() > limit {
            break;
        }
        let _ = sock.send_to(&query, to);
    }
}

#[test]
fn a_flood_from_one_client_does_not_starve_another() {
    let up = FakeUpstream::start(Zone::new().a("www.example.org", Ipv4Addr::new(198, 18, 0, 10)));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("warden.toml");
    std::fs::write(&config, "[rate_limit]\nqps = 50\nburst = 50\nexempt = []\n").expect("write config");
    let args = ["--config", config.to_str().expect("utf-8"), "--metrics-listen", "127.0.0.1:0"];
    let w = Warden::start(up.addr(), None, &args);
    let target = w.addr;
    let flooder =
        std::thread::spawn(move || flood(Ipv4Addr::new(127, 0, 0, 2), target, 20_000, Duration::from_secs(4)));
    let good = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 3), 0)).expect("bind good client");
    good.set_read_timeout(Some(Duration::from_millis(500))).expect("timeout");
    let mut answered = 0;
    for _ in 0..30 {
        // Like a stub resolver: up to 3 tries, 500 ms apart. The kernel may
        // drop a datagram when the flood fills the socket buffer.
        let q = build_query("www.example.org", RecordType::A, false).to_vec().expect("encode");
        for _ in 0..3 {
            good.send_to(&q, target).expect("send");
            let mut buf = [0u8; 1500];
            if good.recv_from(&mut buf).is_ok_and(|(n, _)| buf[..2] == q[..2] && n > 12) {
                answered += 1;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    flooder.join().expect("flooder");
    assert_eq!(answered, 30, "the well-behaved client lost answers to the flood");
    let body = http_get(metrics_addr(&w), "/metrics").1;
    assert!(sample(&body, "warden_dns_rate_limited_total") > 1000.0, "{body}");
    assert!(sample(&body, "warden_dns_queries_total{result=\"rate_limited\"}") > 1000.0, "{body}");
}
