//! `CidrTable`: longest-prefix match over IPv4 and IPv6 networks. One hash
//! map per prefix length that occurs, probed from the longest length down;
//! a policy has a handful of lengths, so a lookup is a few probes.

use std::net::IpAddr;

use hashbrown::HashMap;
use ipnet::IpNet;

use crate::policy::RuleId;

#[derive(Default)]
struct Family<K> {
    /// (prefix length, network bits → rule), longest prefix first.
    by_len: Vec<(u8, HashMap<K, RuleId>)>,
}

impl<K: std::hash::Hash + Eq + Copy> Family<K> {
    fn insert(&mut self, len: u8, key: K, rule: RuleId) -> bool {
        let pos = match self.by_len.iter().position(|(l, _)| *l <= len) {
            Some(p) if self.by_len[p].0 == len => p,
            Some(p) => {
                self.by_len.insert(p, (len, HashMap::new()));
                p
            }
            None => {
                self.by_len.push((len, HashMap::new()));
                self.by_len.len() - 1
            }
        };
        match self.by_len[pos].1.entry(key) {
            hashbrown::hash_map::Entry::Occupied(_) => false,
            hashbrown::hash_map::Entry::Vacant(v) => {
                v.insert(rule);
                true
            }
        }
    }

    fn lookup(&self, key_for: impl Fn(u8) -> K) -> Option<(RuleId, u8)> {
        self.by_len.iter().find_map(|(len, map)| map.get(&key_for(*len)).map(|r| (*r, *len)))
    }

    fn len(&self) -> usize {
        self.by_len.iter().map(|(_, m)| m.len()).sum()
    }
}

/// IP networks of a policy.
#[derive(Default)]
pub struct CidrTable {
    v4: Family<u32>,
    v6: Family<u128>,
}

fn mask4(addr: u32, len: u8) -> u32 {
    if len == 0 { 0 } else { addr & (u32::MAX << (32 - u32::from(len))) }
}

fn mask6(addr: u128, len: u8) -> u128 {
    if len == 0 { 0 } else { addr & (u128::MAX << (128 - u32::from(len))) }
}

impl CidrTable {
    /// Add a network; `false` if the same network is already present.
    pub fn insert(&mut self, net: IpNet, rule: RuleId) -> bool {
        match net {
            IpNet::V4(n) => {
                let len = n.prefix_len();
                self.v4.insert(len, mask4(u32::from(n.network()), len), rule)
            }
            IpNet::V6(n) => {
                let len = n.prefix_len();
                self.v6.insert(len, mask6(u128::from(n.network()), len), rule)
            }
        }
    }

    /// The longest-prefix network containing `ip`, with its prefix length.
    pub fn lookup(&self, ip: IpAddr) -> Option<(RuleId, u8)> {
        match ip {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                self.v4.lookup(|len| mask4(a, len))
            }
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => self.lookup(IpAddr::V4(v4)),
                None => {
                    let a = u128::from(a);
                    self.v6.lookup(|len| mask6(a, len))
                }
            },
        }
    }

    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins() {
        let mut t = CidrTable::default();
        assert!(t.insert("77.74.176.0/21".parse().unwrap(), RuleId(1)));
        assert!(t.insert("77.74.178.0/24".parse().unwrap(), RuleId(2)));
        assert!(t.insert("2a03:2480:8000::/48".parse().unwrap(), RuleId(3)));
        assert!(!t.insert("77.74.176.0/21".parse().unwrap(), RuleId(4)));
        assert_eq!(t.lookup("77.74.178.9".parse().unwrap()), Some((RuleId(2), 24)));
        assert_eq!(t.lookup("77.74.183.255".parse().unwrap()), Some((RuleId(1), 21)));
        assert_eq!(t.lookup("77.74.184.0".parse().unwrap()), None);
        assert_eq!(t.lookup("2a03:2480:8000::1".parse().unwrap()), Some((RuleId(3), 48)));
        assert_eq!(t.lookup("::ffff:77.74.176.1".parse().unwrap()), Some((RuleId(1), 21)));
        assert_eq!(t.lookup("2a03:2480:8001::1".parse().unwrap()), None);
    }
}
