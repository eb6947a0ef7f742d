//! What the query path counts, added up before it reaches the shared
//! counters (`DnsStats`' atomics and `Metrics`): a UDP worker adds a whole
//! `recvmmsg` batch's counts at once (see `fast::Pass`), the full path one
//! query's. Per query that leaves plain additions to a worker-owned struct
//! instead of five atomic read-modify-writes and a lookup of the contact
//! counter under a lock.

use std::sync::atomic::Ordering::Relaxed;

use super::handler::DnsStats;
use crate::metrics::{Metrics, QueryResult};
use crate::policy::{Action, CategoryId, Policy};

/// Counts not yet added to the shared counters.
#[derive(Debug, Default)]
pub(super) struct Tally {
    /// Queries answered, by result (index: [`QueryResult::index`]); their
    /// sum goes to `DnsStats::queries`.
    results: [u64; QueryResult::ALL.len()],
    blocked: u64,
    monitored: u64,
    cache_hits: u64,
    cache_misses: u64,
    /// Contacts by the deciding policy's category and the action taken.
    contacts: Vec<(CategoryId, Action, u64)>,
}

impl Tally {
    /// A query answered with `result`.
    pub fn answered(&mut self, result: QueryResult) {
        if let Some(n) = self.results.get_mut(result.index()) {
            *n += 1;
        }
    }

    /// A lookup in the worker's answer cache.
    pub fn cache(&mut self, hit: bool) {
        self.cache_hits += u64::from(hit);
        self.cache_misses += u64::from(!hit);
    }

    /// A blocked or monitored contact; `category` of the policy that
    /// [`Tally::add_to`] is given.
    pub fn contact(&mut self, action: Action, category: Option<CategoryId>) {
        match action {
            Action::Block => self.blocked += 1,
            Action::Monitor => self.monitored += 1,
            Action::Allow => return,
        }
        let Some(category) = category else { return };
        match self.contacts.iter_mut().find(|(c, a, _)| *c == category && *a == action) {
            Some((_, _, n)) => *n += 1,
            None => self.contacts.push((category, action, 1)),
        }
    }

    /// Adds the counts to `stats` and `metrics` (contact categories named
    /// by `policy`) and starts again from zero.
    pub fn add_to(&mut self, stats: &DnsStats, metrics: &Metrics, policy: &Policy) {
        let add = |counter: &std::sync::atomic::AtomicU64, n: u64| {
            if n > 0 {
                counter.fetch_add(n, Relaxed);
            }
        };
        add(&stats.queries, self.results.iter().sum());
        add(&stats.blocked, self.blocked);
        add(&stats.monitored, self.monitored);
        for (result, &n) in QueryResult::ALL.iter().zip(&self.results) {
            if n > 0 {
                metrics.queries(*result, n);
            }
        }
        metrics.answer_cache_counts(self.cache_hits, self.cache_misses);
        for &(category, action, n) in &self.contacts {
            metrics.contacts("dns", &policy.category(category).name, action, n);
        }
        // Zero again, keeping the contacts' allocation for the next batch.
        let mut contacts = std::mem::take(&mut self.contacts);
        contacts.clear();
        *self = Tally { contacts, ..Tally::default() };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_reach_the_shared_counters_once_added_and_start_again_from_zero() {
        let policy = crate::policy::builtin().unwrap();
        let category = policy.decide_normalized(b"s10.upd.kaspersky.com", policy.prohibition_start().unwrap() + 1);
        let category = category.matched.map(|(_, c)| c);
        let (stats, metrics) = (DnsStats::default(), Metrics::new());
        let mut tally = Tally::default();
        for _ in 0..3 {
            tally.contact(Action::Block, category);
            tally.answered(QueryResult::Blocked);
        }
        tally.contact(Action::Monitor, category);
        tally.contact(Action::Allow, category);
        tally.answered(QueryResult::Allowed);
        tally.cache(true);
        tally.cache(false);
        tally.cache(true);
        assert_eq!(stats.queries.load(Relaxed), 0, "nothing shared before the tally is added");
        tally.add_to(&stats, &metrics, &policy);
        tally.add_to(&stats, &metrics, &policy); // nothing left: adds nothing
        let counts = (stats.queries.load(Relaxed), stats.blocked.load(Relaxed), stats.monitored.load(Relaxed));
        assert_eq!(counts, (4, 3, 1));
        let text = metrics.encode();
        let name = &policy.category(category.unwrap()).name;
        for line in [
            "warden_dns_queries_total{result=\"blocked\"} 3".to_owned(),
            "warden_dns_queries_total{result=\"allowed\"} 1".to_owned(),
            "warden_dns_answer_cache_hits_total 2".to_owned(),
            "warden_dns_answer_cache_misses_total 1".to_owned(),
            format!("warden_contacts_total{{layer=\"dns\",category=\"{name}\",action=\"block\"}} 3"),
            format!("warden_contacts_total{{layer=\"dns\",category=\"{name}\",action=\"monitor\"}} 1"),
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }
}
