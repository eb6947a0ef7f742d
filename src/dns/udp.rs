//! UDP serving: worker threads (blocking sockets, off the async reactor)
//! run the fast path; datagrams it cannot answer go over a bounded channel
//! to the async full path, which replies on the same socket and sends
//! cacheable answers back to the worker that asked. A worker takes what the
//! socket holds in one `recvmmsg` (up to [`BATCH`] datagrams) and sends the
//! fast path's answers in one `sendmmsg`, so under load the system-call
//! cost is shared by a batch; when idle a batch is one datagram.

use std::io::{IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use nix::sys::socket::{ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::task::TaskTracker;

use super::cache::{AnswerCache, Fill};
use super::fast::Fast;
use super::handler::{Handler, Transport};

/// How often a blocked `recv` wakes to check for shutdown.
const WAKE: Duration = Duration::from_millis(100);
/// Cache fills buffered per worker.
const FILL_QUEUE: usize = 4096;
/// Most datagrams received (and answers sent) per system call.
pub const BATCH: usize = 32;
/// Receive buffer per datagram: larger queries are cut and then refused.
const DATAGRAM: usize = 4096;

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
    if let Err(e) = setup.socket.set_read_timeout(Some(WAKE)) {
        tracing::error!(error = %e, "cannot set the UDP read timeout; worker stops");
        return;
    }
    let mut batch = Batch::new();
    let mut pass = setup.handler.pass();
    while !setup.stop.load(Ordering::Relaxed) {
        drain_fills(&fill_rx, &mut cache);
        let received = batch.receive(&setup.socket);
        setup.handler.start_pass(&mut pass);
        let admitted = admit_runs(&setup.handler, &batch.got[..received], pass.now.instant);
        for (i, admitted) in admitted.into_iter().enumerate().take(received) {
            let (len, peer) = batch.got[i];
            let (Some(peer), true) = (peer, admitted) else { continue };
            let query = &batch.bufs[i][..len];
            let out = &mut batch.outs[batch.replies];
            match setup.handler.fast_answer(query, peer.ip(), &mut pass, &mut cache, out) {
                Fast::Answered => {
                    batch.to[batch.replies] = Some(SockaddrStorage::from(peer));
                    batch.replies += 1;
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
        // Counted before the answers leave, so a client that reads the
        // metrics after its answer sees its query in them.
        setup.handler.end_pass(&mut pass);
        batch.send(&setup.socket, &setup.stats);
        setup.handler.close_after_batch(pass.now.ms);
    }
}

/// A worker's buffers for one batch: datagrams in, answers out.
struct Batch {
    bufs: Box<[[u8; DATAGRAM]; BATCH]>,
    /// Length and sender of each received datagram.
    got: [(usize, Option<SocketAddr>); BATCH],
    rx: MultiHeaders<SockaddrStorage>,
    outs: [Vec<u8>; BATCH],
    to: [Option<SockaddrStorage>; BATCH],
    /// Answers in `outs[..replies]`, for `to[..replies]`.
    replies: usize,
    tx: MultiHeaders<SockaddrStorage>,
}

impl Batch {
    fn new() -> Batch {
        let bufs = vec![[0u8; DATAGRAM]; BATCH].into_boxed_slice().try_into().unwrap_or_else(|_| unreachable!());
        Batch {
            bufs,
            got: [(0, None); BATCH],
            rx: MultiHeaders::preallocate(BATCH, None),
            outs: std::array::from_fn(|_| Vec::with_capacity(1232)),
            to: [None; BATCH],
            replies: 0,
            tx: MultiHeaders::preallocate(BATCH, None),
        }
    }

    /// Waits (up to the socket's read timeout) for at least one datagram and
    /// takes what else is queued. Returns how many `got` holds.
    fn receive(&mut self, socket: &UdpSocket) -> usize {
        let mut slices = self.bufs.each_mut().map(|b| [IoSliceMut::new(b)]);
        let flags = MsgFlags::MSG_WAITFORONE;
        let Ok(results) = recvmmsg(socket.as_raw_fd(), &mut self.rx, slices.iter_mut(), flags, None) else {
            return 0;
        };
        let mut n = 0;
        for (got, msg) in self.got.iter_mut().zip(results) {
            *got = (msg.bytes.min(DATAGRAM), msg.address.and_then(std_addr));
            n += 1;
        }
        n
    }

    /// Sends the batch's answers; what `sendmmsg` leaves goes one by one.
    fn send(&mut self, socket: &UdpSocket, stats: &UdpStats) {
        let n = std::mem::take(&mut self.replies);
        if n == 0 {
            return;
        }
        let slices: [[IoSlice<'_>; 1]; BATCH] = std::array::from_fn(|i| [IoSlice::new(&self.outs[i])]);
        let flags = MsgFlags::empty();
        let no_cmsgs: [ControlMessage<'_>; 0] = [];
        let sent = sendmmsg(socket.as_raw_fd(), &mut self.tx, &slices[..n], &self.to[..n], no_cmsgs, flags)
            .map_or(0, |r| r.count());
        for i in sent..n {
            let Some(peer) = self.to[i].and_then(std_addr) else { continue };
            if socket.send_to(&self.outs[i], peer).is_err() {
                stats.send_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Which datagrams of a batch the rate limit admits. It is asked once per
/// run of datagrams from one client (a forwarder in front of warden, or
/// dnsperf, sends whole batches as one run), for the tokens single queries
/// would take.
fn admit_runs(handler: &Handler, got: &[(usize, Option<SocketAddr>)], now: Instant) -> [bool; BATCH] {
    let mut admitted = [false; BATCH];
    let got = &got[..got.len().min(BATCH)];
    let mut start = 0;
    while start < got.len() {
        let client = got[start].1.map(|p| p.ip());
        let run = got[start..].iter().take_while(|(_, p)| p.map(|p| p.ip()) == client).count();
        let n = client.map_or(0, |c| handler.admit_n(c, now, run));
        admitted.iter_mut().skip(start).take(n.min(run)).for_each(|a| *a = true);
        start += run;
    }
    admitted
}

fn std_addr(a: SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    a.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
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
