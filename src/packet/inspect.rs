//! From a captured frame to events: parse the headers, reassemble the
//! start of TCP streams, pull out SNI, HTTP Host and DNS questions, and ask
//! [`Policy::decide`] about each name and destination. Only what the policy
//! logs (block or monitor) becomes an event. It never matches names itself,
//! sends nothing and touches no firewall.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use arc_swap::ArcSwap;

use super::event::{Event, Finding, Sighting, TcpTrigger};
use super::flow::{Append, FlowKey, FlowLimits, FlowTable, Proto};
use super::wire::{self, Packet, Tcp, Transport, flags};
use super::{PacketStats, dns, http, tls};
use crate::audit::Layer;
use crate::policy::{Action, Policy, Subject};

/// What a stream's bytes turned out to be.
enum Outcome {
    Partial,
    Invalid,
    Hello(tls::ClientHello),
    Request(http::HttpRequest),
}

/// Per-capture-thread inspection state.
pub struct Inspector {
    policy: Arc<ArcSwap<Policy>>,
    /// warden's own addresses: DNS to them is not a bypass.
    local: Vec<IpAddr>,
    flows: FlowTable,
    stats: Arc<PacketStats>,
}

impl Inspector {
    pub fn new(policy: Arc<ArcSwap<Policy>>, local: Vec<IpAddr>, limits: FlowLimits, stats: Arc<PacketStats>) -> Self {
        Inspector { policy, local, flows: FlowTable::new(limits), stats }
    }

    pub fn flows(&self) -> &FlowTable {
        &self.flows
    }

    /// Inspects one Ethernet frame seen at `now_ms`; events go to `out`.
    pub fn inspect(&mut self, frame: &[u8], now_ms: i64, out: &mut Vec<Event>) {
        self.stats.frames.fetch_add(1, Relaxed);
        match wire::parse_ethernet(frame) {
            Ok(packet) => self.packet(&packet, now_ms, out),
            Err(e) if e.is_ignored() => {
                self.stats.ignored.fetch_add(1, Relaxed);
            }
            Err(_) => {
                self.stats.malformed.fetch_add(1, Relaxed);
            }
        }
    }

    fn packet(&mut self, p: &Packet<'_>, now_ms: i64, out: &mut Vec<Event>) {
        let guard = self.policy.load();
        let ctx = Ctx { policy: &guard, p, now_ms };
        match p.transport {
            Transport::Tcp(t) => self.tcp(&ctx, &t, out),
            Transport::Udp(u) => {
                if (u.dport == 53 && !self.is_local(p.dst)) || u.sport == 53 {
                    self.dns(&ctx, dns::parse_udp(u.payload), u.dport, out);
                } else {
                    let detail = (u.dport == 443).then(|| "QUIC (UDP 443)".to_owned());
                    ctx.address(u.dport, detail, out);
                }
            }
            Transport::Other(proto) => ctx.address(0, Some(format!("IP protocol {proto}")), out),
        }
    }

    fn tcp(&mut self, ctx: &Ctx<'_>, t: &Tcp<'_>, out: &mut Vec<Event>) {
        let p = ctx.p;
        let key = FlowKey { src: p.src, dst: p.dst, sport: t.sport, dport: t.dport };
        if t.flags & (flags::RST | flags::FIN) != 0 {
            self.flows.remove(&key);
        }
        if t.flags & (flags::SYN | flags::ACK) == flags::SYN {
            ctx.address(t.dport, None, out);
            if t.dport == 853 && !self.is_local(p.dst) {
                out.push(ctx.event(Layer::DnsBypass, t.dport, None, Finding::DnsOverTls, None));
            }
        }
        if t.payload.is_empty() {
            return;
        }
        if (t.dport == 53 && !self.is_local(p.dst)) || t.sport == 53 {
            self.dns(ctx, dns::parse_tcp(t.payload), t.dport, out);
            return;
        }
        let outcome = match self.flows.append(&key, t.seq, t.payload, ctx.now_ms) {
            Append::Appended(bytes, proto) => examine(proto, bytes),
            Append::Duplicate => return,
            Append::Dropped => {
                self.stats.flows_dropped.fetch_add(1, Relaxed);
                return;
            }
            Append::Untracked => {
                let proto = if tls::looks_like_hello(t.payload) {
                    Proto::Tls
                } else if http::looks_like_request(t.payload) {
                    Proto::Http
                } else {
                    return;
                };
                let outcome = examine(proto, t.payload);
                if matches!(outcome, Outcome::Partial) && !self.flows.track(key, proto, t.seq, t.payload, ctx.now_ms) {
                    self.stats.flows_dropped.fetch_add(1, Relaxed);
                }
                outcome
            }
        };
        match outcome {
            Outcome::Partial => {}
            Outcome::Invalid => {
                self.flows.remove(&key);
                self.stats.invalid_streams.fetch_add(1, Relaxed);
            }
            Outcome::Hello(hello) => {
                self.flows.remove(&key);
                ctx.hello(t, hello, out);
            }
            Outcome::Request(request) => {
                self.flows.remove(&key);
                ctx.request(t, request, out);
            }
        }
    }

    fn dns(&self, ctx: &Ctx<'_>, message: Option<dns::Dns>, dport: u16, out: &mut Vec<Event>) {
        match message {
            Some(dns::Dns::Query { name, qtype }) => {
                let verdict = ctx.policy.decide(Subject::Name(&name), ctx.now_ms);
                if verdict.action.is_logged() {
                    let mut event = ctx.sighting(Layer::DnsBypass, dport, Some(name), Finding::Policy(verdict));
                    event.qtype = Some(qtype);
                    out.push(Event::Contact(Box::new(event)));
                }
            }
            Some(dns::Dns::Response { name, addrs }) => {
                let verdict = ctx.policy.decide(Subject::Name(&name), ctx.now_ms);
                if verdict.action.is_logged() && !addrs.is_empty() {
                    out.push(Event::Answer { client: ctx.p.dst, name, addrs });
                }
            }
            None => {
                self.stats.invalid_streams.fetch_add(1, Relaxed);
            }
        }
    }

    fn is_local(&self, ip: IpAddr) -> bool {
        self.local.contains(&ip)
    }
}

fn examine(proto: Proto, bytes: &[u8]) -> Outcome {
    match proto {
        Proto::Tls => match tls::parse_client_hello(bytes) {
            tls::Hello::Complete(h) => Outcome::Hello(h),
            tls::Hello::Partial => Outcome::Partial,
            tls::Hello::Invalid => Outcome::Invalid,
        },
        Proto::Http => match http::parse_request(bytes) {
            http::Request::Complete(r) => Outcome::Request(r),
            http::Request::Partial => Outcome::Partial,
            http::Request::Invalid => Outcome::Invalid,
        },
    }
}

/// One packet under one policy: builds the events.
struct Ctx<'a> {
    policy: &'a Arc<Policy>,
    p: &'a Packet<'a>,
    now_ms: i64,
}

impl Ctx<'_> {
    /// A contact with the packet's destination address, if the policy logs it.
    fn address(&self, dport: u16, detail: Option<String>, out: &mut Vec<Event>) {
        let verdict = self.policy.decide(Subject::Ip(self.p.dst), self.now_ms);
        if verdict.action.is_logged() {
            out.push(self.event(Layer::Ip, dport, None, Finding::Policy(verdict), detail));
        }
    }

    fn hello(&self, t: &Tcp<'_>, hello: tls::ClientHello, out: &mut Vec<Event>) {
        let Some(name) = hello.sni else { return };
        let verdict = self.policy.decide(Subject::Name(&name), self.now_ms);
        if verdict.action.is_logged() {
            let mut s = self.sighting(Layer::Sni, t.dport, Some(name), Finding::Policy(verdict));
            s.detail = hello.ech.then(|| "encrypted ClientHello: outer (public) SNI".to_owned());
            s.tcp = Some(self.trigger(t));
            out.push(Event::Contact(Box::new(s)));
        }
    }

    fn request(&self, t: &Tcp<'_>, request: http::HttpRequest, out: &mut Vec<Event>) {
        let host = request.host.as_deref();
        let verdict = match host.map(|h| h.parse::<IpAddr>()) {
            Some(Ok(ip)) => self.policy.decide(Subject::Ip(ip), self.now_ms),
            Some(Err(_)) => self.policy.decide(Subject::Name(host.unwrap_or_default()), self.now_ms),
            None => self.policy.decide(Subject::Ip(self.p.dst), self.now_ms),
        };
        let name = host.filter(|h| h.parse::<IpAddr>().is_err()).map(str::to_owned);
        let path = http::update_path(&request.path);
        let finding = match (verdict.action, path) {
            (Action::Allow, Some(pattern)) => Finding::UpdatePath(pattern),
            (Action::Allow, None) => return,
            _ => Finding::Policy(verdict),
        };
        let mut s = self.sighting(Layer::Http, t.dport, name, finding);
        s.detail = path.map(|_| format!("{} {}", request.method, request.path));
        s.tcp = Some(self.trigger(t));
        out.push(Event::Contact(Box::new(s)));
    }

    fn trigger(&self, t: &Tcp<'_>) -> TcpTrigger {
        TcpTrigger {
            sport: t.sport,
            seq: t.seq,
            seq_end: t.seq.wrapping_add(t.payload.len() as u32),
            ack: t.ack,
            client_mac: self.p.src_mac,
            server_mac: self.p.dst_mac,
            vlan: self.p.vlan,
        }
    }

    fn sighting(&self, layer: Layer, dport: u16, name: Option<String>, finding: Finding) -> Sighting {
        Sighting {
            ts_ms: self.now_ms,
            layer,
            client: self.p.src,
            dst: self.p.dst,
            dport,
            name,
            qtype: None,
            detail: None,
            finding,
            policy: Arc::clone(self.policy),
            tcp: None,
        }
    }

    fn event(&self, layer: Layer, dport: u16, name: Option<String>, finding: Finding, detail: Option<String>) -> Event {
        let mut s = self.sighting(layer, dport, name, finding);
        s.detail = detail;
        Event::Contact(Box::new(s))
    }
}
