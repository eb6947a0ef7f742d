//! Packets per second through parse + decide (the capture thread's work:
//! `Inspector::inspect`) on a mixed stream under the shipped policy, to
//! compare with line rate: 1 Gbit/s of 64-byte frames is 1.49 Mpps.
//!
//! Run: `cargo bench --bench packet`. Throughput is reported in packets/s.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use warden::packet::flow::FlowLimits;
use warden::packet::testdata::*;
use warden::packet::{Inspector, PacketStats};

/// 2024-10-01T00:00:00Z, inside the prohibition phase.
const AT: i64 = 1_727_740_800_000;

/// 1000 frames: mostly ordinary TCP data and ACKs (as on a real LAN), with
/// SYNs, UDP, DNS queries to another resolver, ClientHellos (ordinary and
/// vendor), HTTP requests and packets to a vendor network.
fn mixed_stream() -> Vec<Vec<u8>> {
    let server = |i: usize| Ipv4Addr::new(198, 19, (i / 250) as u8, (i % 250) as u8);
    let vendor = Ipv4Addr::new(77, 74, 177, 10);
    let hello = |name: &str| client_hello(&[(0x0a0a, vec![]), (0x0033, vec![0x11; 1200]), sni_ext(name)]);
    let (ordinary_hello, vendor_hello) = (hello("www.example.com"), hello("s10.upd.kaspersky.com"));
    let http = b"GET /index.html HTTP/1.1\r\nHost: www.example.org\r\nAccept: */*\r\n\r\n".to_vec();
    let data = vec![0x42u8; 1200];
    (0..1000)
        .map(|i| {
            let (sport, dst) = (10_000 + i as u16, server(i));
            let tcp =
                |flags, payload: &[u8]| ipv4_frame(CLIENT, dst, 6, &tcp_segment(sport, 443, 1, 1, flags, payload));
            match i % 20 {
                0 => tcp(0x02, b""),
                1 => tcp(0x18, &ordinary_hello),
                2 if i % 100 == 2 => tcp(0x18, &vendor_hello),
                3 => ipv4_frame(CLIENT, PUBLIC_DNS, 17, &udp(sport, 53, &dns_query("www.example.com"))),
                4 if i % 100 == 4 => {
                    ipv4_frame(CLIENT, PUBLIC_DNS, 17, &udp(sport, 53, &dns_query("ksn.kaspersky-labs.com")))
                }
                5 => ipv4_frame(CLIENT, dst, 6, &tcp_segment(sport, 80, 1, 1, 0x18, &http)),
                6 => ipv4_frame(CLIENT, dst, 17, &udp(sport, 443, &data[..1000])),
                7 if i % 100 == 7 => ipv4_frame(CLIENT, vendor, 6, &tcp_segment(sport, 443, 1, 1, 0x02, b"")),
                8..=12 => tcp(0x10, b""),
                _ => tcp(0x18, &data),
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let policy = Arc::new(ArcSwap::from_pointee(warden::policy::builtin().expect("built-in policy")));
    let stream = mixed_stream();
    let mut inspector = Inspector::new(policy, vec![], FlowLimits::default(), Arc::new(PacketStats::default()));
    let mut events = Vec::new();
    let mut group = c.benchmark_group("packet");
    group.throughput(Throughput::Elements(stream.len() as u64));
    group.bench_function("parse+decide mixed 1000 frames", |b| {
        b.iter(|| {
            for frame in &stream {
                inspector.inspect(black_box(frame), AT, &mut events);
            }
            black_box(events.len());
            events.clear();
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
