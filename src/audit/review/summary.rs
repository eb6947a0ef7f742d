//! `summary`: time range, counts per type, phase, category, layer, action
//! and gateway, distinct clients, and contacts after the prohibition
//! instant. Fixed-size aggregates plus one set of client addresses.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use hashbrown::HashSet;
use serde::Serialize;

use super::rec::Rec;
use super::{Reading, ReviewError, ScanStats, add_counts, bump, bump_by, scan, set_text};

#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub records: u64,
    pub first_ts: Option<String>,
    pub last_ts: Option<String>,
    pub contacts: u64,
    pub first_contact: Option<String>,
    pub last_contact: Option<String>,
    /// The prohibition instant used for `contacts_after_prohibition`.
    pub prohibition: Option<String>,
    pub contacts_after_prohibition: u64,
    pub clients: usize,
    pub clients_after_prohibition: usize,
    pub by_type: BTreeMap<String, u64>,
    pub by_gateway: BTreeMap<String, u64>,
    pub by_phase: BTreeMap<String, u64>,
    pub by_category: BTreeMap<String, u64>,
    pub by_layer: BTreeMap<String, u64>,
    pub by_action: BTreeMap<String, u64>,
    pub input: ScanStats,
}

/// First and last instant seen.
type Range = (Option<String>, Option<String>);

fn widen(range: &mut Range, ts: &str) {
    if range.0.as_deref().is_none_or(|f| ts < f) {
        set_text(&mut range.0, ts);
    }
    if range.1.as_deref().is_none_or(|l| ts > l) {
        set_text(&mut range.1, ts);
    }
}

/// The counts of some lines; the tallies of consecutive chunks add up.
#[derive(Default)]
struct Tally {
    /// `input` stays empty here; `range`s and client sets are separate.
    s: Summary,
    range: Range,
    contact_range: Range,
    clients: HashSet<IpAddr>,
    after_clients: HashSet<IpAddr>,
}

impl Tally {
    fn add(&mut self, r: &Rec<'_>, ts: &str, prohibition: Option<&str>) {
        let s = &mut self.s;
        s.records += 1;
        widen(&mut self.range, ts);
        bump(&mut s.by_type, &r.kind);
        if !r.is_contact() {
            return;
        }
        let n = r.attempts();
        s.contacts += n;
        widen(&mut self.contact_range, ts);
        if r.last_ts.is_some() {
            widen(&mut self.contact_range, &r.last_seen(ts));
        }
        bump_by(&mut s.by_gateway, &r.host, n);
        for (map, v) in [
            (&mut s.by_phase, &r.phase),
            (&mut s.by_category, &r.category),
            (&mut s.by_layer, &r.layer),
            (&mut s.by_action, &r.action),
        ] {
            bump_by(map, v.as_deref().unwrap_or("-"), n);
        }
        if let Some(c) = r.client {
            self.clients.insert(c);
        }
        if prohibition.is_some_and(|p| ts >= p) {
            s.contacts_after_prohibition += n;
            if let Some(c) = r.client {
                self.after_clients.insert(c);
            }
        }
    }

    fn merge(&mut self, later: Tally) {
        let (s, l) = (&mut self.s, later.s);
        s.records += l.records;
        s.contacts += l.contacts;
        s.contacts_after_prohibition += l.contacts_after_prohibition;
        for (map, more) in [
            (&mut s.by_type, l.by_type),
            (&mut s.by_gateway, l.by_gateway),
            (&mut s.by_phase, l.by_phase),
            (&mut s.by_category, l.by_category),
            (&mut s.by_layer, l.by_layer),
            (&mut s.by_action, l.by_action),
        ] {
            add_counts(map, more);
        }
        for (range, more) in [(&mut self.range, later.range), (&mut self.contact_range, later.contact_range)] {
            for ts in [more.0, more.1].iter().flatten() {
                widen(range, ts);
            }
        }
        self.clients.extend(later.clients);
        self.after_clients.extend(later.after_clients);
    }
}

/// Reads `paths` once. `prohibition`: canonical instant, if known.
pub fn summarize(paths: &[PathBuf], prohibition: Option<&str>) -> Result<Summary, ReviewError> {
    summarize_with(paths, prohibition, Reading::auto())
}

/// [`summarize`], reading as `reading` says.
pub fn summarize_with(paths: &[PathBuf], prohibition: Option<&str>, reading: Reading) -> Result<Summary, ReviewError> {
    let mut all = Tally::default();
    let add = |t: &mut Tally, r: &Rec<'_>, ts: &str, _: &[u8]| t.add(r, ts, prohibition);
    let input = scan(paths, reading, Tally::default, add, |t| {
        all.merge(t);
        true
    })?;
    let mut s = all.s;
    s.input = input;
    s.prohibition = prohibition.map(str::to_owned);
    (s.first_ts, s.last_ts) = all.range;
    (s.first_contact, s.last_contact) = all.contact_range;
    (s.clients, s.clients_after_prohibition) = (all.clients.len(), all.after_clients.len());
    Ok(s)
}
