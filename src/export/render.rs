//! Writing a [`Plan`] in each engine's native syntax.

use std::fmt::Write;
use std::net::IpAddr;

use ipnet::IpNet;

use super::{Format, Plan, networks_of};
use crate::time::rfc3339;

/// The export text of `plan` in `format`.
pub fn render(plan: &Plan, format: Format, now_ms: i64) -> String {
    let c = match format {
        Format::Rpz => ';',
        Format::Unbound | Format::Dnsmasq | Format::Hosts | Format::Nft => '#',
    };
    let mut out = header(plan, format, now_ms, c);
    match format {
        Format::Rpz => rpz(plan, now_ms, &mut out),
        Format::Unbound => unbound(plan, &mut out),
        Format::Dnsmasq => dnsmasq(plan, &mut out),
        Format::Hosts => hosts(plan, &mut out),
        Format::Nft => nft(plan, &mut out),
    }
    out
}

fn header(plan: &Plan, format: Format, now_ms: i64, c: char) -> String {
    let name = format!("{format:?}").to_lowercase();
    let mut h = format!("{c} warden export --format {name} --at {}\n", rfc3339(now_ms));
    for s in &plan.sources {
        let _ = writeln!(h, "{c} policy {s}");
    }
    match plan.valid_until {
        Some(t) => {
            let _ = writeln!(h, "{c} valid until {} (next phase change): export again then", rfc3339(t));
        }
        None => h.push_str(&format!("{c} no later phase change\n")),
    }
    let _ = writeln!(h, "{c} blocked rules refuse; monitor/allow rules under a blocked name pass through;");
    let _ = writeln!(h, "{c} label wildcards are widened to their parent name (see docs/deployment.md)");
    h
}

fn rpz(plan: &Plan, now_ms: i64, out: &mut String) {
    let serial = u32::try_from(now_ms / 1000).unwrap_or(u32::MAX);
    let _ = writeln!(
        out,
        "$TTL 60\n@ IN SOA localhost. hostmaster.localhost. {serial} 3600 600 86400 60\n@ IN NS localhost."
    );
    for e in &plan.names {
        let target = if e.block { "." } else { "rpz-passthru." };
        let why = e.widened_from.as_deref().map_or(String::new(), |w| format!(" (widened from {w})"));
        let _ = writeln!(out, "; {}{why}", e.category);
        let _ = writeln!(out, "{} CNAME {target}", e.name);
        if e.subtree {
            let _ = writeln!(out, "*.{} CNAME {target}", e.name);
        }
    }
    for (net, category) in &plan.networks {
        let _ = writeln!(out, "; {category}: answers with addresses in {net}\n{}.rpz-ip CNAME .", rpz_ip(net));
    }
}

/// `prefix.reversed-address` as RPZ response-IP triggers write it.
fn rpz_ip(net: &IpNet) -> String {
    match net.addr() {
        IpAddr::V4(a) => {
            let o = a.octets();
            format!("{}.{}.{}.{}.{}", net.prefix_len(), o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(a) => {
            let groups: Vec<String> = a.segments().iter().rev().map(|g| format!("{g:x}")).collect();
            let mut labels = groups.clone();
            if let Some((start, len)) = longest_zero_run(&groups).filter(|&(_, len)| len >= 2) {
                labels.splice(start..start + len, ["zz".to_owned()]);
            }
            format!("{}.{}", net.prefix_len(), labels.join("."))
        }
    }
}

fn longest_zero_run(groups: &[String]) -> Option<(usize, usize)> {
    let mut best: Option<(usize, usize)> = None;
    let mut i = 0;
    while i < groups.len() {
        let len = groups[i..].iter().take_while(|g| *g == "0").count();
        if len > best.map_or(0, |b| b.1) {
            best = Some((i, len));
        }
        i += len.max(1);
    }
    best
}

fn unbound(plan: &Plan, out: &mut String) {
    out.push_str("server:\n");
    for e in &plan.names {
        let kind = if e.block { "always_nxdomain" } else { "transparent" };
        let _ = writeln!(out, "    local-zone: \"{}.\" {kind}    # {}", e.name, e.category);
    }
    for (net, category) in &plan.networks {
        let _ = writeln!(out, "    private-address: {net}    # {category}: stripped from answers");
    }
}

fn dnsmasq(plan: &Plan, out: &mut String) {
    for e in &plan.names {
        match e.block {
            true => {
                let _ = writeln!(out, "address=/{}/    # {}", e.name, e.category);
            }
            false => {
                let _ = writeln!(out, "server=/{}/#    # {} (pass through)", e.name, e.category);
            }
        }
    }
    out.push_str("# To feed nftables with the addresses of names that pass, add e.g.\n");
    out.push_str("# nftset=/NAME/4#inet#warden_export#seen_v4,6#inet#warden_export#seen_v6\n");
}

fn hosts(plan: &Plan, out: &mut String) {
    for e in plan.names.iter().filter(|e| e.block && e.widened_from.is_none()) {
        let _ = writeln!(out, "0.0.0.0 {}\n:: {}", e.name, e.name);
    }
}

fn nft(plan: &Plan, out: &mut String) {
    out.push_str("table inet warden_export {\n");
    for (v4, name, ty) in [(true, "blocked_v4", "ipv4_addr"), (false, "blocked_v6", "ipv6_addr")] {
        let _ = writeln!(out, "    set {name} {{\n        type {ty}\n        flags interval\n        auto-merge");
        let elements: Vec<String> = networks_of(plan, v4).map(ToString::to_string).collect();
        if !elements.is_empty() {
            let _ = writeln!(out, "        elements = {{ {} }}", elements.join(", "));
        }
        out.push_str("    }\n");
    }
    out.push_str("}\n");
}

#[cfg(test)]
pub(super) fn rpz_ip_for_test(net: &str) -> String {
    rpz_ip(&net.parse().expect("network"))
}
