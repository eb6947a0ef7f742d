//! The line format and the hash chain: how a [`Record`] becomes one line of
//! the log, and how a line's own hash is checked. Pure functions on bytes;
//! no file I/O here (the writer and `verify` bring the bytes).

use std::net::IpAddr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};
use sha2::{Digest, Sha256};

use super::record::{Checkpoint, Heartbeat, Layer, Record, RecordType, Retention};
use crate::policy::Action;

/// `prev_hash` of the first record of a log: 64 zeros.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What every line ends with, before the 64 hex digits and `"}`.
const HASH_KEY: &[u8] = b",\"hash\":\"";
/// Length of `,"hash":"<64 hex>"}`.
const HASH_SUFFIX_LEN: usize = HASH_KEY.len() + 64 + 2;

/// Why a line does not check.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("the record could not be serialized")]
    Encode(#[source] serde_json::Error),
    #[error("the line does not end with ,\"hash\":\"<64 lowercase hex digits>\"}}")]
    NoHash,
    #[error("hash mismatch: the line says {stored}, its content hashes to {computed}")]
    HashMismatch { stored: String, computed: String },
    #[error("the line is not a JSON record with seq, prev_hash and hash")]
    Parse(#[source] serde_json::Error),
    #[error("prev_hash is not 64 lowercase hex digits")]
    BadPrevHash,
}

/// The chain fields of one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainLink {
    pub seq: u64,
    pub prev_hash: String,
    pub hash: String,
}

/// Encodes `record` as one line, `\n` included. `default_host` stands in for
/// a record without `host`.
pub fn encode(record: &Record, seq: u64, prev_hash: &str, default_host: &str) -> Result<String, ChainError> {
    let mut buf = Vec::with_capacity(384);
    encode_into(&mut buf, record, seq, prev_hash, default_host)?;
    // serde_json writes UTF-8 only, so the lossy branch never runs.
    Ok(String::from_utf8(buf).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// Appends the line for `record` to `buf` and returns its hash. On error
/// `buf` is left as it was.
pub(crate) fn encode_into(
    buf: &mut Vec<u8>,
    record: &Record,
    seq: u64,
    prev_hash: &str,
    default_host: &str,
) -> Result<LineHash, ChainError> {
    write_line(buf, |out| Body::new(record, seq, prev_hash, default_host).write(out))
}

/// A submitted record's line without its chain fields, encoded on the
/// producer's thread. The writer only splices in `seq` and `prev_hash` and
/// hashes the line, so it neither encodes the record nor frees its strings
/// (glibc's `free` of another thread's allocations took a fifth of its time).
#[derive(Debug)]
pub(crate) struct Prepared {
    /// `{"ts":"…","seq":`, then from `split` on `,"type":…` through the
    /// last field before `prev_hash`.
    bytes: Vec<u8>,
    split: usize,
    pub ts: DateTime<Utc>,
    pub kind: RecordType,
}

impl Prepared {
    /// Room for a typical contact line, so most need one allocation.
    const CAPACITY: usize = 384;

    /// Encodes `record`; `default_host` stands in for a record without `host`.
    pub fn new(record: &Record, default_host: &str) -> Result<Prepared, ChainError> {
        let body = Body::new(record, 0, "", default_host);
        let mut bytes = Vec::with_capacity(Self::CAPACITY);
        body.write_opening(&mut bytes);
        let split = bytes.len();
        body.write_fields(&mut bytes).map_err(ChainError::Encode)?;
        Ok(Prepared { bytes, split, ts: record.ts, kind: record.kind })
    }
}

/// Appends the line of a [`Prepared`] record as `seq` after `prev_hash`:
/// the bytes [`encode_into`] writes for the same record.
pub(crate) fn encode_prepared_into(
    buf: &mut Vec<u8>,
    record: &Prepared,
    seq: u64,
    prev_hash: &str,
) -> Result<LineHash, ChainError> {
    let (opening, fields) = record.bytes.split_at(record.split);
    write_line(buf, |out| {
        out.extend_from_slice(opening);
        write_u64(out, seq);
        out.extend_from_slice(fields);
        write_closing(out, prev_hash)
    })
}

/// A line's hash as 64 lowercase hex digits, without allocating.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct LineHash([u8; 64]);

impl LineHash {
    pub fn as_str(&self) -> &str {
        // Lowercase hex digits are ASCII.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Debug for LineHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Appends the body `write_body` writes (a JSON object without `hash`) and
/// its hash as one line; on error `buf` is left as it was.
pub(super) fn write_line(
    buf: &mut Vec<u8>,
    write_body: impl FnOnce(&mut Vec<u8>) -> Result<(), serde_json::Error>,
) -> Result<LineHash, ChainError> {
    let start = buf.len();
    if let Err(e) = write_body(buf) {
        buf.truncate(start);
        return Err(ChainError::Encode(e));
    }
    let mut hash = [0; 64];
    hex_into(&Sha256::digest(&buf[start..]), &mut hash);
    buf.pop(); // the body's closing `}`
    buf.extend_from_slice(HASH_KEY);
    buf.extend_from_slice(&hash);
    buf.extend_from_slice(b"\"}\n");
    Ok(LineHash(hash))
}

/// Checks a line's own hash (a trailing `\n` is allowed) and returns its
/// chain fields. Whether it links to the line before is the caller's job.
pub fn check_line(line: &str) -> Result<ChainLink, ChainError> {
    check_hash(line.as_bytes())?;
    parse_link(line)
}

/// Checks a line's own hash (a trailing `\n` is allowed) without parsing
/// it, and returns the stored hash.
pub fn check_hash(line: &[u8]) -> Result<&str, ChainError> {
    let text = line.strip_suffix(b"\n").unwrap_or(line);
    let cut = text.len().checked_sub(HASH_SUFFIX_LEN).ok_or(ChainError::NoHash)?;
    let (body, suffix) = text.split_at(cut);
    let stored = &suffix[HASH_KEY.len()..HASH_KEY.len() + 64];
    if !suffix.starts_with(HASH_KEY) || !suffix.ends_with(b"\"}") || !is_lower_hex(stored) {
        return Err(ChainError::NoHash);
    }
    let mut computed = [0; 64];
    hex_into(&Sha256::new().chain_update(body).chain_update(b"}").finalize(), &mut computed);
    if computed != stored {
        let stored = String::from_utf8_lossy(stored).into_owned();
        let computed = String::from_utf8_lossy(&computed).into_owned();
        return Err(ChainError::HashMismatch { stored, computed });
    }
    // Lowercase hex digits are ASCII, so this never fails.
    std::str::from_utf8(stored).map_err(|_| ChainError::NoHash)
}

/// Reads `seq`, `prev_hash` and `hash` without checking the hash. The whole
/// line must be one JSON object, without duplicate chain fields.
pub(crate) fn parse_link(line: &str) -> Result<ChainLink, ChainError> {
    #[derive(Deserialize)]
    struct Fields {
        seq: u64,
        prev_hash: String,
        hash: String,
    }
    let f: Fields = serde_json::from_str(line).map_err(ChainError::Parse)?;
    if !is_lower_hex(f.prev_hash.as_bytes()) {
        return Err(ChainError::BadPrevHash);
    }
    Ok(ChainLink { seq: f.seq, prev_hash: f.prev_hash, hash: f.hash })
}

/// Lowercase hex of a SHA-256 digest into `out`, without allocating.
fn hex_into(digest: &[u8], out: &mut [u8; 64]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, &b) in out.chunks_exact_mut(2).zip(digest) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0x0f)];
    }
}

fn is_lower_hex(s: &[u8]) -> bool {
    s.len() == 64 && s.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A record's `policy` object, borrowed.
#[derive(Serialize, Clone, Copy)]
struct PolicyView<'a> {
    id: &'a str,
    hash: &'a str,
}

/// The line without `hash`, fields in the documented order.
#[derive(Serialize)]
struct Body<'a> {
    ts: Millis,
    seq: u64,
    #[serde(rename = "type")]
    kind: RecordType,
    host: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    layer: Option<Layer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    qtype: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dst: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dport: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<Action>,
    #[serde(skip_serializing_if = "Option::is_none")]
    category: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    phase: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy: Option<PolicyView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    enforced: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_ts: Option<Millis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_ts: Option<Millis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    checkpoint: Option<&'a Checkpoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    heartbeat: Option<&'a Heartbeat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retention: Option<&'a Retention>,
    prev_hash: &'a str,
}

impl<'a> Body<'a> {
    fn new(r: &'a Record, seq: u64, prev_hash: &'a str, default_host: &'a str) -> Self {
        Body {
            ts: Millis(r.ts),
            seq,
            kind: r.kind,
            host: r.host.as_deref().unwrap_or(default_host),
            client: r.client,
            layer: r.layer,
            name: r.name.as_deref(),
            qtype: r.qtype.as_deref(),
            dst: r.dst,
            dport: r.dport,
            action: r.action,
            category: r.category.as_deref(),
            rule: r.rule.as_deref(),
            phase: r.phase.as_deref(),
            policy: r.policy.as_ref().map(|p| PolicyView { id: &p.id, hash: &p.hash }),
            message: r.message.as_deref(),
            count: r.count,
            correlation: r.correlation.as_deref(),
            enforced: r.enforced,
            first_ts: r.first_ts.map(Millis),
            last_ts: r.last_ts.map(Millis),
            checkpoint: r.checkpoint.as_ref(),
            heartbeat: r.heartbeat.as_ref(),
            retention: r.retention.as_ref(),
            prev_hash,
        }
    }
}

impl Body<'_> {
    /// Appends the body as JSON, fields in the documented order: the same
    /// bytes serde_json writes for `Body` (a test holds them equal), without
    /// its per-field machinery — this runs once per audit record.
    fn write(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        self.write_opening(out);
        write_u64(out, self.seq);
        self.write_fields(out)?;
        write_closing(out, self.prev_hash)
    }

    /// `{"ts":"…","seq":`
    fn write_opening(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"ts\":\"");
        write_ts(out, &self.ts.0);
        out.extend_from_slice(b"\",\"seq\":");
    }

    /// `,"type":…` through the last field before `prev_hash`.
    fn write_fields(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        out.extend_from_slice(b",\"type\":\"");
        out.extend_from_slice(self.kind.as_str().as_bytes());
        out.extend_from_slice(b"\",\"host\":");
        write_str(out, self.host)?;
        if let Some(ip) = self.client {
            key(out, "client");
            write_ip(out, ip);
        }
        if let Some(layer) = self.layer {
            key(out, "layer");
            write_plain(out, layer.as_str());
        }
        opt_str(out, "name", self.name)?;
        opt_str(out, "qtype", self.qtype)?;
        if let Some(ip) = self.dst {
            key(out, "dst");
            write_ip(out, ip);
        }
        if let Some(port) = self.dport {
            key(out, "dport");
            write_u64(out, u64::from(port));
        }
        if let Some(action) = self.action {
            key(out, "action");
            write_plain(out, action.as_str());
        }
        opt_str(out, "category", self.category)?;
        opt_str(out, "rule", self.rule)?;
        opt_str(out, "phase", self.phase)?;
        if let Some(p) = self.policy {
            key(out, "policy");
            out.extend_from_slice(b"{\"id\":");
            write_str(out, p.id)?;
            out.extend_from_slice(b",\"hash\":");
            write_str(out, p.hash)?;
            out.push(b'}');
        }
        opt_str(out, "message", self.message)?;
        if let Some(n) = self.count {
            key(out, "count");
            write_u64(out, n);
        }
        opt_str(out, "correlation", self.correlation)?;
        if let Some(e) = self.enforced {
            key(out, "enforced");
            out.extend_from_slice(if e { b"true" } else { b"false" });
        }
        for (name, ts) in [("first_ts", &self.first_ts), ("last_ts", &self.last_ts)] {
            if let Some(ts) = ts {
                key(out, name);
                out.push(b'"');
                write_ts(out, &ts.0);
                out.push(b'"');
            }
        }
        // Rare records: serde_json writes the nested objects.
        if let Some(c) = self.checkpoint {
            key(out, "checkpoint");
            serde_json::to_writer(&mut *out, c)?;
        }
        if let Some(h) = self.heartbeat {
            key(out, "heartbeat");
            serde_json::to_writer(&mut *out, h)?;
        }
        if let Some(r) = self.retention {
            key(out, "retention");
            serde_json::to_writer(&mut *out, r)?;
        }
        Ok(())
    }
}

/// `,"prev_hash":"…"}`
fn write_closing(out: &mut Vec<u8>, prev_hash: &str) -> Result<(), serde_json::Error> {
    key(out, "prev_hash");
    write_str(out, prev_hash)?;
    out.push(b'}');
    Ok(())
}

/// `,"name":`
pub(super) fn key(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

pub(super) fn opt_str(out: &mut Vec<u8>, name: &str, value: Option<&str>) -> Result<(), serde_json::Error> {
    match value {
        Some(v) => {
            key(out, name);
            write_str(out, v)
        }
        None => Ok(()),
    }
}

/// A JSON string. Text without `"`, `\\` or control characters (names,
/// rules, hashes: nearly everything) is copied; the rest goes through
/// serde_json, so escaping is exactly serde_json's.
pub(super) fn write_str(out: &mut Vec<u8>, s: &str) -> Result<(), serde_json::Error> {
    if needs_escape(s.as_bytes()) {
        serde_json::to_writer(&mut *out, s)
    } else {
        write_plain(out, s);
        Ok(())
    }
}

/// Whether `s` holds a byte JSON escapes (`"`, `\\`, a control character),
/// eight bytes at a time: each test below is non-zero exactly when some
/// byte of the word is zero (after the `^`) or below 0x20.
fn needs_escape(s: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below = |w: u64, n: u64| w.wrapping_sub(ONES * n) & !w & HIGH;
    let mut words = s.chunks_exact(8);
    for word in &mut words {
        let Ok(bytes) = <[u8; 8]>::try_from(word) else { return true };
        let w = u64::from_le_bytes(bytes);
        if below(w, 0x20) | below(w ^ (ONES * u64::from(b'"')), 1) | below(w ^ (ONES * u64::from(b'\\')), 1) != 0 {
            return true;
        }
    }
    words.remainder().iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// A string known to need no escaping (enum names).
pub(super) fn write_plain(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

pub(super) fn write_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

pub(super) fn write_ip(out: &mut Vec<u8>, ip: IpAddr) {
    use std::io::Write;
    out.push(b'"');
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                write_u64(out, u64::from(octet));
            }
        }
        // Writing to a Vec cannot fail.
        IpAddr::V6(v6) => drop(write!(out, "{v6}")),
    }
    out.push(b'"');
}

/// `format_ts` without its formatting machinery, for years 0..=9999 (the
/// rest, and leap seconds, go through chrono).
pub(super) fn write_ts(out: &mut Vec<u8>, ts: &DateTime<Utc>) {
    use chrono::{Datelike, Timelike};
    let (year, nanos) = (ts.year(), ts.nanosecond());
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        out.extend_from_slice(format_ts(ts).as_bytes());
        return;
    }
    let two = |out: &mut Vec<u8>, n: u32| out.extend_from_slice(&[b'0' + (n / 10) as u8, b'0' + (n % 10) as u8]);
    let year = year as u32;
    two(out, year / 100);
    two(out, year % 100);
    out.push(b'-');
    two(out, ts.month());
    out.push(b'-');
    two(out, ts.day());
    out.push(b'T');
    two(out, ts.hour());
    out.push(b':');
    two(out, ts.minute());
    out.push(b':');
    two(out, ts.second());
    let ms = nanos / 1_000_000;
    out.extend_from_slice(&[b'.', b'0' + (ms / 100) as u8, b'0' + (ms / 10 % 10) as u8, b'0' + (ms % 10) as u8, b'Z']);
}

/// RFC 3339 UTC with milliseconds and `Z`: `2024-09-29T04:00:01.123Z`.
struct Millis(DateTime<Utc>);

impl Serialize for Millis {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_ts(&self.0))
    }
}

/// A record's `ts` as written: RFC 3339 UTC, milliseconds, `Z`.
pub fn format_ts(ts: &DateTime<Utc>) -> String {
    // Several times faster than `format("%Y-...%.3fZ")`, same text.
    ts.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::{PolicyRef, RecordType};

    /// The example of docs/audit-log.md.
    fn example() -> Record {
        let ts = "2024-09-29T04:00:01.123456Z".parse().unwrap();
        Record::contact(ts, "192.168.1.20".parse().unwrap(), Layer::Dns)
            .with_name("S10.upd.Kaspersky.com.")
            .with_qtype("A")
            .with_verdict(Action::Block, "update", "domain:upd.kaspersky.com", "prohibition")
            .with_policy(
                "us-bis-kaspersky-2024",
                "sha256:50d858e0985ecc7f60418aaf0cc5ab587f42c2570a884095a9e8ccacd0f6545c",
            )
    }

    /// Both lines exactly as printed in docs/audit-log.md.
    const START_LINE: &str = r#"{"ts":"2024-09-29T04:00:00.002Z","seq":1,"type":"start","host":"gw1","message":"warden 0.1.0 audit writer (pid 812) started, log format 1, new chain","prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","hash":"3d130f88d64f7b6d5344b88ee3ec728be642042033ad8a4db8219d2c50edf799"}"#;
    const EXAMPLE_LINE: &str = r#"{"ts":"2024-09-29T04:00:01.123Z","seq":2,"type":"contact","host":"gw1","client":"192.168.1.20","layer":"dns","name":"s10.upd.kaspersky.com","qtype":"A","action":"block","category":"update","rule":"domain:upd.kaspersky.com","phase":"prohibition","policy":{"id":"us-bis-kaspersky-2024","hash":"sha256:50d858e0985ecc7f60418aaf0cc5ab587f42c2570a884095a9e8ccacd0f6545c"},"prev_hash":"3d130f88d64f7b6d5344b88ee3ec728be642042033ad8a4db8219d2c50edf799","hash":"81481e35cfed864941dc90295a7eb4dc6cc55239a42a4d9ac1badc6bc86b6e46"}"#;

    fn start() -> Record {
        let ts = "2024-09-29T04:00:00.002Z".parse().unwrap();
        let text = "warden 0.1.0 audit writer (pid 812) started, log format 1, new chain";
        Record::event(ts, RecordType::Start, text)
    }

    /// The word-at-a-time scan finds every byte JSON escapes wherever it
    /// sits, and nothing else (UTF-8 continuation bytes included).
    #[test]
    fn needs_escape_finds_exactly_the_bytes_json_escapes() {
        for len in 1..=19 {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut text = vec![b'a'; len];
                    text[at] = b;
                    let expected = b < 0x20 || b == b'"' || b == b'\\';
                    assert_eq!(needs_escape(&text), expected, "byte {b:#04x} at {at} of {len}");
                }
            }
        }
        assert!(!needs_escape("é-ü.example.net".as_bytes()));
        assert!(!needs_escape(b""));
    }

    /// The hand-written encoder writes exactly serde_json's bytes for `Body`,
    /// for every record type, layer, optional field, escape and odd instant.
    #[test]
    fn hand_encoder_matches_serde_json() {
        for r in &varied() {
            for seq in [0, 1, 12345, u64::MAX] {
                let body = Body::new(r, seq, GENESIS, "gw \"default\"");
                let mut hand = Vec::new();
                body.write(&mut hand).unwrap();
                let serde = serde_json::to_vec(&body).unwrap();
                assert_eq!(String::from_utf8_lossy(&hand), String::from_utf8_lossy(&serde));
            }
        }
    }

    #[test]
    fn a_record_prepared_by_its_producer_is_the_line_the_writer_would_encode() {
        let mut prev = GENESIS.to_owned();
        for (i, r) in varied().iter().enumerate() {
            let seq = [1, 12345, u64::MAX][i % 3];
            let (mut direct, mut prepared) = (b"before\n".to_vec(), b"before\n".to_vec());
            let hash = encode_into(&mut direct, r, seq, &prev, "gw \"default\"").unwrap();
            let p = Prepared::new(r, "gw \"default\"").unwrap();
            assert_eq!((p.ts, p.kind), (r.ts, r.kind));
            let prepared_hash = encode_prepared_into(&mut prepared, &p, seq, &prev).unwrap();
            assert_eq!(String::from_utf8_lossy(&prepared), String::from_utf8_lossy(&direct));
            assert_eq!(prepared_hash, hash);
            let link = check_line(std::str::from_utf8(&prepared[7..]).unwrap()).unwrap();
            assert_eq!((link.seq, link.prev_hash.as_str(), link.hash.as_str()), (seq, prev.as_str(), hash.as_str()));
            prev = hash.as_str().to_owned();
        }
    }

    /// Records of every kind, layer and awkward text, every field set.
    fn varied() -> Vec<Record> {
        let kinds = [
            RecordType::Contact,
            RecordType::Start,
            RecordType::Stop,
            RecordType::Loss,
            RecordType::Recovered,
            RecordType::Policy,
            RecordType::Checkpoint,
            RecordType::Heartbeat,
            RecordType::Retention,
            RecordType::Rotate,
            RecordType::Failure,
        ];
        let layers = [Layer::Dns, Layer::DnsBypass, Layer::Sni, Layer::Http, Layer::Ip];
        let instants = [
            "2024-09-29T04:00:01.123456Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999Z",
            "2024-02-29T12:05:09.007Z",
            "+10000-01-01T00:00:00Z",
        ];
        let texts = ["plain text", "quote \" back\\ nl\n tab\t bell\u{7} del\u{7f}", "unicode é — 🦀", ""];
        let mut records = vec![example(), start()];
        for (i, kind) in kinds.into_iter().enumerate() {
            let ts: DateTime<Utc> = instants[i % instants.len()].parse().unwrap();
            let mut r = Record::event(ts, kind, texts[i % texts.len()]);
            r.host = (i % 2 == 0).then(|| format!("gw-{}", texts[(i + 1) % texts.len()]));
            r.client = Some(if i % 2 == 0 { "10.0.0.255".parse().unwrap() } else { "fd00::1:2".parse().unwrap() });
            r.layer = Some(layers[i % layers.len()]);
            r.name = Some(format!("h{i}.example.org"));
            r.qtype = Some("HTTPS".into());
            r.dst = Some(if i % 3 == 0 { "198.18.0.1".parse().unwrap() } else { "::ffff:1.2.3.4".parse().unwrap() });
            r.dport = Some(if i % 2 == 0 { 0 } else { 65535 });
            r.action = Some([Action::Allow, Action::Monitor, Action::Block][i % 3]);
            r.category = Some(texts[(i + 2) % texts.len()].into());
            r.rule = Some("wildcard:dnl-*.geo.kaspersky.com".into());
            r.phase = Some("prohibition".into());
            r.policy = Some(PolicyRef { id: texts[(i + 3) % texts.len()].into(), hash: "sha256:00".into() });
            r.count = Some([0, 1, 9, 10, u64::MAX][i % 5]);
            r.correlation = Some("6b09df36-1".into());
            r.enforced = Some(i % 2 == 0);
            r.first_ts = Some(ts);
            r.last_ts = Some(instants[(i + 1) % instants.len()].parse().unwrap());
            r.checkpoint = Some(Checkpoint { seq: 7, hash: "ab".into(), key: "k\"".into(), sig: "00".into() });
            r.heartbeat = Some(Heartbeat { interval_s: 300, written: 5, dropped: 0, enforcing: true });
            r.retention =
                Some(Retention { file: "a.jsonl".into(), first_seq: 1, last_seq: 2, last_hash: GENESIS.into() });
            records.push(r);
        }
        records
    }

    #[test]
    fn example_lines_match_the_documentation() {
        let l1 = encode(&start(), 1, GENESIS, "gw1").unwrap();
        assert_eq!(l1, format!("{START_LINE}\n"));
        let h1 = check_line(&l1).unwrap().hash;
        let l2 = encode(&example(), 2, &h1, "gw1").unwrap();
        assert_eq!(l2, format!("{EXAMPLE_LINE}\n"));
    }

    #[test]
    fn encode_then_check_line_roundtrips() {
        let line = encode(&example(), 7, GENESIS, "gw1").unwrap();
        assert!(line.ends_with("\"}\n") && !line[..line.len() - 1].contains('\n'));
        let link = check_line(&line).unwrap();
        assert_eq!((link.seq, link.prev_hash.as_str()), (7, GENESIS));
        assert_eq!(check_line(line.trim_end()).unwrap(), link);
        let back: Record = serde_json::from_str(&line).unwrap();
        assert_eq!(back.name.as_deref(), Some("s10.upd.kaspersky.com"));
        assert_eq!(back.host.as_deref(), Some("gw1"));
        assert_eq!(back.ts.timestamp_subsec_millis(), 123);
    }

    #[test]
    fn editing_any_byte_breaks_check_line() {
        let line = encode(&example(), 2, GENESIS, "gw1").unwrap();
        let text = line.trim_end_matches('\n');
        for i in 0..text.len() {
            let mut bytes = text.as_bytes().to_vec();
            bytes[i] = if bytes[i] == b'0' { b'1' } else { b'0' };
            let edited = String::from_utf8(bytes).unwrap();
            assert!(check_line(&edited).is_err(), "edit at byte {i} passed: {edited}");
        }
    }

    #[test]
    fn hex_into_matches_the_hex_crate() {
        let digest = Sha256::digest(b"abc");
        let mut out = [0; 64];
        hex_into(&digest, &mut out);
        assert_eq!(out, hex::encode(digest).as_bytes());
    }

    #[test]
    fn check_line_rejects_lines_without_a_hash() {
        for bad in ["", "{}", "{\"hash\":\"00\"}", "not json at all, not json at all, not json at all"] {
            assert!(matches!(check_line(bad), Err(ChainError::NoHash)), "{bad}");
        }
    }

    #[test]
    fn check_line_rejects_a_recomputed_line_that_is_not_json() {
        let body = format!("{{\"seq\":1,\"prev_hash\":\"{GENESIS}\",}}");
        let hash = hex::encode(Sha256::digest(body.as_bytes()));
        let line = format!("{},\"hash\":\"{hash}\"}}", &body[..body.len() - 1]);
        assert!(matches!(check_line(&line), Err(ChainError::Parse(_))));
    }
}
