//! Audit log throughput: records/s written by the writer thread with the
//! default fsync policy (write + fdatasync once per second), and records/s
//! read by `summary`, `verify`, `hosts` and `timeline` over a generated
//! log, on every core and (`*_one_thread`) on the calling thread only.
//! After the criterion runs, the review bench prints the CPU time each
//! review takes per record (from `/proc/self/stat`): what a record costs
//! when other work on the machine makes wall-clock figures noisy.
//!
//! Run: `cargo bench --bench audit`. The review log has 1,000,000 records
//! by default; `WARDEN_BENCH_RECORDS=10000000 cargo bench --bench audit`
//! generates the 10,000,000-record log (about 4 GB in the temp directory);
//! `WARDEN_BENCH_RECORDS=0` skips the review benches (the writer's alone,
//! without generating two logs first).
//! Under `cargo test` the benches run once on a tiny log.

use std::hint::black_box;
use std::io::{BufWriter, Write};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use warden::audit::review::rec::Filter;
use warden::audit::review::timeline::Bucket;
use warden::audit::review::{Reading, hosts, summary, timeline, verify};
use warden::audit::{AuditConfig, AuditHandle, Contact, GENESIS, Layer, Record, check_line, encode, spawn};
use warden::policy::Action;

/// Whether criterion is measuring (`cargo bench`) rather than testing.
fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn records_for_review() -> u64 {
    if !measuring() {
        return 1_000;
    }
    std::env::var("WARDEN_BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000)
}

const NAMES: &[(&str, &str)] = &[
    ("s10.upd.kaspersky.com", "update"),
    ("dnl-07.geo.kaspersky.com", "update"),
    ("ksn-file-geo.kaspersky-labs.com", "telemetry"),
    ("activation-v2.kaspersky.com", "activation"),
    ("www.kaspersky.com", "web"),
];

/// Record `i` of a log: its client cycles through 262,144 addresses (a
/// client's rows are far apart: the worst case for `hosts`).
fn contact(i: u64, ts: DateTime<Utc>) -> Record {
    contact_of(i, i & 0x3_ffff, ts)
}

/// Record `i`, from client number `client`.
fn contact_of(i: u64, client: u64, ts: DateTime<Utc>) -> Record {
    let client = IpAddr::from([10, (client >> 16) as u8 & 3, (client >> 8) as u8, client as u8]);
    let (name, category) = NAMES[(i % NAMES.len() as u64) as usize];
    Record::contact(ts, client, if i.is_multiple_of(7) { Layer::Sni } else { Layer::Dns })
        .with_name(name)
        .with_qtype("A")
        .with_verdict(Action::Block, category, "domain:kaspersky.com", "prohibition")
        .with_policy("us-bis-kaspersky-2024", "sha256:50d858e0985ecc7f60418aaf0cc5ab587f42c2570a884095a9e8ccacd0f6545c")
}

/// Writes `n` chained contact records, one every 10 ms from 2024-09-28,
/// from `clients` clients (0: the 262,144 of [`contact`]), each seen
/// throughout the log.
fn generate(path: &Path, n: u64, clients: u64) {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path).expect("create"));
    let mut prev = GENESIS.to_owned();
    let t0: DateTime<Utc> = "2024-09-28T00:00:00Z".parse().expect("t0");
    for seq in 1..=n {
        let ts = t0 + chrono::Duration::milliseconds(seq as i64 * 10);
        let record = match clients {
            0 => contact(seq, ts),
            c => contact_of(seq, seq.wrapping_mul(7919) % c, ts),
        };
        let line = encode(&record, seq, &prev, "gw1").expect("encode");
        prev = check_line(&line).expect("check").hash;
        out.write_all(line.as_bytes()).expect("write");
    }
    out.flush().expect("flush");
}

/// Wall time of `iters` runs, each: start a writer on a fresh file, submit
/// `n` records with `submit(handle, i)`, stop the writer (final fsync).
fn time_writes(iters: u64, n: u64, submit: impl Fn(&AuditHandle, usize)) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let dir = tempfile::tempdir().expect("tempdir");
        let config =
            AuditConfig { channel_capacity: n as usize + 16, ..AuditConfig::new(dir.path().join("a.jsonl"), "gw1") };
        let start = Instant::now();
        let (handle, writer) = spawn(config).expect("spawn");
        for i in 0..n as usize {
            submit(&handle, i);
        }
        drop(handle);
        let summary = writer.finish().expect("finish");
        total += start.elapsed();
        assert_eq!(summary.written, n);
    }
    total
}

fn bench_write(c: &mut Criterion) {
    const N: u64 = 200_000;
    let n = if measuring() { N } else { 1_000 };
    let mut g = c.benchmark_group("audit_write");
    g.throughput(Throughput::Elements(n)).sample_size(10).measurement_time(Duration::from_secs(20));
    let record = contact(1, Utc::now());
    g.bench_function("submit_to_disk_default_fsync", |b| {
        b.iter_custom(|iters| {
            time_writes(iters, n, |handle, _| {
                handle.submit(record.clone());
            })
        })
    });
    // The DNS path: a contact event per query (built on the submitting
    // thread, as the UDP worker does), encoded by the writer from the
    // policy's strings.
    let policy = Arc::new(warden::policy::builtin().expect("builtin policy"));
    let now = policy.prohibition_start().expect("prohibition") + 1_000;
    let names: Vec<String> = (0..1024).map(|i| format!("d{i:07}.dnl-{:02}.geo.kaspersky.com", i % 20)).collect();
    let verdicts: Vec<_> = names.iter().map(|n| policy.decide(warden::policy::Subject::Name(n), now)).collect();
    g.bench_function("submit_contact_to_disk_default_fsync", |b| {
        b.iter_custom(|iters| {
            time_writes(iters, n, |handle, i| {
                let (name, verdict) = (&names[i % names.len()], verdicts[i % names.len()]);
                let client = IpAddr::from([10, 0, (i >> 8) as u8, i as u8]);
                let contact = Contact::new(Arc::clone(&policy), verdict, now, client, Layer::Dns).with_name(name);
                handle.submit_contact(Arc::new(contact));
            })
        })
    });
    g.finish();
}

/// Clients of the second review log: a site's network rather than the
/// 262,144 of the first.
const FEW_CLIENTS: u64 = 1_000;

fn bench_review(c: &mut Criterion) {
    let n = records_for_review();
    if n == 0 {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, few_path) = (dir.path().join("audit.jsonl"), dir.path().join("few-clients.jsonl"));
    let t = Instant::now();
    generate(&path, n, 0);
    generate(&few_path, n, FEW_CLIENTS);
    eprintln!(
        "generated 2 x {n} records ({} bytes each) in {:.1?}",
        std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
        t.elapsed()
    );
    let (files, few) = ([path], [few_path]);
    let mut g = c.benchmark_group("audit_review");
    g.throughput(Throughput::Elements(n)).sample_size(10);
    let prohibition = Some("2024-09-29T04:00:00.000Z");
    let filter = Filter::default();
    for (suffix, reading) in [("", Reading::auto()), ("_one_thread", Reading::sequential())] {
        g.bench_function(format!("summary{suffix}"), |b| {
            b.iter(|| black_box(summary::summarize_with(&files, prohibition, reading).expect("summary")))
        });
        g.bench_function(format!("verify{suffix}"), |b| {
            b.iter(|| black_box(verify::verify_with(&files, None, reading).expect("verify")))
        });
    }
    g.bench_function("hosts", |b| {
        b.iter(|| black_box(hosts::hosts(&files, prohibition, &filter, None).expect("hosts")))
    });
    g.bench_function(format!("hosts_{FEW_CLIENTS}_clients"), |b| {
        b.iter(|| black_box(hosts::hosts(&few, prohibition, &filter, None).expect("hosts")))
    });
    g.bench_function("timeline", |b| {
        b.iter(|| black_box(timeline::timeline(&files, Bucket::Hour, &filter, prohibition).expect("timeline")))
    });
    g.finish();
    if measuring() {
        cpu_per_record(&files, &few, n);
    }
}

/// CPU time (user and system, all threads) of this process so far; Linux
/// counts it in ticks of 10 ms.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Prints wall and CPU time per record of each review, best of three.
fn cpu_per_record(files: &[std::path::PathBuf], few: &[std::path::PathBuf], n: u64) {
    let prohibition = Some("2024-09-29T04:00:00.000Z");
    let filter = Filter::default();
    let one = Reading::sequential();
    let few_name = format!("hosts_{FEW_CLIENTS}_clients");
    let runs: [(&str, &dyn Fn()); 7] = [
        ("summary", &|| drop(black_box(summary::summarize(files, prohibition)))),
        ("verify", &|| drop(black_box(verify::verify(files, None)))),
        ("summary_one_thread", &|| drop(black_box(summary::summarize_with(files, prohibition, one)))),
        ("verify_one_thread", &|| drop(black_box(verify::verify_with(files, None, one)))),
        ("hosts", &|| drop(black_box(hosts::hosts(files, prohibition, &filter, None)))),
        (&few_name, &|| drop(black_box(hosts::hosts(few, prohibition, &filter, None)))),
        ("timeline", &|| drop(black_box(timeline::timeline(files, Bucket::Hour, &filter, prohibition)))),
    ];
    for (name, run) in runs {
        let mut best = (Duration::MAX, Duration::MAX);
        for _ in 0..3 {
            let (cpu, wall) = (cpu_time(), Instant::now());
            run();
            let (wall, cpu) = (wall.elapsed(), cpu_time().zip(cpu).map(|(b, a)| b - a).unwrap_or_default());
            best = (best.0.min(wall), best.1.min(cpu));
        }
        let per = |d: Duration| d.as_nanos() as f64 / n as f64;
        eprintln!(
            "audit_review/{name}: {:.0} ns wall, {:.0} ns CPU per record ({:.2} M records/s per CPU-second)",
            per(best.0),
            per(best.1),
            1e3 / per(best.1)
        );
    }
}

criterion_group!(benches, bench_write, bench_review);
criterion_main!(benches);
