//! Policy export: the policy in force at one instant, written in the native
//! form of other DNS engines and of nftables, so a site's existing resolver
//! fleet can enforce it too.
//!
//! Owns the translation only (pure: a `Policy` and an instant in, text
//! out). [`plan`] turns rules into entries (what to block, what to let
//! pass); [`render`] writes one format. What cannot be expressed is decided
//! here, fail-closed, and said in the output's header:
//!
//! * only the phase in force at the instant counts; `block` rules are
//!   exported as refusals, `monitor`/`allow` rules as pass-through entries
//!   when they sit under a blocked name (engines cannot log like warden);
//! * label wildcards (`dnl-*.geo.kaspersky.com`) become their fixed parent
//!   (`geo.kaspersky.com` and below): wider, never narrower;
//! * unbound and dnsmasq zones cover subdomains, so an exact host is
//!   refused with its subdomains; hosts files cover no subdomains at all;
//! * network rules go to `nft` (sets), `rpz` (rpz-ip triggers) and
//!   `unbound` (`private-address`, answers stripped of those addresses);
//! * blocklists (`--blocklist`) are not part of an export (`warden export`
//!   loads none): a policy holds their entries as fingerprints only, so
//!   [`plan`] refuses a policy loaded with lists rather than export less
//!   than it enforces. Give the list file to the other engine directly.

mod render;

use std::net::IpAddr;

use ipnet::IpNet;
use thiserror::Error;

use crate::policy::{Action, Policy, RuleKind, Subject};

pub use render::render;

#[derive(Debug, Error)]
pub enum ExportError {
    #[error("rule {rule:?} is not a network")]
    BadNetwork { rule: String },
    #[error("blocklist {list:?} cannot be exported (its entries are kept as fingerprints): use the list file itself")]
    Blocklist { list: String },
}

/// The target engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// RPZ zone (BIND, Unbound, PowerDNS Recursor, Knot Resolver).
    Rpz,
    /// unbound `local-zone` (include in unbound.conf).
    Unbound,
    /// dnsmasq `address=` / `server=` lines (conf-file).
    Dnsmasq,
    /// hosts file lines (`0.0.0.0 name`).
    Hosts,
    /// nftables sets of the blocked networks (`nft -f`).
    Nft,
}

/// One name entry of the export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameEntry {
    pub name: String,
    /// The name and everything below it (domain rules, widened wildcards).
    pub subtree: bool,
    /// Refuse (true) or let pass (false).
    pub block: bool,
    /// Widened from a label wildcard.
    pub widened_from: Option<String>,
    pub category: String,
}

/// Everything one export needs.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// `id (hash) phase NAME` of each policy, for the header.
    pub sources: Vec<String>,
    pub names: Vec<NameEntry>,
    pub networks: Vec<(IpNet, String)>,
    /// Earliest instant (Unix ms) the export goes stale (next phase change).
    pub valid_until: Option<i64>,
}

/// What `policy` does at `now_ms`, as entries.
pub fn plan(policy: &Policy, now_ms: i64, into: &mut Plan) -> Result<(), ExportError> {
    let phase_id = policy.phase_at(now_ms);
    let phase = policy.phase(phase_id);
    into.sources.push(format!("{} ({}) phase {}", policy.meta.id, policy.meta.hash, phase.name));
    let mut names = Vec::new();
    for (i, rule) in policy.rules().iter().enumerate() {
        let id = crate::policy::RuleId(i as u32);
        let pattern = policy.rule_pattern(id).to_owned();
        let category = policy.category(rule.category).name.clone();
        let action = phase.actions[usize::from(rule.category.0)];
        match rule.kind {
            RuleKind::Network if action == Action::Block => {
                let net = pattern.parse().map_err(|_| ExportError::BadNetwork { rule: pattern.clone() })?;
                into.networks.push((net, category));
            }
            RuleKind::Network => {}
            RuleKind::Domain | RuleKind::Host => {
                let block = policy.decide(Subject::Name(&pattern), now_ms).action == Action::Block;
                names.push(NameEntry {
                    subtree: rule.kind == RuleKind::Domain,
                    block,
                    widened_from: None,
                    name: pattern,
                    category,
                });
            }
            // Widening a pass-through would let more through: leave it out.
            RuleKind::Wildcard if action == Action::Block => {
                let parent = pattern.split_once('.').map_or(pattern.as_str(), |(_, p)| p).to_owned();
                names.push(NameEntry {
                    name: parent,
                    subtree: true,
                    block: true,
                    widened_from: Some(pattern),
                    category,
                });
            }
            RuleKind::Wildcard => {}
            RuleKind::Blocklist => return Err(ExportError::Blocklist { list: pattern }),
        }
    }
    let blocked: Vec<NameEntry> = names.iter().filter(|e| e.block).cloned().collect();
    names.retain(|e| e.block || blocked.iter().any(|b| covers(b, &e.name)));
    into.names.extend(names);
    into.names.sort_by(|a, b| (a.name.as_str(), a.subtree, !a.block).cmp(&(b.name.as_str(), b.subtree, !b.block)));
    into.names.dedup_by(|a, b| a.name == b.name && a.subtree == b.subtree);
    into.networks.sort_by_key(|(n, _)| *n);
    into.networks.dedup_by_key(|(n, _)| *n);
    let until = policy.phases().iter().filter_map(|p| p.start).find(|&s| s > now_ms);
    into.valid_until = [into.valid_until, until].into_iter().flatten().min();
    Ok(())
}

/// Whether the block entry `b` applies to `name`.
fn covers(b: &NameEntry, name: &str) -> bool {
    b.name == name || (b.subtree && name.strip_suffix(b.name.as_str()).is_some_and(|rest| rest.ends_with('.')))
}

/// The IPv4 or IPv6 networks of a plan.
pub fn networks_of(plan: &Plan, v4: bool) -> impl Iterator<Item = &IpNet> {
    plan.networks.iter().map(|(n, _)| n).filter(move |n| matches!(n.addr(), IpAddr::V4(_)) == v4)
}

#[cfg(test)]
mod tests;
