//! Correlation ids: one id per attempt by one client, shared by the DNS
//! lookup, the connection and its SNI/Host, so a reviewer reads one story
//! instead of unrelated lines. Keyed by `(client, name)` and, through DNS
//! answers, by `(client, address)`. Entries expire after a TTL; the table
//! is bounded (when full of live entries it starts over, counted). Shared
//! by the DNS handler and the packet sink; the lock is held only briefly.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Most entries kept (names plus addresses).
pub const MAX_ENTRIES: usize = 65_536;

#[derive(Default)]
struct Tables {
    names: HashMap<(IpAddr, String), (u64, i64)>,
    addrs: HashMap<(IpAddr, IpAddr), (u64, i64)>,
}

pub struct Correlator {
    tables: Mutex<Tables>,
    ttl_ms: i64,
    /// Distinguishes runs: ids are `<run>-<n>`.
    run: u32,
    next: AtomicU64,
    pub resets: AtomicU64,
}

impl std::fmt::Debug for Correlator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Correlator").field("ttl_ms", &self.ttl_ms).finish()
    }
}

impl Correlator {
    pub fn new(ttl_ms: i64) -> Correlator {
        let run = (crate::time::now_ms() / 1000) as u32;
        Correlator { tables: Mutex::default(), ttl_ms, run, next: AtomicU64::new(1), resets: AtomicU64::new(0) }
    }

    /// The id for a contact by `client` with `name` (if seen) and `dst` (if
    /// known): with a name, the id of that name (same client and name);
    /// without one, the id of the address (from a DNS answer or an earlier
    /// named contact); else a new id. Both keys then point at it.
    pub fn id(&self, client: IpAddr, name: Option<&str>, dst: Option<IpAddr>, now_ms: i64) -> String {
        let client = client.to_canonical();
        let mut t = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        self.bound(&mut t, now_ms);
        let live = |e: Option<&(u64, i64)>| e.filter(|(_, exp)| *exp > now_ms).map(|(id, _)| *id);
        let found = match name {
            Some(n) => live(t.names.get(&(client, n.to_owned()))),
            None => dst.and_then(|d| live(t.addrs.get(&(client, d.to_canonical())))),
        };
        let id = found.unwrap_or_else(|| self.next.fetch_add(1, Relaxed));
        let expires = now_ms + self.ttl_ms;
        if let Some(n) = name {
            t.names.insert((client, n.to_owned()), (id, expires));
        }
        if let Some(d) = dst {
            t.addrs.insert((client, d.to_canonical()), (id, expires));
        }
        self.format(id)
    }

    /// A DNS answer to `client` for `name`: its addresses join the name's id.
    pub fn answer(&self, client: IpAddr, name: &str, addrs: &[IpAddr], now_ms: i64) {
        let client = client.to_canonical();
        let mut t = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        self.bound(&mut t, now_ms);
        let key = (client, name.to_owned());
        let id = match t.names.get(&key).filter(|(_, exp)| *exp > now_ms) {
            Some((id, _)) => *id,
            None => self.next.fetch_add(1, Relaxed),
        };
        let expires = now_ms + self.ttl_ms;
        t.names.insert(key, (id, expires));
        for a in addrs {
            t.addrs.insert((client, a.to_canonical()), (id, expires));
        }
    }

    fn bound(&self, t: &mut Tables, now_ms: i64) {
        if t.names.len() + t.addrs.len() < MAX_ENTRIES {
            return;
        }
        t.names.retain(|_, (_, exp)| *exp > now_ms);
        t.addrs.retain(|_, (_, exp)| *exp > now_ms);
        if t.names.len() + t.addrs.len() >= MAX_ENTRIES {
            t.names.clear();
            t.addrs.clear();
            self.resets.fetch_add(1, Relaxed);
        }
    }

    fn format(&self, id: u64) -> String {
        format!("{:08x}-{id}", self.run)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_answer_connection_and_sni_share_an_id_other_names_do_not() {
        let c = Correlator::new(60_000);
        let (client, cdn) = ("198.18.0.2".parse().unwrap(), "198.18.1.80".parse().unwrap());
        let lookup = c.id(client, Some("s10.upd.kaspersky.com"), None, 0);
        c.answer(client, "s10.upd.kaspersky.com", &[cdn], 1);
        assert_eq!(c.id(client, None, Some(cdn), 2), lookup, "connection to an answered address");
        assert_eq!(c.id(client, Some("s10.upd.kaspersky.com"), Some(cdn), 3), lookup, "its SNI");
        assert_ne!(c.id(client, Some("dnl-01.geo.kaspersky.com"), Some(cdn), 4), lookup, "another name");
        let other: IpAddr = "198.18.0.3".parse().unwrap();
        assert_ne!(c.id(other, Some("s10.upd.kaspersky.com"), None, 5), lookup, "another client");
        assert_ne!(c.id(client, Some("s10.upd.kaspersky.com"), None, 70_000), lookup, "expired");
    }
}
