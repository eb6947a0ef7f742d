//! The line of a contact event, encoded on the writer thread without an
//! intermediate [`Record`](super::Record): byte for byte the line
//! [`chain::encode_into`] writes for the record the event stands for
//! ([`Contact::to_record`], [`Repeats::to_record`]; a test holds them equal).
//!
//! Owns the writer's memo of what contact lines repeat: the fields every
//! contact of one policy, action, category and phase shares (a [`Shape`],
//! encoded once), the `type`/`host` part, and the date of the last
//! timestamp. A contact line then costs its variable fields, the hash and
//! a few copies. This runs once per distinct contact: tens of thousands a
//! second under load, on the same core as the query path.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::chain::{self, ChainError, LineHash, key, opt_str, write_ip, write_plain, write_str, write_u64};
use super::contact::{Contact, ContactFields, Repeats, millis, write_rule};
use crate::policy::{Action, CategoryId, PhaseId, Policy, Verdict};

/// Shapes kept; more are rare (a policy has a handful of categories and
/// phases, and a reload brings a new policy): the memo then starts over.
const MAX_SHAPES: usize = 64;
const DAY_MS: i64 = 86_400_000;

/// The part of contact lines that one policy, action, category and phase
/// fix, pre-encoded.
struct Shape {
    /// Held so the address cannot be reused by another policy.
    policy: Arc<Policy>,
    action: Action,
    category: Option<CategoryId>,
    phase: PhaseId,
    /// `,"action":…` and, when a rule matched, `,"category":…`.
    before_rule: Vec<u8>,
    /// `,"phase":…,"policy":{"id":…,"hash":…}`.
    after_rule: Vec<u8>,
}

impl Shape {
    fn new(policy: &Arc<Policy>, verdict: &Verdict) -> Result<Shape, serde_json::Error> {
        let fields = ContactFields::shape(policy, verdict);
        let mut before_rule = Vec::new();
        key(&mut before_rule, "action");
        write_plain(&mut before_rule, fields.action.as_str());
        opt_str(&mut before_rule, "category", fields.category)?;
        let mut after_rule = Vec::new();
        key(&mut after_rule, "phase");
        write_str(&mut after_rule, fields.phase)?;
        key(&mut after_rule, "policy");
        after_rule.extend_from_slice(b"{\"id\":");
        write_str(&mut after_rule, fields.policy_id)?;
        after_rule.extend_from_slice(b",\"hash\":");
        write_str(&mut after_rule, fields.policy_hash)?;
        after_rule.push(b'}');
        Ok(Shape {
            policy: Arc::clone(policy),
            action: verdict.action,
            category: verdict.matched.map(|(_, c)| c),
            phase: verdict.phase,
            before_rule,
            after_rule,
        })
    }

    fn fits(&self, policy: &Arc<Policy>, verdict: &Verdict) -> bool {
        Arc::ptr_eq(&self.policy, policy)
            && self.action == verdict.action
            && self.category == verdict.matched.map(|(_, c)| c)
            && self.phase == verdict.phase
    }
}

/// Encodes contact events; one per writer (it keeps the memo).
#[derive(Default)]
pub(crate) struct ContactEncoder {
    shapes: Vec<Shape>,
    /// The host `type_host` was encoded for.
    host: String,
    /// `,"type":"contact","host":…`.
    type_host: Vec<u8>,
    /// The last timestamp's day (Unix days) and its `YYYY-MM-DD`.
    day: Option<(i64, [u8; 10])>,
    /// Scratch for the rule's label.
    rule: String,
}

impl ContactEncoder {
    /// Appends the line of `contact` (of its `repeats` when set) and returns
    /// its hash; on error `buf` is left as it was.
    pub fn encode(
        &mut self,
        buf: &mut Vec<u8>,
        contact: &Contact,
        repeats: Option<&Repeats>,
        seq: u64,
        prev_hash: &str,
        host: &str,
    ) -> Result<LineHash, ChainError> {
        chain::write_line(buf, |out| self.write_body(out, contact, repeats, seq, prev_hash, host))
    }

    fn write_body(
        &mut self,
        out: &mut Vec<u8>,
        contact: &Contact,
        repeats: Option<&Repeats>,
        seq: u64,
        prev_hash: &str,
        host: &str,
    ) -> Result<(), serde_json::Error> {
        if self.type_host.is_empty() || self.host != host {
            self.type_host.clear();
            self.type_host.extend_from_slice(b",\"type\":\"contact\",\"host\":");
            write_str(&mut self.type_host, host)?;
            host.clone_into(&mut self.host);
        }
        let shape = self.shape(&contact.policy, &contact.verdict)?;
        // No `message` (no CNAME): the verdict was taken for the name.
        let own = contact.message.is_none();
        let has_rule = write_rule(&contact.policy, &contact.verdict, contact.name.as_deref(), own, &mut self.rule);
        let shape = &self.shapes[shape];

        out.extend_from_slice(b"{\"ts\":\"");
        write_ts_ms(out, repeats.map_or(contact.ts_ms, |r| r.first_ms), &mut self.day);
        out.extend_from_slice(b"\",\"seq\":");
        write_u64(out, seq);
        out.extend_from_slice(&self.type_host);
        key(out, "client");
        write_ip(out, contact.client);
        key(out, "layer");
        write_plain(out, contact.layer.as_str());
        opt_str(out, "name", contact.name.as_deref())?;
        opt_str(out, "qtype", contact.qtype)?;
        out.extend_from_slice(&shape.before_rule);
        if has_rule {
            key(out, "rule");
            write_str(out, &self.rule)?;
        }
        out.extend_from_slice(&shape.after_rule);
        opt_str(out, "message", contact.message.as_deref())?;
        let correlation = match repeats {
            Some(r) => {
                key(out, "count");
                write_u64(out, r.count);
                r.correlation.as_deref()
            }
            None => contact.correlation.as_deref(),
        };
        opt_str(out, "correlation", correlation)?;
        if let Some(r) = repeats {
            key(out, "first_ts");
            out.push(b'"');
            write_ts_ms(out, r.first_ms, &mut self.day);
            out.push(b'"');
            key(out, "last_ts");
            out.push(b'"');
            write_ts_ms(out, r.last_ms, &mut self.day);
            out.push(b'"');
        }
        key(out, "prev_hash");
        write_str(out, prev_hash)?;
        out.push(b'}');
        Ok(())
    }

    /// Index of the shape of `verdict` under `policy`, made if new.
    fn shape(&mut self, policy: &Arc<Policy>, verdict: &Verdict) -> Result<usize, serde_json::Error> {
        if let Some(i) = self.shapes.iter().position(|s| s.fits(policy, verdict)) {
            return Ok(i);
        }
        if self.shapes.len() >= MAX_SHAPES {
            self.shapes.clear();
        }
        self.shapes.push(Shape::new(policy, verdict)?);
        Ok(self.shapes.len() - 1)
    }
}

/// `ts` of Unix milliseconds `ms` as the record path writes it
/// (`chain::write_ts` of [`millis`]), with the date taken from `day` when
/// it is the same day.
fn write_ts_ms(out: &mut Vec<u8>, ms: i64, day: &mut Option<(i64, [u8; 10])>) {
    let (days, in_day) = (ms.div_euclid(DAY_MS), ms.rem_euclid(DAY_MS));
    let date = match *day {
        Some((d, text)) if d == days => text,
        _ => {
            let start = out.len();
            let Some(ts) = DateTime::<Utc>::from_timestamp_millis(ms) else {
                chain::write_ts(out, &millis(ms));
                return;
            };
            chain::write_ts(out, &ts);
            // Years 0..=9999 only: the rest are not 24 bytes (and rarer
            // than leap seconds in a log of now).
            let text = out.get(start..start + 10).filter(|_| out.len() - start == 24);
            if let Some(text) = text.and_then(|t| <[u8; 10]>::try_from(t).ok()) {
                *day = Some((days, text));
            }
            return;
        }
    };
    out.extend_from_slice(&date);
    let two = |n: i64| [b'0' + (n / 10) as u8, b'0' + (n % 10) as u8];
    let (h, m, s, milli) = (in_day / 3_600_000, in_day / 60_000 % 60, in_day / 1000 % 60, in_day % 1000);
    out.push(b'T');
    out.extend_from_slice(&two(h));
    out.push(b':');
    out.extend_from_slice(&two(m));
    out.push(b':');
    out.extend_from_slice(&two(s));
    let milli = [b'.', b'0' + (milli / 100) as u8, b'0' + (milli / 10 % 10) as u8, b'0' + (milli % 10) as u8, b'Z'];
    out.extend_from_slice(&milli);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::{GENESIS, encode_into};
    use crate::audit::record::Layer;

    /// A contact event's line (built on the writer from the event and its
    /// policy) is the line of the record `contact_record` builds, for
    /// blocklist entries, policy rules, CNAME findings, allowed names,
    /// correlation, repeats, IPv4-mapped clients and names out of range
    /// of the fast label path.
    #[test]
    fn contact_events_encode_as_their_records() {
        use crate::policy::{Blocklist, Subject};
        use std::sync::Arc;
        let policy = crate::policy::BUILTIN_POLICY;
        let lists = [Blocklist { source: "list \"one\".txt", text: "ads.example.net\ntracker.example.org\n" }];
        let (policy, _) = crate::policy::compile_with(policy, "builtin.toml", &lists).unwrap();
        let policy = Arc::new(policy);
        let before = policy.prohibition_start().unwrap() - 60_000;
        let after = before + 120_000;
        let midnight = (after / 86_400_000 + 1) * 86_400_000;
        let cases: &[(&str, i64, Option<&str>, &str)] = &[
            ("s10.upd.kaspersky.com", after, None, "192.168.1.20"),
            ("s10.upd.kaspersky.com", before, None, "::ffff:192.168.1.21"),
            ("x.ads.example.net", after, None, "fd00::1"),
            ("cdn.example.com", after, Some("answer: CNAME pixel.tracker.example.org"), "192.168.1.20"),
            ("www.example.com", after, None, "198.18.0.1"),
            ("Weird\"Name.Kaspersky.COM.", after, Some("a \\ b\n"), "192.168.1.20"),
            // The encoder's date memo: across midnight (repeats span it too)
            // and back to a day long before.
            ("s10.upd.kaspersky.com", midnight - 1, None, "192.168.1.20"),
            ("s10.upd.kaspersky.com", midnight, None, "192.168.1.20"),
            ("x.ads.example.net", before - 400 * 86_400_000, None, "192.168.1.20"),
        ];
        let mut enc = ContactEncoder::default();
        // One encoder throughout, so its memo is used and refreshed: another
        // host, and a reloaded policy with other lists.
        let reloaded = [Blocklist { source: "other.txt", text: "ads.example.net\n" }];
        let reloaded =
            Arc::new(crate::policy::compile_with(crate::policy::BUILTIN_POLICY, "b.toml", &reloaded).unwrap().0);
        for (policy, host) in [(&policy, "gw1"), (&policy, "gw \"2\""), (&reloaded, "gw1")] {
            for &(name, now, via, client) in cases {
                let subject = via.and_then(|v| v.strip_prefix("answer: CNAME ")).unwrap_or(name);
                let verdict = policy.decide(Subject::Name(subject), now);
                let mut event = Contact::new(Arc::clone(policy), verdict, now, client.parse().unwrap(), Layer::Dns);
                event = event.with_name(name);
                event.qtype = Some("HTTPS");
                event.message = via.map(Box::from);
                for correlation in [None, Some("c-1f")] {
                    event.correlation = correlation.map(Box::from);
                    let event = Arc::new(event.clone());
                    let (mut lean, mut full) = (Vec::new(), Vec::new());
                    let h1 = enc.encode(&mut lean, &event, None, 7, GENESIS, host).unwrap();
                    let h2 = encode_into(&mut full, &event.to_record(), 7, GENESIS, host).unwrap();
                    assert_eq!(String::from_utf8_lossy(&lean), String::from_utf8_lossy(&full), "{name}");
                    assert_eq!(h1, h2);
                    let repeats = Repeats {
                        contact: Arc::clone(&event),
                        count: 41,
                        first_ms: now + 5,
                        last_ms: now + 999,
                        correlation: Some("c-20".into()),
                    };
                    let (mut lean, mut full) = (Vec::new(), Vec::new());
                    enc.encode(&mut lean, &event, Some(&repeats), 8, h1.as_str(), host).unwrap();
                    encode_into(&mut full, &repeats.to_record(), 8, h1.as_str(), host).unwrap();
                    assert_eq!(String::from_utf8_lossy(&lean), String::from_utf8_lossy(&full), "{name} repeats");
                }
            }
        }
        // The blocklist entry is named, not the list.
        let event = Contact::new(
            Arc::clone(&policy),
            policy.decide(Subject::Name("x.ads.example.net"), after),
            after,
            "192.0.2.1".parse().unwrap(),
            Layer::Dns,
        )
        .with_name("x.ads.example.net");
        let mut line = Vec::new();
        enc.encode(&mut line, &event, None, 1, GENESIS, "gw1").unwrap();
        assert!(String::from_utf8_lossy(&line).contains(r#""rule":"domain:ads.example.net""#));
    }
}
