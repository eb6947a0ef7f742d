//! `warden run`, packet part: start capture, enforcement and their tasks
//! in named steps, and stop them in reverse order. Without root or nft,
//! warden says so and goes on without enforcement (or refuses to start
//! when `[enforce] required`); without capture it runs DNS-only.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use arc_swap::ArcSwap;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::audit::AuditHandle;
use crate::config::Config;
use crate::dns::Upstream;
use crate::enforce::{Enforcer, NetSets, Redirect, TableSpec, schedule};
use crate::packet::aggregate::Aggregator;
use crate::packet::flow::FlowLimits;
use crate::packet::sink::Sink;
use crate::packet::{Capture, Correlator, Mode, PacketStats, capture};
use crate::policy::Policy;
use crate::time::now_ms;

pub struct PacketLayer {
    capture: Capture,
    enforcer: Option<Enforcer>,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    stats: Arc<PacketStats>,
}

/// Starts the packet layer when `--capture` names interfaces.
pub fn start(
    config: &Config,
    policy: Arc<ArcSwap<Policy>>,
    audit: AuditHandle,
    correlator: Arc<Correlator>,
) -> anyhow::Result<Option<PacketLayer>> {
    let pc = &config.packet;
    if pc.capture.is_empty() {
        tracing::info!("packet layer off (no --capture interface): DNS filtering only");
        return Ok(None);
    }
    let enforcer = enforcement(config, &policy)?;
    let mut local: Vec<IpAddr> = capture::local_addresses(&pc.capture);
    local.extend(pc.own_resolvers.iter().copied());
    local.extend(config.dns.listen.iter().map(|a| a.ip()));
    let limits = FlowLimits {
        max_flows: pc.max_flows,
        max_bytes: pc.max_flow_bytes,
        timeout_ms: i64::try_from(pc.flow_timeout_ms).unwrap_or(i64::MAX),
    };
    let stats = Arc::new(PacketStats::default());
    let (tx, rx) = tokio::sync::mpsc::channel(pc.channel_capacity.max(1));
    let capture = match Capture::start(&pc.capture, policy.clone(), local, limits, stats.clone(), tx) {
        Ok(c) => c,
        Err(e) => {
            if let Some(enf) = enforcer {
                let _ = enf.stop();
            }
            if config.enforce.required {
                bail!("packet capture required but unavailable: {e}");
            }
            tracing::warn!("packet capture unavailable: {e}; running DNS-only");
            return Ok(None);
        }
    };
    tracing::info!(interfaces = ?pc.capture, mode = pc.mode.as_str(), enforcing = enforcer.is_some(), "packet capture started");
    let stop = CancellationToken::new();
    let sink = Sink {
        audit,
        enforce: enforcer.as_ref().map(Enforcer::handle),
        correlator,
        aggregator: Aggregator::new(i64::try_from(pc.aggregate_window_ms).unwrap_or(i64::MAX)),
        dot_blocked: enforcer.is_some() && config.enforce.block_dot,
        dns_redirected: enforcer.is_some() && config.enforce.dns_redirect.is_some(),
    };
    let mut tasks = vec![tokio::spawn(sink.run(rx, stop.clone()))];
    if let Some(enf) = &enforcer {
        tasks.extend(schedules(config, &policy, enf, &stop)?);
    }
    Ok(Some(PacketLayer { capture, enforcer, stop, tasks, stats }))
}

/// Builds warden's nftables table, unless in monitor mode.
fn enforcement(config: &Config, policy: &ArcSwap<Policy>) -> anyhow::Result<Option<Enforcer>> {
    let pc = &config.packet;
    if pc.mode == Mode::Monitor {
        tracing::info!("monitor mode: capture and log only, no firewall changes");
        return Ok(None);
    }
    let redirect = config.enforce.dns_redirect.map(|to| Redirect { ifaces: pc.capture.clone(), to });
    let spec = TableSpec {
        mode: pc.mode,
        nets: NetSets::from_policy(&policy.load(), now_ms()),
        block_dot: config.enforce.block_dot,
        redirect,
    };
    match Enforcer::start(&spec, &config.enforce) {
        Ok(e) => {
            let (v4, v6) = (spec.nets.vendor4.len(), spec.nets.vendor6.len());
            tracing::info!(v4, v6, "nftables table inet warden built and verified");
            Ok(Some(e))
        }
        Err(e) if config.enforce.required => bail!("enforcement required but unavailable: {e}"),
        Err(e) => {
            tracing::warn!("ENFORCEMENT OFF: {e}; packets are only watched and logged");
            Ok(None)
        }
    }
}

fn schedules(
    config: &Config,
    policy: &Arc<ArcSwap<Policy>>,
    enforcer: &Enforcer,
    stop: &CancellationToken,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let ec = &config.enforce;
    let every = Duration::from_secs(ec.networks_check_s.max(1));
    let mut tasks = vec![tokio::spawn(schedule::networks(policy.clone(), enforcer.handle(), every, stop.clone()))];
    if ec.learn_interval_s > 0 {
        let upstream = Upstream::new(&config.dns.upstreams, config.dns.upstream_timeout, 1024)?;
        let learning = schedule::Learning {
            every: Duration::from_secs(ec.learn_interval_s),
            timeout_s: ec.learned_timeout_s,
            own_hosts: ec.own_address_hosts.clone(),
        };
        tasks.push(tokio::spawn(schedule::learn(policy.clone(), upstream, enforcer.handle(), learning, stop.clone())));
    }
    Ok(tasks)
}

impl PacketLayer {
    /// Capture first, then the tasks (the sink writes what is pending),
    /// then the table is deleted.
    pub async fn stop(self) {
        let capture = self.capture;
        let _ = tokio::task::spawn_blocking(move || capture.stop()).await;
        self.stop.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
        if let Some(enforcer) = self.enforcer {
            let estats = enforcer.handle().stats();
            match tokio::task::spawn_blocking(move || enforcer.stop()).await {
                Ok(Ok(())) => tracing::info!(stats = ?estats, "nftables table inet warden deleted"),
                Ok(Err(e)) => tracing::error!("cannot delete table inet warden: {e}"),
                Err(e) => tracing::error!("enforcement shutdown failed: {e}"),
            }
        }
        tracing::info!(stats = ?self.stats, "packet layer stopped");
    }
}
