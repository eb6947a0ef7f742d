//! `hosts`: one row per client address with first and last contact,
//! contacts after the prohibition, categories, layers, top names and (with
//! leases) the machines that held the address. Sorted so the clients that
//! most likely still run the vendor's software come first.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;

use hashbrown::HashMap;
use serde::Serialize;

use super::leases::Leases;
use super::rec::{Filter, Rec, millis};
use super::{Reading, ReviewError, ScanStats, bump_by, scan};

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

    /// Counts one contact, as read by [`Part::add`].
    fn add(&mut self, c: &Contact, strings: &[Box<str>]) {
        let text = |i: u32| strings.get(i as usize).map_or("", |s| s);
        let ts = c.ts.as_str();
        let n = c.attempts;
        self.contacts += n;
        if ts < self.first_contact.as_str() {
            self.first_contact = ts.to_owned();
        }
        if ts > self.last_contact.as_str() {
            self.last_contact.clear();
            self.last_contact.push_str(ts);
        }
        let category = text(c.category);
        if c.after {
            self.after_prohibition += n;
            self.software_after_prohibition += if BROWSING.contains(&category) { 0 } else { n };
        }
        match text(c.action) {
            "block" => self.blocked += n,
            "monitor" => self.monitored += n,
            _ => {}
        }
        bump_by(&mut self.categories, category, n);
        bump_by(&mut self.layers, text(c.layer), n);
        let gateway = text(c.gateway);
        if !self.gateways.contains(gateway) {
            self.gateways.insert(gateway.to_owned());
        }
        let name = text(c.name);
        let key = if self.names.len() >= NAMES_PER_CLIENT && !self.names.contains_key(name) { "(other)" } else { name };
        match self.names.get_mut(key) {
            Some(v) => *v += n,
            None => {
                self.names.insert(key.to_owned(), n);
            }
        }
        if let Some((hostname, mac)) = c.machine {
            let m = Machine { hostname: text(hostname).to_owned(), mac: text(mac).to_owned() };
            if !self.machines.contains(&m) {
                self.machines.push(m);
            }
        }
    }

    fn finish(&mut self) {
        let mut names: Vec<(String, u64)> = self.names.drain().collect();
        names.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        names.truncate(TOP_NAMES);
        self.top_names = names;
    }
}

/// A contact's canonical `ts`: inline when 24 bytes (always, but for years
/// past 9999), so a contact allocates nothing.
enum Ts {
    Inline([u8; 24]),
    Heap(Box<str>),
}

impl Ts {
    fn new(ts: &str) -> Ts {
        match <[u8; 24]>::try_from(ts.as_bytes()) {
            Ok(bytes) => Ts::Inline(bytes),
            Err(_) => Ts::Heap(ts.into()),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // 24 bytes of a `str`, which the canonical form keeps ASCII.
            Ts::Inline(bytes) => std::str::from_utf8(bytes).unwrap_or_default(),
            Ts::Heap(s) => s,
        }
    }
}

/// One kept contact, read on a worker; its texts are indices into the
/// chunk's [`Part::strings`] (a chunk has few distinct ones).
struct Contact {
    client: IpAddr,
    ts: Ts,
    after: bool,
    category: u32,
    action: u32,
    layer: u32,
    gateway: u32,
    name: u32,
    /// Attempts the record stands for (its `count`).
    attempts: u64,
    /// Hostname and MAC of the lease that held `client` then.
    machine: Option<(u32, u32)>,
}

/// The kept contacts of one chunk, in order. Counting them into rows is
/// left to the calling thread, in file order, so rows come out exactly as
/// when counting line by line (the 256-names cap depends on order).
#[derive(Default)]
struct Part {
    contacts: Vec<Contact>,
    strings: Vec<Box<str>>,
    index: HashMap<Box<str>, u32>,
}

impl Part {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.strings.len() as u32;
        self.strings.push(s.into());
        self.index.insert(s.into(), i);
        i
    }

    fn add(&mut self, r: &Rec<'_>, ts: &str, client: IpAddr, after: bool, leases: Option<&Leases>) {
        let machine = leases.and_then(|l| l.at(client, millis(ts).unwrap_or(0)));
        let contact = Contact {
            client,
            ts: Ts::new(ts),
            after,
            category: self.intern(r.category.as_deref().unwrap_or("-")),
            action: self.intern(r.action.as_deref().unwrap_or("")),
            layer: self.intern(r.layer.as_deref().unwrap_or("-")),
            gateway: self.intern(&r.host),
            name: self.intern(r.name.as_deref().or(r.dst.as_ref().map(|_| "(ip)")).unwrap_or("-")),
            attempts: r.attempts(),
            machine: machine.map(|m| (self.intern(&m.hostname), self.intern(&m.mac))),
        };
        self.contacts.push(contact);
    }
}

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
        part.add(r, ts, client, prohibition.is_some_and(|p| ts >= p), leases);
    };
    let mut rows: HashMap<IpAddr, HostRow> = HashMap::new();
    let input = scan(paths, reading, Part::default, add, |part| {
        for c in &part.contacts {
            let row = rows.entry(c.client).or_insert_with(|| HostRow::new(c.client, c.ts.as_str()));
            row.add(c, &part.strings);
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
