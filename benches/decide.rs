//! `Policy::decide` on the shipped policy, on 1,000,000 synthetic domain
//! rules (a TOML policy: the name table) and on the shipped policy with a
//! 1,000,000-entry blocklist (the fingerprint set), and the load (parse +
//! compile) time of both large cases.
//!
//! Run: `cargo bench --bench decide`. Throughput is reported in lookups/s.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use warden::policy::{BUILTIN_POLICY, Blocklist, Policy, Subject, builtin, compile, compile_with};

/// 2024-10-01T00:00:00Z, inside the prohibition phase.
const AT: i64 = 1_727_740_800_000;

const SHIPPED_MIX: &[&str] = &[
    "s10.upd.kaspersky.com",
    "dnl-07.geo.kaspersky.com",
    "ksn-file-geo.kaspersky-labs.com",
    "activation-v2.kaspersky.com",
    "opentip.kaspersky.com",
    "www.example.com",
    "notkaspersky.com",
    "cdn.jsdelivr.net",
    "a.b.c.d.e.example.org",
    "mail.google.com",
];

fn synthetic(n: usize) -> String {
    let mut text = String::with_capacity(n * 24 + 512);
    text.push_str("[policy]\nid = \"synthetic\"\ntitle = \"t\"\nlegal_basis = \"b\"\nreference_url = \"u\"\n");
    text.push_str("[categories]\nlist = \"synthetic\"\n[[phases]]\nname = \"all\"\ndefault = \"block\"\n");
    text.push_str("[[rules]]\ncategory = \"list\"\ndomains = [\n");
    for i in 0..n {
        text.push_str(&format!("\"d{i:07}.blocked-example.net\",\n"));
    }
    text.push_str("]\n");
    text
}

fn bench_shipped(c: &mut Criterion) {
    let policy = builtin().expect("built-in policy");
    let mut g = c.benchmark_group("decide_shipped");
    g.throughput(Throughput::Elements(SHIPPED_MIX.len() as u64));
    g.bench_function("mixed_names", |b| {
        b.iter(|| {
            for name in SHIPPED_MIX {
                black_box(policy.decide(Subject::Name(black_box(name)), AT));
            }
        })
    });
    g.finish();
}

fn bench_million(c: &mut Criterion) {
    let text = synthetic(1_000_000);
    let started = Instant::now();
    let policy: Policy = compile(&text, "synthetic.toml").expect("synthetic policy");
    eprintln!(
        "load: 1,000,000 domain rules parsed and compiled in {:.2?}; match tables {:.1} MiB",
        started.elapsed(),
        policy.table_bytes() as f64 / (1024.0 * 1024.0)
    );
    let names: Vec<String> = (0..1000)
        .map(|i| match i % 4 {
            0 => format!("d{:07}.blocked-example.net", i * 997),
            1 => format!("www.d{:07}.blocked-example.net", i * 991),
            2 => format!("host{i}.allowed-example.org"),
            _ => format!("s{i}.upd.kaspersky.com"),
        })
        .collect();
    let mut g = c.benchmark_group("decide_1m_rules");
    g.throughput(Throughput::Elements(names.len() as u64));
    g.bench_function("mixed_names", |b| {
        b.iter(|| {
            for name in &names {
                black_box(policy.decide(Subject::Name(black_box(name)), AT));
            }
        })
    });
    g.finish();
    let list: String = (0..1_000_000).map(|i| format!("d{i:07}.blocked-example.net\n")).collect();
    let lists = [Blocklist { source: "list.txt", text: &list }];
    let started = Instant::now();
    let (listed, _) = compile_with(BUILTIN_POLICY, "builtin", &lists).expect("policy with a blocklist");
    eprintln!(
        "load: built-in policy + 1,000,000 blocklist entries compiled in {:.2?}; match tables {:.1} MiB ({} bytes)",
        started.elapsed(),
        listed.table_bytes() as f64 / (1024.0 * 1024.0),
        listed.table_bytes()
    );
    let mut g = c.benchmark_group("decide_1m_blocklist");
    g.throughput(Throughput::Elements(names.len() as u64));
    g.bench_function("mixed_names", |b| {
        b.iter(|| {
            for name in &names {
                black_box(listed.decide(Subject::Name(black_box(name)), AT));
            }
        })
    });
    g.finish();
    drop(listed);
    let mut g = c.benchmark_group("load");
    g.sample_size(10);
    g.bench_function("compile_1m_rules_toml", |b| {
        b.iter(|| black_box(compile(&text, "synthetic.toml").map(|p| p.rules().len())))
    });
    g.bench_function("compile_1m_blocklist_entries", |b| {
        b.iter(|| black_box(compile_with(BUILTIN_POLICY, "builtin", &lists).map(|(p, _)| p.rules().len())))
    });
    g.finish();
}

criterion_group!(benches, bench_shipped, bench_million);
criterion_main!(benches);
