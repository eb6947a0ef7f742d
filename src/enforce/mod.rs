//! Enforcement: warden's own nftables table and TCP resets.
//!
//! This is the only module that touches nftables. It owns `table inet
//! warden` and nothing else (names in [`names`]): built in one atomic batch
//! at start ([`ruleset::create`]), read back and verified ([`nft`]),
//! changed only by element updates batched on one thread ([`worker`]), and
//! deleted on clean shutdown. It never decides what to block: the packet
//! layer and the schedule ([`schedule`]) ask, with the policy's verdicts.

pub mod names;
pub mod nft;
pub mod reset;
pub mod ruleset;
pub mod schedule;
pub mod worker;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::sync_channel;
use std::thread::JoinHandle;

use serde::Deserialize;
use thiserror::Error;

pub use nft::Nft;
pub use ruleset::{NetSets, Redirect, TableSpec};
pub use worker::{BlockedFlow, EnforceHandle, EnforceStats};

#[derive(Debug, Error)]
pub enum EnforceError {
    #[error("cannot run {program:?} (is nftables installed?): {source}")]
    Spawn { program: PathBuf, source: std::io::Error },
    #[error("nft I/O failed while trying to {step}: {source}")]
    Io { step: &'static str, source: std::io::Error },
    #[error("nft refused to {step} (needs root or CAP_NET_ADMIN): {stderr}")]
    Rejected { step: &'static str, stderr: String },
    #[error("cannot parse nft's listing of table inet warden: {0}")]
    ReadBack(#[source] serde_json::Error),
    #[error("table inet warden does not read back as built: {0}")]
    Verify(String),
    #[error("cannot open a raw socket for TCP resets (needs root or CAP_NET_RAW): {0}")]
    RawSocket(#[source] std::io::Error),
    #[error("cannot start the enforcement thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// `[enforce]`: what warden does to the traffic it refuses.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnforceConfig {
    /// Refuse to start when enforcement cannot be set up (no root, no
    /// nft); otherwise warden says so and runs without it.
    pub required: bool,
    /// The `nft` program.
    pub nft: PathBuf,
    /// Reject DNS over TLS (TCP 853) and DNS over QUIC (UDP 853).
    pub block_dot: bool,
    /// Redirect LAN DNS (port 53 arriving on the capture interfaces) to
    /// this address (warden's DNS). Off when absent.
    pub dns_redirect: Option<SocketAddr>,
    /// Blocked flows stay in the set this long (seconds).
    pub flow_timeout_s: u32,
    /// Resolve the policy's vendor hosts this often (seconds); 0: never.
    pub learn_interval_s: u64,
    /// Learned addresses stay in the set this long (seconds).
    pub learned_timeout_s: u32,
    /// Hosts whose addresses are the vendor's own even outside its
    /// networks (dedicated servers, never shared CDNs).
    pub own_address_hosts: Vec<String>,
    /// Recheck the policy's networks this often (seconds), for phase changes.
    pub networks_check_s: u64,
    /// Requests buffered for the enforcement thread.
    pub channel_capacity: usize,
}

impl Default for EnforceConfig {
    fn default() -> Self {
        EnforceConfig {
            required: false,
            nft: PathBuf::from("nft"),
            block_dot: true,
            dns_redirect: None,
            flow_timeout_s: 600,
            learn_interval_s: 900,
            learned_timeout_s: 3600,
            own_address_hosts: Vec::new(),
            networks_check_s: 10,
            channel_capacity: 8192,
        }
    }
}

/// The running enforcement: its table exists until [`Enforcer::stop`].
pub struct Enforcer {
    handle: EnforceHandle,
    thread: JoinHandle<()>,
    nft: Nft,
}

impl Enforcer {
    /// Builds and verifies the table, opens the reset socket and starts the
    /// thread. On error nothing is left behind.
    pub fn start(spec: &TableSpec, cfg: &EnforceConfig) -> Result<Enforcer, EnforceError> {
        let nft = Nft::new(&cfg.nft);
        let (batch, expected) = ruleset::create(spec);
        nft.apply("create table inet warden", &batch)?;
        let ready = nft.verify(&expected).and_then(|()| reset::Resetter::open());
        let resetter = match ready {
            Ok(r) => r,
            Err(e) => {
                let _ = nft.apply("delete table inet warden", &ruleset::delete());
                return Err(e);
            }
        };
        let (tx, rx) = sync_channel(cfg.channel_capacity.max(1));
        let stats = Arc::new(EnforceStats::default());
        let handle = EnforceHandle { tx, stats: stats.clone(), flow_timeout_s: cfg.flow_timeout_s };
        let worker_nft = nft.clone();
        let thread = std::thread::Builder::new()
            .name("enforce".into())
            .spawn(move || worker::run(rx, worker_nft, Some(resetter), stats))
            .map_err(EnforceError::Thread)?;
        Ok(Enforcer { handle, thread, nft })
    }

    pub fn handle(&self) -> EnforceHandle {
        self.handle.clone()
    }

    /// Finishes queued work, stops the thread and deletes the table.
    pub fn stop(self) -> Result<(), EnforceError> {
        let _ = self.handle.tx.send(worker::Request::Stop);
        let _ = self.thread.join();
        self.nft.apply("delete table inet warden", &ruleset::delete())
    }
}
