//! Per-client response rate limiting: a token bucket per client network
//! (IPv4 /32 and IPv6 /56 by default) in a table of bounded size.
//!
//! Owns only the buckets; it knows nothing of DNS. When the table is full
//! (a flood from many spoofed sources), idle buckets are swept at most once
//! per second and clients without a bucket share one overflow bucket, so
//! memory stays bounded and known clients keep their own budget.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use serde::Deserialize;

/// `[rate_limit]` of the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RateLimitConfig {
    /// Sustained queries per second per client network; 0 turns limiting off.
    pub qps: u32,
    /// Queries a client may send at once after being idle.
    pub burst: u32,
    /// IPv4 clients are grouped by this prefix length.
    pub ipv4_prefix: u8,
    /// IPv6 clients are grouped by this prefix length.
    pub ipv6_prefix: u8,
    /// Most client networks tracked at once (about 48 bytes each).
    pub max_clients: usize,
    /// Clients never limited: by default loopback, because a local
    /// forwarder (dnsmasq/unbound in front of warden) speaks for a whole LAN.
    pub exempt: Vec<IpNet>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        let exempt = ["127.0.0.0/8", "::1/128"].iter().filter_map(|n| n.parse().ok()).collect();
        RateLimitConfig { qps: 500, burst: 1000, ipv4_prefix: 32, ipv6_prefix: 56, max_clients: 65_536, exempt }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Sentinel key of the bucket shared by clients that found the table full.
const OVERFLOW: u128 = u128::MAX;
const SWEEP_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Table {
    buckets: HashMap<u128, Bucket>,
    last_sweep: Option<Instant>,
}

/// The limiter; share it behind an `Arc`.
#[derive(Debug)]
pub struct RateLimiter {
    config: RateLimitConfig,
    table: Mutex<Table>,
    limited: AtomicU64,
}

impl RateLimiter {
    /// `None` when `config.qps` is 0 (limiting off).
    pub fn new(config: RateLimitConfig) -> Option<RateLimiter> {
        (config.qps > 0).then(|| RateLimiter {
            table: Mutex::new(Table { buckets: HashMap::new(), last_sweep: None }),
            limited: AtomicU64::new(0),
            config,
        })
    }

    /// Whether `client` may be answered now; takes one token if so.
    pub fn allow(&self, client: IpAddr, now: Instant) -> bool {
        self.allow_n(client, now, 1) == 1
    }

    /// How many of `n` queries from `client`, all received now, may be
    /// answered (the first that many): one token each, as `n` calls of
    /// [`RateLimiter::allow`] would take them, for one look at the table.
    pub fn allow_n(&self, client: IpAddr, now: Instant, n: usize) -> usize {
        if n == 0 || self.config.exempt.iter().any(|net| net.contains(&client)) {
            return n;
        }
        let key = self.key(client);
        let mut table = self.lock();
        let key = if table.buckets.contains_key(&key) || self.make_room(&mut table, now) { key } else { OVERFLOW };
        let full = Bucket { tokens: f64::from(self.config.burst), last: now };
        let bucket = table.buckets.entry(key).or_insert(full);
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * f64::from(self.config.qps)).min(f64::from(self.config.burst));
        bucket.last = now;
        // Whole tokens only, as one call at a time takes them.
        let allowed = (bucket.tokens.max(0.0).floor() as usize).min(n);
        bucket.tokens -= allowed as f64;
        self.limited.fetch_add((n - allowed) as u64, Relaxed);
        allowed
    }

    /// Queries refused so far.
    pub fn limited(&self) -> u64 {
        self.limited.load(Relaxed)
    }

    /// Client networks tracked now.
    pub fn tracked(&self) -> usize {
        self.lock().buckets.len()
    }

    /// Whether a new bucket fits, sweeping idle (refilled) buckets at most
    /// once per [`SWEEP_EVERY`].
    fn make_room(&self, table: &mut Table, now: Instant) -> bool {
        if table.buckets.len() < self.config.max_clients {
            return true;
        }
        if table.last_sweep.is_some_and(|t| now.saturating_duration_since(t) < SWEEP_EVERY) {
            return false;
        }
        table.last_sweep = Some(now);
        let (qps, burst) = (f64::from(self.config.qps), f64::from(self.config.burst));
        table.buckets.retain(|&k, b| {
            k == OVERFLOW || b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * qps < burst
        });
        table.buckets.len() < self.config.max_clients
    }

    /// The bucket key: the client's network. IPv4 keys have bit 64 set so
    /// they never collide with IPv6 ones; no key equals [`OVERFLOW`].
    fn key(&self, ip: IpAddr) -> u128 {
        match ip {
            IpAddr::V4(v4) => {
                let p = u32::from(self.config.ipv4_prefix.min(32));
                let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
                u128::from(u32::from(v4) & mask) | (1u128 << 64)
            }
            IpAddr::V6(v6) => {
                let p = u32::from(self.config.ipv6_prefix.min(128));
                let mask = if p == 0 { 0 } else { u128::MAX << (128 - p) };
                (u128::from(v6) & mask).min(OVERFLOW - 1)
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(qps: u32, burst: u32, max_clients: usize) -> RateLimiter {
        let c = RateLimitConfig { qps, burst, max_clients, exempt: Vec::new(), ..RateLimitConfig::default() };
        RateLimiter::new(c).unwrap()
    }

    #[test]
    fn a_client_gets_its_burst_then_its_rate() {
        let l = limiter(10, 5, 16);
        let (ip, t0) = ("192.0.2.1".parse().unwrap(), Instant::now());
        assert_eq!((0..20).filter(|_| l.allow(ip, t0)).count(), 5);
        assert!(l.allow(ip, t0 + Duration::from_millis(100)));
        assert!(!l.allow(ip, t0 + Duration::from_millis(100)));
        assert_eq!(l.limited(), 16);
    }

    #[test]
    fn a_batch_of_queries_from_one_client_is_admitted_as_one_at_a_time_would_be() {
        let (batched, single) = (limiter(10, 5, 16), limiter(10, 5, 16));
        let (ip, t0) = ("192.0.2.1".parse().unwrap(), Instant::now());
        let steps = [(3, 0), (4, 0), (1, 0), (0, 50), (7, 150), (2, 150), (32, 1_000), (5, 1_030)];
        let mut admitted = Vec::new();
        for (n, ms) in steps {
            let now = t0 + Duration::from_millis(ms);
            let one_by_one = (0..n).filter(|_| single.allow(ip, now)).count();
            assert_eq!(batched.allow_n(ip, now, n), one_by_one, "{n} queries at {ms} ms");
            admitted.push(one_by_one);
        }
        assert_eq!(admitted, [3, 2, 0, 0, 1, 0, 5, 0], "the burst, then the rate");
        assert_eq!(batched.limited(), single.limited());
        let exempt = RateLimiter::new(RateLimitConfig { qps: 1, burst: 1, ..RateLimitConfig::default() }).unwrap();
        assert_eq!(exempt.allow_n("127.0.0.1".parse().unwrap(), t0, 32), 32, "loopback is exempt");
    }

    #[test]
    fn one_flooding_client_does_not_use_up_another_ones_budget() {
        let l = limiter(10, 5, 16);
        let t0 = Instant::now();
        for _ in 0..1000 {
            l.allow("192.0.2.1".parse().unwrap(), t0);
        }
        assert!(l.allow("192.0.2.2".parse().unwrap(), t0));
    }

    #[test]
    fn ipv6_clients_are_grouped_by_prefix() {
        let l = limiter(1, 1, 16);
        let t0 = Instant::now();
        assert!(l.allow("2001:db8:0:1::1".parse().unwrap(), t0));
        assert!(!l.allow("2001:db8:0:1::2".parse().unwrap(), t0), "same /56");
        assert!(l.allow("2001:db8:1::1".parse().unwrap(), t0), "other /56");
    }

    #[test]
    fn the_table_stays_bounded_and_idle_buckets_are_swept() {
        let l = limiter(1, 1, 4);
        let t0 = Instant::now();
        for i in 0..100u32 {
            l.allow(IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i)), t0);
        }
        assert!(l.tracked() <= 5, "{}", l.tracked());
        let later = t0 + Duration::from_secs(5);
        assert!(l.allow("192.0.2.9".parse().unwrap(), later), "idle buckets were swept");
    }
}
