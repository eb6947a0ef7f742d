//! The two periodic jobs of enforcement, as async tasks that only send
//! requests to the enforcement thread:
//!
//! * **networks**: recompute the static vendor sets from the policy in
//!   force (a phase change or a reload changes them) and refresh them when
//!   they differ;
//! * **learned addresses**: resolve the policy's concrete blocked hosts
//!   through warden's upstream and add the answers to the timed learned
//!   sets, but only addresses inside the vendor's own networks (an IP rule
//!   that blocks now) or of hosts the config marks as vendor-operated
//!   (`own_address_hosts`). Addresses of shared CDNs are never blocked by
//!   IP: they serve other customers too and rotate; those hosts are caught
//!   by name (DNS, SNI, Host).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hickory_proto::rr::{Name, RData, RecordType};
use tokio_util::sync::CancellationToken;

use super::EnforceHandle;
use super::ruleset::NetSets;
use crate::dns::Upstream;
use crate::policy::{Action, Policy, RuleId, RuleKind, Subject};
use crate::time::now_ms;

/// Most hosts resolved per round (the policy has far fewer).
const MAX_HOSTS: usize = 512;

/// Concrete host names (exact hosts and domain apexes) blocked at `now_ms`.
pub fn concrete_hosts(policy: &Policy, now_ms: i64) -> Vec<String> {
    let phase = policy.phase(policy.phase_at(now_ms));
    let rules = policy.rules().iter().enumerate();
    let hosts = rules.filter(|(_, r)| matches!(r.kind, RuleKind::Host | RuleKind::Domain)).filter(|(_, r)| {
        phase.actions.get(usize::from(r.category.0)).copied().unwrap_or(phase.default) == Action::Block
    });
    hosts.map(|(i, _)| policy.rule_pattern(RuleId(i as u32)).to_owned()).take(MAX_HOSTS).collect()
}

/// Whether an address `host` resolved to may be blocked by IP.
pub fn admit(policy: &Policy, host: &str, addr: IpAddr, own_hosts: &[String], now_ms: i64) -> bool {
    let inside_vendor = policy.decide(Subject::Ip(addr), now_ms).action == Action::Block;
    inside_vendor || own_hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
}

/// Keeps the static network sets in step with the policy in force.
pub async fn networks(policy: Arc<ArcSwap<Policy>>, handle: EnforceHandle, every: Duration, stop: CancellationToken) {
    let mut last = NetSets::from_policy(&policy.load(), now_ms());
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let now = NetSets::from_policy(&policy.load(), now_ms());
        if now != last && handle.networks(now.clone()) {
            tracing::info!(v4 = now.vendor4.len(), v6 = now.vendor6.len(), "vendor network sets refreshed");
            last = now;
        }
    }
}

/// Settings of the learning job.
#[derive(Debug, Clone)]
pub struct Learning {
    pub every: Duration,
    pub timeout_s: u32,
    pub own_hosts: Vec<String>,
}

/// Resolves the concrete hosts every `every` and feeds the learned sets.
pub async fn learn(
    policy: Arc<ArcSwap<Policy>>,
    upstream: Upstream,
    handle: EnforceHandle,
    cfg: Learning,
    stop: CancellationToken,
) {
    loop {
        let round = learn_round(&policy, &upstream, &cfg);
        let (admitted, skipped) = tokio::select! {
            _ = stop.cancelled() => return,
            r = round => r,
        };
        if !admitted.is_empty() {
            handle.learn(admitted.clone(), cfg.timeout_s);
        }
        tracing::info!(
            learned = admitted.len(),
            skipped,
            "learned vendor addresses (skipped: outside vendor networks, e.g. CDN)"
        );
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(cfg.every) => {}
        }
    }
}

async fn learn_round(policy: &ArcSwap<Policy>, upstream: &Upstream, cfg: &Learning) -> (Vec<IpAddr>, usize) {
    let current = policy.load_full();
    let (mut admitted, mut skipped) = (Vec::new(), 0);
    for host in concrete_hosts(&current, now_ms()) {
        let Ok(name) = Name::from_ascii(&host) else { continue };
        for qtype in [RecordType::A, RecordType::AAAA] {
            let Ok(answer) = upstream.resolve(&name, qtype).await else { continue };
            for record in &answer.answers {
                let addr = match &record.data {
                    RData::A(a) => IpAddr::V4(a.0),
                    RData::AAAA(a) => IpAddr::V6(a.0),
                    _ => continue,
                };
                if admit(&current, &host, addr, &cfg.own_hosts, now_ms()) {
                    admitted.push(addr);
                } else {
                    skipped += 1;
                }
            }
        }
    }
    admitted.sort();
    admitted.dedup();
    (admitted, skipped)
}
