//! The async side of the packet layer: takes events from the capture
//! threads, asks enforcement to cut blocked flows, links records with a
//! correlation id, and writes them to the audit log through the
//! aggregator. Never blocks: enforcement and audit are both `try_send`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc::Receiver;
use tokio_util::sync::CancellationToken;

use super::Correlator;
use super::aggregate::Aggregator;
use super::event::{Event, Finding, Sighting};
use crate::audit::{AuditHandle, Layer, Record, contact_record};
use crate::enforce::{BlockedFlow, EnforceHandle};
use crate::policy::Action;

const TICK: Duration = Duration::from_millis(250);

/// What the sink acts with.
pub struct Sink {
    pub audit: AuditHandle,
    /// `None` in monitor mode or when enforcement is unavailable.
    pub enforce: Option<EnforceHandle>,
    pub correlator: Arc<Correlator>,
    pub aggregator: Aggregator,
    /// nftables rejects DoT (so a DoT contact is enforced).
    pub dot_blocked: bool,
    /// LAN DNS is redirected to warden (so a bypass query is enforced).
    pub dns_redirected: bool,
}

impl Sink {
    /// Runs until `stop`, then drains the channel and writes what is pending.
    pub async fn run(mut self, mut rx: Receiver<Event>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                event = rx.recv() => match event {
                    Some(event) => self.handle(event, crate::time::now_ms()),
                    None => break,
                },
                _ = tick.tick() => self.write(|a| a.due(crate::time::now_ms())),
                _ = stop.cancelled() => break,
            }
        }
        while let Ok(event) = rx.try_recv() {
            self.handle(event, crate::time::now_ms());
        }
        self.write(Aggregator::drain);
    }

    fn write(&mut self, take: impl FnOnce(&mut Aggregator) -> Vec<Record>) {
        for record in take(&mut self.aggregator) {
            self.audit.submit(record);
        }
    }

    /// One event: enforce, correlate, aggregate.
    pub fn handle(&mut self, event: Event, now_ms: i64) {
        match event {
            Event::Answer { client, name, addrs } => self.correlator.answer(client, &name, &addrs, now_ms),
            Event::Contact(s) => {
                let enforced = self.enforce(&s);
                let mut record = record(&s);
                record.enforced = Some(enforced);
                record.correlation = Some(self.correlator.id(s.client, s.name.as_deref(), Some(s.dst), s.ts_ms));
                let flushed = self.aggregator.add(record, now_ms);
                self.write(|_| flushed);
            }
        }
    }

    /// Acts on a contact; returns whether enforcement did (or does) stop it.
    fn enforce(&self, s: &Sighting) -> bool {
        let Some(enforce) = &self.enforce else { return false };
        match s.finding {
            Finding::Policy(v) if v.action == Action::Block => match s.layer {
                Layer::Sni | Layer::Http => {
                    let flow = BlockedFlow { client: s.client, server: s.dst, port: s.dport };
                    enforce.block_flow(flow, s.tcp)
                }
                Layer::Ip => true, // the vendor network sets hold this address
                Layer::DnsBypass => self.dns_redirected,
                Layer::Dns => false,
            },
            Finding::DnsOverTls => self.dot_blocked,
            _ => false,
        }
    }
}

/// The audit record for a sighting (before correlation and aggregation).
pub fn record(s: &Sighting) -> Record {
    let mut record = match s.finding {
        Finding::Policy(verdict) => contact_record(&s.policy, &verdict, s.ts_ms, s.client, s.layer, s.name.clone()),
        Finding::DnsOverTls => {
            let r = Record::contact(ts(s.ts_ms), s.client, s.layer).with_message("DNS over TLS to another resolver");
            Record { rule: Some("port:853".into()), action: Some(Action::Monitor), ..r }
        }
        Finding::UpdatePath(pattern) => {
            let mut r = Record::contact(ts(s.ts_ms), s.client, s.layer);
            if let Some(n) = &s.name {
                r = r.with_name(n.clone());
            }
            Record {
                rule: Some(format!("path:{pattern}")),
                category: Some("update".into()),
                action: Some(Action::Monitor),
                ..r
            }
        }
    };
    record = record.with_dst(s.dst, Some(s.dport));
    record.qtype = s.qtype.clone();
    if let Some(detail) = &s.detail {
        record.message = Some(detail.clone());
    }
    record
}

fn ts(ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_else(Utc::now)
}
