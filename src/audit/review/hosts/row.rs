//! The rows `hosts` reports. Each merging thread writes all of its rows,
//! in rank order, into one [`Block`]: their instants and sums, and every
//! row's counts, top names, gateways and machines as runs of text ids in
//! two shared arrays. A [`HostRow`] is a handle (the block and a line
//! number, 16 bytes), so making the report's rows allocates nothing per
//! row, and dropping them frees a few arrays per block, not allocations
//! per row. Merging the blocks' rows into the report's order compares
//! lines and copies handles.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use serde::ser::{Serialize, SerializeStruct, Serializer};

use super::{Sums, Text, Ts, rank};

/// One merger's reported rows, in rank order, and everything they show.
pub(super) struct Block {
    /// The merger's texts, by id.
    pub(super) texts: Vec<Text>,
    pub(super) lines: Vec<Line>,
    /// (text id, attempts) of every line: its categories, layers (each
    /// sorted by text), top names (ranked) and gateways (sorted, attempts
    /// unused), one run after another.
    pub(super) entries: Vec<(u32, u64)>,
    /// (hostname id, MAC id) of every line's machines, sorted by text.
    pub(super) machines: Vec<(u32, u32)>,
}

/// One reported row in its [`Block`].
pub(super) struct Line {
    pub(super) client: IpAddr,
    pub(super) first: Ts,
    pub(super) last: Ts,
    pub(super) sums: Sums,
    /// Its runs in [`Block::entries`] start here.
    pub(super) at: usize,
    /// Lengths of its runs: categories, layers, top names, gateways (a
    /// run has at most one entry per text id, a `u32`).
    pub(super) runs: [u32; 4],
    /// Its machines in [`Block::machines`].
    pub(super) machines_at: usize,
    pub(super) machines: u32,
}

impl Block {
    fn text(&self, id: u32) -> &str {
        self.texts.get(id as usize).map_or("", Text::as_str)
    }
}

/// Whether line `a` comes before `b` in the report (as [`super::Rows`]
/// ranks).
fn before(a: &Line, b: &Line) -> bool {
    let (ra, rb) =
        (rank(a.sums.software_after, a.sums.after, &a.last), rank(b.sums.software_after, b.sums.after, &b.last));
    rb.cmp(&ra).then_with(|| a.client.cmp(&b.client)).is_lt()
}

/// The report's rows: the blocks' lines (each block ranked, of distinct
/// clients) merged into one ranked list of handles.
pub(super) fn merge_ranked(blocks: Vec<Block>) -> Vec<HostRow> {
    let blocks: Vec<Arc<Block>> = blocks.into_iter().map(Arc::new).collect();
    let total = blocks.iter().map(|b| b.lines.len()).sum();
    let mut heads = vec![0usize; blocks.len()];
    let mut out = Vec::with_capacity(total);
    loop {
        let mut best: Option<(usize, &Line)> = None;
        for (i, (block, &at)) in blocks.iter().zip(&heads).enumerate() {
            let Some(line) = block.lines.get(at) else { continue };
            if best.is_none_or(|(_, b)| before(line, b)) {
                best = Some((i, line));
            }
        }
        let Some((i, _)) = best else { return out };
        if let (Some(block), Some(at)) = (blocks.get(i), heads.get_mut(i)) {
            out.push(HostRow { block: Arc::clone(block), at: *at });
            *at += 1;
        }
    }
}

/// One client's row of the report: first and last contact, sums, counts
/// per category and layer, top names, gateways and machines. A handle
/// into the rows of one merging thread (which it keeps alive).
#[derive(Clone)]
pub struct HostRow {
    block: Arc<Block>,
    /// Its line in the block (there is one: rows are made for lines).
    at: usize,
}

impl HostRow {
    fn line(&self) -> &Line {
        &self.block.lines[self.at]
    }

    /// The run `n` (see [`Line::runs`]) of its entries.
    fn run(&self, n: usize) -> &[(u32, u64)] {
        let line = self.line();
        let start = line.at + line.runs.iter().take(n).map(|&l| l as usize).sum::<usize>();
        let len = line.runs.get(n).map_or(0, |&l| l as usize);
        self.block.entries.get(start..start + len).unwrap_or_default()
    }

    fn counts(&self, n: usize) -> Counts<'_> {
        Counts { block: &self.block, entries: self.run(n) }
    }

    pub fn client(&self) -> IpAddr {
        self.line().client
    }

    /// Canonical instant (`2024-09-29T04:00:01.123Z`).
    pub fn first_contact(&self) -> &str {
        self.line().first.as_str()
    }

    pub fn last_contact(&self) -> &str {
        self.line().last.as_str()
    }

    pub fn contacts(&self) -> u64 {
        self.line().sums.contacts
    }

    pub fn after_prohibition(&self) -> u64 {
        self.line().sums.after
    }

    /// Contacts after the prohibition in software categories (not `web`).
    pub fn software_after_prohibition(&self) -> u64 {
        self.line().sums.software_after
    }

    pub fn blocked(&self) -> u64 {
        self.line().sums.blocked
    }

    pub fn monitored(&self) -> u64 {
        self.line().sums.monitored
    }

    pub fn categories(&self) -> Counts<'_> {
        self.counts(0)
    }

    pub fn layers(&self) -> Counts<'_> {
        self.counts(1)
    }

    /// The names most attempted (at most [`super::TOP_NAMES`]), most
    /// first, then by text.
    pub fn top_names(&self) -> impl Iterator<Item = (&str, u64)> + Clone {
        self.run(2).iter().map(|&(id, n)| (self.block.text(id), n))
    }

    /// Sorted, each once.
    pub fn gateways(&self) -> impl Iterator<Item = &str> + Clone {
        self.run(3).iter().map(|&(id, _)| self.block.text(id))
    }

    /// Machines that held the address at contact times (from `--leases`),
    /// sorted, each once.
    pub fn machines(&self) -> impl Iterator<Item = Machine<'_>> + Clone {
        let line = self.line();
        let start = line.machines_at;
        let run = self.block.machines.get(start..start + line.machines as usize).unwrap_or_default();
        run.iter().map(|&(h, m)| Machine { hostname: self.block.text(h), mac: self.block.text(m) })
    }
}

/// A machine (from a lease) that held a client's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Machine<'a> {
    pub hostname: &'a str,
    pub mac: &'a str,
}

/// Attempts per text, sorted by text, each text once: what a
/// `BTreeMap<String, u64>` holds, and serialized as one (a JSON object).
#[derive(Clone, Copy)]
pub struct Counts<'a> {
    block: &'a Block,
    entries: &'a [(u32, u64)],
}

impl<'a> Counts<'a> {
    /// (text, attempts) in text order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, u64)> + Clone + use<'a> {
        let block = self.block;
        self.entries.iter().map(move |&(id, n)| (block.text(id), n))
    }

    pub fn get(&self, key: &str) -> Option<u64> {
        let i = self.entries.binary_search_by(|&(id, _)| self.block.text(id).cmp(key)).ok()?;
        self.entries.get(i).map(|e| e.1)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Serialize for Counts<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl fmt::Debug for Counts<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// A list serialized from an iterator (a JSON array).
struct Listed<I>(I);

impl<I: Iterator + Clone> Serialize for Listed<I>
where
    I::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.clone())
    }
}

/// The row as an object of its fields, in the order of the report's JSON.
impl Serialize for HostRow {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut row = s.serialize_struct("HostRow", 13)?;
        row.serialize_field("client", &self.client())?;
        row.serialize_field("first_contact", self.first_contact())?;
        row.serialize_field("last_contact", self.last_contact())?;
        row.serialize_field("contacts", &self.contacts())?;
        row.serialize_field("after_prohibition", &self.after_prohibition())?;
        row.serialize_field("software_after_prohibition", &self.software_after_prohibition())?;
        row.serialize_field("blocked", &self.blocked())?;
        row.serialize_field("monitored", &self.monitored())?;
        row.serialize_field("categories", &self.categories())?;
        row.serialize_field("layers", &self.layers())?;
        row.serialize_field("top_names", &Listed(self.top_names()))?;
        row.serialize_field("gateways", &Listed(self.gateways()))?;
        row.serialize_field("machines", &Listed(self.machines()))?;
        row.end()
    }
}

impl fmt::Debug for HostRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostRow")
            .field("client", &self.client())
            .field("first_contact", &self.first_contact())
            .field("last_contact", &self.last_contact())
            .field("contacts", &self.contacts())
            .field("after_prohibition", &self.after_prohibition())
            .field("software_after_prohibition", &self.software_after_prohibition())
            .field("blocked", &self.blocked())
            .field("monitored", &self.monitored())
            .field("categories", &self.categories())
            .field("layers", &self.layers())
            .field("top_names", &self.top_names().collect::<Vec<_>>())
            .field("gateways", &self.gateways().collect::<Vec<_>>())
            .field("machines", &self.machines().collect::<Vec<_>>())
            .finish()
    }
}
