//! `warden run`: the daemon. Start-up is a sequence of named steps: settings
//! (file + flags, validated) → policy (refuse to start if invalid) → bind
//! sockets (DNS, metrics) → drop privileges (still single-threaded) →
//! runtime → audit writer → upstream → metrics endpoint → serve until
//! SIGINT/SIGTERM. SIGHUP and a changed policy file reload the policy (a bad
//! file keeps the last good policy); see `crate::reload`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use ipnet::IpNet;
use tokio_util::sync::CancellationToken;

use crate::audit::retention::RetentionConfig;
use crate::audit::{self, AuditConfig, AuditHandle, RotationConfig};
use crate::config::{AuditSettings, Config, hostname};
use crate::dns::ratelimit::RateLimiter;
use crate::dns::{BlockMode, Handler, HandlerConfig, Limits, StdListeners, Upstream, serve};
use crate::metrics::{Metrics, Sources};
use crate::packet::Correlator;
use crate::policy::Policy;
use crate::reload::{Reloader, Trigger};
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
    /// Blocklist file blocked beside the policy (repeatable): plain names,
    /// hosts-file lines or `||name^` lines; each entry with its subdomains.
    #[arg(long = "blocklist", value_name = "FILE")]
    blocklist: Vec<PathBuf>,
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
    /// Switch to this user after binding sockets (when started as root).
    #[arg(long)]
    user: Option<String>,
    /// Serve /metrics, /healthz and /readyz on this address.
    #[arg(long = "metrics-listen", value_name = "ADDR:PORT")]
    metrics_listen: Option<SocketAddr>,
    /// LAN interface to capture on (repeatable); enables the packet layer.
    #[arg(long = "capture", value_name = "IFACE")]
    capture: Vec<String>,
    /// Deployment mode of the packet layer.
    #[arg(long, value_enum)]
    mode: Option<crate::packet::Mode>,
    /// Ed25519 key for signed audit checkpoints (`warden audit keygen`).
    #[arg(long = "signing-key", value_name = "FILE")]
    signing_key: Option<PathBuf>,
    /// Never delete closed audit files overlapping START/END (RFC 3339;
    /// repeatable, added to the config's `hold`).
    #[arg(long = "hold", value_name = "START/END")]
    hold: Vec<crate::audit::retention::Hold>,
}

/// Sockets bound while still privileged.
struct Bound {
    dns: StdListeners,
    metrics: Option<std::net::TcpListener>,
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    init_tracing();
    let config = settings(&args)?;
    let policy =
        super::load_policy(config.policy.file.as_deref(), &config.policy.blocklists).context("refusing to start")?;
    let bound = bind(&config).context("refusing to start")?;
    let creds = crate::privilege::drop_privileges(config.user.as_deref())
        .context("refusing to start: cannot drop privileges")?;
    match (&creds.switched_to, creds.uid) {
        (Some(user), uid) => {
            tracing::info!(user, uid, "switched user; keeping CAP_NET_BIND_SERVICE, CAP_NET_RAW, CAP_NET_ADMIN")
        }
        (None, 0) => tracing::warn!("running as root: set `user` in the config (or --user) to drop privileges"),
        (None, uid) => tracing::info!(uid, "running unprivileged; capabilities narrowed"),
    }
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    runtime.block_on(daemon(config, policy, bound))
}

/// Bind every socket before privileges are dropped.
fn bind(config: &Config) -> anyhow::Result<Bound> {
    let dns = StdListeners::bind(&config.dns.listen)?;
    let metrics = match config.metrics.listen {
        Some(addr) => {
            Some(std::net::TcpListener::bind(addr).with_context(|| format!("cannot listen on metrics {addr}"))?)
        }
        None => None,
    };
    Ok(Bound { dns, metrics })
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
    config.policy.blocklists.extend(args.blocklist.iter().cloned());
    if let Some(p) = &args.audit_log {
        config.audit.path = p.clone();
    }
    if let Some(h) = &args.host {
        config.audit.host = Some(h.clone());
    }
    if let Some(u) = &args.user {
        config.user = Some(u.clone());
    }
    if let Some(m) = args.metrics_listen {
        config.metrics.listen = Some(m);
    }
    if !args.capture.is_empty() {
        config.packet.capture = args.capture.clone();
    }
    if let Some(mode) = args.mode {
        config.packet.mode = mode;
    }
    if let Some(k) = &args.signing_key {
        config.audit.signing_key = Some(k.clone());
    }
    config.audit.hold.extend(args.hold.iter().copied());
    Ok(config)
}

async fn daemon(config: Config, policy: Policy, bound: Bound) -> anyhow::Result<ExitCode> {
    let listeners = bound.dns.into_tokio()?;
    let enforcing = Arc::new(AtomicBool::new(false));
    let (audit, writer) = audit::spawn(audit_config(&config.audit, &enforcing))?;
    let upstream = Upstream::new(&config.dns.upstreams, config.dns.upstream_timeout, config.dns.cache_size)?;
    tracing::info!(policy = %policy.meta.id, hash = %policy.meta.hash, phase = %policy.phase(policy.phase_at(now_ms())).name, "policy loaded");
    let metrics = Metrics::new();
    let reloader = Reloader::new(policy, config.policy.file.clone(), audit.clone(), metrics.clone())
        .with_blocklists(config.policy.blocklists.clone());
    let reloader = Arc::new(reloader);
    let limiter = RateLimiter::new(config.rate_limit.clone()).map(Arc::new);
    metrics.attach(Sources {
        audit: Some(audit.stats()),
        policy: Some(reloader.current()),
        limiter: limiter.clone(),
        upstream_network: Some(upstream.network_queries()),
    });
    let correlator = Arc::new(Correlator::new(i64::try_from(config.packet.correlation_ttl_ms).unwrap_or(i64::MAX)));
    let handler = handler(&config, &reloader, upstream, audit.clone(), &metrics, limiter);
    // Correlation ids link DNS records to the packet layer's: only when it runs.
    let handler = match config.packet.capture.is_empty() {
        true => Arc::new(handler),
        false => Arc::new(handler.with_correlator(correlator.clone())),
    };
    tokio::spawn(close_repeats(Arc::downgrade(&handler)));
    let packet = super::packet_layer::start(&config, reloader.current(), audit.clone(), correlator)?;
    let shutdown = CancellationToken::new();
    start_side_tasks(&config, bound.metrics, &metrics, &reloader, &shutdown)?;
    // Signal handlers before "listening": a SIGTERM right after start stops cleanly.
    let signals = tokio::spawn(signals(Signals::install()?, shutdown.clone(), reloader, metrics.clone()));
    // Sockets are bound and the policy is loaded: ready before announcing it.
    metrics.set_ready(true);
    for addr in listeners.local_addrs() {
        tracing::info!(%addr, "listening on {addr} (udp+tcp)");
    }
    // DNS is enforcement: active while the listeners serve.
    enforcing.store(true, Ordering::Relaxed);
    serve(listeners, handler, limits(&config), shutdown, GRACE).await;
    signals.abort();
    if let Some(packet) = packet {
        packet.stop().await;
    }
    drop(audit);
    let summary = writer.finish()?;
    tracing::info!(?summary, "stopped");
    Ok(ExitCode::SUCCESS)
}

fn handler(
    config: &Config,
    reloader: &Reloader,
    upstream: Upstream,
    audit: AuditHandle,
    metrics: &Metrics,
    limiter: Option<Arc<RateLimiter>>,
) -> Handler {
    let dns = &config.dns;
    let handler_config = HandlerConfig {
        block_response: dns.block_response,
        allowed_clients: dns.allowed_clients.clone(),
        blocked_ttl: dns.blocked_ttl,
        log_allowed: dns.log_allowed,
        canary_nxdomain: dns.canary_nxdomain,
        ddr_nodata: dns.ddr_nodata,
        aggregate_window_ms: dns.aggregate_window_ms,
    };
    let handler = Handler::new(reloader.current(), upstream, audit, handler_config).with_metrics(metrics.clone());
    match limiter {
        Some(l) => handler.with_rate_limiter(l),
        None => handler,
    }
}

fn limits(config: &Config) -> Limits {
    Limits {
        udp_workers: config.dns.udp_workers,
        cache_entries: config.dns.answer_cache_entries,
        max_inflight: config.dns.max_inflight,
        max_tcp_connections: config.dns.max_tcp_connections,
        tcp_idle_timeout: config.dns.tcp_idle_timeout,
    }
}

/// Writes the DNS layer's repeat records when their window closes, also when
/// no query comes to do it. Ends with the handler (whose drop writes the rest).
async fn close_repeats(handler: std::sync::Weak<Handler>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(handler) = handler.upgrade() else { return };
        handler.close_repeats(now_ms());
    }
}

/// The metrics endpoint and the policy file watcher.
fn start_side_tasks(
    config: &Config,
    metrics_socket: Option<std::net::TcpListener>,
    metrics: &Metrics,
    reloader: &Arc<Reloader>,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    if let Some(socket) = metrics_socket {
        socket.set_nonblocking(true).context("metrics socket")?;
        let listener = tokio::net::TcpListener::from_std(socket).context("metrics socket")?;
        let addr = listener.local_addr().context("metrics socket")?;
        tracing::info!(%addr, "metrics endpoint on http://{addr}/metrics");
        tokio::spawn(crate::metrics::http::serve(listener, metrics.clone(), shutdown.clone()));
    }
    if config.policy.watch && config.policy.file.is_some() {
        let interval = Duration::from_millis(config.policy.watch_interval_ms.max(100));
        tokio::spawn(reloader.clone().watch(interval, shutdown.clone()));
    }
    Ok(())
}

/// The daemon's signal streams, installed before it announces itself.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        let install = |kind| signal(kind).context("cannot install signal handlers");
        Ok(Signals {
            term: install(SignalKind::terminate())?,
            int: install(SignalKind::interrupt())?,
            hup: install(SignalKind::hangup())?,
        })
    }
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
async fn signals(signals: Signals, shutdown: CancellationToken, reloader: Arc<Reloader>, metrics: Metrics) {
    let Signals { mut term, mut int, mut hup } = signals;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => { let _ = reloader.reload(Trigger::Signal).await; }
        }
    }
    tracing::info!("shutting down");
    metrics.set_ready(false);
    shutdown.cancel();
}
