//! hickory's tokio runtime provider, counting the sockets it opens. hickory
//! opens one UDP socket per outgoing query (source-port randomisation) and
//! one TCP connection per TCP exchange, so the count is the number of
//! queries sent over the network; answers from its cache open none. The
//! metrics derive the cache hit ratio from it.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use hickory_resolver::net::runtime::{RuntimeProvider, TokioRuntimeProvider};

type Inner = TokioRuntimeProvider;

#[derive(Clone, Default)]
pub(super) struct CountingProvider {
    inner: Inner,
    pub(super) sent: Arc<AtomicU64>,
}

impl RuntimeProvider for CountingProvider {
    type Handle = <Inner as RuntimeProvider>::Handle;
    type Timer = <Inner as RuntimeProvider>::Timer;
    type Udp = <Inner as RuntimeProvider>::Udp;
    type Tcp = <Inner as RuntimeProvider>::Tcp;

    fn create_handle(&self) -> Self::Handle {
        self.inner.create_handle()
    }

    fn connect_tcp(
        &self,
        server_addr: SocketAddr,
        bind_addr: Option<SocketAddr>,
        timeout: Option<Duration>,
    ) -> Pin<Box<dyn Send + Future<Output = Result<Self::Tcp, io::Error>>>> {
        self.sent.fetch_add(1, Relaxed);
        self.inner.connect_tcp(server_addr, bind_addr, timeout)
    }

    fn bind_udp(
        &self,
        local_addr: SocketAddr,
        server_addr: SocketAddr,
    ) -> Pin<Box<dyn Send + Future<Output = Result<Self::Udp, io::Error>>>> {
        self.sent.fetch_add(1, Relaxed);
        self.inner.bind_udp(local_addr, server_addr)
    }
}
