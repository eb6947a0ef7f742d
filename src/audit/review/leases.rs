//! DHCP leases, so `hosts` can name a client IP's machine as leased at the
//! time of contact. Reads dnsmasq lease files, ISC dhcpd `dhcpd.leases` and
//! Kea memfile CSV (detected from the content). Lines it cannot read are
//! skipped; a lease file is a hint, not evidence.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use chrono::NaiveDateTime;
use serde::Serialize;

use super::ReviewError;

/// One lease: who held `ip`, and when (Unix ms; `None`: unknown/open).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Lease {
    pub ip: IpAddr,
    pub mac: String,
    pub hostname: String,
    #[serde(skip)]
    pub start: Option<i64>,
    #[serde(skip)]
    pub end: Option<i64>,
}

/// Leases by address.
#[derive(Debug, Default)]
pub struct Leases {
    by_ip: HashMap<IpAddr, Vec<Lease>>,
}

impl Leases {
    pub fn load(path: &Path) -> Result<Leases, ReviewError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ReviewError::Leases { path: path.to_owned(), source })?;
        Ok(Leases::parse(&text))
    }

    pub fn parse(text: &str) -> Leases {
        let first = text.lines().find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')).unwrap_or("");
        let leases = if first.starts_with("address,") {
            parse_kea(text)
        } else if text.contains("lease ") && text.contains('{') {
            parse_isc(text)
        } else {
            text.lines().filter_map(parse_dnsmasq).collect()
        };
        let mut by_ip: HashMap<IpAddr, Vec<Lease>> = HashMap::new();
        for lease in leases {
            by_ip.entry(lease.ip).or_default().push(lease);
        }
        Leases { by_ip }
    }

    pub fn len(&self) -> usize {
        self.by_ip.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_ip.is_empty()
    }

    /// The lease of `ip` at `ms`: one whose span holds it, else the one
    /// whose span is nearest in time.
    pub fn at(&self, ip: IpAddr, ms: i64) -> Option<&Lease> {
        let distance = |l: &Lease| {
            let before = l.start.map_or(0, |s| s.saturating_sub(ms).max(0));
            let after = l.end.map_or(0, |e| ms.saturating_sub(e).max(0));
            before.max(after)
        };
        self.by_ip.get(&ip)?.iter().min_by_key(|l| distance(l))
    }
}

/// `<expiry epoch s> <mac> <ip> <hostname|*> <client-id>`.
fn parse_dnsmasq(line: &str) -> Option<Lease> {
    let mut f = line.split_whitespace();
    let expiry: i64 = f.next()?.parse().ok()?;
    let (mac, ip, host) = (f.next()?, f.next()?.parse().ok()?, f.next()?);
    let end = (expiry != 0).then(|| expiry.saturating_mul(1000));
    let hostname = if host == "*" { String::new() } else { host.to_owned() };
    Some(Lease { ip, mac: mac.to_ascii_lowercase(), hostname, start: None, end })
}

/// `lease IP { starts N Y/M/D H:M:S; ends ...; hardware ethernet MAC; client-hostname "x"; }`.
fn parse_isc(text: &str) -> Vec<Lease> {
    let mut out = Vec::new();
    for block in text.split("lease ").skip(1) {
        let Some((head, body)) = block.split_once('{') else { continue };
        let Ok(ip) = head.trim().parse() else { continue };
        let body = body.split('}').next().unwrap_or("");
        let mut lease = Lease { ip, mac: String::new(), hostname: String::new(), start: None, end: None };
        for stmt in body.split(';').map(str::trim) {
            let words: Vec<&str> = stmt.split_whitespace().collect();
            match words.as_slice() {
                ["starts", _, d, t] => lease.start = isc_time(d, t),
                ["ends", _, d, t] => lease.end = isc_time(d, t),
                ["hardware", "ethernet", mac] => lease.mac = mac.to_ascii_lowercase(),
                ["client-hostname", name] => lease.hostname = name.trim_matches('"').to_owned(),
                _ => {}
            }
        }
        out.push(lease);
    }
    out
}

fn isc_time(date: &str, time: &str) -> Option<i64> {
    let t = NaiveDateTime::parse_from_str(&format!("{date} {time}"), "%Y/%m/%d %H:%M:%S").ok()?;
    Some(t.and_utc().timestamp_millis())
}

/// Kea memfile CSV: a header naming `address`, `hwaddr`, `valid_lifetime`,
/// `expire` and `hostname` columns.
fn parse_kea(text: &str) -> Vec<Lease> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let col = |name: &str| header.iter().position(|h| h.trim() == name);
    let (Some(a), Some(hw)) = (col("address"), col("hwaddr")) else { return Vec::new() };
    let (exp, life, host) = (col("expire"), col("valid_lifetime"), col("hostname"));
    lines
        .filter_map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let num = |i: Option<usize>| i.and_then(|i| f.get(i)).and_then(|v| v.trim().parse::<i64>().ok());
            let end = num(exp).map(|e| e.saturating_mul(1000));
            let start = end.zip(num(life)).map(|(e, l)| e - l.saturating_mul(1000));
            let hostname = host.and_then(|i| f.get(i)).map_or("", |h| h.trim()).trim_end_matches('.').to_owned();
            Some(Lease {
                ip: f.get(a)?.trim().parse().ok()?,
                mac: f.get(hw)?.trim().to_ascii_lowercase(),
                hostname,
                start,
                end,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t: &str) -> i64 {
        super::super::rec::millis(t).unwrap()
    }

    #[test]
    fn isc_leases_give_the_holder_at_the_time_of_contact() {
        let text = "lease 192.168.1.20 {\n  starts 1 2024/09/30 08:00:00;\n  ends 1 2024/09/30 20:00:00;\n  hardware ethernet AA:BB:CC:00:00:01;\n  client-hostname \"laptop-anna\";\n}\n\
                    lease 192.168.1.20 {\n  starts 2 2024/10/01 08:00:00;\n  ends 2 2024/10/01 20:00:00;\n  hardware ethernet aa:bb:cc:00:00:02;\n  client-hostname \"pc-bob\";\n}\n";
        let leases = Leases::parse(text);
        let ip = "192.168.1.20".parse().unwrap();
        assert_eq!(leases.at(ip, ms("2024-09-30T09:00:00.000Z")).unwrap().hostname, "laptop-anna");
        assert_eq!(leases.at(ip, ms("2024-10-01T09:00:00.000Z")).unwrap().mac, "aa:bb:cc:00:00:02");
    }

    #[test]
    fn dnsmasq_and_kea_files_are_read() {
        let d = Leases::parse(
            "1727600000 aa:bb:cc:dd:ee:ff 192.168.1.30 printer-2 01:aa\n1727600000 11:22:33:44:55:66 192.168.1.31 * *\n",
        );
        assert_eq!(d.at("192.168.1.30".parse().unwrap(), 0).unwrap().hostname, "printer-2");
        assert_eq!(d.len(), 2);
        let k = Leases::parse(
            "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state\n192.168.1.40,de:ad:be:ef:00:01,,3600,1727600000,1,0,0,nas.lan.,0\n",
        );
        let lease = k.at("192.168.1.40".parse().unwrap(), 1_727_599_000_000).unwrap();
        assert_eq!((lease.hostname.as_str(), lease.start), ("nas.lan", Some(1_727_596_400_000)));
    }
}
