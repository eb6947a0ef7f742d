//! The "limit" rows of the side-by-side benchmark: a DNS responder that does
//! no work at all. One thread receives a datagram, turns its header into an
//! NXDOMAIN response and sends it back. Whatever it reaches is the cost of
//! the kernel's UDP path on this machine, the ceiling for any DNS server.
//!
//! Two forms:
//! - plain (`limit`): `recvfrom`/`sendto`, one datagram a system call, as
//!   the ceiling is defined;
//! - `--mmsg` (`limit-mmsg`): warden's own socket I/O with no work between
//!   (`recvmmsg` of up to 32 datagrams waiting for one, answers in one
//!   `sendmmsg`, the socket bound by `warden::dns::bind_udp`: DF set, a
//!   4 MiB receive buffer), the stricter ceiling for a server that batches.
//!
//! Usage: `zero_responder [--mmsg] ADDR:PORT`

use std::io::{IoSlice, IoSliceMut};
use std::net::UdpSocket;
use std::os::fd::AsRawFd;

use nix::sys::socket::{ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};

const BATCH: usize = 32;
const DATAGRAM: usize = 4096;

/// The header of a query turned into its NXDOMAIN response; false for a
/// datagram too short to be one.
fn flip(datagram: &mut [u8]) -> bool {
    if datagram.len() < 12 {
        return false;
    }
    datagram[2] |= 0x80; // QR
    datagram[3] = (datagram[3] & 0xf0) | 3; // NXDOMAIN
    true
}

fn plain(socket: &UdpSocket) -> std::io::Result<()> {
    let mut buf = [0u8; DATAGRAM];
    loop {
        let (len, peer) = socket.recv_from(&mut buf)?;
        if flip(&mut buf[..len]) {
            socket.send_to(&buf[..len], peer)?;
        }
    }
}

fn batched(socket: &UdpSocket) -> std::io::Result<()> {
    let mut bufs: Box<[[u8; DATAGRAM]; BATCH]> = Box::new([[0u8; DATAGRAM]; BATCH]);
    let mut rx = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut tx = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut got = [(0usize, None::<SockaddrStorage>); BATCH];
    loop {
        let n = {
            let mut slices = bufs.each_mut().map(|b| [IoSliceMut::new(b)]);
            let results = recvmmsg(socket.as_raw_fd(), &mut rx, slices.iter_mut(), MsgFlags::MSG_WAITFORONE, None)?;
            let mut n = 0;
            for (slot, msg) in got.iter_mut().zip(results) {
                *slot = (msg.bytes.min(DATAGRAM), msg.address);
                n += 1;
            }
            n
        };
        // Which datagrams are answered, in the order they came.
        let (mut keep, mut answers) = ([0usize; BATCH], 0);
        let mut to = [None::<SockaddrStorage>; BATCH];
        for (i, &(len, peer)) in got.iter().enumerate().take(n) {
            if flip(&mut bufs[i][..len]) {
                (keep[answers], to[answers]) = (i, peer);
                answers += 1;
            }
        }
        let out: [[IoSlice<'_>; 1]; BATCH] = std::array::from_fn(|j| [IoSlice::new(&bufs[keep[j]][..got[keep[j]].0])]);
        let no_cmsgs: [ControlMessage<'_>; 0] = [];
        sendmmsg(socket.as_raw_fd(), &mut tx, &out[..answers], &to[..answers], no_cmsgs, MsgFlags::empty())?;
    }
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mmsg = args.iter().any(|a| a == "--mmsg");
    let addr = args.iter().find(|a| !a.starts_with("--")).cloned().unwrap_or_else(|| "127.0.0.1:5399".to_owned());
    let socket = if mmsg {
        warden::dns::bind_udp(addr.parse().map_err(std::io::Error::other)?)?
    } else {
        UdpSocket::bind(&addr)?
    };
    eprintln!("zero responder on {addr}{}", if mmsg { " (recvmmsg/sendmmsg)" } else { "" });
    if mmsg { batched(&socket) } else { plain(&socket) }
}
