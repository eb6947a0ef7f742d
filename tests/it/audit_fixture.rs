//! Audit logs with known contents for the `warden audit` tests, written
//! with the library's own encoder, and a runner for `warden audit ...`.

use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Output};

use warden::audit::{GENESIS, Layer, Record, RecordType, check_line, encode};
use warden::policy::Action;

/// One contact: `client` asked for `name` at `ts`.
pub fn contact(ts: &str, client: &str, name: &str, category: &str, layer: Layer) -> Record {
    let client: IpAddr = client.parse().expect("client");
    let phase = if ts >= "2024-09-29T04:00:00Z" { "prohibition" } else { "notice" };
    let action = if phase == "prohibition" { Action::Block } else { Action::Monitor };
    Record::contact(ts.parse().expect("ts"), client, layer)
        .with_name(name)
        .with_qtype("A")
        .with_verdict(action, category, format!("domain:{name}"), phase)
        .with_policy("us-bis-kaspersky-2024", "sha256:00")
}

pub fn event(ts: &str, kind: RecordType, text: &str) -> Record {
    Record::event(ts.parse().expect("ts"), kind, text)
}

/// Encodes `records` as a chain starting after `(seq, hash)`; returns the lines.
pub fn chain_from(records: &[Record], host: &str, mut seq: u64, mut prev: String) -> Vec<String> {
    records
        .iter()
        .map(|r| {
            seq += 1;
            let line = encode(r, seq, &prev, host).expect("encode");
            prev = check_line(&line).expect("check").hash;
            line
        })
        .collect()
}

pub fn chain(records: &[Record], host: &str) -> Vec<String> {
    chain_from(records, host, 0, GENESIS.to_owned())
}

/// The known log of gateway `gw1`: 3 clients, 9 contacts (2 before the
/// prohibition on 2024-09-29T04:00Z, 7 after), start/stop around them.
pub fn gw1() -> Vec<Record> {
    vec![
        event("2024-09-28T00:00:00Z", RecordType::Start, "start"),
        contact("2024-09-28T10:00:00Z", "192.168.1.20", "s1.upd.kaspersky.com", "update", Layer::Dns),
        contact("2024-09-28T11:00:00Z", "192.168.1.30", "www.kaspersky.com", "web", Layer::Dns),
        contact("2024-09-29T05:00:00Z", "192.168.1.20", "s1.upd.kaspersky.com", "update", Layer::Dns),
        contact("2024-09-29T05:30:00Z", "192.168.1.20", "ksn-a.kaspersky-labs.com", "telemetry", Layer::Sni),
        contact("2024-09-30T06:00:00Z", "192.168.1.20", "s1.upd.kaspersky.com", "update", Layer::Dns),
        contact("2024-09-30T07:00:00Z", "192.168.1.30", "www.kaspersky.com", "web", Layer::Http),
        contact("2024-10-01T08:00:00Z", "192.168.1.40", "activation.kaspersky.com", "activation", Layer::Dns),
        contact("2024-10-01T09:00:00Z", "192.168.1.20", "s2.upd.kaspersky.com", "update", Layer::Dns),
        contact("2024-10-02T09:00:00Z", "192.168.1.20", "s1.upd.kaspersky.com", "update", Layer::Dns),
        event("2024-10-02T10:00:00Z", RecordType::Stop, "stop"),
    ]
}

/// Gateway `gw2`: one client with 2 contacts after the prohibition.
pub fn gw2() -> Vec<Record> {
    vec![
        event("2024-09-30T00:00:00Z", RecordType::Start, "start"),
        contact("2024-09-30T12:00:00Z", "10.0.0.5", "s1.upd.kaspersky.com", "update", Layer::Dns),
        contact("2024-10-03T12:00:00Z", "10.0.0.5", "dnl-01.geo.kaspersky.com", "update", Layer::Dns),
        event("2024-10-03T13:00:00Z", RecordType::Stop, "stop"),
    ]
}

pub fn write(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.concat()).expect("write log");
}

/// Runs `warden audit ARGS`.
pub fn audit(args: &[&str]) -> Output {
    Command::new(crate::support::warden::bin()).arg("audit").args(args).output().expect("run warden audit")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

pub fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}
