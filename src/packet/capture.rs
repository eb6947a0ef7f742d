//! Capture: one blocking thread per interface reads frames from a pnet
//! datalink channel, runs the [`Inspector`] on them and hands events to the
//! async side with `try_send`, so a slow consumer costs events (counted),
//! never capture. Threads stop within the read timeout of [`Capture::stop`].

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::ArcSwap;
use pnet::datalink::{self, Channel, NetworkInterface};
use thiserror::Error;
use tokio::sync::mpsc::Sender;
use tokio::sync::mpsc::error::TrySendError;

use super::flow::FlowLimits;
use super::{Event, Inspector, PacketStats};
use crate::policy::Policy;

const READ_TIMEOUT: Duration = Duration::from_millis(200);

#[derive(Debug, Error)]
pub enum CaptureError {
    #[error("no network interface named {0:?}")]
    NoSuchInterface(String),
    #[error("cannot open a capture channel on {iface} (needs root or CAP_NET_RAW): {source}")]
    Open { iface: String, source: std::io::Error },
    #[error("capture channel on {0} is not an Ethernet channel")]
    NotEthernet(String),
    #[error("cannot start the capture thread for {iface}: {source}")]
    Thread { iface: String, source: std::io::Error },
}

/// The running capture threads.
pub struct Capture {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

/// The interface and warden's addresses on it.
pub fn interface(name: &str) -> Result<NetworkInterface, CaptureError> {
    datalink::interfaces()
        .into_iter()
        .find(|i| i.name == name)
        .ok_or_else(|| CaptureError::NoSuchInterface(name.into()))
}

/// Addresses of the named interfaces (warden's own: DNS to them is no bypass).
pub fn local_addresses(names: &[String]) -> Vec<IpAddr> {
    let all = datalink::interfaces();
    all.iter().filter(|i| names.contains(&i.name)).flat_map(|i| i.ips.iter().map(|n| n.ip())).collect()
}

impl Capture {
    /// Opens every interface first (all or nothing), then starts a thread each.
    pub fn start(
        names: &[String],
        policy: Arc<ArcSwap<Policy>>,
        local: Vec<IpAddr>,
        limits: FlowLimits,
        stats: Arc<PacketStats>,
        tx: Sender<Event>,
    ) -> Result<Capture, CaptureError> {
        let config = datalink::Config { read_timeout: Some(READ_TIMEOUT), promiscuous: true, ..Default::default() };
        let mut channels = Vec::new();
        for name in names {
            let iface = interface(name)?;
            match datalink::channel(&iface, config) {
                Ok(Channel::Ethernet(_tx, rx)) => channels.push((name.clone(), rx)),
                Ok(_) => return Err(CaptureError::NotEthernet(name.clone())),
                Err(source) => return Err(CaptureError::Open { iface: name.clone(), source }),
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (iface, rx) in channels {
            let inspector = Inspector::new(policy.clone(), local.clone(), limits, stats.clone());
            let (stop, stats, tx) = (stop.clone(), stats.clone(), tx.clone());
            let thread = std::thread::Builder::new()
                .name(format!("capture-{iface}"))
                .spawn(move || run(rx, inspector, &stop, &stats, &tx))
                .map_err(|source| CaptureError::Thread { iface, source })?;
            threads.push(thread);
        }
        Ok(Capture { stop, threads })
    }

    /// Stops and joins the threads.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn run(
    mut rx: Box<dyn datalink::DataLinkReceiver>,
    mut inspector: Inspector,
    stop: &AtomicBool,
    stats: &PacketStats,
    tx: &Sender<Event>,
) {
    let mut events = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match rx.next() {
            Ok(frame) => inspector.inspect(frame, crate::time::now_ms(), &mut events),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
            Err(e) => {
                if stats.capture_errors.fetch_add(1, Relaxed) == 0 {
                    tracing::warn!(error = %e, "capture read failed");
                }
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        }
        for event in events.drain(..) {
            stats.events.fetch_add(1, Relaxed);
            match tx.try_send(event) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    stats.channel_overflow.fetch_add(1, Relaxed);
                }
                Err(TrySendError::Closed(_)) => return,
            }
        }
    }
}
