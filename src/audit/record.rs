//! The record a producer submits: what happened, when, where and under which
//! policy. Plain data; the wire format (field order, `seq`, hashes) belongs to
//! `chain`, so nothing here knows about the log file.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::policy::Action;

/// What a record reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordType {
    /// A client tried to reach a prohibited name or address.
    Contact,
    /// The writer opened the log.
    Start,
    /// The writer closed the log.
    Stop,
    /// Records were lost (channel full or failed disk writes); see `count`.
    Loss,
    /// The writer repaired a torn tail left by a crash.
    Recovered,
    /// A policy was loaded or replaced.
    Policy,
    /// A signed chain head (Ed25519), see `checkpoint`.
    Checkpoint,
    /// The writer is alive; counters since the last one, see `heartbeat`.
    Heartbeat,
    /// A closed log file was deleted by the retention limit, see `retention`.
    Retention,
    /// The first record of a new file after rotation.
    Rotate,
    /// Enforcement stopped being active (or could not start).
    Failure,
}

impl RecordType {
    /// The name written in `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordType::Contact => "contact",
            RecordType::Start => "start",
            RecordType::Stop => "stop",
            RecordType::Loss => "loss",
            RecordType::Recovered => "recovered",
            RecordType::Policy => "policy",
            RecordType::Checkpoint => "checkpoint",
            RecordType::Heartbeat => "heartbeat",
            RecordType::Retention => "retention",
            RecordType::Rotate => "rotate",
            RecordType::Failure => "failure",
        }
    }
}

/// Where the contact was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layer {
    /// A query to warden's own DNS server.
    Dns,
    /// A DNS query to some other resolver, seen on the wire.
    DnsBypass,
    /// The server name of a TLS ClientHello.
    Sni,
    /// The Host header of a plain HTTP request.
    Http,
    /// A packet to a prohibited address, no name seen.
    Ip,
}

impl Layer {
    /// The name written in `layer`.
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Dns => "dns",
            Layer::DnsBypass => "dns-bypass",
            Layer::Sni => "sni",
            Layer::Http => "http",
            Layer::Ip => "ip",
        }
    }
}

/// The policy in force: its id and the `sha256:<hex>` of its file.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PolicyRef {
    pub id: String,
    pub hash: String,
}

/// `name` without its trailing dot (a lone `.` stays), as records keep names.
pub(super) fn without_root_dot(name: &str) -> &str {
    name.strip_suffix('.').filter(|n| !n.is_empty()).unwrap_or(name)
}

/// One audit event, as a producer submits it. Every optional field that is
/// `None` is left out of the written line. Deserializing a written line into
/// a `Record` ignores `seq`, `prev_hash` and `hash`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Event time, set by the producer.
    pub ts: DateTime<Utc>,
    #[serde(rename = "type")]
    pub kind: RecordType,
    /// Gateway name; the writer fills it from its config when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<Layer>,
    /// Lowercase name without trailing dot (A-label form for IDNs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// DNS query type (`A`, `AAAA`, `HTTPS`, ...); DNS layers only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qtype: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dport: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyRef>,
    /// Human-readable text for non-contact records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// For `loss` records: how many records were lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Links the records of one attempt (DNS lookup, connection, SNI/Host)
    /// by the same client: equal ids belong together. Packet layers and
    /// the DNS layer when the packet layer runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation: Option<String>,
    /// Packet layers: whether warden's enforcement acted on the contact
    /// (nftables set, TCP reset, DNS redirect); `false` when only logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforced: Option<bool>,
    /// Aggregated packet contacts (`count` > 1): first and last sighting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_ts: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ts: Option<DateTime<Utc>>,
    /// For `checkpoint` records: the signed chain head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
    /// For `heartbeat` records: counters since the previous heartbeat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<Heartbeat>,
    /// For `retention` records: the file that was deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
}

/// A signed chain head: `seq` and `hash` of the record just before the
/// checkpoint, signed with the writer's Ed25519 key (see `audit::sign`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub seq: u64,
    pub hash: String,
    /// Key id: the first 16 hex digits of SHA-256 over the public key.
    pub key: String,
    /// Ed25519 signature, 128 lowercase hex digits.
    pub sig: String,
}

/// Liveness and counters since the previous heartbeat (or `start`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The heartbeat interval in seconds: a longer silence is a gap.
    pub interval_s: u64,
    /// Submitted records written since the previous heartbeat.
    pub written: u64,
    /// Submitted records lost since the previous heartbeat.
    pub dropped: u64,
    /// Whether enforcement (the DNS server) was active at this instant.
    pub enforcing: bool,
}

/// A closed file deleted by the retention limit: its name and the chain
/// span it held, so the next file's first `prev_hash` stays explained.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    pub file: String,
    pub first_seq: u64,
    pub last_seq: u64,
    pub last_hash: String,
}

impl Record {
    /// A record of `kind` with every optional field `None`.
    pub fn new(ts: DateTime<Utc>, kind: RecordType) -> Record {
        Record {
            ts,
            kind,
            host: None,
            client: None,
            layer: None,
            name: None,
            qtype: None,
            dst: None,
            dport: None,
            action: None,
            category: None,
            rule: None,
            phase: None,
            policy: None,
            message: None,
            count: None,
            correlation: None,
            enforced: None,
            first_ts: None,
            last_ts: None,
            checkpoint: None,
            heartbeat: None,
            retention: None,
        }
    }

    /// A `contact` record: `client` tried something seen at `layer`.
    /// IPv4-mapped IPv6 addresses are written as IPv4.
    pub fn contact(ts: DateTime<Utc>, client: IpAddr, layer: Layer) -> Record {
        Record { client: Some(client.to_canonical()), layer: Some(layer), ..Record::new(ts, RecordType::Contact) }
    }

    /// A non-contact record (`start`, `policy`, ...) carrying a message.
    pub fn event(ts: DateTime<Utc>, kind: RecordType, message: impl Into<String>) -> Record {
        Record { message: Some(message.into()), ..Record::new(ts, kind) }
    }

    /// Sets `name`, lowercased (ASCII) and without a trailing dot.
    pub fn with_name(mut self, name: impl Into<String>) -> Record {
        let mut name = name.into();
        name.truncate(without_root_dot(&name).len());
        name.make_ascii_lowercase();
        self.name = Some(name);
        self
    }

    pub fn with_qtype(mut self, qtype: impl Into<String>) -> Record {
        self.qtype = Some(qtype.into());
        self
    }

    /// Sets `dst` (IPv4-mapped IPv6 written as IPv4) and, if known, `dport`.
    pub fn with_dst(mut self, dst: IpAddr, dport: Option<u16>) -> Record {
        self.dst = Some(dst.to_canonical());
        self.dport = dport;
        self
    }

    /// Sets the verdict fields: `action`, `category`, `rule` and `phase`.
    pub fn with_verdict(
        mut self,
        action: Action,
        category: impl Into<String>,
        rule: impl Into<String>,
        phase: impl Into<String>,
    ) -> Record {
        self.action = Some(action);
        self.category = Some(category.into());
        self.rule = Some(rule.into());
        self.phase = Some(phase.into());
        self
    }

    pub fn with_policy(mut self, id: impl Into<String>, hash: impl Into<String>) -> Record {
        self.policy = Some(PolicyRef { id: id.into(), hash: hash.into() });
        self
    }

    pub fn with_host(mut self, host: impl Into<String>) -> Record {
        self.host = Some(host.into());
        self
    }

    pub fn with_message(mut self, message: impl Into<String>) -> Record {
        self.message = Some(message.into());
        self
    }

    pub fn with_count(mut self, count: u64) -> Record {
        self.count = Some(count);
        self
    }
}
