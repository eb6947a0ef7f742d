//! The "limit" row of the side-by-side benchmark: a DNS responder that does
//! no work at all. One thread receives a datagram, turns its header into an
//! NXDOMAIN response and sends it back. Whatever it reaches is the cost of
//! the kernel's UDP path on this machine, the ceiling for any DNS server.
//!
//! Usage: `zero_responder ADDR:PORT`

use std::net::UdpSocket;

fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:5399".to_owned());
    let socket = UdpSocket::bind(&addr)?;
    eprintln!("zero responder on {addr}");
    let mut buf = [0u8; 4096];
    loop {
        let (len, peer) = socket.recv_from(&mut buf)?;
        if len < 12 {
            continue;
        }
        buf[2] |= 0x80; // QR
        buf[3] = (buf[3] & 0xf0) | 3; // NXDOMAIN
        socket.send_to(&buf[..len], peer)?;
    }
}
