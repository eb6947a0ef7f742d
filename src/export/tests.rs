use super::*;
use crate::policy::builtin;

fn at(t: &str) -> i64 {
    crate::time::parse_rfc3339(t).unwrap()
}

#[test]
fn the_prohibition_blocks_vendor_domains_and_lets_exceptions_pass() {
    let p = builtin().unwrap();
    let mut out = Plan::default();
    plan(&p, at("2025-01-01T00:00:00Z"), &mut out).unwrap();
    let find = |n: &str| out.names.iter().find(|e| e.name == n).cloned();
    assert!(find("kaspersky.com").unwrap().block);
    let opentip = find("opentip.kaspersky.com").expect("threat-intel exception exported");
    assert!(!opentip.block);
    assert!(out.names.iter().any(|e| e.block && covers(e, "dnl-07.geo.kaspersky.com")));
    assert!(!out.networks.is_empty());
}

#[test]
fn before_the_prohibition_nothing_is_blocked() {
    let p = builtin().unwrap();
    let mut out = Plan::default();
    plan(&p, at("2024-08-01T00:00:00Z"), &mut out).unwrap();
    assert!(out.names.is_empty() && out.networks.is_empty(), "{out:?}");
    assert_eq!(out.valid_until, Some(at("2024-09-10T04:00:00Z")));
}

#[test]
fn rpz_ip_triggers_are_reversed_with_zero_compression() {
    assert_eq!(render::rpz_ip_for_test("77.74.176.0/21"), "21.0.176.74.77");
    assert_eq!(render::rpz_ip_for_test("2a03:2480::/32"), "32.zz.2480.2a03");
}
