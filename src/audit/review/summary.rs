//! `summary`: time range, counts per type, phase, category, layer, action
//! and gateway, distinct clients, and contacts after the prohibition
//! instant. Fixed-size aggregates plus one set of client addresses.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;

use serde::Serialize;

use super::rec::Rec;
use super::{ReviewError, ScanStats, bump, scan};

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

fn widen(range: &mut (Option<String>, Option<String>), ts: &str) {
    if range.0.as_deref().is_none_or(|f| ts < f) {
        range.0 = Some(ts.to_owned());
    }
    if range.1.as_deref().is_none_or(|l| ts > l) {
        range.1 = Some(ts.to_owned());
    }
}

/// Reads `paths` once. `prohibition`: canonical instant, if known.
pub fn summarize(paths: &[PathBuf], prohibition: Option<&str>) -> Result<Summary, ReviewError> {
    let mut s = Summary { prohibition: prohibition.map(str::to_owned), ..Summary::default() };
    let (mut range, mut contact_range) = ((None, None), (None, None));
    let (mut clients, mut after_clients) = (HashSet::<IpAddr>::new(), HashSet::<IpAddr>::new());
    s.input = scan(paths, |r: &Rec<'_>, ts: &str, _: &[u8]| {
        s.records += 1;
        widen(&mut range, ts);
        bump(&mut s.by_type, &r.kind);
        if !r.is_contact() {
            return;
        }
        s.contacts += 1;
        widen(&mut contact_range, ts);
        bump(&mut s.by_gateway, &r.host);
        for (map, v) in [
            (&mut s.by_phase, &r.phase),
            (&mut s.by_category, &r.category),
            (&mut s.by_layer, &r.layer),
            (&mut s.by_action, &r.action),
        ] {
            bump(map, v.as_deref().unwrap_or("-"));
        }
        if let Some(c) = r.client {
            clients.insert(c);
        }
        if prohibition.is_some_and(|p| ts >= p) {
            s.contacts_after_prohibition += 1;
            if let Some(c) = r.client {
                after_clients.insert(c);
            }
        }
    })?;
    (s.first_ts, s.last_ts) = range;
    (s.first_contact, s.last_contact) = contact_range;
    (s.clients, s.clients_after_prohibition) = (clients.len(), after_clients.len());
    Ok(s)
}
