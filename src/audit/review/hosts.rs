//! `hosts`: one row per client address with first and last contact,
//! contacts after the prohibition, categories, layers, top names and (with
//! leases) the machines that held the address. Sorted so the clients that
//! most likely still run the vendor's software come first.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;

use hashbrown::HashMap;
use hashbrown::hash_map::Entry;
use serde::Serialize;

use super::leases::Leases;
use super::rec::{Filter, Rec, millis};
use super::{Reading, ReviewError, ScanStats, add_counts, bump, scan};

/// Distinct names kept per client; more are counted under `other`.
const NAMES_PER_CLIENT: usize = 256;
/// Names shown per client.
pub const TOP_NAMES: usize = 3;
/// Categories that are browsing, not installed software.
const BROWSING: &[&str] = &["web"];

#[derive(Clone, Debug, Serialize)]
pub struct HostRow {
    pub client: IpAddr,
    pub first_contact: String,
    pub last_contact: String,
    pub contacts: u64,
    pub after_prohibition: u64,
    /// Contacts after the prohibition in software categories (not `web`).
    pub software_after_prohibition: u64,
    pub blocked: u64,
    pub monitored: u64,
    pub categories: BTreeMap<String, u64>,
    pub layers: BTreeMap<String, u64>,
    pub top_names: Vec<(String, u64)>,
    pub gateways: BTreeSet<String>,
    /// Machines that held the address at contact times (from `--leases`).
    pub machines: Vec<Machine>,
    #[serde(skip)]
    names: HashMap<String, u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Machine {
    pub hostname: String,
    pub mac: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Hosts {
    pub prohibition: Option<String>,
    pub rows: Vec<HostRow>,
    pub input: ScanStats,
}

impl HostRow {
    fn new(client: IpAddr, ts: &str) -> HostRow {
        HostRow {
            client,
            first_contact: ts.to_owned(),
            last_contact: ts.to_owned(),
            contacts: 0,
            after_prohibition: 0,
            software_after_prohibition: 0,
            blocked: 0,
            monitored: 0,
            categories: BTreeMap::new(),
            layers: BTreeMap::new(),
            top_names: Vec::new(),
            gateways: BTreeSet::new(),
            machines: Vec::new(),
            names: HashMap::new(),
        }
    }

    /// Counts one contact; its name goes to `names` (see [`Part`]).
    fn add(&mut self, names: &mut PartNames, r: &Rec<'_>, ts: &str, after: bool) {
        self.contacts += 1;
        self.widen(ts, ts);
        let category = r.category.as_deref().unwrap_or("-");
        if after {
            self.after_prohibition += 1;
            self.software_after_prohibition += u64::from(!BROWSING.contains(&category));
        }
        match r.action.as_deref() {
            Some("block") => self.blocked += 1,
            Some("monitor") => self.monitored += 1,
            _ => {}
        }
        bump(&mut self.categories, category);
        bump(&mut self.layers, r.layer.as_deref().unwrap_or("-"));
        if !self.gateways.contains(r.host.as_ref()) {
            self.gateways.insert(r.host.clone().into_owned());
        }
        let name = r.name.as_deref().or(r.dst.as_ref().map(|_| "(ip)")).unwrap_or("-");
        match names.get_mut(name) {
            Some((_, n)) => *n += 1,
            None => {
                let first = names.len();
                names.insert(name.to_owned(), (first, 1));
            }
        }
    }

    fn widen(&mut self, first: &str, last: &str) {
        if first < self.first_contact.as_str() {
            self.first_contact.clear();
            self.first_contact.push_str(first);
        }
        if last > self.last_contact.as_str() {
            self.last_contact.clear();
            self.last_contact.push_str(last);
        }
    }

    /// Adds the counts of the same client from later lines. Names are
    /// taken in the order they first appeared there, so the first
    /// [`NAMES_PER_CLIENT`] distinct names are the same as when counting
    /// line by line; the rest count under `(other)`.
    fn merge(&mut self, later: HostRow, names: PartNames) {
        self.contacts += later.contacts;
        self.widen(&later.first_contact, &later.last_contact);
        self.after_prohibition += later.after_prohibition;
        self.software_after_prohibition += later.software_after_prohibition;
        self.blocked += later.blocked;
        self.monitored += later.monitored;
        add_counts(&mut self.categories, later.categories);
        add_counts(&mut self.layers, later.layers);
        self.gateways.extend(later.gateways);
        for m in later.machines {
            if !self.machines.contains(&m) {
                self.machines.push(m);
            }
        }
        self.add_names(names);
    }

    fn add_names(&mut self, names: PartNames) {
        if self.names.len() + names.len() <= NAMES_PER_CLIENT {
            // No name can find the list full: order does not matter.
            for (name, (_, n)) in names {
                *self.names.entry(name).or_default() += n;
            }
            return;
        }
        let mut names: Vec<(String, (usize, u64))> = names.into_iter().collect();
        names.sort_unstable_by_key(|(_, (first, _))| *first);
        for (name, (_, n)) in names {
            let full = self.names.len() >= NAMES_PER_CLIENT && !self.names.contains_key(&name);
            let key = if full { "(other)".to_owned() } else { name };
            *self.names.entry(key).or_default() += n;
        }
    }

    fn finish(&mut self) {
        let mut names: Vec<(String, u64)> = self.names.drain().collect();
        names.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        names.truncate(TOP_NAMES);
        self.top_names = names;
    }
}

/// A client's names in some lines: count, and order of first appearance.
type PartNames = HashMap<String, (usize, u64)>;

/// The rows of some lines; `names` stay in `PartNames` until merged.
type Part = HashMap<IpAddr, (HostRow, PartNames)>;

/// One row per client of the contacts `filter` keeps.
pub fn hosts(
    paths: &[PathBuf],
    prohibition: Option<&str>,
    filter: &Filter,
    leases: Option<&Leases>,
) -> Result<Hosts, ReviewError> {
    hosts_with(paths, prohibition, filter, leases, Reading::auto())
}

/// [`hosts`], reading as `reading` says.
pub fn hosts_with(
    paths: &[PathBuf],
    prohibition: Option<&str>,
    filter: &Filter,
    leases: Option<&Leases>,
    reading: Reading,
) -> Result<Hosts, ReviewError> {
    let add = |part: &mut Part, r: &Rec<'_>, ts: &str, _: &[u8]| {
        let Some(client) = r.client.filter(|_| filter.keep(r, ts)) else { return };
        let (row, names) = part.entry(client).or_insert_with(|| (HostRow::new(client, ts), HashMap::new()));
        row.add(names, r, ts, prohibition.is_some_and(|p| ts >= p));
        if let Some(lease) = leases.and_then(|l| l.at(client, millis(ts).unwrap_or(0))) {
            let m = Machine { hostname: lease.hostname.clone(), mac: lease.mac.clone() };
            if !row.machines.contains(&m) {
                row.machines.push(m);
            }
        }
    };
    let mut rows: HashMap<IpAddr, HostRow> = HashMap::new();
    let input = scan(paths, reading, Part::new, add, |part| {
        for (client, (row, names)) in part {
            match rows.entry(client) {
                Entry::Occupied(mut e) => e.get_mut().merge(row, names),
                Entry::Vacant(e) => e.insert(row).add_names(names),
            }
        }
        true
    })?;
    let mut rows: Vec<HostRow> = rows.into_values().collect();
    for row in &mut rows {
        row.finish();
        row.machines.sort();
    }
    // Sorts positions, not the rows themselves (a few hundred bytes each).
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_unstable_by(|&a, &b| {
        let (a, b) = (&rows[a], &rows[b]);
        rank(b).cmp(&rank(a)).then_with(|| a.client.cmp(&b.client))
    });
    let mut slots: Vec<Option<HostRow>> = rows.into_iter().map(Some).collect();
    let rows = order.into_iter().filter_map(|i| slots[i].take()).collect();
    Ok(Hosts { prohibition: prohibition.map(str::to_owned), rows, input })
}

/// Software contacts after the prohibition first, then the most recent
/// last contact, then the most contacts after the prohibition.
fn rank(r: &HostRow) -> (bool, bool, &str, u64) {
    let software = r.software_after_prohibition > 0;
    (software, r.after_prohibition > 0, r.last_contact.as_str(), r.after_prohibition)
}
