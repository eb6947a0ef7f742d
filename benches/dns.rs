//! The UDP fast path in process: datagrams through parse, `decide`, the
//! repeat windows and the answer cache, answered into a worker's buffers,
//! a batch at a time as after a `recvmmsg`, without the sockets. The mix is
//! `bench/gen.py`'s: the shipped policy plus a 100,000-entry blocklist,
//! 25 % vendor names, 25 % listed names, 50 % allowed names answered from
//! the cache (10,000 names, A and AAAA); contacts go to a disabled audit
//! handle (the writer has its own bench in `audit`).
//!
//! Run: `cargo bench --bench dns`. Throughput is reported in queries/s.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use warden::audit::AuditHandle;
use warden::dns::harness::{CLIENT, FastPath, query};
use warden::policy::{BUILTIN_POLICY, Blocklist, compile_with};

const LISTED: usize = 100_000;
const ALLOWED: usize = 10_000;
const QUERIES: usize = 65_536;

fn synth(i: usize) -> String {
    format!("d{i:07}.blocked-example.net")
}

/// `gen.py`'s query mix, from a fixed pseudo-random sequence.
fn mix() -> Vec<Vec<u8>> {
    let vendor: Vec<String> = (0..20)
        .map(|i| format!("s{i:02}.upd.kaspersky.com"))
        .chain((0..20).map(|i| format!("dnl-{i:02}.geo.kaspersky.com")))
        .chain(["file", "url", "verdict", "info", "stat"].map(|s| format!("ksn-{s}-geo.kaspersky-labs.com")))
        .chain(["dc1.ksn.kaspersky-labs.com", "activation-v2.kaspersky.com", "crl.kaspersky.com"].map(String::from))
        .collect();
    let mut state = 42u64;
    let mut next = |n: usize| {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((state >> 33) as usize) % n
    };
    (0..QUERIES)
        .map(|i| {
            let qtype = if i % 2 == 0 { 1 } else { 28 };
            let name = match i % 4 {
                0 => vendor[next(vendor.len())].clone(),
                1 => synth(next(LISTED)),
                _ => format!("h{}.allowed.test", next(ALLOWED)),
            };
            query(i as u16, &name, qtype)
        })
        .collect()
}

fn bench_fast_path(c: &mut Criterion) {
    let list: String = (0..LISTED).map(|i| synth(i) + "\n").collect();
    let lists = [Blocklist { source: "bench.txt", text: &list }];
    let (policy, _) = compile_with(BUILTIN_POLICY, "builtin.toml", &lists).expect("policy");
    let allowed: Vec<String> = (0..ALLOWED).map(|i| format!("h{i}.allowed.test")).collect();
    let mut fast = FastPath::new(policy, AuditHandle::disabled(), &allowed);
    let datagrams = mix();
    assert_eq!(fast.run(&datagrams, 32, CLIENT), datagrams.len(), "every query is blocked or cached");
    let mut g = c.benchmark_group("dns_fast_path");
    g.throughput(Throughput::Elements(datagrams.len() as u64));
    for batch in [32, 8, 1] {
        g.bench_function(format!("batch_{batch}"), |b| b.iter(|| black_box(fast.run(&datagrams, batch, CLIENT))));
    }
    g.finish();
}

criterion_group!(benches, bench_fast_path);
criterion_main!(benches);
