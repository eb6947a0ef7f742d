//! `warden run`: the daemon. Start-up is a sequence of named steps: settings
//! (file + flags) → policy (refuse to start if invalid) → sockets → audit
//! writer → upstream → serve until SIGINT/SIGTERM; SIGHUP reloads the policy
//! (a bad file keeps the last good policy).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwap;
use clap::Args;
use ipnet::IpNet;
use tokio_util::sync::CancellationToken;

use crate::audit::retention::RetentionConfig;
use crate::audit::{self, AuditConfig, AuditHandle, Record, RecordType, RotationConfig};
use crate::config::{AuditSettings, Config, hostname};
use crate::dns::{BlockMode, Handler, HandlerConfig, Limits, Listeners, Upstream, serve};
use crate::policy::Policy;
use crate::time::now_ms;

/// Time given to queries in flight at shutdown.
const GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Config file (TOML); flags override its values.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to serve DNS on, UDP and TCP (repeatable). Default 127.0.0.1:8053.
    #[arg(long = "listen", value_name = "ADDR:PORT")]
    listen: Vec<SocketAddr>,
    /// Upstream resolver (repeatable). Default: the system's resolv.conf.
    #[arg(long = "upstream", value_name = "ADDR:PORT")]
    upstream: Vec<SocketAddr>,
    /// Policy file. Default: the built-in Kaspersky policy.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Audit log file (JSON Lines, appended). Default: ./warden-audit.jsonl.
    #[arg(long = "audit-log", value_name = "FILE")]
    audit_log: Option<PathBuf>,
    /// Client network allowed to query (repeatable; replaces the default
    /// loopback + private ranges).
    #[arg(long = "allow-client", value_name = "CIDR")]
    allow_client: Vec<IpNet>,
    /// How blocked names are answered.
    #[arg(long, value_enum)]
    block_response: Option<BlockMode>,
    /// Also write audit records for allowed queries.
    #[arg(long)]
    log_allowed: bool,
    /// Gateway name in audit records (default: the hostname).
    #[arg(long)]
    host: Option<String>,
    /// Ed25519 key for signed audit checkpoints (`warden audit keygen`).
    #[arg(long = "signing-key", value_name = "FILE")]
    signing_key: Option<PathBuf>,
    /// Never delete closed audit files overlapping START/END (RFC 3339;
    /// repeatable, added to the config's `hold`).
    #[arg(long = "hold", value_name = "START/END")]
    hold: Vec<crate::audit::retention::Hold>,
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    init_tracing();
    let config = settings(&args)?;
    let policy = super::load_policy(config.policy.file.as_deref()).context("refusing to start")?;
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    runtime.block_on(daemon(config, policy))
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// The config file (if any) with the flags applied on top.
fn settings(args: &RunArgs) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if !args.listen.is_empty() {
        config.dns.listen = args.listen.clone();
    }
    if !args.upstream.is_empty() {
        config.dns.upstreams = args.upstream.clone();
    }
    if !args.allow_client.is_empty() {
        config.dns.allowed_clients = args.allow_client.clone();
    }
    if let Some(mode) = args.block_response {
        config.dns.block_response = mode;
    }
    config.dns.log_allowed |= args.log_allowed;
    if let Some(p) = &args.policy {
        config.policy.file = Some(p.clone());
    }
    if let Some(p) = &args.audit_log {
        config.audit.path = p.clone();
    }
    if let Some(h) = &args.host {
        config.audit.host = Some(h.clone());
    }
    if let Some(k) = &args.signing_key {
        config.audit.signing_key = Some(k.clone());
    }
    config.audit.hold.extend(args.hold.iter().copied());
    Ok(config)
}

async fn daemon(config: Config, policy: Policy) -> anyhow::Result<ExitCode> {
    let listeners = Listeners::bind(&config.dns.listen).await?;
    let enforcing = Arc::new(AtomicBool::new(false));
    let (audit, writer) = audit::spawn(audit_config(&config.audit, &enforcing))?;
    let upstream = Upstream::new(&config.dns.upstreams, config.dns.upstream_timeout, config.dns.cache_size)?;
    tracing::info!(policy = %policy.meta.id, hash = %policy.meta.hash, phase = %policy.phase(policy.phase_at(now_ms())).name, "policy loaded");
    let shared = Arc::new(ArcSwap::from_pointee(policy));
    let dns = &config.dns;
    let handler_config = HandlerConfig {
        block_response: dns.block_response,
        allowed_clients: dns.allowed_clients.clone(),
        blocked_ttl: dns.blocked_ttl,
        log_allowed: dns.log_allowed,
    };
    let handler = Arc::new(Handler::new(shared.clone(), upstream, audit.clone(), handler_config));
    for addr in listeners.local_addrs() {
        tracing::info!(%addr, "listening on {addr} (udp+tcp)");
    }
    let limits = Limits {
        max_inflight: dns.max_inflight,
        max_tcp_connections: dns.max_tcp_connections,
        tcp_idle_timeout: dns.tcp_idle_timeout,
    };
    let shutdown = CancellationToken::new();
    // DNS is the enforcement for now: active while the listeners serve.
    enforcing.store(true, Ordering::Relaxed);
    let signals = tokio::spawn(signals(shutdown.clone(), shared, config.policy.file.clone(), audit.clone()));
    serve(listeners, handler, limits, shutdown, GRACE).await;
    signals.abort();
    drop(audit);
    let summary = writer.finish()?;
    tracing::info!(?summary, "stopped");
    Ok(ExitCode::SUCCESS)
}

/// The writer's settings from `[audit]`.
fn audit_config(a: &AuditSettings, enforcing: &Arc<AtomicBool>) -> AuditConfig {
    let secs = Duration::from_secs;
    let days = |d: u64| secs(d.saturating_mul(86_400));
    AuditConfig {
        channel_capacity: a.channel_capacity,
        flush_interval: Duration::from_millis(a.flush_interval_ms.max(1)),
        fsync: a.fsync,
        heartbeat_interval: secs(a.heartbeat_interval_s),
        signing_key: a.signing_key.clone(),
        checkpoint_interval: secs(a.checkpoint_interval_s),
        rotation: RotationConfig {
            max_bytes: a.rotate_max_bytes,
            max_age: a.rotate_max_age_s.map(secs),
            compress: a.compress,
            retention: RetentionConfig {
                max_files: a.keep_files,
                max_age: a.keep_days.map(days),
                contact_max_age: a.keep_contact_days.map(days),
                hold: a.hold.clone(),
            },
        },
        syslog: a.syslog.clone(),
        enforcing: Some(Arc::clone(enforcing)),
        ..AuditConfig::new(&a.path, a.host.clone().unwrap_or_else(hostname))
    }
}

/// SIGINT/SIGTERM stop the daemon; SIGHUP reloads the policy file.
async fn signals(shutdown: CancellationToken, policy: Arc<ArcSwap<Policy>>, file: Option<PathBuf>, audit: AuditHandle) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) =
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup()))
    else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => reload(&policy, file.as_deref(), &audit),
        }
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}

fn reload(current: &ArcSwap<Policy>, file: Option<&std::path::Path>, audit: &AuditHandle) {
    let ts = chrono::Utc::now();
    match super::load_policy(file) {
        Ok(p) => {
            let message = format!("policy reloaded: {} {}", p.meta.id, p.meta.hash);
            tracing::info!("{message}");
            current.store(Arc::new(p));
            audit.submit(Record::event(ts, RecordType::Policy, message));
        }
        Err(e) => {
            let message = format!("policy reload rejected, keeping {}: {e:#}", current.load().meta.hash);
            tracing::error!("{message}");
            audit.submit(Record::event(ts, RecordType::Policy, message));
        }
    }
}
