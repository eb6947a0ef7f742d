//! Faults around the daemon: an upstream that answers too late or with
//! garbage, `kill -9` while the audit log is busy, and an audit directory
//! that fills up. Every loop is bounded in count and time. (Upstream down is
//! in `dns_blocking`; a policy file replaced by garbage in `reload`; a
//! flooding client in `metrics`.)

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::metrics::{http_get, metrics_addr, sample};
use crate::support::*;

const UPSTREAM_TIMEOUT_MS: u64 = 300;
/// What a SERVFAIL may take beyond the configured upstream timeout.
const SLACK: Duration = Duration::from_millis(700);
/// What a refusal of a blocked name may take, upstream trouble or not.
const PROMPT: Duration = Duration::from_millis(250);

fn zone() -> Zone {
    Zone::new().a("www.example.test", Ipv4Addr::new(198, 18, 1, 1)).a("api.example.test", Ipv4Addr::new(198, 18, 1, 2))
}

/// A config file in `dir` with the given TOML.
fn config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("warden.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

fn start(up: &FakeUpstream, conf_dir: &tempfile::TempDir, text: &str, extra: &[&str]) -> Warden {
    let conf = config(conf_dir.path(), text);
    let mut args = vec!["--config", conf.to_str().expect("utf-8 path")];
    args.extend_from_slice(extra);
    Warden::start(up.addr(), None, &args)
}

/// Blocked names are refused promptly while lookups of other names wait on
/// the faulty upstream; those get SERVFAIL within the configured bound; the
/// service recovers when the upstream does.
fn upstream_fault(mode: Mode) {
    let up = FakeUpstream::start(zone());
    let conf_dir = tempfile::tempdir().expect("tempdir");
    let w = start(&up, &conf_dir, &format!("[dns]\nupstream_timeout = {UPSTREAM_TIMEOUT_MS}\n"), &[]);
    up.set_mode(mode);
    let bound = Duration::from_millis(UPSTREAM_TIMEOUT_MS) + SLACK;
    // Eight lookups stuck on the upstream at once, each timed.
    let addr = w.addr;
    let stuck: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                let started = Instant::now();
                let name = format!("host{i}.example.test");
                let msg = try_query_udp(addr, &name, RecordType::A, Duration::from_secs(5));
                (msg.map(|m| rcode(&m)), started.elapsed())
            })
        })
        .collect();
    for i in 0..20 {
        let started = Instant::now();
        let name = format!("n{i}.upd.kaspersky.com");
        let msg = query_udp(w.addr, &name, RecordType::A);
        assert_eq!(rcode(&msg), ResponseCode::NXDomain, "{name}");
        assert!(started.elapsed() < PROMPT, "{name} refused after {:?} ({mode:?} upstream)", started.elapsed());
    }
    let mut slowest = Duration::ZERO;
    for handle in stuck {
        let (code, took) = handle.join().expect("lookup thread");
        slowest = slowest.max(took);
        assert_eq!(code, Some(ResponseCode::ServFail), "{mode:?} upstream after {took:?}");
        assert!(took < bound, "SERVFAIL after {took:?}, bound {bound:?} ({mode:?} upstream)");
    }
    eprintln!("{mode:?} upstream: slowest SERVFAIL after {slowest:?} (timeout {UPSTREAM_TIMEOUT_MS} ms)");
    up.set_mode(Mode::Normal);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let msg = try_query_udp(w.addr, "api.example.test", RecordType::A, Duration::from_secs(2));
        if msg.as_ref().is_some_and(|m| a_records(m) == [Ipv4Addr::new(198, 18, 1, 2)]) {
            break;
        }
        assert!(Instant::now() < deadline, "no recovery after the {mode:?} upstream returned: {msg:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_slow_upstream_gets_servfail_within_the_timeout_and_blocking_stays_prompt() {
    upstream_fault(Mode::Slow(Duration::from_millis(3 * UPSTREAM_TIMEOUT_MS)));
}

#[test]
fn a_garbage_upstream_gets_servfail_within_the_timeout_and_blocking_stays_prompt() {
    upstream_fault(Mode::Garbage);
}

fn verify(path: &Path) -> ::warden::audit::VerifyReport {
    ::warden::audit::verify_reader(std::io::BufReader::new(std::fs::File::open(path).expect("open audit log")))
}

/// Names refused by `threads` clients in a tight loop until `until`, each
/// with the time its answer came (at most 20 000 per client).
fn blocked_load(
    addr: SocketAddr,
    threads: usize,
    until: Instant,
) -> Vec<std::thread::JoinHandle<Vec<(String, Instant)>>> {
    (0..threads)
        .map(|t| {
            std::thread::spawn(move || {
                let mut answered = Vec::new();
                for i in 0..20_000 {
                    if Instant::now() >= until {
                        break;
                    }
                    let name = format!("c{t}-{i}.upd.kaspersky.com");
                    if let Some(m) = try_query_udp(addr, &name, RecordType::A, Duration::from_millis(500))
                        && rcode(&m) == ResponseCode::NXDomain
                    {
                        answered.push((name, Instant::now()));
                    }
                }
                answered
            })
        })
        .collect()
}

#[test]
fn kill_9_under_heavy_logging_loses_only_the_tail_in_flight_and_the_chain_verifies() {
    const FLUSH_MS: u64 = 100;
    const THREADS: usize = 4;
    let up = FakeUpstream::start(zone());
    let conf_dir = tempfile::tempdir().expect("tempdir");
    let text = format!("[audit]\nflush_interval_ms = {FLUSH_MS}\n");
    let conf = config(conf_dir.path(), &text);
    let args = ["--config", conf.to_str().expect("utf-8 path")];
    let w = Warden::start(up.addr(), None, &args);
    let kill_at = Instant::now() + Duration::from_millis(1500);
    let load = blocked_load(w.addr, THREADS, kill_at + Duration::from_millis(500));
    std::thread::sleep(kill_at.saturating_duration_since(Instant::now()));
    w.signal("KILL");
    let killed = Instant::now();
    let answered: Vec<(String, Instant)> = load.into_iter().flat_map(|h| h.join().expect("load thread")).collect();
    let answered: Vec<_> = answered.into_iter().filter(|(_, at)| *at < killed).collect();
    assert!(answered.len() > 500, "too little load to mean anything: {}", answered.len());

    // On disk: complete lines that all verify, and at most one torn line.
    let report = verify(&w.audit);
    let torn = report.problems.iter().filter(|p| matches!(p.kind, ::warden::audit::ProblemKind::TornTail { .. }));
    assert_eq!(report.problems.len(), torn.count(), "only a torn last line may be wrong: {report:?}");
    let logged: HashSet<String> =
        read_records(&w.audit).iter().filter_map(|r| r["name"].as_str().map(str::to_owned)).collect();
    // Lost: answered but not in the log. Records reach the file in the
    // order they were submitted, so what is lost must be the tail each client
    // had in flight (queued or buffered by the writer), never a record
    // between two that were written.
    let lost = answered.iter().filter(|(n, _)| !logged.contains(n)).count();
    let torn_lines = report.problems.len();
    eprintln!("kill -9: {} answered, {lost} not in the log, {torn_lines} torn line(s)", answered.len());
    for t in 0..THREADS {
        let mine: Vec<bool> = answered
            .iter()
            .filter(|(n, _)| n.starts_with(&format!("c{t}-")))
            .map(|(n, _)| logged.contains(n))
            .collect();
        let written = mine.iter().take_while(|&&w| w).count();
        assert!(mine[written..].iter().all(|&w| !w), "client {t}: a record is missing between written ones");
    }

    // A write cut short leaves a torn last line. kill -9 cannot split one
    // write(2) to a file, so tear it by hand when the kill did not (as a
    // power loss would).
    let torn_lines = if torn_lines == 0 {
        let text = std::fs::read(&w.audit).expect("read audit log");
        let mut file = std::fs::OpenOptions::new().append(true).open(&w.audit).expect("open audit log");
        std::io::Write::write_all(&mut file, &text[..text.len().min(90)]).expect("tear the log");
        1
    } else {
        torn_lines
    };
    // Restart: the torn tail is recovered (moved aside), not tampering; the
    // chain continues and verifies as a whole.
    let mut w = Warden::start_in(w.into_dir(), up.addr(), None, &args);
    assert_eq!(rcode(&query_udp(w.addr, "after.upd.kaspersky.com", RecordType::A)), ResponseCode::NXDomain);
    w.wait_records(1, |r| r["name"] == "after.upd.kaspersky.com");
    assert!(w.stop().success());
    let after = verify(&w.audit);
    assert!(after.is_ok(), "the chain after recovery: {after:?}");
    let records = read_records(&w.audit);
    let recovered = records.iter().filter(|r| r["type"] == "recovered").count();
    assert_eq!(recovered, torn_lines, "a torn tail is reported as recovered: {recovered} recovered records");
    assert!(
        records.iter().any(|r| r["type"] == "start" && r["message"].as_str().is_some_and(|m| m.contains("continuing")))
    );
}

/// A tmpfs mounted on a directory, unmounted (and the directory removed)
/// on drop. Declare it before the `Warden` that writes there, so the daemon
/// is gone before the unmount.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        let opts = format!("size={size},mode=0700");
        run(Command::new("mount").args(["-t", "tmpfs", "-o", &opts, "tmpfs"]).arg(path));
        Tmpfs { path: path.to_owned() }
    }

    fn resize(&self, size: &str) {
        run(Command::new("mount").args(["-o", &format!("remount,size={size}")]).arg(&self.path));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(&self.path).status().is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
        let _ = std::fs::remove_dir(&self.path);
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn metric(w: &Warden, series: &str) -> f64 {
    sample(&http_get(metrics_addr(w), "/metrics").1, series)
}

#[test]
fn a_full_audit_disk_keeps_dns_answering_counts_the_loss_and_resumes() {
    if !nix::unistd::Uid::effective().is_root() {
        assert!(std::env::var_os("CI").is_none(), "CI runs as root: this test must run there");
        eprintln!("skipped: mounting a small tmpfs needs root (run as root to test it)");
        return;
    }
    // The daemon's directory (its audit log) is a 64 KiB tmpfs.
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = Tmpfs::mount(dir.path(), "64k");
    let up = FakeUpstream::start(zone());
    let conf_dir = tempfile::tempdir().expect("tempdir");
    let conf = config(conf_dir.path(), "[audit]\nflush_interval_ms = 100\n");
    let args = ["--config", conf.to_str().expect("utf-8 path"), "--metrics-listen", "127.0.0.1:0"];
    let w = Warden::start_in(dir, up.addr(), None, &args);

    // Until the writer fails (at most 3 000 queries, 30 s): every one answered.
    let started = Instant::now();
    let mut sent = 0;
    while metric(&w, "warden_audit_write_errors_total") == 0.0 {
        assert!(sent < 3000 && started.elapsed() < Duration::from_secs(30), "the disk never filled");
        for _ in 0..100 {
            let name = format!("f{sent}.upd.kaspersky.com");
            assert_eq!(rcode(&query_udp(w.addr, &name, RecordType::A)), ResponseCode::NXDomain, "{name}");
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    for i in 0..200 {
        let name = format!("full{i}.upd.kaspersky.com");
        assert_eq!(rcode(&query_udp(w.addr, &name, RecordType::A)), ResponseCode::NXDomain, "{name} while full");
    }
    std::thread::sleep(Duration::from_millis(300));
    let dropped = metric(&w, "warden_audit_records_dropped_total");
    assert!(dropped > 0.0, "the loss is counted");
    w.wait_log("audit log write failed");

    fs.resize("1m");
    let name = "resumed.upd.kaspersky.com";
    assert_eq!(rcode(&query_udp(w.addr, name, RecordType::A)), ResponseCode::NXDomain);
    let resumed = w.wait_records(1, |r| r["name"] == name);
    assert_eq!(resumed.len(), 1, "writing resumed after space returned");
    // Loss records are written at flush intervals: wait (bounded) until
    // those on disk account for what the metric counted.
    let deadline = Instant::now() + Duration::from_secs(5);
    let told = loop {
        let losses = w.wait_records(1, |r| r["type"] == "loss");
        let told: u64 = losses.iter().filter_map(|r| r["count"].as_u64()).sum();
        if told as f64 >= dropped || Instant::now() > deadline {
            break told;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(told as f64 >= dropped, "loss records tell {told} of {dropped} dropped");
    let mut w = w;
    assert!(w.stop().success());
    let report = verify(&w.audit);
    assert!(report.is_ok(), "the chain across the full disk: {report:?}");
}
