//! Semantic checks of a parsed [`Config`] (values in range, addresses that
//! do not collide) and finding a key's position in the text for messages.
//! Pure: no I/O.

use toml_edit::{ImDocument, TableLike};

use super::Config;

/// Every problem of `config`, as (dotted key path, message).
pub(super) fn check(config: &Config) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let mut need = |ok: bool, path: &'static str, message: &str| {
        if !ok {
            out.push((path, format!("{path}: {message}")));
        }
    };
    let dns = &config.dns;
    need(!dns.listen.is_empty(), "dns.listen", "at least one address is needed");
    need(dns.max_inflight > 0, "dns.max_inflight", "must be at least 1");
    need(dns.max_tcp_connections > 0, "dns.max_tcp_connections", "must be at least 1");
    need(!dns.upstream_timeout.is_zero(), "dns.upstream_timeout", "must be at least 1 ms");
    need(!dns.tcp_idle_timeout.is_zero(), "dns.tcp_idle_timeout", "must be at least 1 ms");
    need(!dns.allowed_clients.is_empty(), "dns.allowed_clients", "no client could query: give at least one network");
    let rl = &config.rate_limit;
    need(rl.ipv4_prefix <= 32, "rate_limit.ipv4_prefix", "must be 0..=32");
    need(rl.ipv6_prefix <= 128, "rate_limit.ipv6_prefix", "must be 0..=128");
    need(rl.qps == 0 || rl.burst >= 1, "rate_limit.burst", "must be at least 1 when qps is set");
    need(rl.max_clients > 0, "rate_limit.max_clients", "must be at least 1");
    let audit = &config.audit;
    need(audit.channel_capacity > 0, "audit.channel_capacity", "must be at least 1");
    need(audit.flush_interval_ms > 0, "audit.flush_interval_ms", "must be at least 1");
    need(!audit.path.as_os_str().is_empty(), "audit.path", "must name a file");
    let policy = &config.policy;
    need(policy.watch_interval_ms >= 100, "policy.watch_interval_ms", "must be at least 100");
    need(config.user.as_deref() != Some(""), "user", "must name a user (or be left out)");
    if let Some(m) = config.metrics.listen {
        let clash = dns.listen.iter().any(|d| d.port() != 0 && d.port() == m.port() && d.ip() == m.ip());
        need(!clash, "metrics.listen", "collides with a DNS listen address");
    }
    out
}

/// Byte offset of the deepest part of `path` (`dns.listen`) found in
/// `text`: the key itself, else its table; 0 when nothing is found.
pub(super) fn locate(text: &str, path: &str) -> usize {
    let Ok(doc) = ImDocument::parse(text) else {
        return 0;
    };
    let mut table: &dyn TableLike = doc.as_table();
    let mut best = 0;
    for part in path.split('.') {
        let Some((key, item)) = table.get_key_value(part) else {
            break;
        };
        best = key.span().or_else(|| item.span()).map_or(best, |s| s.start);
        match item.as_table_like() {
            Some(t) => table = t,
            None => break,
        }
    }
    best
}

/// 1-based line and column of a byte offset.
pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    (line, column)
}
