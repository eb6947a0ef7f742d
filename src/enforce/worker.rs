//! The enforcement thread: the only place `nft` runs after start-up. It
//! takes requests from a bounded channel (a full channel is counted, the
//! caller never waits), gathers a burst for [`BATCH_WINDOW`] and turns it
//! into one `nft` call; resets for blocked flows go out first.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::nft::Nft;
use super::reset::Resetter;
use super::ruleset::{self, NetSets};
use crate::packet::TcpTrigger;

/// How long a burst is gathered before the `nft` call.
pub const BATCH_WINDOW: Duration = Duration::from_millis(20);
/// Most requests in one batch.
pub const MAX_BATCH: usize = 4096;

/// A TCP flow cut because it carried a blocked name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockedFlow {
    pub client: IpAddr,
    pub server: IpAddr,
    pub port: u16,
}

#[derive(Debug)]
pub enum Request {
    Flow { flow: BlockedFlow, trigger: Option<TcpTrigger>, timeout_s: u32 },
    Learn { addrs: Vec<IpAddr>, timeout_s: u32 },
    Networks(NetSets),
    Stop,
}

/// Counters of the enforcement thread.
#[derive(Debug, Default)]
pub struct EnforceStats {
    pub requests: AtomicU64,
    /// Requests lost because the channel was full.
    pub overflow: AtomicU64,
    pub nft_calls: AtomicU64,
    pub nft_errors: AtomicU64,
    pub elements: AtomicU64,
    pub resets_sent: AtomicU64,
}

/// The producers' side: cheap to clone, never blocks.
#[derive(Clone, Debug)]
pub struct EnforceHandle {
    pub(super) tx: SyncSender<Request>,
    pub(super) stats: Arc<EnforceStats>,
    pub(super) flow_timeout_s: u32,
}

impl EnforceHandle {
    /// Adds the flow to the blocked-flows set and resets it (when `trigger`
    /// is known). False when the request could not be queued.
    pub fn block_flow(&self, flow: BlockedFlow, trigger: Option<TcpTrigger>) -> bool {
        self.send(Request::Flow { flow, trigger, timeout_s: self.flow_timeout_s })
    }

    pub fn learn(&self, addrs: Vec<IpAddr>, timeout_s: u32) -> bool {
        self.send(Request::Learn { addrs, timeout_s })
    }

    pub fn networks(&self, nets: NetSets) -> bool {
        self.send(Request::Networks(nets))
    }

    pub fn stats(&self) -> Arc<EnforceStats> {
        self.stats.clone()
    }

    pub(super) fn send(&self, request: Request) -> bool {
        self.stats.requests.fetch_add(1, Relaxed);
        match self.tx.try_send(request) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.stats.overflow.fetch_add(1, Relaxed);
                false
            }
        }
    }
}

/// Runs until a `Stop` request or until every handle is gone.
pub(super) fn run(rx: Receiver<Request>, nft: Nft, mut resetter: Option<Resetter>, stats: Arc<EnforceStats>) {
    loop {
        let Ok(first) = rx.recv() else { return };
        let mut batch = vec![first];
        let deadline = Instant::now() + BATCH_WINDOW;
        while batch.len() < MAX_BATCH {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(r) => batch.push(r),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        let stop = batch.iter().any(|r| matches!(r, Request::Stop));
        apply(&batch, &nft, resetter.as_mut(), &stats);
        if stop {
            return;
        }
    }
}

/// Resets first, then one `nft` call for everything else in the batch.
pub fn apply(batch: &[Request], nft: &Nft, mut resetter: Option<&mut Resetter>, stats: &EnforceStats) {
    let mut seen = HashSet::new();
    for r in batch {
        if let (Request::Flow { flow, trigger: Some(t), .. }, Some(rs)) = (r, resetter.as_deref_mut())
            && seen.insert(*flow)
        {
            let sent = rs.reset(flow.client, flow.server, flow.port, t);
            stats.resets_sent.fetch_add(sent as u64, Relaxed);
        }
    }
    for value in batches(batch) {
        stats.nft_calls.fetch_add(1, Relaxed);
        if let Err(e) = nft.apply("update sets", &value) {
            stats.nft_errors.fetch_add(1, Relaxed);
            tracing::warn!(error = %e, "nftables update failed");
        }
    }
    let elements = batch.iter().map(|r| match r {
        Request::Flow { .. } => 1,
        Request::Learn { addrs, .. } => addrs.len() as u64,
        _ => 0,
    });
    stats.elements.fetch_add(elements.sum(), Relaxed);
}

/// The `nft` batches for a burst: network refreshes (latest only), then
/// all element additions together. Usually exactly one.
pub fn batches(batch: &[Request]) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(nets) = batch.iter().rev().find_map(|r| if let Request::Networks(n) = r { Some(n) } else { None }) {
        out.push(ruleset::replace_networks(nets));
    }
    let mut items = Vec::new();
    let mut seen = HashSet::new();
    for r in batch {
        match r {
            Request::Flow { flow, timeout_s, .. } if seen.insert(*flow) => {
                if let Some((set, val)) = ruleset::flow_element(flow.client, flow.server, flow.port) {
                    items.push((set, val, *timeout_s));
                }
            }
            Request::Learn { addrs, timeout_s } => {
                items.extend(addrs.iter().map(|a| {
                    let (set, val) = ruleset::learned_element(*a);
                    (set, val, *timeout_s)
                }));
            }
            _ => {}
        }
    }
    if !items.is_empty() {
        out.push(ruleset::add_elements(&items));
    }
    out
}
