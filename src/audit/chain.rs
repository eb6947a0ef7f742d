//! The line format and the hash chain: how a [`Record`] becomes one line of
//! the log, and how a line's own hash is checked. Pure functions on bytes;
//! no file I/O here (the writer and `verify` bring the bytes).

use std::net::IpAddr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};
use sha2::{Digest, Sha256};

use super::record::{Checkpoint, Heartbeat, Layer, PolicyRef, Record, RecordType, Retention};
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
) -> Result<String, ChainError> {
    let start = buf.len();
    let body = Body::new(record, seq, prev_hash, default_host);
    if let Err(e) = serde_json::to_writer(&mut *buf, &body) {
        buf.truncate(start);
        return Err(ChainError::Encode(e));
    }
    let hash = lower_hex(&Sha256::digest(&buf[start..]));
    buf.pop(); // the body's closing `}`
    buf.extend_from_slice(HASH_KEY);
    buf.extend_from_slice(hash.as_bytes());
    buf.extend_from_slice(b"\"}\n");
    Ok(hash)
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

/// Lowercase hex; several times faster than `hex::encode` on a digest.
fn lower_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(2 * bytes.len());
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
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
    policy: Option<&'a PolicyRef>,
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
            policy: r.policy.as_ref(),
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
    use crate::audit::record::RecordType;

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
    fn lower_hex_matches_the_hex_crate() {
        let digest = Sha256::digest(b"abc");
        assert_eq!(lower_hex(&digest), hex::encode(digest));
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
        let hash = lower_hex(&Sha256::digest(body.as_bytes()));
        let line = format!("{},\"hash\":\"{hash}\"}}", &body[..body.len() - 1]);
        assert!(matches!(check_line(&line), Err(ChainError::Parse(_))));
    }
}
