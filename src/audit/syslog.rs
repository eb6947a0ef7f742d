//! Shipping written lines to a syslog collector as RFC 5424 messages whose
//! MSG is the audit line itself (the same JSON, hash included), over UDP
//! (one datagram per record) or TCP (octet-counted framing, RFC 6587).
//! Best effort: the file is the record of truth; a collector that is down
//! is counted and retried, never waited for.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// Transport to the collector.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Udp,
    Tcp,
}

/// Where and what to ship.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// The collector, e.g. `127.0.0.1:514`.
    pub address: SocketAddr,
    #[serde(default)]
    pub protocol: Protocol,
    /// Ship only `checkpoint` records (anchoring the chain off the box)
    /// instead of every record.
    #[serde(default)]
    pub only_checkpoints: bool,
}

/// Facility local0; severity notice for contacts, info for the rest.
fn priority(line: &[u8]) -> u8 {
    let contact = line.windows(18).any(|w| w == b"\"type\":\"contact\",\"");
    16 * 8 + if contact { 5 } else { 6 }
}

/// One RFC 5424 message: `<PRI>1 TS HOST warden PID TYPE - LINE`.
pub fn format_message(line: &[u8], ts: &str, host: &str, kind: &str) -> Vec<u8> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let mut out = format!("<{}>1 {ts} {host} warden {} {kind} - ", priority(line), std::process::id()).into_bytes();
    out.extend_from_slice(line);
    out
}

enum Conn {
    Udp(UdpSocket),
    Tcp(TcpStream),
}

/// The writer thread's connection to the collector.
pub(crate) struct Shipper {
    config: SyslogConfig,
    conn: Option<Conn>,
    retry_at: Instant,
    /// Messages that could not be sent.
    pub failed: u64,
}

const TIMEOUT: Duration = Duration::from_millis(200);

impl Shipper {
    pub fn new(config: SyslogConfig) -> Shipper {
        Shipper { config, conn: None, retry_at: Instant::now(), failed: 0 }
    }

    fn connect(&self) -> io::Result<Conn> {
        Ok(match self.config.protocol {
            Protocol::Udp => {
                let bind: SocketAddr =
                    if self.config.address.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
                let s = UdpSocket::bind(bind)?;
                s.connect(self.config.address)?;
                Conn::Udp(s)
            }
            Protocol::Tcp => {
                let s = TcpStream::connect_timeout(&self.config.address, TIMEOUT)?;
                s.set_write_timeout(Some(TIMEOUT))?;
                Conn::Tcp(s)
            }
        })
    }

    /// Ships every line of `bytes` (complete lines as written to the file).
    pub fn ship(&mut self, bytes: &[u8], host: &str) {
        for line in bytes.split_inclusive(|&b| b == b'\n') {
            let Some((ts, kind)) = ts_and_type(line) else { continue };
            if self.config.only_checkpoints && kind != "checkpoint" {
                continue;
            }
            let msg = format_message(line, ts, host, kind);
            if self.send(&msg).is_err() {
                self.failed += 1;
                self.conn = None;
                self.retry_at = Instant::now() + Duration::from_secs(1);
            }
        }
    }

    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        if self.conn.is_none() {
            if Instant::now() < self.retry_at {
                return Err(io::ErrorKind::NotConnected.into());
            }
            self.conn = Some(self.connect()?);
        }
        match &mut self.conn {
            Some(Conn::Udp(s)) => s.send(msg).map(drop),
            Some(Conn::Tcp(s)) => {
                s.write_all(format!("{} ", msg.len()).as_bytes())?;
                s.write_all(msg)
            }
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

/// `ts` and `type` of a written line: the first two string fields (the
/// writer writes them first, in this order).
fn ts_and_type(line: &[u8]) -> Option<(&str, &str)> {
    let text = std::str::from_utf8(line).ok()?;
    let ts = text.strip_prefix("{\"ts\":\"")?.split('"').next()?;
    let kind = text.split_once(",\"type\":\"")?.1.split('"').next()?;
    Some((ts, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &[u8] =
        br#"{"ts":"2024-09-29T04:00:01.123Z","seq":2,"type":"contact","host":"gw1","prev_hash":"0","hash":"1"}
"#;

    #[test]
    fn udp_collector_receives_rfc5424_with_the_json_line_as_message() {
        let collector = UdpSocket::bind("127.0.0.1:0").unwrap();
        collector.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let config =
            SyslogConfig { address: collector.local_addr().unwrap(), protocol: Protocol::Udp, only_checkpoints: false };
        let mut shipper = Shipper::new(config);
        shipper.ship(LINE, "gw1");
        let mut buf = [0u8; 2048];
        let n = collector.recv(&mut buf).unwrap();
        let text = std::str::from_utf8(&buf[..n]).unwrap();
        let pid = std::process::id();
        assert_eq!(
            text,
            format!(
                "<133>1 2024-09-29T04:00:01.123Z gw1 warden {pid} contact - {}",
                std::str::from_utf8(&LINE[..LINE.len() - 1]).unwrap()
            )
        );
        assert_eq!(shipper.failed, 0);
    }
}
