//! Every block and monitor verdict lands in the audit log as a chained JSON
//! line; the chain continues across restarts.

use std::net::Ipv4Addr;

use crate::support::*;

#[test]
fn blocked_contacts_are_logged_parseable_and_chained() {
    let upstream = FakeUpstream::start(Zone::new().a("www.example.test", Ipv4Addr::new(198, 18, 1, 1)));
    let w = Warden::start(upstream.addr(), None, &[]);
    query_udp(w.addr, "s10.upd.kaspersky.com", RecordType::A);
    query_tcp(w.addr, "ksn-url-geo.kaspersky-labs.com", RecordType::AAAA);
    query_udp(w.addr, "www.example.test", RecordType::A);
    let contacts = w.wait_records(2, |r| r["type"] == "contact");
    assert_eq!(contacts.len(), 2, "allowed names are not logged: {contacts:?}");
    let first = &contacts[0];
    assert_eq!(first["client"], "127.0.0.1");
    assert_eq!(first["layer"], "dns");
    assert_eq!(first["name"], "s10.upd.kaspersky.com");
    assert_eq!(first["qtype"], "A");
    assert_eq!(first["action"], "block");
    assert_eq!(first["category"], "update");
    assert_eq!(first["phase"], "prohibition");
    assert_eq!(first["host"], "test-gw");
    assert_eq!(first["policy"]["id"], "us-bis-kaspersky-2024");
    assert!(first["policy"]["hash"].as_str().unwrap_or("").starts_with("sha256:"));
    assert_eq!(contacts[1]["category"], "telemetry");
    assert_eq!(contacts[1]["qtype"], "AAAA");
    let mut w = w;
    assert!(w.stop().success());
    let report = ::warden::audit::verify_reader(std::io::BufReader::new(std::fs::File::open(&w.audit).expect("open")));
    assert!(report.is_ok(), "{report:?}");
}

#[test]
fn the_chain_continues_across_restarts() {
    let upstream = FakeUpstream::start(Zone::new());
    let w = Warden::start(upstream.addr(), None, &[]);
    query_udp(w.addr, "s10.upd.kaspersky.com", RecordType::A);
    w.wait_records(1, |r| r["type"] == "contact");
    let dir = w.into_dir();
    let w = Warden::start_in(dir, upstream.addr(), None, &[]);
    query_udp(w.addr, "dc1.ksn.kaspersky-labs.com", RecordType::A);
    w.wait_records(2, |r| r["type"] == "contact");
    let mut w = w;
    w.stop();
    let records = read_records(&w.audit);
    let seqs: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().expect("seq")).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "seq continues");
    for pair in records.windows(2) {
        assert_eq!(pair[1]["prev_hash"], pair[0]["hash"], "chain links");
    }
    assert_eq!(contacts(&records).len(), 2);
    let report = ::warden::audit::verify_reader(std::io::BufReader::new(std::fs::File::open(&w.audit).expect("open")));
    assert!(report.is_ok(), "{report:?}");
}

#[test]
fn log_allowed_writes_allowed_queries_too() {
    let upstream = FakeUpstream::start(Zone::new().a("www.example.test", Ipv4Addr::new(198, 18, 1, 1)));
    let w = Warden::start(upstream.addr(), None, &["--log-allowed"]);
    query_udp(w.addr, "www.example.test", RecordType::A);
    let records = w.wait_records(1, |r| r["type"] == "contact");
    assert_eq!(records[0]["action"], "allow");
    assert_eq!(records[0]["name"], "www.example.test");
}

#[test]
fn a_retry_storm_is_one_record_now_and_one_counted_record_per_window() {
    let upstream = FakeUpstream::start(Zone::new());
    let mut w = Warden::start(upstream.addr(), None, &[]);
    for _ in 0..200 {
        assert_eq!(rcode(&query_udp(w.addr, "s10.upd.kaspersky.com", RecordType::A)), ResponseCode::NXDomain);
    }
    // The first sighting is written at once, before its window closes.
    let first = w.wait_records(1, |r| r["type"] == "contact");
    assert_eq!(first[0]["name"], "s10.upd.kaspersky.com");
    assert!(first[0].get("count").is_none(), "{:?}", first[0]);
    // A new name from the same client is not held back by the storm.
    query_udp(w.addr, "dc1.ksn.kaspersky-labs.com", RecordType::A);
    let two = w.wait_records(2, |r| r["type"] == "contact");
    assert!(two.iter().any(|r| r["name"] == "dc1.ksn.kaspersky-labs.com"), "{two:?}");
    // The storm goes on after it: the last contact is one of these repeats
    // (a few milliseconds later: records carry milliseconds, and on a fast
    // machine the five lookups would share dc1's).
    std::thread::sleep(std::time::Duration::from_millis(5));
    for _ in 0..5 {
        assert_eq!(rcode(&query_udp(w.addr, "s10.upd.kaspersky.com", RecordType::A)), ResponseCode::NXDomain);
    }
    // Stopping writes the repeats still counted in an open window.
    assert!(w.stop().success());
    let records = read_records(&w.audit);
    let storm: Vec<_> =
        contacts(&records).into_iter().filter(|r| r["name"] == "s10.upd.kaspersky.com").cloned().collect();
    let attempts: u64 = storm.iter().map(|r| r["count"].as_u64().unwrap_or(1)).sum();
    assert_eq!(attempts, 205, "every attempt counted: {storm:?}");
    assert!(storm.len() <= 6, "200 lookups in well under 3 s fold into a few records: {}", storm.len());
    for r in storm.iter().filter(|r| r.get("count").is_some()) {
        assert!(r["first_ts"].as_str() <= r["last_ts"].as_str() && r["ts"] == r["first_ts"], "{r}");
    }
    let report = ::warden::audit::verify_reader(std::io::BufReader::new(std::fs::File::open(&w.audit).expect("open")));
    assert!(report.is_ok(), "{report:?}");
    // The reviewer's numbers count attempts, not lines.
    let log = w.audit.display().to_string();
    let summary = crate::audit_fixture::audit(&["summary", "--json", &log]);
    let summary: serde_json::Value = serde_json::from_slice(&summary.stdout).expect("summary json");
    assert_eq!(summary["contacts"], 206, "{summary}");
    assert_eq!(summary["by_action"]["block"], 206, "{summary}");
    let hosts = crate::audit_fixture::audit(&["hosts", "--json", &log]);
    let hosts: serde_json::Value = serde_json::from_slice(&hosts.stdout).expect("hosts json");
    assert_eq!((hosts["rows"][0]["contacts"].as_u64(), hosts["rows"][0]["blocked"].as_u64()), (Some(206), Some(206)));
    // The last contact is the last repeat, not the first of its record.
    let last = contacts(&records).iter().filter_map(|r| r.get("last_ts").or(r.get("ts"))?.as_str()).max();
    let last = last.expect("a contact");
    let dc1 = contacts(&records).iter().find(|r| r["name"] == "dc1.ksn.kaspersky-labs.com").map(|r| r["ts"].clone());
    assert!(dc1.as_ref().and_then(|t| t.as_str()).is_some_and(|t| t < last), "{dc1:?} {last}");
    assert_eq!(summary["last_contact"].as_str(), Some(last), "{summary}");
    assert_eq!(hosts["rows"][0]["last_contact"].as_str(), Some(last), "{hosts}");
}

#[test]
fn aggregation_off_writes_a_record_per_query() {
    let upstream = FakeUpstream::start(Zone::new());
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("warden.toml");
    std::fs::write(&config, "[dns]\naggregate_window_ms = 0\n").expect("write config");
    let config = config.display().to_string();
    let w = Warden::start_in(dir, upstream.addr(), None, &["--config", &config]);
    for _ in 0..5 {
        query_udp(w.addr, "s10.upd.kaspersky.com", RecordType::A);
    }
    let records = w.wait_records(5, |r| r["type"] == "contact");
    assert_eq!(records.len(), 5);
    assert!(records.iter().all(|r| r.get("count").is_none()));
}
