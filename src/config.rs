//! The daemon's settings: one TOML file (every key optional, unknown keys
//! rejected, errors with line numbers) with command-line flags on top.
//!
//! All validation happens here, before any socket is bound: syntax and type
//! errors, every unknown key, and every out-of-range value are reported
//! together, each with its line. `warden check --config` and `warden run`
//! share this path. It does no other I/O than reading the file.

mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

use crate::audit::FsyncPolicy;
use crate::audit::compress::Compression;
use crate::audit::retention::Hold;
use crate::audit::syslog::SyslogConfig;
use crate::dns::DnsConfig;
use crate::dns::ratelimit::RateLimitConfig;
use crate::policy::{Problem, Problems};

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{file}:{line}:{column}: {message}")]
    Parse { file: String, line: usize, column: usize, message: String },
    #[error("config {} is invalid ({} problem{}):\n{problems}", problems.file, problems.list.len(), if problems.list.len() == 1 { "" } else { "s" })]
    Invalid { problems: Problems },
}

/// Everything `warden run` needs to know.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Unprivileged user to switch to after binding sockets, when started
    /// as root. `None`: stay as started (a warning is logged when root).
    pub user: Option<String>,
    pub dns: DnsConfig,
    pub rate_limit: RateLimitConfig,
    pub policy: PolicyConfig,
    pub audit: AuditSettings,
    pub metrics: MetricsConfig,
    pub packet: crate::packet::PacketConfig,
    pub enforce: crate::enforce::EnforceConfig,
}

/// `[policy]`: which policy to enforce and how to notice it changed.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct PolicyConfig {
    /// Policy file; the built-in Kaspersky policy when absent.
    pub file: Option<PathBuf>,
    /// Blocklist files (plain, hosts or `||name^` lines) blocked beside the
    /// policy, each entry with its subdomains, in every phase.
    pub blocklists: Vec<PathBuf>,
    /// Reload when the file changes on disk (polls its metadata).
    pub watch: bool,
    /// How often the file's metadata is polled, in milliseconds.
    pub watch_interval_ms: u64,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig { file: None, blocklists: Vec::new(), watch: true, watch_interval_ms: 1000 }
    }
}

/// `[audit]`: where the audit log goes.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AuditSettings {
    /// The JSON Lines audit log (appended to; the chain continues).
    pub path: PathBuf,
    /// The gateway's name in records; the machine's hostname when absent.
    pub host: Option<String>,
    /// Records buffered between the query path and the writer.
    pub channel_capacity: usize,
    /// Flush (and fsync) at least this often, in milliseconds.
    pub flush_interval_ms: u64,
    /// `interval` (write + fdatasync every flush interval) or `record`
    /// (after every record). See docs/audit-log.md.
    pub fsync: FsyncPolicy,
    /// A `heartbeat` record this often, in seconds (0: none).
    pub heartbeat_interval_s: u64,
    /// Ed25519 key (`warden audit keygen`) for signed `checkpoint` records;
    /// must live outside the log directory. None: no checkpoints.
    pub signing_key: Option<PathBuf>,
    /// A `checkpoint` this often, in seconds (and at rotation and stop).
    pub checkpoint_interval_s: u64,
    /// Rotate the live file at this size in bytes (None: never by size).
    pub rotate_max_bytes: Option<u64>,
    /// Rotate when the live file's first record is this old, in seconds.
    pub rotate_max_age_s: Option<u64>,
    /// Compress closed files: `none`, `gzip` or `zstd`.
    pub compress: Compression,
    /// Keep at most this many closed files (files without contacts go first).
    pub keep_files: Option<usize>,
    /// Delete closed files older than this many days.
    pub keep_days: Option<u64>,
    /// Closed files holding vendor contacts: this many days instead.
    pub keep_contact_days: Option<u64>,
    /// Time ranges never deleted (`START/END`, RFC 3339).
    pub hold: Vec<Hold>,
    /// Ship records to syslog (RFC 5424), `[audit.syslog]`.
    pub syslog: Option<SyslogConfig>,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            path: PathBuf::from("warden-audit.jsonl"),
            host: None,
            channel_capacity: 65_536,
            flush_interval_ms: 1000,
            fsync: FsyncPolicy::Interval,
            heartbeat_interval_s: 300,
            signing_key: None,
            checkpoint_interval_s: 3600,
            rotate_max_bytes: None,
            rotate_max_age_s: None,
            compress: Compression::None,
            keep_files: None,
            keep_days: None,
            keep_contact_days: None,
            hold: Vec::new(),
            syslog: None,
        }
    }
}

/// `[metrics]`: the Prometheus / health endpoint. Off unless `listen` is set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct MetricsConfig {
    /// Address of the HTTP endpoint (`/metrics`, `/healthz`, `/readyz`).
    pub listen: Option<SocketAddr>,
}

impl Config {
    /// Read, parse and validate a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Parse and validate config text; `file` names it in errors. Every
    /// unknown key and every bad value is reported, not just the first.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let mut unknown = Vec::new();
        let parsed: Result<Config, _> =
            serde_ignored::deserialize(toml::Deserializer::new(text), |path| unknown.push(path.to_string()));
        for path in &unknown {
            let (section, key) = path.rsplit_once('.').unwrap_or(("", path));
            let where_ = if section.is_empty() { String::new() } else { format!(" in [{section}]") };
            problems.push(problem(text, validate::locate(text, path), format!("unknown field `{key}`{where_}")));
        }
        let config = match parsed {
            Ok(config) => Some(config),
            Err(e) => {
                let offset = e.span().map_or(0, |s| s.start);
                problems.push(problem(text, offset, e.message().trim_end().to_owned()));
                None
            }
        };
        if let Some(config) = &config {
            for (path, message) in validate::check(config) {
                problems.push(problem(text, validate::locate(text, path), message));
            }
        }
        match config {
            Some(config) if problems.is_empty() => Ok(config),
            _ => Err(finish(file, problems)),
        }
    }
}

fn problem(text: &str, offset: usize, message: String) -> Problem {
    let (line, column) = validate::line_col(text, offset);
    Problem { line, column, message }
}

fn finish(file: &str, mut list: Vec<Problem>) -> ConfigError {
    list.sort_by_key(|p| (p.line, p.column));
    if let [only] = list.as_slice() {
        let Problem { line, column, message } = only.clone();
        return ConfigError::Parse { file: file.to_owned(), line, column, message };
    }
    ConfigError::Invalid { problems: Problems { file: file.to_owned(), list } }
}

/// The machine's hostname, for the `host` field of audit records.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_the_defaults() {
        let c = Config::parse("", "c.toml").unwrap();
        assert_eq!(c.dns.listen, vec!["127.0.0.1:8053".parse().unwrap()]);
        assert!(c.policy.file.is_none());
        assert!(c.metrics.listen.is_none());
    }

    #[test]
    fn unknown_keys_are_errors_with_position() {
        let err = Config::parse("[dns]\nlisten = [\"127.0.0.1:53\"]\nlisen = 1\n", "c.toml").unwrap_err();
        assert!(err.to_string().starts_with("c.toml:3:1: unknown field `lisen`"), "{err}");
        let err = Config::parse("[dns]\nblock_response = \"drop\"\n", "c.toml").unwrap_err();
        assert!(err.to_string().starts_with("c.toml:2:18:"), "{err}");
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let text = "usr = \"x\"\n[dns]\nmax_inflight = 0\nlisten = []\n[rate_limit]\nipv4_prefix = 40\n[nope]\na = 1\n";
        let err = Config::parse(text, "c.toml").unwrap_err().to_string();
        for want in [
            "c.toml:1:1: unknown field `usr`",
            "c.toml:3:1: dns.max_inflight",
            "c.toml:4:1: dns.listen",
            "c.toml:6:1: rate_limit.ipv4_prefix",
            "c.toml:7:2: unknown field `nope`",
        ] {
            assert!(err.contains(want), "missing {want:?} in:\n{err}");
        }
    }

    #[test]
    fn audit_durability_settings_parse_and_bad_holds_are_errors_with_position() {
        let text = "[audit]\nfsync = \"record\"\ncompress = \"zstd\"\nrotate_max_bytes = 1000000\n\
                    hold = [\"2024-09-01T00:00:00Z/2025-01-01T00:00:00Z\"]\n\
                    [audit.syslog]\naddress = \"127.0.0.1:514\"\nprotocol = \"tcp\"\n";
        let c = Config::parse(text, "c.toml").unwrap();
        assert_eq!((c.audit.fsync, c.audit.compress, c.audit.hold.len()), (FsyncPolicy::Record, Compression::Zstd, 1));
        assert!(c.audit.syslog.is_some_and(|s| s.protocol == crate::audit::syslog::Protocol::Tcp));
        let err = Config::parse("[audit]\nhold = [\"2024-09-01/x\"]\n", "c.toml").unwrap_err();
        assert!(err.to_string().starts_with("c.toml:2:"), "{err}");
    }
}
