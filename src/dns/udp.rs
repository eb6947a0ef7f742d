//! UDP serving: worker threads (blocking sockets, off the async reactor)
//! run the fast path; datagrams it cannot answer go over a bounded channel
//! to the async full path, which replies on the same socket and sends
//! cacheable answers back to the worker that asked.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc};
use tokio_util::task::TaskTracker;

use super::cache::{AnswerCache, Fill};
use super::fast::Fast;
use super::handler::{Handler, Transport};

/// How often a blocked `recv` wakes to check for shutdown.
const WAKE: Duration = Duration::from_millis(100);
/// Cache fills buffered per worker.
const FILL_QUEUE: usize = 4096;

/// A datagram for the full path.
pub struct SlowJob {
    bytes: Vec<u8>,
    peer: SocketAddr,
    recorded: bool,
    socket: Arc<UdpSocket>,
    fills: SyncSender<Fill>,
}

/// Counters of the UDP layer.
#[derive(Debug, Default)]
pub struct UdpStats {
    pub slow_dropped: AtomicU64,
    pub send_errors: AtomicU64,
}

/// Settings of one worker.
pub struct WorkerSetup {
    pub socket: Arc<UdpSocket>,
    pub handler: Arc<Handler>,
    pub slow: mpsc::Sender<SlowJob>,
    pub stop: Arc<AtomicBool>,
    pub cache_entries: usize,
    pub stats: Arc<UdpStats>,
}

/// Run one worker until `stop` is set.
pub fn worker(setup: WorkerSetup) {
    let (fill_tx, fill_rx) = sync_channel(FILL_QUEUE);
    let mut cache = AnswerCache::new(setup.cache_entries);
    let mut buf = vec![0u8; 4096];
    let mut out = Vec::with_capacity(1232);
    if let Err(e) = setup.socket.set_read_timeout(Some(WAKE)) {
        tracing::error!(error = %e, "cannot set the UDP read timeout; worker stops");
        return;
    }
    while !setup.stop.load(Ordering::Relaxed) {
        drain_fills(&fill_rx, &mut cache);
        let (len, peer) = match setup.socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(_) => continue,
        };
        let query = &buf[..len];
        if !setup.handler.admit(peer.ip()) {
            continue;
        }
        match setup.handler.fast_answer(query, peer.ip(), &mut cache, &mut out) {
            Fast::Answered => {
                if setup.socket.send_to(&out, peer).is_err() {
                    setup.stats.send_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            Fast::Slow { recorded } => {
                let job = SlowJob {
                    bytes: query.to_vec(),
                    peer,
                    recorded,
                    socket: setup.socket.clone(),
                    fills: fill_tx.clone(),
                };
                if setup.slow.try_send(job).is_err() {
                    setup.stats.slow_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

fn drain_fills(rx: &Receiver<Fill>, cache: &mut AnswerCache) {
    let mut now = None;
    while let Ok(fill) = rx.try_recv() {
        cache.insert(fill, *now.get_or_insert_with(Instant::now));
    }
}

/// The full path for UDP: each job on its own task, bounded by `inflight`.
pub async fn slow_loop(
    mut jobs: mpsc::Receiver<SlowJob>,
    handler: Arc<Handler>,
    inflight: Arc<Semaphore>,
    tracker: TaskTracker,
    stats: Arc<UdpStats>,
) {
    while let Some(job) = jobs.recv().await {
        let Ok(permit) = inflight.clone().try_acquire_owned() else {
            stats.slow_dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let (handler, stats) = (handler.clone(), stats.clone());
        tracker.spawn(async move {
            let reply = handler.handle_full(&job.bytes, job.peer.ip(), Transport::Udp, job.recorded).await;
            if let Some((bytes, fill)) = reply {
                if job.socket.send_to(&bytes, job.peer).is_err() {
                    stats.send_errors.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(fill) = fill
                    && let Err(TrySendError::Full(_)) = job.fills.try_send(fill)
                {
                    tracing::trace!("cache fill queue full");
                }
            }
            drop(permit);
        });
    }
}
