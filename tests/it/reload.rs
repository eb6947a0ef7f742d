//! Hot reload: SIGHUP and a changed policy file swap the policy while a
//! bounded query load runs, with no failed query; a broken file keeps the
//! last good policy and leaves an audit record.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::support::*;

fn policy(blocked: &str) -> String {
    format!(
        "[policy]\nid = \"reload-test\"\ntitle = \"t\"\nlegal_basis = \"l\"\nreference_url = \"u\"\n\n[categories]\nupdate = \"u\"\n\n[[phases]]\nname = \"only\"\ndefault = \"block\"\n\n[[rules]]\ncategory = \"update\"\ndomains = [\"{blocked}\"]\n"
    )
}

fn is_blocked(addr: SocketAddr, name: &str) -> bool {
    rcode(&query_udp(addr, name, RecordType::A)) == ResponseCode::NXDomain
}

fn wait_blocked(addr: SocketAddr, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !is_blocked(addr, name) {
        assert!(Instant::now() < deadline, "{name} was never blocked");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Queries from `threads` threads until `stop` (at most 20 000 each, 30 s);
/// returns (answered, failed).
fn load(addr: SocketAddr, stop: Arc<AtomicBool>, threads: usize) -> Vec<std::thread::JoinHandle<(usize, usize)>> {
    (0..threads)
        .map(|i| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let (mut ok, mut failed) = (0, 0);
                let start = Instant::now();
                for n in 0..20_000 {
                    if stop.load(Ordering::Relaxed) || start.elapsed() > Duration::from_secs(30) {
                        break;
                    }
                    let name = if (n + i) % 2 == 0 { "www.example.org" } else { "x.one.example" };
                    match try_query_udp(addr, name, RecordType::A, Duration::from_secs(2)) {
                        Some(m) if matches!(rcode(&m), ResponseCode::NoError | ResponseCode::NXDomain) => ok += 1,
                        _ => failed += 1,
                    }
                }
                (ok, failed)
            })
        })
        .collect()
}

#[test]
fn reload_under_load_fails_no_query_and_keeps_the_last_good_policy() {
    let zone = Zone::new()
        .a("www.example.org", Ipv4Addr::new(198, 18, 0, 10))
        .a("x.one.example", Ipv4Addr::new(198, 18, 0, 1));
    let zone = zone.a("x.two.example", Ipv4Addr::new(198, 18, 0, 2)).a("x.three.example", Ipv4Addr::new(198, 18, 0, 3));
    let up = FakeUpstream::start(zone);
    let conf_dir = tempfile::tempdir().expect("tempdir");
    let config = conf_dir.path().join("warden.toml");
    std::fs::write(&config, "[policy]\nwatch_interval_ms = 200\n[rate_limit]\nqps = 0\n").expect("write config");
    let w = Warden::start(up.addr(), Some(&policy("one.example")), &["--config", config.to_str().expect("utf-8")]);
    let file = w.dir.path().join("policy.toml");
    assert!(is_blocked(w.addr, "x.one.example"));
    let stop = Arc::new(AtomicBool::new(false));
    let workers = load(w.addr, stop.clone(), 4);

    std::fs::write(&file, policy("two.example")).expect("rewrite policy");
    w.signal("HUP");
    wait_blocked(w.addr, "x.two.example");
    assert!(!is_blocked(w.addr, "x.one.example"), "the new policy replaced the old one");

    std::fs::write(&file, "[policy]\nid = \"broken\n").expect("break policy");
    w.signal("HUP");
    w.wait_log("rejected, keeping reload-test");
    assert!(is_blocked(w.addr, "x.two.example"), "a broken file keeps the last good policy");

    std::fs::write(&file, policy("three.example")).expect("rewrite policy");
    wait_blocked(w.addr, "x.three.example"); // no signal: the file watcher noticed

    stop.store(true, Ordering::Relaxed);
    let (ok, failed) =
        workers.into_iter().map(|h| h.join().expect("load thread")).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    assert_eq!(failed, 0, "{failed} of {} queries failed during reloads", ok + failed);
    assert!(ok > 100, "too little load to mean anything: {ok}");
    let events = w.wait_records(3, |r| r["type"] == "policy");
    let messages: Vec<String> = events.iter().map(|r| r["message"].as_str().unwrap_or("").to_owned()).collect();
    assert!(messages.iter().any(|m| m.contains("reloaded (signal)")), "{messages:?}");
    assert!(messages.iter().any(|m| m.contains("rejected") && m.contains(":2:")), "{messages:?}");
    assert!(messages.iter().any(|m| m.contains("reloaded (file)")), "{messages:?}");
}
