//! `hosts`: one row per client address with first and last contact,
//! contacts after the prohibition, categories, layers, top names and (with
//! leases) the machines that held the address. Sorted so the clients that
//! most likely still run the vendor's software come first.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;

use serde::Serialize;

use super::leases::Leases;
use super::rec::{Filter, Rec, millis};
use super::{ReviewError, ScanStats, bump, scan};

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

    fn add(&mut self, r: &Rec<'_>, ts: &str, after: bool) {
        self.contacts += 1;
        if ts < self.first_contact.as_str() {
            self.first_contact = ts.to_owned();
        }
        if ts > self.last_contact.as_str() {
            self.last_contact = ts.to_owned();
        }
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
        let key = if self.names.len() >= NAMES_PER_CLIENT && !self.names.contains_key(name) { "(other)" } else { name };
        *self.names.entry(key.to_owned()).or_default() += 1;
    }

    fn finish(&mut self) {
        let mut names: Vec<(String, u64)> = self.names.drain().collect();
        names.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        names.truncate(TOP_NAMES);
        self.top_names = names;
    }
}

/// One row per client of the contacts `filter` keeps.
pub fn hosts(
    paths: &[PathBuf],
    prohibition: Option<&str>,
    filter: &Filter,
    leases: Option<&Leases>,
) -> Result<Hosts, ReviewError> {
    let mut rows: HashMap<IpAddr, HostRow> = HashMap::new();
    let input = scan(paths, |r: &Rec<'_>, ts: &str, _: &[u8]| {
        let Some(client) = r.client.filter(|_| filter.keep(r, ts)) else { return };
        let row = rows.entry(client).or_insert_with(|| HostRow::new(client, ts));
        row.add(r, ts, prohibition.is_some_and(|p| ts >= p));
        if let Some(lease) = leases.and_then(|l| l.at(client, millis(ts).unwrap_or(0))) {
            let m = Machine { hostname: lease.hostname.clone(), mac: lease.mac.clone() };
            if !row.machines.contains(&m) {
                row.machines.push(m);
            }
        }
    })?;
    let mut rows: Vec<HostRow> = rows.into_values().collect();
    for row in &mut rows {
        row.finish();
        row.machines.sort();
    }
    rows.sort_by(|a, b| rank(b).cmp(&rank(a)).then_with(|| a.client.cmp(&b.client)));
    Ok(Hosts { prohibition: prohibition.map(str::to_owned), rows, input })
}

/// Software contacts after the prohibition first, then the most recent
/// last contact, then the most contacts after the prohibition.
fn rank(r: &HostRow) -> (bool, bool, &str, u64) {
    let software = r.software_after_prohibition > 0;
    (software, r.after_prohibition > 0, r.last_contact.as_str(), r.after_prohibition)
}
