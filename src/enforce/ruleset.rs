//! The nftables JSON batches warden sends: the whole table (built in one
//! atomic transaction that replaces any previous copy), element additions,
//! network refreshes, and the final delete. Pure functions: nothing here
//! runs `nft` (see `nft`).

use std::net::{IpAddr, SocketAddr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde_json::{Value, json};

use super::names::*;
use crate::packet::Mode;
use crate::policy::{Action, Policy, RuleKind};

/// The policy's networks as the firewall sees them at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetSets {
    pub vendor4: Vec<Ipv4Net>,
    pub vendor6: Vec<Ipv6Net>,
    pub exempt4: Vec<Ipv4Net>,
    pub exempt6: Vec<Ipv6Net>,
}

impl NetSets {
    /// Networks of IP rules whose category is `block` at `now_ms` (vendor),
    /// and those that are not (exempt), each merged into disjoint prefixes.
    pub fn from_policy(policy: &Policy, now_ms: i64) -> NetSets {
        let phase = policy.phase(policy.phase_at(now_ms));
        let (mut block, mut pass) = (Vec::new(), Vec::new());
        for (i, rule) in policy.rules().iter().enumerate() {
            if rule.kind != RuleKind::Network {
                continue;
            }
            let Ok(net) = policy.rule_pattern(crate::policy::RuleId(i as u32)).parse::<IpNet>() else { continue };
            let action = phase.actions.get(usize::from(rule.category.0)).copied().unwrap_or(phase.default);
            if action == Action::Block { block.push(net) } else { pass.push(net) }
        }
        let split = |nets: Vec<IpNet>| {
            let merged = IpNet::aggregate(&nets);
            let v4 = merged.iter().filter_map(|n| if let IpNet::V4(n) = n { Some(*n) } else { None }).collect();
            let v6 = merged.iter().filter_map(|n| if let IpNet::V6(n) = n { Some(*n) } else { None }).collect();
            (v4, v6)
        };
        let ((vendor4, vendor6), (exempt4, exempt6)) = (split(block), split(pass));
        NetSets { vendor4, vendor6, exempt4, exempt6 }
    }
}

/// DNS redirect: LAN port 53 (UDP and TCP) arriving on `ifaces` goes to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub ifaces: Vec<String>,
    pub to: SocketAddr,
}

/// Everything the table is built from.
#[derive(Debug, Clone)]
pub struct TableSpec {
    pub mode: Mode,
    pub nets: NetSets,
    pub block_dot: bool,
    pub redirect: Option<Redirect>,
}

/// What reading the table back must show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub sets: Vec<&'static str>,
    /// Chain name and its number of rules.
    pub chains: Vec<(&'static str, usize)>,
}

const ALL_SETS: [&str; 8] = [VENDOR4, VENDOR6, EXEMPT4, EXEMPT6, LEARNED4, LEARNED6, FLOWS4, FLOWS6];

/// The batch that (re)creates the whole table atomically: `add` + `delete`
/// + `add` of the table replaces a leftover copy in the same transaction.
pub fn create(spec: &TableSpec) -> (Value, Expected) {
    let mut cmds = vec![json!({"add": {"table": table()}}), json!({"delete": {"table": table()}})];
    cmds.push(json!({"add": {"table": table()}}));
    cmds.extend(sets().into_iter().map(|s| json!({"add": {"set": s}})));
    let mut chains = Vec::new();
    let mut chain = |name: &'static str, base: Option<Value>, rules: Vec<Vec<Value>>| {
        let mut c = json!({"family": FAMILY, "table": TABLE, "name": name});
        if let (Some(base), Some(obj)) = (base, c.as_object_mut()) {
            obj.extend(base.as_object().cloned().unwrap_or_default());
        }
        cmds.push(json!({"add": {"chain": c}}));
        chains.push((name, rules.len()));
        cmds.extend(rules.into_iter().map(|expr| json!({"add": {"rule": rule(name, expr)}})));
    };
    chain(ENFORCE, None, enforce_rules(spec.block_dot));
    chain(FORWARD, Some(hook("filter", "forward", 0)), forward_rules());
    if spec.mode == Mode::Sidecar {
        chain(OUTPUT, Some(hook("filter", "output", 0)), vec![vec![jump(ENFORCE)]]);
    }
    if let Some(r) = &spec.redirect {
        chain(PREROUTING, Some(hook("nat", "prerouting", -100)), redirect_rules(r));
    }
    cmds.extend(network_elements(&spec.nets));
    (json!({"nftables": cmds}), Expected { sets: ALL_SETS.to_vec(), chains })
}

/// Replaces the static network sets (after a phase change or reload).
pub fn replace_networks(nets: &NetSets) -> Value {
    let mut cmds: Vec<Value> = [VENDOR4, VENDOR6, EXEMPT4, EXEMPT6]
        .iter()
        .map(|s| json!({"flush": {"set": {"family": FAMILY, "table": TABLE, "name": s}}}))
        .collect();
    cmds.extend(network_elements(nets));
    json!({"nftables": cmds})
}

/// One element addition per set touched: `(set, element value, timeout s)`.
pub fn add_elements(items: &[(&'static str, Value, u32)]) -> Value {
    let mut cmds = Vec::new();
    for set in ALL_SETS {
        let elems: Vec<Value> = items
            .iter()
            .filter(|(s, _, _)| *s == set)
            .map(|(_, val, timeout)| json!({"elem": {"val": val, "timeout": timeout}}))
            .collect();
        if !elems.is_empty() {
            cmds.push(json!({"add": {"element": {"family": FAMILY, "table": TABLE, "name": set, "elem": elems}}}));
        }
    }
    json!({"nftables": cmds})
}

/// The blocked-flows element for `client . server . port`.
pub fn flow_element(client: IpAddr, server: IpAddr, port: u16) -> Option<(&'static str, Value)> {
    let set = match (client, server) {
        (IpAddr::V4(_), IpAddr::V4(_)) => FLOWS4,
        (IpAddr::V6(_), IpAddr::V6(_)) => FLOWS6,
        _ => return None,
    };
    Some((set, json!({"concat": [client.to_string(), server.to_string(), port]})))
}

/// The learned-address element for `addr`.
pub fn learned_element(addr: IpAddr) -> (&'static str, Value) {
    let set = if addr.is_ipv4() { LEARNED4 } else { LEARNED6 };
    (set, json!(addr.to_string()))
}

pub fn delete() -> Value {
    json!({"nftables": [{"delete": {"table": table()}}]})
}

fn table() -> Value {
    json!({"family": FAMILY, "name": TABLE})
}

fn sets() -> Vec<Value> {
    let set = |name: &str, kind: Value, flags: &[&str]| {
        let mut s = json!({"family": FAMILY, "table": TABLE, "name": name, "type": kind, "flags": flags});
        if flags.contains(&"interval") {
            s["auto-merge"] = json!(true);
        }
        s
    };
    let flow4 = json!(["ipv4_addr", "ipv4_addr", "inet_service"]);
    let flow6 = json!(["ipv6_addr", "ipv6_addr", "inet_service"]);
    vec![
        set(VENDOR4, json!("ipv4_addr"), &["interval"]),
        set(VENDOR6, json!("ipv6_addr"), &["interval"]),
        set(EXEMPT4, json!("ipv4_addr"), &["interval"]),
        set(EXEMPT6, json!("ipv6_addr"), &["interval"]),
        set(LEARNED4, json!("ipv4_addr"), &["timeout"]),
        set(LEARNED6, json!("ipv6_addr"), &["timeout"]),
        set(FLOWS4, flow4, &["timeout"]),
        set(FLOWS6, flow6, &["timeout"]),
    ]
}

fn network_elements(nets: &NetSets) -> Vec<Value> {
    let prefix = |addr: String, len: u8| json!({"prefix": {"addr": addr, "len": len}});
    let lists: [(&str, Vec<Value>); 4] = [
        (VENDOR4, nets.vendor4.iter().map(|n| prefix(n.network().to_string(), n.prefix_len())).collect()),
        (VENDOR6, nets.vendor6.iter().map(|n| prefix(n.network().to_string(), n.prefix_len())).collect()),
        (EXEMPT4, nets.exempt4.iter().map(|n| prefix(n.network().to_string(), n.prefix_len())).collect()),
        (EXEMPT6, nets.exempt6.iter().map(|n| prefix(n.network().to_string(), n.prefix_len())).collect()),
    ];
    let with_elems = lists.into_iter().filter(|(_, e)| !e.is_empty());
    with_elems
        .map(|(set, elem)| json!({"add": {"element": {"family": FAMILY, "table": TABLE, "name": set, "elem": elem}}}))
        .collect()
}

fn hook(kind: &str, hook: &str, prio: i32) -> Value {
    json!({"type": kind, "hook": hook, "prio": prio, "policy": "accept"})
}

fn rule(chain: &str, expr: Vec<Value>) -> Value {
    json!({"family": FAMILY, "table": TABLE, "chain": chain, "expr": expr})
}

fn payload(protocol: &str, field: &str) -> Value {
    json!({"payload": {"protocol": protocol, "field": field}})
}

fn is(left: Value, right: Value) -> Value {
    json!({"match": {"op": "==", "left": left, "right": right}})
}

fn in_set(left: Value, set: &str) -> Value {
    is(left, json!(format!("@{set}")))
}

fn l4(proto: &str) -> Value {
    is(json!({"meta": {"key": "l4proto"}}), json!(proto))
}

fn counter() -> Value {
    json!({"counter": null})
}

fn tcp_reset() -> Value {
    json!({"reject": {"type": "tcp reset"}})
}

fn drop_() -> Value {
    json!({"drop": null})
}

fn jump(chain: &str) -> Value {
    json!({"jump": {"target": chain}})
}

/// Blocked flows, both directions, then the address rules.
fn forward_rules() -> Vec<Vec<Value>> {
    let mut rules = Vec::new();
    for (ip, set) in [("ip", FLOWS4), ("ip6", FLOWS6)] {
        let out = json!({"concat": [payload(ip, "saddr"), payload(ip, "daddr"), payload("tcp", "dport")]});
        let back = json!({"concat": [payload(ip, "daddr"), payload(ip, "saddr"), payload("tcp", "sport")]});
        rules.push(vec![l4("tcp"), in_set(out, set), counter(), tcp_reset()]);
        rules.push(vec![l4("tcp"), in_set(back, set), counter(), tcp_reset()]);
    }
    rules.push(vec![jump(ENFORCE)]);
    rules
}

/// DoT, exemptions, then vendor and learned addresses: TCP reset, else drop.
fn enforce_rules(block_dot: bool) -> Vec<Vec<Value>> {
    let mut rules = Vec::new();
    if block_dot {
        rules.push(vec![is(payload("tcp", "dport"), json!(853)), counter(), tcp_reset()]);
        rules.push(vec![is(payload("udp", "dport"), json!(853)), counter(), drop_()]);
    }
    rules.push(vec![in_set(payload("ip", "daddr"), EXEMPT4), counter(), json!({"return": null})]);
    rules.push(vec![in_set(payload("ip6", "daddr"), EXEMPT6), counter(), json!({"return": null})]);
    for (ip, set) in [("ip", VENDOR4), ("ip", LEARNED4), ("ip6", VENDOR6), ("ip6", LEARNED6)] {
        rules.push(vec![l4("tcp"), in_set(payload(ip, "daddr"), set), counter(), tcp_reset()]);
        rules.push(vec![in_set(payload(ip, "daddr"), set), counter(), drop_()]);
    }
    rules
}

fn redirect_rules(r: &Redirect) -> Vec<Vec<Value>> {
    let (family, ip) = if r.to.is_ipv4() { ("ip", "ip") } else { ("ip6", "ip6") };
    let iif = is(json!({"meta": {"key": "iifname"}}), json!({"set": r.ifaces}));
    let not_to = json!({"match": {"op": "!=", "left": payload(ip, "daddr"), "right": r.to.ip().to_string()}});
    let dnat = json!({"dnat": {"family": family, "addr": r.to.ip().to_string(), "port": r.to.port()}});
    ["udp", "tcp"]
        .iter()
        .map(|proto| vec![iif.clone(), is(payload(proto, "dport"), json!(53)), not_to.clone(), counter(), dnat.clone()])
        .collect()
}
