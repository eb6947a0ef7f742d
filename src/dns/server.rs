//! Listeners: UDP and TCP sockets on every configured address, a task per
//! query bounded by a semaphore, TCP framing with an idle timeout and a cap
//! on connections. Shutdown stops accepting and lets queries in flight end.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::handler::{Handler, Transport};
use super::udp::{self, UdpStats, WorkerSetup};

#[derive(Debug, Error)]
pub enum ServerError {
    #[error("cannot listen on udp {addr}: {source}")]
    BindUdp { addr: SocketAddr, source: std::io::Error },
    #[error("cannot listen on tcp {addr}: {source}")]
    BindTcp { addr: SocketAddr, source: std::io::Error },
    #[error("no listen address given")]
    NoAddress,
    #[error("cannot hand socket {addr} to the runtime: {source}")]
    Register { addr: SocketAddr, source: std::io::Error },
}

/// Sockets bound before the async runtime (and any thread) exists, so the
/// daemon can drop privileges while it is still single-threaded. Turn them
/// into [`Listeners`] inside the runtime with [`StdListeners::into_tokio`].
pub struct StdListeners {
    udp: Vec<std::net::UdpSocket>,
    tcp: Vec<std::net::TcpListener>,
}

/// Receive buffer asked for UDP sockets, so a burst of queries waits in the
/// kernel instead of being dropped (the kernel caps it at `net.core.rmem_max`
/// unless we may force it).
const UDP_RECEIVE_BUFFER: usize = 4 << 20;

fn grow_receive_buffer(socket: &std::net::UdpSocket) {
    use nix::sys::socket::{setsockopt, sockopt};
    if setsockopt(socket, sockopt::RcvBufForce, &UDP_RECEIVE_BUFFER).is_err()
        && let Err(e) = setsockopt(socket, sockopt::RcvBuf, &UDP_RECEIVE_BUFFER)
    {
        tracing::debug!(error = %e, "cannot grow the UDP receive buffer");
    }
}

// `IP_MTU_DISCOVER` / `IPV6_MTU_DISCOVER`, which nix does not name (its
// own macro defines them, so the unsafe `setsockopt` call stays in nix).
use nix::{getsockopt_impl, setsockopt_impl, sockopt_impl};
sockopt_impl!(IpMtuDiscover, Both, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, libc::c_int);
sockopt_impl!(Ipv6MtuDiscover, Both, libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER, libc::c_int);

/// UDP answers go out with DF set and are never fragmented, whatever path
/// MTU an ICMP message claims (`IP_PMTUDISC_PROBE`): they are at most 1232
/// bytes (the EDNS limit the server enforces), which fits any link's MTU,
/// and fragmented DNS answers are what off-path cache-poisoning attacks
/// forge (draft-ietf-dnsop-avoid-fragmentation). It also spares the
/// kernel the shared IP-ID generator it runs for every fragmentable
/// datagram. Best effort: without it the kernel's default stands.
fn never_fragment(socket: &std::net::UdpSocket, v6: bool) {
    use nix::sys::socket::setsockopt;
    // An IPv6 socket answers IPv4 clients (mapped addresses) through the
    // IPv4 option, so it gets both; that one may fail on a v6-only socket.
    let v4 = setsockopt(socket, IpMtuDiscover, &libc::IP_PMTUDISC_PROBE);
    let set = if v6 { setsockopt(socket, Ipv6MtuDiscover, &libc::IPV6_PMTUDISC_PROBE) } else { v4 };
    if let Err(e) = set {
        tracing::debug!(error = %e, "cannot set DF on UDP answers");
    }
}

/// A UDP socket bound to `addr` as warden's listeners are: a grown receive
/// buffer and DF on answers (both best effort). The bench's batched
/// zero-work responder binds through this too, so it measures the same
/// socket.
pub fn bind_udp(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let udp = std::net::UdpSocket::bind(addr)?;
    grow_receive_buffer(&udp);
    never_fragment(&udp, addr.is_ipv6());
    Ok(udp)
}

impl StdListeners {
    /// Bind UDP and TCP on each address (TCP takes UDP's port for port 0).
    pub fn bind(addrs: &[SocketAddr]) -> Result<StdListeners, ServerError> {
        if addrs.is_empty() {
            return Err(ServerError::NoAddress);
        }
        let mut out = StdListeners { udp: Vec::new(), tcp: Vec::new() };
        for &addr in addrs {
            let udp = bind_udp(addr).map_err(|source| ServerError::BindUdp { addr, source })?;
            let bound = udp.local_addr().map_err(|source| ServerError::BindUdp { addr, source })?;
            let tcp =
                std::net::TcpListener::bind(bound).map_err(|source| ServerError::BindTcp { addr: bound, source })?;
            out.udp.push(udp);
            out.tcp.push(tcp);
        }
        Ok(out)
    }

    /// Register the TCP listeners with the current tokio runtime; the UDP
    /// sockets stay blocking, owned by the worker threads (see `udp`).
    pub fn into_tokio(self) -> Result<Listeners, ServerError> {
        let mut listeners = Listeners { udp: Vec::new(), tcp: Vec::new() };
        for (udp, tcp) in self.udp.into_iter().zip(self.tcp) {
            let addr =
                tcp.local_addr().map_err(|source| ServerError::BindTcp { addr: ([0, 0, 0, 0], 0).into(), source })?;
            let register = |source| ServerError::Register { addr, source };
            tcp.set_nonblocking(true).map_err(register)?;
            listeners.udp.push(Arc::new(udp));
            listeners.tcp.push(TcpListener::from_std(tcp).map_err(register)?);
        }
        Ok(listeners)
    }
}

/// Bound sockets, ready to serve (made by [`StdListeners::into_tokio`]).
pub struct Listeners {
    udp: Vec<Arc<std::net::UdpSocket>>,
    tcp: Vec<TcpListener>,
}

/// Limits of the listeners.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Fast-path threads per UDP socket.
    pub udp_workers: usize,
    /// Entries of each worker's answer cache.
    pub cache_entries: usize,
    pub max_inflight: usize,
    pub max_tcp_connections: usize,
    pub tcp_idle_timeout: Duration,
}

impl Listeners {
    /// The addresses actually bound (UDP and TCP share each).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.udp.iter().filter_map(|s| s.local_addr().ok()).collect()
    }
}

/// Serve until `shutdown` is cancelled, then wait (up to `grace`) for the
/// queries in flight.
pub async fn serve(
    listeners: Listeners,
    handler: Arc<Handler>,
    limits: Limits,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let tracker = TaskTracker::new();
    let inflight = Arc::new(Semaphore::new(limits.max_inflight.max(1)));
    let connections = Arc::new(Semaphore::new(limits.max_tcp_connections.max(1)));
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(UdpStats::default());
    let (slow_tx, slow_rx) = tokio::sync::mpsc::channel(limits.max_inflight.max(1));
    tracker.spawn(udp::slow_loop(slow_rx, handler.clone(), inflight, tracker.clone(), stats.clone()));
    let mut workers = Vec::new();
    for socket in listeners.udp {
        for i in 0..limits.udp_workers.max(1) {
            let setup = WorkerSetup {
                socket: socket.clone(),
                handler: handler.clone(),
                slow: slow_tx.clone(),
                stop: stop.clone(),
                cache_entries: limits.cache_entries,
                stats: stats.clone(),
            };
            let spawned = std::thread::Builder::new().name(format!("warden-udp-{i}")).spawn(move || udp::worker(setup));
            match spawned {
                Ok(handle) => workers.push(handle),
                Err(e) => tracing::error!(error = %e, "cannot start a UDP worker thread"),
            }
        }
    }
    drop(slow_tx);
    for listener in listeners.tcp {
        let ctx =
            TcpContext { handler: handler.clone(), connections: connections.clone(), idle: limits.tcp_idle_timeout };
        tracker.spawn(tcp_loop(listener, ctx, tracker.clone(), shutdown.clone()));
    }
    tracker.close();
    shutdown.cancelled().await;
    stop.store(true, Ordering::Relaxed);
    let joined = tokio::task::spawn_blocking(move || workers.into_iter().for_each(|w| drop(w.join())));
    if tokio::time::timeout(grace, async {
        let _ = joined.await;
        tracker.wait().await;
    })
    .await
    .is_err()
    {
        tracing::warn!(?grace, "queries still in flight at shutdown deadline");
    }
}

#[derive(Clone)]
struct TcpContext {
    handler: Arc<Handler>,
    connections: Arc<Semaphore>,
    idle: Duration,
}

async fn tcp_loop(listener: TcpListener, ctx: TcpContext, tracker: TaskTracker, shutdown: CancellationToken) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "tcp accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if !ctx.handler.admit(peer.ip()) {
            continue;
        }
        let Ok(permit) = ctx.connections.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "too many tcp connections; closed");
            continue;
        };
        let (ctx, shutdown) = (ctx.clone(), shutdown.clone());
        tracker.spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tcp_connection(stream, peer, &ctx) => {}
            }
            drop(permit);
        });
    }
}

/// Length-prefixed queries, answered in order, until the client closes or
/// stays idle too long.
async fn tcp_connection(mut stream: TcpStream, peer: SocketAddr, ctx: &TcpContext) {
    let mut buf = Vec::with_capacity(512);
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(ctx.idle, stream.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        buf.resize(usize::from(u16::from_be_bytes(len)), 0);
        match tokio::time::timeout(ctx.idle, stream.read_exact(&mut buf)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let Some(reply) = ctx.handler.handle(&buf, peer.ip(), Transport::Tcp).await else {
            return;
        };
        let Ok(n) = u16::try_from(reply.len()) else { return };
        let mut framed = Vec::with_capacity(reply.len() + 2);
        framed.extend_from_slice(&n.to_be_bytes());
        framed.extend_from_slice(&reply);
        if stream.write_all(&framed).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use nix::sys::socket::getsockopt;

    use super::*;

    #[test]
    fn udp_answers_are_sent_with_df_and_never_fragmented() {
        let v4 = StdListeners::bind(&["127.0.0.1:0".parse().unwrap()]).unwrap();
        assert_eq!(getsockopt(&v4.udp[0], IpMtuDiscover).unwrap(), libc::IP_PMTUDISC_PROBE);
        // IPv6 loopback may be missing in a minimal container.
        if let Ok(v6) = StdListeners::bind(&["[::1]:0".parse().unwrap()]) {
            assert_eq!(getsockopt(&v6.udp[0], Ipv6MtuDiscover).unwrap(), libc::IPV6_PMTUDISC_PROBE);
        }
    }
}
