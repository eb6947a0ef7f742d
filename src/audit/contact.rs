//! Bridge from a policy verdict to a `contact` record: copies the matched
//! rule, its category, the phase and the policy's id and hash into a
//! [`Record`]. It reads the policy; it decides nothing.

use std::net::IpAddr;

use chrono::{DateTime, Utc};

use super::record::{Layer, PolicyRef, Record};
use crate::policy::{Policy, Verdict};

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
    let ts = DateTime::<Utc>::from_timestamp_millis(now_ms).unwrap_or_else(Utc::now);
    let mut record = Record::contact(ts, client, layer);
    if let Some(name) = name {
        record = record.with_name(name);
    }
    record.action = Some(verdict.action);
    if let Some((_, category)) = verdict.matched {
        record.rule = policy.rule_label_for(verdict, record.name.as_deref().unwrap_or(""));
        record.category = Some(policy.category(category).name.clone());
    }
    record.phase = Some(policy.phase(verdict.phase).name.clone());
    record.policy = Some(PolicyRef { id: policy.meta.id.clone(), hash: policy.meta.hash.clone() });
    record
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
}
