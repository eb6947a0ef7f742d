//! Listeners: UDP and TCP sockets on every configured address, a task per
//! query bounded by a semaphore, TCP framing with an idle timeout and a cap
//! on connections. Shutdown stops accepting and lets queries in flight end.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::handler::{Handler, Transport};

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

impl StdListeners {
    /// Bind UDP and TCP on each address (TCP takes UDP's port for port 0).
    pub fn bind(addrs: &[SocketAddr]) -> Result<StdListeners, ServerError> {
        if addrs.is_empty() {
            return Err(ServerError::NoAddress);
        }
        let mut out = StdListeners { udp: Vec::new(), tcp: Vec::new() };
        for &addr in addrs {
            let udp = std::net::UdpSocket::bind(addr).map_err(|source| ServerError::BindUdp { addr, source })?;
            let bound = udp.local_addr().map_err(|source| ServerError::BindUdp { addr, source })?;
            let tcp =
                std::net::TcpListener::bind(bound).map_err(|source| ServerError::BindTcp { addr: bound, source })?;
            out.udp.push(udp);
            out.tcp.push(tcp);
        }
        Ok(out)
    }

    /// Register the sockets with the current tokio runtime.
    pub fn into_tokio(self) -> Result<Listeners, ServerError> {
        let mut listeners = Listeners { udp: Vec::new(), tcp: Vec::new() };
        for (udp, tcp) in self.udp.into_iter().zip(self.tcp) {
            let addr =
                udp.local_addr().map_err(|source| ServerError::BindUdp { addr: ([0, 0, 0, 0], 0).into(), source })?;
            let register = |source| ServerError::Register { addr, source };
            udp.set_nonblocking(true).map_err(register)?;
            tcp.set_nonblocking(true).map_err(register)?;
            listeners.udp.push(Arc::new(UdpSocket::from_std(udp).map_err(register)?));
            listeners.tcp.push(TcpListener::from_std(tcp).map_err(register)?);
        }
        Ok(listeners)
    }
}

/// Bound sockets, ready to serve. Binding is separate from serving so the
/// daemon binds (as root) before it drops privileges, and tests bind port 0.
pub struct Listeners {
    udp: Vec<Arc<UdpSocket>>,
    tcp: Vec<TcpListener>,
}

/// Limits of the listeners.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_inflight: usize,
    pub max_tcp_connections: usize,
    pub tcp_idle_timeout: Duration,
}

impl Listeners {
    /// Bind UDP and TCP on each address. With port 0, TCP takes the port
    /// the kernel gave the UDP socket.
    pub async fn bind(addrs: &[SocketAddr]) -> Result<Listeners, ServerError> {
        if addrs.is_empty() {
            return Err(ServerError::NoAddress);
        }
        let mut listeners = Listeners { udp: Vec::new(), tcp: Vec::new() };
        for &addr in addrs {
            let udp = UdpSocket::bind(addr).await.map_err(|source| ServerError::BindUdp { addr, source })?;
            let bound = udp.local_addr().map_err(|source| ServerError::BindUdp { addr, source })?;
            let tcp = TcpListener::bind(bound).await.map_err(|source| ServerError::BindTcp { addr: bound, source })?;
            listeners.udp.push(Arc::new(udp));
            listeners.tcp.push(tcp);
        }
        Ok(listeners)
    }

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
    for socket in listeners.udp {
        tracker.spawn(udp_loop(socket, handler.clone(), inflight.clone(), tracker.clone(), shutdown.clone()));
    }
    for listener in listeners.tcp {
        let ctx =
            TcpContext { handler: handler.clone(), connections: connections.clone(), idle: limits.tcp_idle_timeout };
        tracker.spawn(tcp_loop(listener, ctx, tracker.clone(), shutdown.clone()));
    }
    tracker.close();
    shutdown.cancelled().await;
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!(?grace, "queries still in flight at shutdown deadline");
    }
}

async fn udp_loop(
    socket: Arc<UdpSocket>,
    handler: Arc<Handler>,
    inflight: Arc<Semaphore>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
) {
    let mut buf = vec![0u8; 4096];
    loop {
        let (len, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(e) => {
                    // ICMP errors surface here on some systems; keep serving.
                    tracing::debug!(error = %e, "udp receive error");
                    continue;
                }
            },
        };
        if !handler.admit(peer.ip()) {
            continue;
        }
        let Ok(permit) = inflight.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "too many queries in flight; dropped");
            continue;
        };
        let query = buf[..len].to_vec();
        let (socket, handler) = (socket.clone(), handler.clone());
        tracker.spawn(async move {
            if let Some(reply) = handler.handle(&query, peer.ip(), Transport::Udp).await
                && let Err(e) = socket.send_to(&reply, peer).await
            {
                tracing::debug!(%peer, error = %e, "udp send failed");
            }
            drop(permit);
        });
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
        if !ctx.handler.admit(peer.ip()) {
            return;
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
