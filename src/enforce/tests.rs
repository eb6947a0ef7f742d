//! The table and batches as JSON, the read-back check, the network sets of
//! the built-in policy, and reset packets. Running `nft` itself is covered
//! by the network-namespace test (tests/it/netns_gateway.rs).

use std::net::{IpAddr, Ipv4Addr};

use serde_json::{Value, json};

use super::names::*;
use super::reset::{self, Rst};
use super::ruleset::{self, NetSets, Redirect, TableSpec};
use super::worker::{BlockedFlow, Request, batches};
use crate::packet::{Mode, TcpTrigger};

fn spec(mode: Mode) -> TableSpec {
    let nets = NetSets { vendor4: vec!["198.19.2.0/24".parse().unwrap()], ..NetSets::default() };
    let redirect = Some(Redirect { ifaces: vec!["lan0".into()], to: "198.18.0.1:53".parse().unwrap() });
    TableSpec { mode, nets, block_dot: true, redirect }
}

fn commands(batch: &Value) -> &Vec<Value> {
    batch["nftables"].as_array().unwrap()
}

#[test]
fn table_is_replaced_atomically_and_owns_only_inet_warden() {
    let (batch, expected) = ruleset::create(&spec(Mode::Gateway));
    let cmds = commands(&batch);
    assert_eq!(cmds[0], json!({"add": {"table": {"family": "inet", "name": "warden"}}}));
    assert_eq!(cmds[1], json!({"delete": {"table": {"family": "inet", "name": "warden"}}}));
    let text = batch.to_string();
    assert!(!text.contains("\"table\":\"filter\""), "never another table");
    for c in cmds.iter().skip(3) {
        let obj = c["add"].as_object().unwrap().values().next().unwrap();
        assert_eq!((obj["family"].as_str(), obj["table"].as_str()), (Some(FAMILY), Some(TABLE)), "{c}");
    }
    let chains: Vec<_> = expected.chains.iter().map(|(c, _)| *c).collect();
    assert_eq!(chains, vec![ENFORCE, FORWARD, PREROUTING], "no output chain in gateway mode");
    assert!(text.contains("\"tcp reset\"") && text.contains("\"counter\":null") && text.contains("\"dnat\""));
    let (sidecar, expected) = ruleset::create(&spec(Mode::Sidecar));
    assert!(expected.chains.iter().any(|(c, n)| *c == OUTPUT && *n == 1), "{sidecar}");
}

#[test]
fn a_burst_of_flows_and_addresses_is_one_nft_call() {
    let client: IpAddr = "198.18.0.2".parse().unwrap();
    let mut burst: Vec<Request> = (0..200u16)
        .map(|i| Request::Flow {
            flow: BlockedFlow { client, server: IpAddr::V4(Ipv4Addr::new(198, 19, 1, (i % 50) as u8)), port: 443 },
            trigger: None,
            timeout_s: 600,
        })
        .collect();
    burst.push(Request::Learn {
        addrs: vec!["198.19.2.21".parse().unwrap(), "fd00::21".parse().unwrap()],
        timeout_s: 60,
    });
    let calls = batches(&burst);
    assert_eq!(calls.len(), 1);
    let cmds = commands(&calls[0]);
    assert_eq!(cmds.len(), 3, "one add-element per set: flows4, learned4, learned6");
    let flows = cmds.iter().find(|c| c["add"]["element"]["name"] == FLOWS4).unwrap();
    assert_eq!(flows["add"]["element"]["elem"].as_array().unwrap().len(), 50, "duplicates folded");
}

#[test]
fn builtin_networks_are_merged_and_mail_relays_exempt() {
    let policy = crate::policy::builtin().unwrap();
    let after = policy.prohibition_start().unwrap() + 1;
    let nets = NetSets::from_policy(&policy, after);
    let inside = |n: &ipnet::Ipv4Net| n.contains(&"77.74.181.1".parse::<Ipv4Addr>().unwrap());
    assert_eq!(nets.vendor4.iter().filter(|n| inside(n)).count(), 1, "overlaps merged: {:?}", nets.vendor4);
    assert!(nets.exempt4.iter().any(|n| n.to_string() == "91.103.66.155/32"), "{:?}", nets.exempt4);
    assert!(!nets.vendor6.is_empty());
    let before = NetSets::from_policy(&policy, after - 86_400_000);
    assert!(before.vendor4.is_empty(), "monitor phase: nothing blocked by IP");
}

#[test]
fn read_back_check_finds_missing_rules() {
    let (_, expected) = ruleset::create(&spec(Mode::Gateway));
    let mut objects = vec![json!({"metainfo": {"version": "1.0.6", "json_schema_version": 1}})];
    objects.push(json!({"table": {"family": "inet", "name": "warden", "handle": 1}}));
    for set in &expected.sets {
        objects
            .push(json!({"set": {"family": "inet", "table": "warden", "name": set, "type": "ipv4_addr", "handle": 2}}));
    }
    for (chain, n) in &expected.chains {
        objects.push(json!({"chain": {"family": "inet", "table": "warden", "name": chain, "handle": 3}}));
        for _ in 0..*n {
            objects
                .push(json!({"rule": {"family": "inet", "table": "warden", "chain": chain, "handle": 4, "expr": []}}));
        }
    }
    let listed: nftables::schema::Nftables = serde_json::from_value(json!({"nftables": objects.clone()})).unwrap();
    super::nft::check(&listed, &expected).unwrap();
    objects.pop();
    let short: nftables::schema::Nftables = serde_json::from_value(json!({"nftables": objects})).unwrap();
    let err = super::nft::check(&short, &expected).unwrap_err();
    assert!(err.to_string().contains("prerouting"), "{err}");
}

#[test]
fn resets_hit_both_ends_at_the_expected_sequence_numbers() {
    let t = TcpTrigger {
        sport: 40000,
        seq: 1000,
        seq_end: 1900,
        ack: 5000,
        client_mac: [0; 6],
        server_mac: [0; 6],
        vlan: None,
    };
    let (c, s) = (Ipv4Addr::new(198, 18, 0, 2), Ipv4Addr::new(198, 18, 1, 80));
    let [a, b, back] = reset::resets(c, s, 443, &t);
    assert_eq!((a.src, a.dst, a.seq, a.ack), (c, s, 1900, None));
    assert_eq!(b.seq, 1000);
    assert_eq!(back, Rst { src: s, dst: c, sport: 443, dport: 40000, seq: 5000, ack: Some(1900) });
    let mut buf = [0u8; 40];
    let packet = reset::build(&back, &mut buf).map(|p| pnet::packet::Packet::packet(&p).to_vec()).unwrap();
    let (src, dst, transport) = crate::packet::wire::parse_ip(&packet).unwrap();
    assert_eq!((src, dst), (IpAddr::V4(s), IpAddr::V4(c)));
    let crate::packet::wire::Transport::Tcp(tcp) = transport else { panic!() };
    assert_eq!((tcp.sport, tcp.dport, tcp.seq, tcp.ack, tcp.flags), (443, 40000, 5000, 1900, 0x14));
}
