//! Repeats of one DNS contact. The first sighting of a contact (same policy,
//! client, name, qtype, verdict and `via`) gets its own audit record at once;
//! identical sightings within the window that follows are only counted, and
//! written as one record with `count`, `first_ts` and `last_ts` when the
//! window closes. A window that closes with repeats opens the next one for
//! the same contact at once, so a contact that keeps coming back costs one
//! record a window, not a first record and a repeat record; only a window
//! with no repeat ends the contact, and its next sighting is a first one
//! again. A client retrying a blocked name thousands of times a second then
//! costs a hash lookup per retry instead of a record, every attempt is
//! still counted (the `count`s of a contact's records add up to its
//! attempts), a new client or name is never delayed, and a crash loses at
//! most the repeat counts of the open windows.
//!
//! Owns only the pending table, which keeps each open window's first
//! sighting as the `audit::Contact` the writer was sent (built by the
//! handler's closure, only for a first sighting); submitting is the
//! handler's. Bounded: when [`MAX_PENDING`] contacts are open, the oldest
//! window is closed early.

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

use hashbrown::HashTable;
use hickory_proto::rr::RecordType;

use crate::audit::{Contact, Repeats};
use crate::policy::{Policy, Verdict};

/// Most contacts with an open window at once.
pub const MAX_PENDING: usize = 65_536;
/// Due windows a sighting closes on its way (each opens at most one).
const CLOSE_PER_SIGHTING: usize = 2;

/// One sighting, borrowed from the query.
#[derive(Debug, Clone, Copy)]
pub struct Sighting<'a> {
    pub client: IpAddr,
    pub name: Option<&'a str>,
    pub qtype: RecordType,
    pub verdict: &'a Verdict,
    pub via: Option<&'a str>,
    pub now: i64,
}

/// A contact with an open window: the first sighting's event (shared with
/// the audit writer) and the repeats counted since.
struct Open {
    hash: u64,
    /// End of the window (exclusive), Unix milliseconds.
    closes: i64,
    contact: Arc<Contact>,
    /// The sighting as it was asked about (the event keeps the name as the
    /// audit record writes it).
    client: IpAddr,
    qtype: RecordType,
    count: u64,
    first_ms: i64,
    last_ms: i64,
}

impl Open {
    fn is(&self, policy: &Arc<Policy>, s: &Sighting<'_>) -> bool {
        let c = &*self.contact;
        self.client == s.client
            && self.qtype == s.qtype
            && c.message.as_deref() == s.via
            && c.verdict.action == s.verdict.action
            && c.verdict.matched == s.verdict.matched
            && c.verdict.phase == s.verdict.phase
            && Arc::ptr_eq(&c.policy, policy)
            && c.name.as_deref() == s.name
    }
}

/// The open windows, oldest first.
pub struct Aggregator {
    window_ms: i64,
    hasher: hashbrown::DefaultHashBuilder,
    /// Sequence numbers of the entries of `open`.
    index: HashTable<u64>,
    open: VecDeque<Open>,
    /// Sequence number of `open[0]`.
    base: u64,
}

impl std::fmt::Debug for Aggregator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aggregator").field("window_ms", &self.window_ms).field("open", &self.open.len()).finish()
    }
}

impl Aggregator {
    /// `window_ms` 0: nothing is aggregated, every sighting is a first one.
    pub fn new(window_ms: u64) -> Aggregator {
        Aggregator {
            window_ms: i64::try_from(window_ms).unwrap_or(i64::MAX),
            hasher: hashbrown::DefaultHashBuilder::default(),
            index: HashTable::new(),
            open: VecDeque::new(),
            base: 0,
        }
    }

    /// Contacts with an open window.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.open.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    fn hash(&self, policy: &Arc<Policy>, s: &Sighting<'_>) -> u64 {
        let mut h = self.hasher.build_hasher();
        (Arc::as_ptr(policy) as *const () as usize).hash(&mut h);
        s.client.hash(&mut h);
        s.name.hash(&mut h);
        u16::from(s.qtype).hash(&mut h);
        s.via.hash(&mut h);
        (s.verdict.action as u8, s.verdict.matched.map(|(r, c)| (r.0, c.0)), s.verdict.phase.0).hash(&mut h);
        h.finish()
    }

    /// Counts a sighting. `Some(event)`: it is the first of its window,
    /// write its record now (`make` built the event); `None`: it was
    /// counted as a repeat. Windows closed by now (a few of them; see
    /// [`Aggregator::close_due`]) or pushed out because the table is full
    /// go to `closed`.
    pub fn sight(
        &mut self,
        policy: &Arc<Policy>,
        s: Sighting<'_>,
        closed: &mut Vec<Repeats>,
        make: impl FnOnce() -> Contact,
    ) -> Option<Arc<Contact>> {
        // A few at a time, so no single query pays for a whole second's
        // windows closing together; the handler's timer closes the rest.
        self.close_due(s.now, CLOSE_PER_SIGHTING, closed);
        if self.window_ms == 0 {
            return Some(Arc::new(make()));
        }
        let hash = self.hash(policy, &s);
        let (open, base) = (&self.open, self.base);
        let found = self.index.find(hash, |&seq| open.get((seq - base) as usize).is_some_and(|o| o.is(policy, &s)));
        if let Some(&seq) = found
            && let Some(o) = self.open.get_mut((seq - self.base) as usize)
        {
            if o.count == 0 {
                o.first_ms = s.now;
            }
            o.count += 1;
            o.last_ms = o.last_ms.max(s.now);
            return None;
        }
        if self.open.len() >= MAX_PENDING {
            self.close_oldest(closed);
        }
        let seq = self.base + self.open.len() as u64;
        let contact = Arc::new(make());
        self.open.push_back(Open {
            hash,
            closes: s.now.saturating_add(self.window_ms),
            contact: Arc::clone(&contact),
            client: s.client,
            qtype: s.qtype,
            count: 0,
            first_ms: s.now,
            last_ms: s.now,
        });
        let (open, base) = (&self.open, self.base);
        self.index.insert_unique(hash, seq, |&q| open.get((q - base) as usize).map_or(0, |o| o.hash));
        Some(contact)
    }

    /// Closes the windows that ended by `now`, at most `limit` of them;
    /// their repeats go to `closed`. True if due windows remain.
    pub fn close_due(&mut self, now: i64, limit: usize, closed: &mut Vec<Repeats>) -> bool {
        for _ in 0..limit {
            if !self.is_due(now) {
                return false;
            }
            if let Some(next) = self.close_oldest(closed) {
                self.reopen(next, now);
            }
        }
        self.is_due(now)
    }

    fn is_due(&self, now: i64) -> bool {
        self.open.front().is_some_and(|o| o.closes <= now)
    }

    /// When the next window closes (`i64::MAX`: none is open).
    pub fn next_due(&self) -> i64 {
        self.open.front().map_or(i64::MAX, |o| o.closes)
    }

    /// Closes every window (shutdown).
    pub fn close_all(&mut self, closed: &mut Vec<Repeats>) {
        while !self.open.is_empty() {
            self.close_oldest(closed);
        }
    }

    /// Closes the oldest window; its repeats go to `closed`. Returns it
    /// when it had any, for [`Aggregator::reopen`].
    fn close_oldest(&mut self, closed: &mut Vec<Repeats>) -> Option<Open> {
        let o = self.open.pop_front()?;
        let seq = self.base;
        self.base += 1;
        if let Ok(entry) = self.index.find_entry(o.hash, |&q| q == seq) {
            entry.remove();
        }
        (o.count > 0).then(|| {
            let contact = Arc::clone(&o.contact);
            closed.push(Repeats {
                contact,
                count: o.count,
                first_ms: o.first_ms,
                last_ms: o.last_ms,
                correlation: None,
            });
            o
        })
    }

    /// Opens the window after `o`'s, which closed with repeats at `now`,
    /// for the same contact. It runs from `now` (`o` counted until then),
    /// so the queue stays in closing order. A window closed early for room
    /// is not reopened.
    fn reopen(&mut self, o: Open, now: i64) {
        let seq = self.base + self.open.len() as u64;
        let next = Open { closes: now.saturating_add(self.window_ms), count: 0, ..o };
        let hash = next.hash;
        self.open.push_back(next);
        let (open, base) = (&self.open, self.base);
        self.index.insert_unique(hash, seq, |&q| open.get((q - base) as usize).map_or(0, |o| o.hash));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Subject;

    fn setup() -> (Arc<Policy>, Verdict, i64) {
        let policy = Arc::new(crate::policy::builtin().unwrap());
        let now = policy.prohibition_start().unwrap() + 1_000;
        let verdict = policy.decide(Subject::Name("s10.upd.kaspersky.com"), now);
        (policy, verdict, now)
    }

    fn sighting<'a>(verdict: &'a Verdict, client: &str, name: &'a str, now: i64) -> Sighting<'a> {
        Sighting { client: client.parse().unwrap(), name: Some(name), qtype: RecordType::A, verdict, via: None, now }
    }

    /// `sight` with the event the DNS layer would build; true: first sighting.
    fn sight(agg: &mut Aggregator, policy: &Arc<Policy>, s: Sighting<'_>, closed: &mut Vec<Repeats>) -> bool {
        let make = || {
            let mut c = Contact::new(Arc::clone(policy), *s.verdict, s.now, s.client, crate::audit::Layer::Dns);
            c.message = s.via.map(Box::from);
            match s.name {
                Some(name) => c.with_name(name),
                None => c,
            }
        };
        agg.sight(policy, s, closed, make).is_some()
    }

    #[test]
    fn first_sighting_is_written_repeats_are_counted_until_the_window_closes() {
        let (policy, verdict, now) = setup();
        let mut agg = Aggregator::new(1_000);
        let mut closed = Vec::new();
        assert!(sight(
            &mut agg,
            &policy,
            sighting(&verdict, "192.168.1.20", "s10.upd.kaspersky.com", now),
            &mut closed
        ));
        for i in 1..=5 {
            let s = sighting(&verdict, "192.168.1.20", "s10.upd.kaspersky.com", now + i * 100);
            assert!(!sight(&mut agg, &policy, s, &mut closed));
        }
        // Another client and another name are first sightings of their own.
        assert!(sight(
            &mut agg,
            &policy,
            sighting(&verdict, "192.168.1.21", "s10.upd.kaspersky.com", now),
            &mut closed
        ));
        assert!(sight(
            &mut agg,
            &policy,
            sighting(&verdict, "192.168.1.20", "s11.upd.kaspersky.com", now),
            &mut closed
        ));
        assert!(closed.is_empty());
        agg.close_due(now + 999, usize::MAX, &mut closed);
        assert!(closed.is_empty());
        agg.close_due(now + 1_000, usize::MAX, &mut closed);
        assert_eq!(closed.len(), 1, "only the contact with repeats yields a record");
        let r = &closed[0];
        assert_eq!((r.count, r.first_ms, r.last_ms), (5, now + 100, now + 500));
        assert_eq!(r.contact.name.as_deref(), Some("s10.upd.kaspersky.com"));
        // The contact with repeats goes on in a window of its own; the
        // others had none and are done.
        assert_eq!(agg.len(), 1);
        let s = sighting(&verdict, "192.168.1.20", "s10.upd.kaspersky.com", now + 1_200);
        assert!(!sight(&mut agg, &policy, s, &mut closed), "a repeat of the window that follows");
        agg.close_due(now + 2_000, usize::MAX, &mut closed);
        assert_eq!(closed.len(), 2, "one record for the second window");
        let r = &closed[1];
        assert_eq!((r.count, r.first_ms, r.last_ms), (1, now + 1_200, now + 1_200));
        assert!(Arc::ptr_eq(&r.contact, &closed[0].contact), "the same contact");
        // A window without a repeat ends the contact: the next sighting is
        // a first one again.
        agg.close_due(now + 3_000, usize::MAX, &mut closed);
        assert_eq!(closed.len(), 2);
        assert!(agg.is_empty());
        let s = sighting(&verdict, "192.168.1.20", "s10.upd.kaspersky.com", now + 3_100);
        assert!(sight(&mut agg, &policy, s, &mut closed));
    }

    #[test]
    fn due_windows_close_a_slice_at_a_time_and_every_count_arrives() {
        let (policy, verdict, now) = setup();
        let mut agg = Aggregator::new(1_000);
        let mut closed = Vec::new();
        let names: Vec<String> = (0..5).map(|i| format!("h{i}.kaspersky.com")).collect();
        for name in &names {
            assert!(sight(&mut agg, &policy, sighting(&verdict, "10.0.0.1", name, now), &mut closed));
            assert!(!sight(&mut agg, &policy, sighting(&verdict, "10.0.0.1", name, now + 1), &mut closed));
        }
        // Not due yet: nothing closes, nothing more to do.
        assert!(!agg.close_due(now + 999, 2, &mut closed));
        // Five due: two, two, then the last one with nothing left.
        let mut slices = Vec::new();
        loop {
            let more = agg.close_due(now + 1_000, 2, &mut closed);
            slices.push((closed.len(), more));
            if !more {
                break;
            }
        }
        assert_eq!(slices, [(2, true), (4, true), (5, false)]);
        // Each had a repeat, so each goes on; the windows that follow see
        // none and close without a record.
        assert_eq!(agg.len(), 5);
        assert!(!agg.close_due(now + 2_000, usize::MAX, &mut closed));
        assert!(agg.is_empty());
        assert_eq!(closed.len(), 5);
        let got: Vec<_> = closed.iter().map(|r| (r.contact.name.as_deref(), r.count)).collect();
        let want: Vec<_> = names.iter().map(|n| (Some(n.as_str()), 1)).collect();
        assert_eq!(got, want, "oldest first, each window's repeat counted");
    }

    #[test]
    fn a_new_policy_or_qtype_starts_a_new_contact() {
        let (policy, verdict, now) = setup();
        let other = Arc::new(crate::policy::builtin().unwrap());
        let mut agg = Aggregator::new(1_000);
        let mut closed = Vec::new();
        let s = sighting(&verdict, "192.168.1.20", "s10.upd.kaspersky.com", now);
        assert!(sight(&mut agg, &policy, s, &mut closed));
        assert!(sight(&mut agg, &other, s, &mut closed));
        assert!(sight(&mut agg, &policy, Sighting { qtype: RecordType::AAAA, ..s }, &mut closed));
        assert!(!sight(&mut agg, &policy, s, &mut closed));
    }

    #[test]
    fn the_name_its_length_and_the_cname_it_came_by_tell_contacts_apart() {
        let (policy, verdict, now) = setup();
        let mut agg = Aggregator::new(1_000);
        let mut closed = Vec::new();
        // Short, long and the longest a name can be; each its own letter,
        // so no name is another's tail.
        let names: Vec<String> = [(21, "a"), (62, "b"), (63, "c"), (253, "d")]
            .iter()
            .map(|&(len, letter)| format!("{}.kaspersky.com", letter.repeat(len - ".kaspersky.com".len())))
            .collect();
        for name in &names {
            let s = sighting(&verdict, "10.0.0.1", name, now);
            assert!(sight(&mut agg, &policy, s, &mut closed), "{} bytes: first", name.len());
            assert!(!sight(&mut agg, &policy, s, &mut closed), "{} bytes: a repeat", name.len());
            // One byte more or less is another contact.
            let shorter = &name[1..];
            assert!(sight(&mut agg, &policy, sighting(&verdict, "10.0.0.1", shorter, now), &mut closed));
        }
        let s = sighting(&verdict, "10.0.0.1", "s10.upd.kaspersky.com", now);
        let via = Sighting { via: Some("cdn.example"), ..s };
        assert!(sight(&mut agg, &policy, s, &mut closed));
        assert!(sight(&mut agg, &policy, via, &mut closed), "the same name by a CNAME is its own contact");
        assert!(!sight(&mut agg, &policy, via, &mut closed));
        assert!(sight(&mut agg, &policy, Sighting { via: Some("cdn.example.net"), ..s }, &mut closed));
        assert!(sight(&mut agg, &policy, Sighting { name: None, ..s }, &mut closed), "no name");
        assert!(!sight(&mut agg, &policy, Sighting { name: None, ..s }, &mut closed));
        agg.close_all(&mut closed);
        let repeats: Vec<_> = closed.iter().map(|r| (r.contact.name.as_deref().map(str::len), r.count)).collect();
        let mut want: Vec<_> = names.iter().map(|n| (Some(n.len()), 1)).collect();
        want.extend([(Some("s10.upd.kaspersky.com".len()), 1), (None, 1)]);
        assert_eq!(repeats, want, "each repeat counted on its own contact, oldest first");
    }

    #[test]
    fn window_zero_writes_every_sighting() {
        let (policy, verdict, now) = setup();
        let mut agg = Aggregator::new(0);
        let mut closed = Vec::new();
        let s = sighting(&verdict, "192.168.1.20", "s10.upd.kaspersky.com", now);
        assert!(sight(&mut agg, &policy, s, &mut closed));
        assert!(sight(&mut agg, &policy, s, &mut closed));
        assert!(agg.is_empty() && closed.is_empty());
    }

    #[test]
    fn a_full_table_closes_the_oldest_window_early_and_loses_no_count() {
        let (policy, verdict, now) = setup();
        let mut agg = Aggregator::new(60_000);
        let mut closed = Vec::new();
        let names: Vec<String> = (0..=MAX_PENDING).map(|i| format!("h{i}.kaspersky.com")).collect();
        assert!(sight(&mut agg, &policy, sighting(&verdict, "10.0.0.1", &names[0], now), &mut closed));
        assert!(!sight(&mut agg, &policy, sighting(&verdict, "10.0.0.1", &names[0], now + 1), &mut closed));
        for name in &names[1..] {
            assert!(sight(&mut agg, &policy, sighting(&verdict, "10.0.0.1", name, now + 2), &mut closed));
        }
        assert_eq!(agg.len(), MAX_PENDING);
        assert_eq!(closed.len(), 1);
        assert_eq!((closed[0].contact.name.as_deref(), closed[0].count), (Some(names[0].as_str()), 1));
        let mut rest = Vec::new();
        agg.close_all(&mut rest);
        assert!(rest.is_empty() && agg.is_empty());
    }
}
