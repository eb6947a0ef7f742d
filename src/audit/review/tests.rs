//! The review's readers against each other: the in-place parsing against
//! `serde_json` on the writer's lines and on every one-byte edit of them,
//! and reading on worker threads against reading on one thread, on logs
//! with tampered lines past the first chunk, and `hosts` with any chunk
//! size against counting line by line.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use ed25519_dalek::SigningKey;

use super::export::{Format, export_with};
use super::hosts::hosts_with;
use super::input::CHUNK;
use super::leases::Leases;
use super::rec::{Filter, Rec};
use super::summary::summarize_with;
use super::timeline::{Bucket, timeline_with};
use super::verify::verify_with;
use super::{Reading, ReviewError};
use crate::audit::chain::format_ts;
use crate::audit::compress::{Compression, write_compressed};
use crate::audit::record::{Heartbeat, Retention};
use crate::audit::{GENESIS, Layer, Record, RecordType, check_line, encode, sign};
use crate::policy::Action;

pub(super) fn key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

const NAMES: [&str; 4] =
    ["s10.upd.kaspersky.com", "dnl-07.geo.kaspersky.com", "ksn-file-geo.kaspersky-labs.com", "xn--80ak6aa92e.com"];

/// Record `seq` of a log with every record type: contacts of each layer
/// (IPv4, IPv6, address-only), events whose messages need escapes or are
/// not ASCII, heartbeats, signed checkpoints, retention, start and stop.
fn record(seq: u64, ts: DateTime<Utc>, host: &str, prev: &str) -> Record {
    let v4: IpAddr = format!("10.0.{}.{}", seq % 3, seq % 11).parse().unwrap_or(IpAddr::from([10, 0, 0, 1]));
    let name = NAMES[(seq % 4) as usize];
    let policy = ("us-bis-kaspersky-2024", "sha256:50d858e0985ecc7f60418aaf0cc5ab587f42c2570a884095a9e8ccacd0f6545c");
    match seq % 100 {
        1 => Record::event(ts, RecordType::Start, "warden started"),
        2 => Record {
            heartbeat: Some(Heartbeat { interval_s: 600, written: seq, dropped: 0, enforcing: true }),
            ..Record::new(ts, RecordType::Heartbeat)
        },
        3 => Record {
            checkpoint: Some(sign::sign(&key(), host, seq - 1, prev, &format_ts(&ts))),
            ..Record::new(ts, RecordType::Checkpoint)
        },
        4 => Record::event(ts, RecordType::Loss, "channel full").with_count(3),
        5 => Record::event(ts, RecordType::Failure, "the \"dns\" listener stopped\\restarted"),
        6 => Record::event(ts, RecordType::Policy, "policy «kaspersky» loaded ✓"),
        7 => Record::event(ts, RecordType::Recovered, "moved 12 bytes aside"),
        8 => Record {
            retention: Some(Retention {
                file: "old.jsonl".into(),
                first_seq: 1,
                last_seq: 0,
                last_hash: GENESIS.into(),
            }),
            ..Record::event(ts, RecordType::Retention, "deleted old.jsonl")
        },
        99 => Record::event(ts, RecordType::Stop, "stopped"),
        k if k % 5 == 0 => Record::contact(ts, v4, Layer::Ip)
            .with_dst(IpAddr::from([203, 0, 113, 7]), Some(443))
            .with_verdict(Action::Block, "update", "cidr:203.0.113.0/24", "prohibition")
            .with_policy(policy.0, policy.1),
        k if k % 3 == 0 => Record::contact(ts, "2001:db8::5".parse().unwrap_or(v4), Layer::Sni)
            .with_name(name)
            .with_verdict(Action::Monitor, "web", "domain:kaspersky.com", "notice")
            .with_policy(policy.0, policy.1),
        _ => Record::contact(ts, v4, Layer::Dns)
            .with_name(name)
            .with_qtype("AAAA")
            .with_verdict(Action::Block, "telemetry", "domain:kaspersky.com", "prohibition")
            .with_policy(policy.0, policy.1),
    }
}

/// `n` chained lines of gateway `host`, 7 s apart, with a two-hour silence
/// after the middle.
pub(super) fn log(host: &str, n: u64) -> Vec<String> {
    let t0: DateTime<Utc> = "2024-09-28T22:00:00Z".parse().unwrap_or_default();
    let mut prev = GENESIS.to_owned();
    (1..=n)
        .map(|seq| {
            let silence = if seq > n / 2 + 10 { 7200 } else { 0 };
            let ts = t0 + chrono::Duration::seconds(seq as i64 * 7 + silence);
            let line = encode(&record(seq, ts, host, &prev), seq, &prev, host).unwrap();
            prev = check_line(&line).unwrap().hash;
            line
        })
        .collect()
}

/// One line of each record type, and contacts of each layer.
pub(super) fn sample_lines() -> Vec<Vec<u8>> {
    let lines = log("gw1", 100);
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 98].iter().map(|&i| lines[i].trim_end().as_bytes().to_vec()).collect()
}

/// `line` with each byte replaced by each of a set of bytes that matter
/// to JSON, and with each byte deleted; and a few whole-line edits.
pub(super) fn edits(line: &[u8]) -> Vec<Vec<u8>> {
    const BYTES: &[u8] = b"\"\\,:{}[]0-. n\x00\xff";
    let mut out = Vec::new();
    for i in 0..line.len() {
        for &b in BYTES {
            let mut edited = line.to_vec();
            edited[i] = b;
            out.push(edited);
        }
        let mut shorter = line.to_vec();
        shorter.remove(i);
        out.push(shorter);
    }
    let text = String::from_utf8_lossy(line);
    for (from, to) in [
        ("{", "{\"ts\":\"2024-09-29T04:00:00.000Z\","),
        ("{", "{\"seq\":1,"),
        ("{", "{\"hash\":\"x\","),
        ("{", "{\"policy\":{\"id\":\"a\"},"),
        ("{", "{\"client\":null,"),
        (",\"seq\"", ",\"seq\":1,\"seq\""),
        ("\"id\":", "\"id\":\"a\",\"id\":"),
        ("\"id\"", "\"i\\u0064\""),
        (",", ", "),
        ("\"type\"", "\"Type\""),
        ("\"host\"", "\"host\":{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":1}}}}},\"x\""),
    ] {
        out.push(text.replacen(from, to, 1).into_bytes());
    }
    out.push([line, b" "].concat());
    out.push([line, b"\r"].concat());
    out
}

#[test]
fn in_place_parsing_reads_what_serde_json_reads() {
    let (mut fast, mut total) = (0, 0);
    for line in sample_lines() {
        for edited in std::iter::once(line.clone()).chain(edits(&line)) {
            total += 1;
            if let Ok(rec) = Rec::fast(&edited) {
                fast += 1;
                let Ok(slow) = serde_json::from_slice::<Rec<'_>>(&edited) else {
                    panic!("only the fast path reads {}", String::from_utf8_lossy(&edited))
                };
                assert_eq!(format!("{rec:?}"), format!("{slow:?}"), "{}", String::from_utf8_lossy(&edited));
            }
        }
    }
    // Unedited lines, and edits inside string values, take the fast path.
    assert!(fast > total / 4, "{fast} of {total}");
}

fn write(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.concat()).unwrap();
}

/// Every report of `files`, as JSON (and the exports as text).
fn reports(files: &[PathBuf], reading: Reading) -> Result<Vec<String>, ReviewError> {
    let vk = key().verifying_key();
    let filter = Filter::default();
    let after = Filter { after: Some("2024-09-29T00:00:00.000Z".into()), ..Filter::default() };
    let prohibition = Some("2024-09-29T00:00:00.000Z");
    // Two machines held 10.0.1.1: one until 23:00 on the first day.
    let leases = Leases::parse(
        "1727564400 AA:00:00:00:00:01 10.0.1.1 laptop-a *\n1727700000 aa:00:00:00:00:02 10.0.1.1 laptop-b *\n",
    );
    let mut out = vec![
        json(&verify_with(files, Some(&vk), reading)?),
        json(&verify_with(files, None, reading)?),
        json(&summarize_with(files, prohibition, reading)?),
        json(&hosts_with(files, prohibition, &filter, None, reading)?),
        json(&hosts_with(files, prohibition, &filter, Some(&leases), reading)?),
        json(&timeline_with(files, Bucket::Hour, &after, prohibition, reading)?),
    ];
    for format in [Format::Csv, Format::Jsonl] {
        let mut bytes = Vec::new();
        let Ok((kept, stats)) = export_with(files, &filter, format, &mut bytes, reading) else {
            panic!("export failed");
        };
        out.push(format!("{kept} {} {}", json(&stats), String::from_utf8_lossy(&bytes)));
    }
    Ok(out)
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

#[test]
fn parallel_and_sequential_readers_agree_on_a_log_tampered_after_the_first_chunk() {
    let dir = tempfile::tempdir().unwrap();
    // About 2 MB: the default chunk is 1 MiB, so line 2301 is in the
    // second chunk.
    let mut lines = log("gw1", 4000);
    let total: usize = lines[..2300].iter().map(String::len).sum();
    assert!(total > CHUNK, "line 2301 starts at byte {total}");
    let edited = (2300..).find(|&i| lines[i].contains("kaspersky.com")).unwrap_or(2300);
    lines[edited] = lines[edited].replacen("kaspersky.com", "kasparsky.com", 1);
    lines.remove(3000);
    lines.insert(3300, "not a record\n".into());
    lines.push("{\"ts\":\"2024-".into());
    let rotated = dir.path().join("gw2-old.jsonl.gz");
    let current = dir.path().join("gw2.jsonl");
    let gw2 = log("gw2", 1000);
    write_compressed(&rotated, gw2[..500].concat().as_bytes(), Compression::Gzip).unwrap();
    let mut tail = gw2[500..].to_vec();
    tail[300] = tail[300].replacen("\"seq\":", "\"seq\": ", 1);
    write(&current, &tail);
    let main = dir.path().join("gw1.jsonl");
    write(&main, &lines);
    let files = vec![current, main.clone(), rotated];

    let one = reports(&files, Reading::sequential()).unwrap();
    let problems = |report: &str| -> Vec<(String, u64, String)> {
        let v: serde_json::Value = serde_json::from_str(report).unwrap_or_default();
        let list = v["problems"].as_array().cloned().unwrap_or_default();
        list.iter()
            .map(|p| {
                let file = p["file"].as_str().unwrap_or_default().rsplit('/').next().unwrap_or_default().to_owned();
                (file, p["line"].as_u64().unwrap_or(0), p["kind"].as_str().unwrap_or_default().to_owned())
            })
            .collect()
    };
    let line = |i: usize| i as u64 + 1;
    assert_eq!(
        problems(&one[0]),
        [
            ("gw1.jsonl".to_owned(), line(edited), "bad-hash".to_owned()),
            ("gw1.jsonl".to_owned(), line(3000), "broken-link".to_owned()),
            ("gw1.jsonl".to_owned(), line(3000), "seq-gap".to_owned()),
            ("gw1.jsonl".to_owned(), line(3300), "bad-hash".to_owned()),
            ("gw1.jsonl".to_owned(), line(3300), "bad-line".to_owned()),
            ("gw2.jsonl".to_owned(), line(300), "bad-hash".to_owned()),
        ],
        "{}",
        one[0]
    );
    assert!(one[0].contains("torn-tail") && one[0].contains("\"gap\""), "{}", one[0]);
    assert!(one[2].contains("\"malformed_count\": 2"), "{}", one[2]);
    assert!(one[4].contains("laptop-a") && one[4].contains("laptop-b"), "{}", one[4]);
    for reading in [
        Reading { workers: 2, chunk: CHUNK },
        Reading { workers: 2, chunk: 4096 },
        Reading { workers: 3, chunk: 100_000 },
    ] {
        let many = reports(&files, reading).unwrap();
        for (a, b) in one.iter().zip(&many) {
            assert!(a == b, "{reading:?}:\n{a}\n---\n{b}");
        }
    }
}

#[test]
fn a_failed_write_stops_the_export() {
    struct Full;
    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk full"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.jsonl");
    write(&path, &log("gw1", 500));
    let result =
        export_with(&[path], &Filter::default(), Format::Jsonl, &mut Full, Reading { workers: 2, chunk: 4096 });
    assert!(result.is_err());
}

/// Contacts of two clients, interleaved: one with more distinct names than
/// a row keeps (and names seen again after the cap, and a literal
/// `(other)`), one with a few repeated names, across gateways, layers and
/// categories; some records stand for several attempts.
fn many_names_log(host: &str, n: u64) -> Vec<String> {
    let t0: DateTime<Utc> = "2024-09-28T22:00:00Z".parse().unwrap_or_default();
    let mut prev = GENESIS.to_owned();
    (1..=n)
        .map(|seq| {
            let ts = t0 + chrono::Duration::seconds(seq as i64 * 7);
            let (client, name) = match seq % 3 {
                0 => (IpAddr::from([10, 0, 0, 1]), format!("n{:03}.example", (seq * 7) % 17)),
                1 if seq % 29 == 0 => (IpAddr::from([10, 0, 0, 2]), "(other)".to_owned()),
                _ => (IpAddr::from([10, 0, 0, 2]), format!("n{:03}.example", (seq / 2) % 400)),
            };
            let layer = if seq % 5 == 0 { Layer::Sni } else { Layer::Dns };
            let (action, category) = match seq % 4 {
                0 => (Action::Monitor, "web"),
                1 => (Action::Block, "update"),
                _ => (Action::Block, "telemetry"),
            };
            let record = Record::contact(ts, client, layer)
                .with_name(name)
                .with_verdict(action, category, "domain:example", "prohibition")
                .with_count(1 + seq % 3);
            let line = encode(&record, seq, &prev, host).unwrap();
            prev = check_line(&line).unwrap().hash;
            line
        })
        .collect()
}

#[test]
fn hosts_rows_are_the_same_however_the_lines_are_cut_into_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("gw1.jsonl"), dir.path().join("gw2.jsonl"));
    write(&a, &many_names_log("gw1", 3000));
    write(&b, &many_names_log("gw2", 500));
    let files = vec![a, b];
    let prohibition = Some("2024-09-29T00:00:00.000Z");
    let hosts = |reading: Reading| json(&hosts_with(&files, prohibition, &Filter::default(), None, reading).unwrap());
    // One-byte chunks: every line is a chunk of its own, counted in order.
    let line_by_line = hosts(Reading { workers: 0, chunk: 1 });
    let v: serde_json::Value = serde_json::from_str(&line_by_line).unwrap_or_default();
    let rows = v["rows"].as_array().cloned().unwrap_or_default();
    let Some(many) = rows.iter().find(|r| r["client"] == "10.0.0.2") else { panic!("{line_by_line}") };
    // 256 distinct names are kept, the rest counted under `(other)`, which
    // also holds the literal `(other)` names.
    assert_eq!(many["top_names"][0][0], "(other)", "{line_by_line}");
    assert!(many["top_names"][0][1].as_u64().unwrap_or(0) > 1000, "{line_by_line}");
    assert_eq!(many["gateways"], serde_json::json!(["gw1", "gw2"]), "{line_by_line}");
    for reading in [
        Reading::sequential(),
        Reading { workers: 0, chunk: 4096 },
        Reading { workers: 2, chunk: 4096 },
        Reading { workers: 3, chunk: 100_000 },
        Reading { workers: 2, chunk: CHUNK },
    ] {
        assert!(hosts(reading) == line_by_line, "{reading:?}:\n{}\n---\n{line_by_line}", hosts(reading));
    }
}

#[test]
fn a_forged_count_cannot_overflow_the_sums() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("forged.jsonl");
    let t0: DateTime<Utc> = "2024-09-29T10:00:00Z".parse().unwrap_or_default();
    let mut prev = GENESIS.to_owned();
    let lines: Vec<String> = (1..=3)
        .map(|seq| {
            let record = Record::contact(t0, IpAddr::from([10, 0, 0, 9]), Layer::Dns)
                .with_name("s1.upd.kaspersky.com")
                .with_verdict(Action::Block, "update", "domain:kaspersky.com", "prohibition")
                .with_count(u64::MAX);
            let line = encode(&record, seq, &prev, "gw1").unwrap();
            prev = check_line(&line).unwrap().hash;
            line
        })
        .collect();
    write(&path, &lines);
    let files = vec![path];
    // Every review reads it (no overflow panic in debug builds) ...
    assert!(reports(&files, Reading::auto()).is_ok());
    // ... and counts each record as the most one record may stand for.
    let summary = summarize_with(&files, None, Reading::auto()).unwrap();
    assert_eq!(summary.contacts, 3 * super::rec::MAX_ATTEMPTS);
}

/// Lines meant to trip up `hosts`: one client with far more than 256
/// names (some seen again after the cap, literal `(other)`s before and
/// after it), ties in name counts, count records with `last_ts`, address
/// contacts without a name, missing category and layer, other RFC 3339
/// forms, non-contacts, contacts without a client, and gateways that
/// differ per line.
fn tricky_lines(file: u64, n: u64) -> Vec<String> {
    (0..n)
        .map(|i| {
            let seq = file * 100_000 + i;
            let client = match i % 7 {
                0 | 3 => "10.0.1.1".to_owned(),
                1 => format!("10.0.2.{}", i % 5),
                2 => "fd00::7".to_owned(),
                _ => format!("10.0.3.{}", (i * 13 + file) % 40),
            };
            let name = match i % 11 {
                0 if i % 3 == 0 => r#","name":"(other)""#.to_owned(),
                1 => String::new(),
                2 => r#","dst":"192.0.2.9""#.to_owned(),
                _ => format!(r#","name":"h{:04}.example""#, (i * 37 + file * 5) % 700),
            };
            let category = match i % 5 {
                0 => r#","category":"web""#,
                1 => "",
                2 => r#","category":"update""#,
                _ => r#","category":"telemetry""#,
            };
            let layer = ["", r#","layer":"dns""#, r#","layer":"sni""#][(i % 3) as usize];
            let action = [r#","action":"block""#, r#","action":"monitor""#, ""][(i % 4 % 3) as usize];
            let minute = (i * 7 + file * 3) % 3000;
            let (h, m) = (minute / 60 % 48, minute % 60);
            let (day, hour) = (28 + h / 24, h % 24);
            let ts = if i % 13 == 0 {
                format!("2024-09-{day}T{:02}:{m:02}:05+02:00", (hour + 2) % 24)
            } else {
                format!("2024-09-{day}T{hour:02}:{m:02}:05.{:03}Z", i % 1000)
            };
            let count = match i % 9 {
                0 => format!(r#","count":{},"last_ts":"2024-09-30T0{}:00:00.000Z""#, 2 + i % 4, i % 10),
                1 => r#","count":3"#.to_owned(),
                _ => String::new(),
            };
            let (kind, client) = match i % 17 {
                0 => ("heartbeat", String::new()),
                1 => ("contact", String::new()),
                _ => ("contact", format!(r#","client":"{client}""#)),
            };
            let host = ["gw1", "gw2", "gw-3"][((i / 50 + file) % 3) as usize];
            format!(
                r#"{{"ts":"{ts}","seq":{seq},"type":"{kind}","host":"{host}"{client}{layer}{name}{category}{action}{count}}}"#
            ) + "\n"
        })
        .collect()
}

/// `hosts` as one thread counting line by line in the plainest way.
fn reference_hosts(
    files: &[PathBuf],
    prohibition: Option<&str>,
    filter: &Filter,
    leases: Option<&Leases>,
) -> serde_json::Value {
    use std::collections::{BTreeMap, BTreeSet, HashMap};
    #[derive(Default)]
    struct R {
        first: String,
        last: String,
        sums: [u64; 5],
        categories: BTreeMap<String, u64>,
        layers: BTreeMap<String, u64>,
        gateways: BTreeSet<String>,
        names: BTreeMap<String, u64>,
        machines: BTreeSet<(String, String)>,
    }
    let mut rows: HashMap<IpAddr, R> = HashMap::new();
    for path in files {
        let text = std::fs::read_to_string(path).unwrap();
        for line in text.lines() {
            let Ok(r) = Rec::parse(line.as_bytes()) else { continue };
            let Some(ts) = r.canonical_ts() else { continue };
            let Some(client) = r.client.filter(|_| filter.keep(&r, &ts)) else { continue };
            let row =
                rows.entry(client).or_insert_with(|| R { first: ts.to_string(), last: ts.to_string(), ..R::default() });
            for t in [ts.to_string(), r.last_seen(&ts).to_string()] {
                row.first = row.first.clone().min(t.clone());
                row.last = row.last.clone().max(t);
            }
            let n = r.attempts();
            let category = r.category.as_deref().unwrap_or("-");
            row.sums[0] += n;
            if prohibition.is_some_and(|p| *ts >= *p) {
                row.sums[1] += n;
                row.sums[2] += if category == "web" { 0 } else { n };
            }
            match r.action.as_deref() {
                Some("block") => row.sums[3] += n,
                Some("monitor") => row.sums[4] += n,
                _ => {}
            }
            *row.categories.entry(category.to_owned()).or_default() += n;
            *row.layers.entry(r.layer.as_deref().unwrap_or("-").to_owned()).or_default() += n;
            row.gateways.insert(r.host.to_string());
            let name = r.name.as_deref().or(r.dst.map(|_| "(ip)")).unwrap_or("-");
            let name = if row.names.contains_key(name) || row.names.len() < 256 { name } else { "(other)" };
            *row.names.entry(name.to_owned()).or_default() += n;
            if let Some(m) = leases.and_then(|l| l.at(client, super::rec::millis(&ts).unwrap_or(0))) {
                row.machines.insert((m.hostname.clone(), m.mac.clone()));
            }
        }
    }
    let mut rows: Vec<(IpAddr, R)> = rows.into_iter().collect();
    let rank = |r: &R| (r.sums[2] > 0, r.sums[1] > 0, r.last.clone(), r.sums[1]);
    rows.sort_by(|a, b| rank(&b.1).cmp(&rank(&a.1)).then(a.0.cmp(&b.0)));
    let rows: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|(client, r)| {
            let mut names: Vec<(String, u64)> = r.names.into_iter().collect();
            names.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            names.truncate(3);
            let machines: Vec<_> =
                r.machines.into_iter().map(|(h, m)| serde_json::json!({"hostname": h, "mac": m})).collect();
            serde_json::json!({
                "client": client, "first_contact": r.first, "last_contact": r.last, "contacts": r.sums[0],
                "after_prohibition": r.sums[1], "software_after_prohibition": r.sums[2], "blocked": r.sums[3],
                "monitored": r.sums[4], "categories": r.categories, "layers": r.layers, "top_names": names,
                "gateways": r.gateways, "machines": machines,
            })
        })
        .collect();
    serde_json::Value::Array(rows)
}

#[test]
fn hosts_rows_are_those_of_a_plain_line_by_line_count() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = (0..3)
        .map(|f| {
            let path = dir.path().join(format!("{f}.jsonl"));
            std::fs::write(&path, tricky_lines(f, [6000, 2500, 40][f as usize]).concat()).unwrap();
            path
        })
        .collect();
    let leases = Leases::parse(
        "1727564400 AA:00:00:00:00:01 10.0.1.1 laptop-a *\n1727600000 aa:00:00:00:00:02 10.0.1.1 laptop-b *\n\
         1727500000 aa:00:00:00:00:03 10.0.2.3 * *\n",
    );
    let since = Filter { since: Some("2024-09-28T12:00:00.000Z".into()), ..Filter::default() };
    for prohibition in [None, Some("2024-09-29T00:00:00.000Z")] {
        for (filter, leases) in
            [(&Filter::default(), None), (&Filter::default(), Some(&leases)), (&since, Some(&leases))]
        {
            let want = reference_hosts(&files, prohibition, filter, leases);
            let rows = want.as_array().cloned().unwrap_or_default();
            let big = rows.iter().find(|r| r["client"] == "10.0.1.1").cloned().unwrap_or_default();
            assert!(big["top_names"][0][0] == "(other)", "{big}");
            for reading in [
                Reading::sequential(),
                Reading { workers: 0, chunk: 1 },
                Reading { workers: 2, chunk: 1 },
                Reading { workers: 2, chunk: 3000 },
                Reading { workers: 3, chunk: 50_000 },
                Reading { workers: 8, chunk: 7 },
                Reading::auto(),
            ] {
                let got = hosts_with(&files, prohibition, filter, leases, reading).unwrap();
                let got = serde_json::to_value(&got.rows).unwrap();
                assert!(got == want, "{reading:?} {prohibition:?} {filter:?}");
            }
        }
    }
}

/// A reported row is a handle into its merger's block: what its accessors
/// read is what it serializes, several blocks (mergers) make one report,
/// and a row kept alone outlives the report and the other rows.
#[test]
fn hosts_rows_read_as_they_serialize_and_outlive_their_report() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.jsonl");
    std::fs::write(&path, tricky_lines(0, 6000).concat()).unwrap();
    let leases =
        Leases::parse("1727564400 aa:00:00:00:00:01 10.0.1.1 laptop-a *\n1727600000 aa:00:00:00:00:02 10.0.1.1 * *\n");
    let files = [path];
    let prohibition = Some("2024-09-29T00:00:00.000Z");
    let hosts = hosts_with(&files, prohibition, &Filter::default(), Some(&leases), Reading { workers: 3, chunk: 3000 });
    let hosts = hosts.unwrap();
    assert!(hosts.rows.len() > 10 && hosts.rows.iter().any(|r| r.machines().count() == 2));
    for r in &hosts.rows {
        let j = serde_json::to_value(r).unwrap();
        let sums = [r.contacts(), r.after_prohibition(), r.software_after_prohibition(), r.blocked(), r.monitored()];
        let want: Vec<_> = ["contacts", "after_prohibition", "software_after_prohibition", "blocked", "monitored"]
            .iter()
            .map(|k| j[*k].as_u64().unwrap())
            .collect();
        assert_eq!(sums.to_vec(), want);
        assert_eq!(
            (j["client"].as_str(), j["first_contact"].as_str()),
            (Some(&*r.client().to_string()), Some(r.first_contact()))
        );
        assert_eq!(j["last_contact"].as_str(), Some(r.last_contact()));
        for (counts, key) in [(r.categories(), "categories"), (r.layers(), "layers")] {
            let object = j[key].as_object().unwrap();
            let pairs: Vec<(&str, u64)> = counts.iter().collect();
            let want: Vec<(&str, u64)> = object.iter().map(|(k, v)| (k.as_str(), v.as_u64().unwrap())).collect();
            assert_eq!(pairs, want);
            assert!(pairs.iter().all(|&(k, n)| counts.get(k) == Some(n)) && counts.get("(none)").is_none());
            assert_eq!((counts.len(), counts.is_empty()), (pairs.len(), pairs.is_empty()));
        }
        let names: Vec<_> = r.top_names().map(|(n, c)| serde_json::json!([n, c])).collect();
        assert_eq!(serde_json::Value::from(names), j["top_names"]);
        assert_eq!(serde_json::Value::from(r.gateways().collect::<Vec<_>>()), j["gateways"]);
        let machines: Vec<_> =
            r.machines().map(|m| serde_json::json!({"hostname": m.hostname, "mac": m.mac})).collect();
        assert_eq!(serde_json::Value::from(machines), j["machines"]);
        assert!(format!("{r:?}").contains(r.last_contact()));
    }
    let (first, last) = (hosts.rows[0].clone(), hosts.rows[hosts.rows.len() - 1].clone());
    let want = serde_json::to_value([&first, &last]).unwrap();
    drop(hosts);
    assert_eq!(serde_json::to_value([&first, &last]).unwrap(), want);
}

/// Instants past year 9999 (`+10000-...` once canonical) and instants in
/// other forms, as first, last and `last_ts` contacts: the rows, and so
/// their order (by last contact, as text), are those of counting line by
/// line.
#[test]
fn hosts_rank_instants_past_9999_and_in_other_forms_as_their_text() {
    let dir = tempfile::tempdir().unwrap();
    let stamps = [
        "2024-09-29T04:00:01.123Z",
        "9999-12-31T23:59:59.999Z",
        "9999-12-31T23:59:59.999-02:00",
        "9999-12-31T23:00:00-03:00",
        "2024-09-29T00:00:01+02:00",
        "2024-09-29T04:00:01.124Z",
        "0001-01-01T00:00:00.000Z",
        "9999-12-31T22:00:00.000-02:00",
    ];
    let lines: String = (0..400u64)
        .map(|i| {
            let ts = stamps[(i % 8) as usize];
            let last = if i % 5 == 0 && i % 8 != 2 {
                format!(r#","count":2,"last_ts":"{}""#, stamps[(i / 5 % 8) as usize])
            } else {
                String::new()
            };
            // Two clients with only instants past 9999.
            let client =
                if i % 8 == 2 { format!("10.9.9.{}", i / 8 % 2) } else { format!("10.0.{}.{}", i % 3, i % 17) };
            format!(
                r#"{{"ts":"{ts}","seq":{i},"type":"contact","host":"gw1","client":"{client}","name":"n{}"{last}}}"#,
                i % 4
            ) + "\n"
        })
        .collect();
    let path = dir.path().join("a.jsonl");
    std::fs::write(&path, lines).unwrap();
    let files = [path];
    for prohibition in [None, Some("2024-09-29T04:00:01.124Z"), Some("+10000-01-01T00:00:00.000Z")] {
        let want = reference_hosts(&files, prohibition, &Filter::default(), None);
        let rows = want.as_array().cloned().unwrap_or_default();
        assert!(
            rows.iter().filter(|r| r["last_contact"].as_str().is_some_and(|t| t.starts_with('+'))).count() == 2,
            "{want}"
        );
        for reading in [Reading::sequential(), Reading { workers: 2, chunk: 500 }, Reading { workers: 3, chunk: 7 }] {
            let got = hosts_with(&files, prohibition, &Filter::default(), None, reading).unwrap();
            assert!(serde_json::to_value(&got.rows).unwrap() == want, "{reading:?} {prohibition:?}");
        }
    }
}
