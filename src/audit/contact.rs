//! Contacts on their way to the log. A producer on the query path hands the
//! writer a [`Contact`]: the verdict, what was seen and the policy that
//! decided, with no text built yet; the writer encodes its `contact` line
//! (`contact_line`) borrowing the policy's strings (rule label, category, phase, policy id
//! and hash), so a query pays for one allocation, not one per field.
//! [`contact_record`] builds the same record as a [`Record`] for producers
//! that need one (packet layer, tests). Both take the policy's part from
//! [`ContactFields`]; a test holds the two lines equal byte for byte.
//!
//! It reads the policy; it decides nothing.

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::record::{Layer, PolicyRef, Record, without_root_dot};
use crate::policy::{Action, Policy, Verdict};

/// A contact's name, held inline up to 48 bytes (nearly every name): the
/// query path then allocates once per contact, and the writer reads the
/// name from the contact's own cache lines instead of a separate block.
pub type ContactName = smallstr::SmallString<[u8; 48]>;

/// One contact as its producer saw it, for the writer to encode.
#[derive(Debug, Clone)]
pub struct Contact {
    pub policy: Arc<Policy>,
    pub verdict: Verdict,
    /// When it was seen, Unix milliseconds.
    pub ts_ms: i64,
    /// Canonical form (an IPv4-mapped IPv6 address as IPv4).
    pub client: IpAddr,
    pub layer: Layer,
    /// As [`Record::with_name`] leaves it; `None` for a bare address.
    pub name: Option<ContactName>,
    /// DNS query type (`A`, `AAAA`, ...).
    pub qtype: Option<&'static str>,
    /// What matched when it was not the name (e.g. `answer: CNAME x`).
    pub message: Option<Box<str>>,
    pub correlation: Option<Box<str>>,
}

impl Contact {
    /// A contact of `client` with `name` (lowercased, trailing dot removed,
    /// like [`Record::with_name`]).
    pub fn new(policy: Arc<Policy>, verdict: Verdict, ts_ms: i64, client: IpAddr, layer: Layer) -> Contact {
        let client = client.to_canonical();
        Contact { policy, verdict, ts_ms, client, layer, name: None, qtype: None, message: None, correlation: None }
    }

    pub fn with_name(mut self, name: &str) -> Contact {
        let mut name = ContactName::from_str(without_root_dot(name));
        name.make_ascii_lowercase();
        self.name = Some(name);
        self
    }

    /// Instant of `ts_ms`; now if it is out of range.
    pub fn ts(&self) -> DateTime<Utc> {
        millis(self.ts_ms)
    }

    /// The same contact as a [`Record`].
    pub fn to_record(&self) -> Record {
        let mut record = Record::contact(self.ts(), self.client, self.layer);
        record.name = self.name.as_deref().map(str::to_owned);
        record.qtype = self.qtype.map(str::to_owned);
        record.message = self.message.as_deref().map(str::to_owned);
        record.correlation = self.correlation.as_deref().map(str::to_owned);
        let mut rule = String::new();
        let fields = ContactFields::of(&self.policy, &self.verdict, self.name.as_deref(), &mut rule);
        fields.fill(record, rule)
    }
}

/// Sightings of a contact counted after its first one, written as one
/// record with `count`, `first_ts` and `last_ts` (`ts` = `first_ts`).
#[derive(Debug, Clone)]
pub struct Repeats {
    pub contact: Arc<Contact>,
    pub count: u64,
    pub first_ms: i64,
    pub last_ms: i64,
    /// Correlation id as of `first_ms` (the first sighting's may differ).
    pub correlation: Option<Box<str>>,
}

impl Repeats {
    pub fn to_record(&self) -> Record {
        let mut record = self.contact.to_record();
        record.ts = millis(self.first_ms);
        record.correlation = self.correlation.as_deref().map(str::to_owned);
        record.count = Some(self.count);
        record.first_ts = Some(millis(self.first_ms));
        record.last_ts = Some(millis(self.last_ms));
        record
    }
}

/// What a contact record takes from the policy, borrowed.
pub(super) struct ContactFields<'a> {
    pub action: Action,
    pub category: Option<&'a str>,
    /// Whether a rule matched (its label is in the caller's buffer).
    pub has_rule: bool,
    pub phase: &'a str,
    pub policy_id: &'a str,
    pub policy_hash: &'a str,
}

impl<'a> ContactFields<'a> {
    /// The fields for `verdict` taken for `name`; the matched rule's label
    /// is written into `rule` (cleared first).
    pub fn of(policy: &'a Policy, verdict: &Verdict, name: Option<&str>, rule: &mut String) -> ContactFields<'a> {
        let mut fields = ContactFields::shape(policy, verdict);
        fields.has_rule = write_rule(policy, verdict, name, false, rule);
        fields
    }

    /// The fields every contact with this policy, action, category and
    /// phase shares: all but the rule's label (`has_rule` is left false).
    pub fn shape(policy: &'a Policy, verdict: &Verdict) -> ContactFields<'a> {
        ContactFields {
            action: verdict.action,
            category: verdict.matched.map(|(_, c)| policy.category(c).name.as_str()),
            has_rule: false,
            phase: policy.phase(verdict.phase).name.as_str(),
            policy_id: &policy.meta.id,
            policy_hash: &policy.meta.hash,
        }
    }

    fn fill(self, mut record: Record, rule: String) -> Record {
        record.action = Some(self.action);
        record.category = self.category.map(str::to_owned);
        record.rule = self.has_rule.then_some(rule);
        record.phase = Some(self.phase.to_owned());
        record.policy = Some(PolicyRef { id: self.policy_id.to_owned(), hash: self.policy_hash.to_owned() });
        record
    }
}

/// Writes the label of the rule `verdict` matched for `name` into `rule`
/// (cleared first); false when no rule matched. `own`: the verdict was
/// taken for `name` itself (see [`Policy::own_rule_label_parts`]).
pub(super) fn write_rule(policy: &Policy, verdict: &Verdict, name: Option<&str>, own: bool, rule: &mut String) -> bool {
    rule.clear();
    if verdict.matched.is_none() {
        return false;
    }
    let name = name.unwrap_or("");
    let parts = if own { policy.own_rule_label_parts(verdict, name) } else { policy.rule_label_parts(verdict, name) };
    match parts {
        Some(label) => label.write_to(rule),
        None => rule.push_str(&policy.rule_label_for(verdict, name).unwrap_or_default()),
    }
    true
}

/// The instant of Unix milliseconds `ms` (now if out of range).
pub(super) fn millis(ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_else(Utc::now)
}

/// A `contact` record for `verdict`, seen at `now_ms` (Unix milliseconds).
/// `name` is normalized like [`Record::with_name`]; `None` for a bare IP.
pub fn contact_record(
    policy: &Policy,
    verdict: &Verdict,
    now_ms: i64,
    client: IpAddr,
    layer: Layer,
    name: Option<String>,
) -> Record {
    let mut record = Record::contact(millis(now_ms), client, layer);
    if let Some(name) = name {
        record = record.with_name(name);
    }
    let mut rule = String::new();
    let fields = ContactFields::of(policy, verdict, record.name.as_deref(), &mut rule);
    fields.fill(record, rule)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Action, Subject};

    #[test]
    fn blocked_update_query_names_rule_category_phase_and_policy() {
        let policy = crate::policy::builtin().unwrap();
        let now = policy.prohibition_start().unwrap() + 1_000;
        let verdict = policy.decide(Subject::Name("s10.upd.kaspersky.com"), now);
        let client = "192.168.1.20".parse().unwrap();
        let name = Some("S10.upd.kaspersky.com.".to_owned());
        let record = contact_record(&policy, &verdict, now, client, Layer::Dns, name);
        assert_eq!(record.action, Some(Action::Block));
        assert_eq!(record.name.as_deref(), Some("s10.upd.kaspersky.com"));
        assert!(record.rule.as_deref().is_some_and(|r| r.ends_with("kaspersky.com")));
        assert!(record.category.is_some() && record.phase.is_some());
        let reference = record.policy.as_ref().unwrap();
        assert_eq!((&reference.id, &reference.hash), (&policy.meta.id, &policy.meta.hash));
        assert_eq!(record.ts.timestamp_millis(), now);
    }

    #[test]
    fn a_contact_event_is_the_record_contact_record_builds() {
        let policy = Arc::new(crate::policy::builtin().unwrap());
        let now = policy.prohibition_start().unwrap() + 1_000;
        let client: IpAddr = "::ffff:192.168.1.20".parse().unwrap();
        // The last name is longer than a contact holds inline.
        let long = "A-label-longer-than-the-inline-room-of-a-contact.upd.kaspersky.com.";
        for name in ["S10.upd.kaspersky.com.", "example.org", ".", long] {
            let verdict = policy.decide(Subject::Name(name), now);
            let event = Contact::new(Arc::clone(&policy), verdict, now, client, Layer::Dns).with_name(name);
            let record = contact_record(&policy, &verdict, now, client, Layer::Dns, Some(name.to_owned()));
            assert_eq!(event.to_record(), record, "{name}");
        }
    }
}
