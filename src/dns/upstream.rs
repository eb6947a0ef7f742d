//! The upstream client: hickory-resolver with its TTL-respecting cache,
//! bounded by a timeout. Answers come back as records plus the response code
//! and SOA for negative answers; everything else is an [`UpstreamError`].

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use hickory_resolver::Resolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, Record, RecordType};
use thiserror::Error;

use super::counting::CountingProvider;

#[derive(Debug, Error)]
pub enum UpstreamError {
    #[error("cannot read the system resolver configuration: {0}")]
    SystemConfig(String),
    #[error("cannot build the upstream resolver: {0}")]
    Build(String),
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
    #[error("upstream answered {0}")]
    Rcode(ResponseCode),
    #[error("upstream failed: {0}")]
    Failed(String),
}

/// What the upstream said about one question.
#[derive(Debug, Clone)]
pub struct UpstreamAnswer {
    pub rcode: ResponseCode,
    /// Answer records (CNAME chain included), TTLs counted down from cache.
    pub answers: Vec<Record>,
    /// SOA (or other authority records) for negative answers.
    pub authorities: Vec<Record>,
}

pub struct Upstream {
    resolver: Resolver<CountingProvider>,
    timeout: Duration,
    sent: Arc<AtomicU64>,
}

impl Upstream {
    /// Forward to `servers` (UDP, TCP fallback), or the system's resolvers
    /// when empty.
    pub fn new(servers: &[SocketAddr], timeout: Duration, cache_size: u64) -> Result<Upstream, UpstreamError> {
        let config = if servers.is_empty() {
            let (config, _) = hickory_resolver::system_conf::read_system_conf()
                .map_err(|e| UpstreamError::SystemConfig(e.to_string()))?;
            config
        } else {
            ResolverConfig::from_name_servers(servers.iter().map(name_server).collect())
        };
        let mut opts = ResolverOpts::default();
        opts.timeout = timeout;
        opts.attempts = 1;
        opts.cache_size = cache_size;
        opts.use_hosts_file = ResolveHosts::Never;
        opts.preserve_intermediates = true;
        opts.try_tcp_on_error = true;
        opts.ndots = 0;
        opts.edns_payload_len = super::answer::EDNS_PAYLOAD;
        let provider = CountingProvider::default();
        let sent = provider.sent.clone();
        let resolver = Resolver::builder_with_config(config, provider)
            .with_options(opts)
            .build()
            .map_err(|e| UpstreamError::Build(e.to_string()))?;
        Ok(Upstream { resolver, timeout, sent })
    }

    /// Queries sent over the network so far (cache hits send none).
    pub fn network_queries(&self) -> Arc<AtomicU64> {
        self.sent.clone()
    }

    /// Resolve `name` (fully qualified) for `qtype`. Bounded by the timeout.
    pub async fn resolve(&self, name: &Name, qtype: RecordType) -> Result<UpstreamAnswer, UpstreamError> {
        let mut fqdn = name.clone();
        fqdn.set_fqdn(true);
        let lookup = tokio::time::timeout(self.timeout, self.resolver.lookup(fqdn, qtype)).await;
        match lookup {
            Err(_) => Err(UpstreamError::Timeout(self.timeout)),
            Ok(Ok(lookup)) => {
                let remaining = lookup.valid_until().saturating_duration_since(Instant::now()).as_secs();
                let remaining = u32::try_from(remaining).unwrap_or(u32::MAX);
                let answers = lookup
                    .answers()
                    .iter()
                    .map(|r| {
                        let mut r = r.clone();
                        r.ttl = r.ttl.min(remaining);
                        r
                    })
                    .collect();
                Ok(UpstreamAnswer { rcode: ResponseCode::NoError, answers, authorities: Vec::new() })
            }
            Ok(Err(NetError::Dns(DnsError::NoRecordsFound(nr)))) => {
                let mut authorities: Vec<Record> = Vec::new();
                if let Some(soa) = nr.soa {
                    authorities.push(soa.into_record_of_rdata());
                }
                Ok(UpstreamAnswer { rcode: nr.response_code, answers: Vec::new(), authorities })
            }
            Ok(Err(NetError::Dns(DnsError::ResponseCode(code)))) => Err(UpstreamError::Rcode(code)),
            Ok(Err(e)) => Err(UpstreamError::Failed(e.to_string())),
        }
    }
}

fn name_server(addr: &SocketAddr) -> NameServerConfig {
    let mut udp = ConnectionConfig::udp();
    udp.port = addr.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = addr.port();
    NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
}
