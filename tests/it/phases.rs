//! The schedule: monitor before the instant, block from it, without a
//! restart; answers before the instant cannot be cached past it.

use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::*;

fn policy_switching_at(start: &str) -> String {
    format!(
        r#"[policy]
id = "phase-test"
title = "Phase test"
legal_basis = "test"
reference_url = "https://example.org/"
blocked_ede = "blocked"

[categories]
update = "updates"

[[phases]]
name = "monitoring"
default = "monitor"

[[phases]]
name = "prohibition"
start = "{start}"
default = "block"
prohibition = true

[[rules]]
category = "update"
domains = ["upd.vendor.test"]
"#
    )
}

#[test]
fn monitor_then_block_across_the_instant_without_restart() {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs();
    let switch = now + 3;
    let start =
        chrono::DateTime::from_timestamp(switch as i64, 0).expect("time").format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let upstream = FakeUpstream::start(Zone::new().ttl(3600).a("s1.upd.vendor.test", Ipv4Addr::new(198, 18, 3, 1)));
    let w = Warden::start(upstream.addr(), Some(&policy_switching_at(&start)), &[]);

    let before = query_udp(w.addr, "s1.upd.vendor.test", RecordType::A);
    assert_eq!(a_records(&before), vec![Ipv4Addr::new(198, 18, 3, 1)], "monitor lets it through");
    let ttl = before.answers[0].ttl;
    assert!(ttl <= 3, "TTL {ttl} outlives the block instant (upstream TTL 3600)");

    let wait =
        (switch * 1000).saturating_sub(SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as u64);
    std::thread::sleep(Duration::from_millis(wait + 200));
    let after = query_udp(w.addr, "s1.upd.vendor.test", RecordType::A);
    assert_eq!(rcode(&after), ResponseCode::NXDomain);
    assert_eq!(ede(&after), Some((15, "blocked by policy phase-test (update)".to_owned())));

    let records = w.wait_records(2, |r| r["type"] == "contact");
    let got: Vec<(String, String)> = records
        .iter()
        .map(|r| (r["action"].as_str().unwrap_or("").to_owned(), r["phase"].as_str().unwrap_or("").to_owned()))
        .collect();
    assert_eq!(got, vec![("monitor".into(), "monitoring".into()), ("block".into(), "prohibition".into())]);
}
