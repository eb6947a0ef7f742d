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
//! handler's closure, only for a first sighting) in one table slot with
//! what a repeat is compared on, and a queue of the windows in closing
//! order; submitting is the handler's. Bounded: when [`MAX_PENDING`]
//! contacts are open, the oldest window is closed early.

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

use hashbrown::HashTable;
use hickory_proto::rr::RecordType;

use super::SLOT_TABLE_ENTRIES;
use crate::audit::{Contact, Repeats};
use crate::policy::{Action, CategoryId, PhaseId, Policy, RuleId, Verdict};

/// Most contacts with an open window at once (see [`SLOT_TABLE_ENTRIES`]).
pub const MAX_PENDING: usize = SLOT_TABLE_ENTRIES;
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

/// Longest name an open window keeps beside its counts (longer ones are
/// compared in the event).
const NAME_INLINE: usize = 34;
/// `name_len` of a window without a name, and of one with a longer name.
const NO_NAME: u8 = u8::MAX;
const LONG_NAME: u8 = u8::MAX - 1;

/// A contact with an open window, in its table slot: the first sighting's
/// event (shared with the audit writer), the repeats counted since, and
/// what tells the contact apart from others, so that a repeat is counted
/// from this one slot (two cache lines) without reading the event behind
/// its `Arc`: every further pointer a lookup follows is one more likely
/// cache miss per blocked query.
#[repr(align(64))]
struct Open {
    hash: u64,
    /// Which window of the contact this is: the due queue names it by it.
    seq: u64,
    contact: Arc<Contact>,
    count: u64,
    first_ms: i64,
    last_ms: i64,
    /// Address of the deciding policy (held alive by `contact`).
    policy: usize,
    /// Client and type as the sighting was asked about (the event keeps
    /// the client in canonical form).
    client: IpAddr,
    qtype: RecordType,
    action: Action,
    matched: Option<(RuleId, CategoryId)>,
    phase: PhaseId,
    /// Whether the event has a `message` (the CNAME it came by).
    via: bool,
    /// The event's name when it fits, else [`NO_NAME`] or [`LONG_NAME`].
    name_len: u8,
    name: [u8; NAME_INLINE],
}

// Two cache lines, slot for slot (the table aligns its slots to `Open`).
const _: () = assert!(std::mem::size_of::<Open>() == 128);

impl Open {
    fn new(hash: u64, seq: u64, contact: Arc<Contact>, s: &Sighting<'_>) -> Open {
        let (mut name, mut name_len) = ([0; NAME_INLINE], NO_NAME);
        if let Some(n) = contact.name.as_deref() {
            name_len = LONG_NAME;
            if let Some(inline) = name.get_mut(..n.len()) {
                inline.copy_from_slice(n.as_bytes());
                name_len = n.len() as u8;
            }
        }
        let v = &contact.verdict;
        Open {
            hash,
            seq,
            policy: policy_addr(&contact.policy),
            client: s.client,
            qtype: s.qtype,
            action: v.action,
            matched: v.matched,
            phase: v.phase,
            via: contact.message.is_some(),
            name_len,
            name,
            contact,
            count: 0,
            first_ms: s.now,
            last_ms: s.now,
        }
    }

    fn is(&self, policy: &Arc<Policy>, s: &Sighting<'_>) -> bool {
        self.client == s.client
            && self.qtype == s.qtype
            && self.action == s.verdict.action
            && self.matched == s.verdict.matched
            && self.phase == s.verdict.phase
            && self.policy == policy_addr(policy)
            && self.via == s.via.is_some()
            && self.has_name(s.name)
            && (!self.via || self.contact.message.as_deref() == s.via)
    }

    /// Whether the event's name is `name`, read from the slot when it fits.
    fn has_name(&self, name: Option<&str>) -> bool {
        match self.name_len {
            NO_NAME => name.is_none(),
            LONG_NAME => self.contact.name.as_deref() == name,
            len => name.is_some_and(|n| self.name.get(..usize::from(len)) == Some(n.as_bytes())),
        }
    }
}

fn policy_addr(policy: &Arc<Policy>) -> usize {
    Arc::as_ptr(policy) as *const () as usize
}

/// A window in closing order: which contact (its hash) and which of its
/// windows, and when it closes.
struct Due {
    hash: u64,
    seq: u64,
    closes: i64,
}

/// The open windows: one table slot each, and a queue in closing order
/// (every window is as long, so the order they opened in).
pub struct Aggregator {
    window_ms: i64,
    hasher: hashbrown::DefaultHashBuilder,
    open: HashTable<Open>,
    due: VecDeque<Due>,
    /// `seq` of the next window.
    next_seq: u64,
}

impl std::fmt::Debug for Aggregator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aggregator").field("window_ms", &self.window_ms).field("open", &self.due.len()).finish()
    }
}

impl Aggregator {
    /// `window_ms` 0: nothing is aggregated, every sighting is a first one.
    pub fn new(window_ms: u64) -> Aggregator {
        Aggregator {
            window_ms: i64::try_from(window_ms).unwrap_or(i64::MAX),
            hasher: hashbrown::DefaultHashBuilder::default(),
            open: HashTable::new(),
            due: VecDeque::new(),
            next_seq: 0,
        }
    }

    /// Contacts with an open window.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.due.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.due.is_empty()
    }

    fn hash(&self, policy: &Arc<Policy>, s: &Sighting<'_>) -> u64 {
        let mut h = self.hasher.build_hasher();
        policy_addr(policy).hash(&mut h);
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
        if let Some(o) = self.open.find_mut(hash, |o| o.is(policy, &s)) {
            if o.count == 0 {
                o.first_ms = s.now;
            }
            o.count += 1;
            o.last_ms = o.last_ms.max(s.now);
            return None;
        }
        if self.due.len() >= MAX_PENDING {
            self.close_oldest(closed);
        }
        let contact = Arc::new(make());
        let open = Open::new(hash, self.next_seq, Arc::clone(&contact), &s);
        self.open_window(open, s.now);
        Some(contact)
    }

    /// Puts `o` in the table and its window, from `now`, in the queue.
    fn open_window(&mut self, o: Open, now: i64) {
        self.due.push_back(Due { hash: o.hash, seq: o.seq, closes: now.saturating_add(self.window_ms) });
        self.next_seq += 1;
        self.open.insert_unique(o.hash, o, |o| o.hash);
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
        self.due.front().is_some_and(|d| d.closes <= now)
    }

    /// When the next window closes (`i64::MAX`: none is open).
    pub fn next_due(&self) -> i64 {
        self.due.front().map_or(i64::MAX, |d| d.closes)
    }

    /// Closes every window (shutdown).
    pub fn close_all(&mut self, closed: &mut Vec<Repeats>) {
        while !self.due.is_empty() {
            self.close_oldest(closed);
        }
    }

    /// Closes the oldest window; its repeats go to `closed`. Returns it
    /// when it had any, for [`Aggregator::reopen`].
    fn close_oldest(&mut self, closed: &mut Vec<Repeats>) -> Option<Open> {
        let d = self.due.pop_front()?;
        let o = self.open.find_entry(d.hash, |o| o.seq == d.seq).ok()?.remove().0;
        (o.count > 0).then(|| {
            closed.push(Repeats {
                contact: Arc::clone(&o.contact),
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
        let next = Open { seq: self.next_seq, count: 0, ..o };
        self.open_window(next, now);
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
        // Short, as long as a window keeps beside its counts and one byte
        // longer, long and the longest a name can be; each its own letter,
        // so no name is another's tail.
        let names: Vec<String> =
            [(21, "a"), (NAME_INLINE, "e"), (NAME_INLINE + 1, "f"), (62, "b"), (63, "c"), (253, "d")]
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
            // So is one that differs only in the byte before the zone.
            let other = format!("{}x.kaspersky.com", &name[..name.len() - ".kaspersky.com".len() - 1]);
            assert!(sight(&mut agg, &policy, sighting(&verdict, "10.0.0.1", &other, now), &mut closed));
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

    /// What a window compares when two sightings share a hash: every byte
    /// of the name, kept in the slot or (longer) in the event.
    #[test]
    fn a_window_tells_names_apart_by_every_byte_in_its_slot_or_its_event() {
        let (policy, verdict, now) = setup();
        for len in [1, 21, NAME_INLINE - 1, NAME_INLINE, NAME_INLINE + 1, 253] {
            let name = "k".repeat(len);
            let s = sighting(&verdict, "10.0.0.1", &name, now);
            let contact = Arc::new(
                Contact::new(Arc::clone(&policy), verdict, now, s.client, crate::audit::Layer::Dns).with_name(&name),
            );
            let open = Open::new(7, 0, contact, &s);
            assert!(open.is(&policy, &s), "{len} bytes: the same name");
            for at in [0, len / 2, len - 1] {
                let mut other = name.clone().into_bytes();
                other[at] = b'x';
                let other = String::from_utf8(other).unwrap();
                assert!(!open.is(&policy, &Sighting { name: Some(&other), ..s }), "{len} bytes, byte {at} differs");
            }
            assert!(!open.is(&policy, &Sighting { name: Some(&name[1..]), ..s }), "{len} bytes: one fewer");
            let longer = format!("{name}k");
            assert!(!open.is(&policy, &Sighting { name: Some(&longer), ..s }), "{len} bytes: one more");
            assert!(!open.is(&policy, &Sighting { name: None, ..s }), "{len} bytes: no name");
        }
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
