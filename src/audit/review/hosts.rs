//! `hosts`: one row per client address with first and last contact,
//! contacts after the prohibition, categories, layers, top names and (with
//! leases) the machines that held the address. Sorted so the clients that
//! most likely still run the vendor's software come first.
//!
//! Worker threads sum each chunk's contacts per client ([`Part`]), names in
//! the order the chunk first shows them, split by client into one
//! [`Shard`] per merging thread; each merging thread adds its shards' sums
//! to its rows in file order, ranks them and writes them, in that order,
//! into one [`row::Block`] (reading on one thread: one shard, merged by the
//! calling thread); merged shards go back, emptied, to be filled again
//! ([`Spare`]). A merger finds a client's row through its [`Index`] (row
//! numbers by client hash: one slot read per lookup), all of a shard's
//! clients before any of their sums, and ranks by sorting compact keys
//! ([`Rank`]), not the rows. A row keeps its texts as ids into its
//! merger's string table ([`Rows`]); its block keeps them so, with every
//! row's counts, top names, gateways and machines in two shared arrays,
//! sorted by comparing each text's place in text order, not the texts. A
//! reported [`HostRow`] is a handle into a block, and the blocks' ranked
//! lines are merged into the report's order at the end: no allocation per
//! reported row, and dropping the rows frees a few arrays. Instants order
//! as their text: 24-byte ones (every year before 10000) as three
//! big-endian words, others byte by byte. Which names a row keeps (the
//! first 256; the rest under `(other)`) depends only on the order names
//! first appear, so the rows are exactly those of counting line by line.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::{Mutex, mpsc};

use hashbrown::hash_table::Entry;
use hashbrown::{DefaultHashBuilder, HashMap, HashTable};
use serde::Serialize;

mod row;

use row::{Block, Line, merge_ranked};
pub use row::{Counts, HostRow, Machine};

use super::leases::Leases;
use super::rec::{Filter, Rec, millis};
use super::{Reading, ReviewError, ScanStats, scan};

/// Distinct names kept per client; more are counted under `other`.
const NAMES_PER_CLIENT: usize = 256;
/// The name the names past [`NAMES_PER_CLIENT`] are counted under.
const OTHER: &str = "(other)";
/// Names shown per client.
pub const TOP_NAMES: usize = 3;
/// Categories that are browsing, not installed software.
const BROWSING: &[&str] = &["web"];
/// No entry (the end of a [`PartRow`]'s list).
const NONE: u32 = u32::MAX;
/// Entries of a [`PartRow`] found by walking its list; longer lists are
/// indexed.
const WALK: usize = 8;
/// Merging threads at most.
const MAX_SHARDS: usize = 8;
/// Shards queued per merging thread.
const MERGE_QUEUE: usize = 4;
/// Merged shards kept for reuse per merging thread (see [`Spare`]).
const SPARE_PER_MERGER: usize = 2 * MERGE_QUEUE;

/// A text of the rows (category, layer, gateway, name, hostname, MAC):
/// one allocation, shared by a merger's string list and its index.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Text(Arc<str>);

impl Text {
    fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        Text(s.into())
    }
}

impl Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Text {
    fn borrow(&self) -> &str {
        &self.0
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Hosts {
    pub prohibition: Option<String>,
    pub rows: Vec<HostRow>,
    pub input: ScanStats,
}

/// A contact's canonical `ts`: inline when 24 bytes (always, but for years
/// past 9999), so a contact allocates nothing. Instants compare as bytes,
/// which is how their text compares.
#[derive(Clone)]
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

    fn as_bytes(&self) -> &[u8] {
        match self {
            Ts::Inline(bytes) => bytes,
            Ts::Heap(s) => s.as_bytes(),
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

impl PartialEq for Ts {
    fn eq(&self, other: &Ts) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Ts {}

impl PartialOrd for Ts {
    fn partial_cmp(&self, other: &Ts) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ts {
    fn cmp(&self, other: &Ts) -> Ordering {
        order(self.as_bytes(), other.as_bytes())
    }
}

/// How two instants' texts compare (as bytes, exactly), without a call to
/// `memcmp` when both are 24 bytes long (every instant before year 10000):
/// as three big-endian words, whose order is the bytes' order.
fn order(a: &[u8], b: &[u8]) -> Ordering {
    match (<&[u8; 24]>::try_from(a), <&[u8; 24]>::try_from(b)) {
        (Ok(a), Ok(b)) => words(a).cmp(&words(b)),
        _ => a.cmp(b),
    }
}

/// 24 bytes as three big-endian words: they compare as the bytes do.
fn words(b: &[u8; 24]) -> [u64; 3] {
    let (w, _) = b.as_chunks::<8>();
    let word = |i: usize| w.get(i).map_or(0, |w| u64::from_be_bytes(*w));
    [word(0), word(1), word(2)]
}

/// The earliest and latest instant of some contacts.
#[derive(Clone)]
struct Span {
    first: Ts,
    last: Ts,
}

impl Span {
    fn new(ts: &str) -> Span {
        Span { first: Ts::new(ts), last: Ts::new(ts) }
    }

    fn widen(&mut self, ts: &str) {
        if order(ts.as_bytes(), self.first.as_bytes()).is_lt() {
            self.first = Ts::new(ts);
        }
        if order(ts.as_bytes(), self.last.as_bytes()).is_gt() {
            self.last = Ts::new(ts);
        }
    }

    fn join(&mut self, later: Span) {
        if later.first < self.first {
            self.first = later.first;
        }
        if later.last > self.last {
            self.last = later.last;
        }
    }
}

/// A client's counts that do not depend on order.
#[derive(Clone, Copy, Default)]
struct Sums {
    contacts: u64,
    after: u64,
    software_after: u64,
    blocked: u64,
    monitored: u64,
}

impl Sums {
    fn add(&mut self, later: &Sums) {
        self.contacts += later.contacts;
        self.after += later.after;
        self.software_after += later.software_after;
        self.blocked += later.blocked;
        self.monitored += later.monitored;
    }
}

/// What a text counted for a client is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Category = 0,
    Layer = 1,
    Gateway = 2,
    Name = 3,
    /// A lease's hostname, with its MAC beside it.
    Machine,
}

/// Distinct texts, each once, by id.
#[derive(Default)]
struct Strings {
    list: Vec<Text>,
    index: HashMap<Text, u32>,
}

impl Strings {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.list.len() as u32;
        let text = Text::from(s);
        self.list.push(text.clone());
        self.index.insert(text, i);
        i
    }

    fn text(&self, id: u32) -> &str {
        self.list.get(id as usize).map_or("", Text::as_str)
    }

    fn clear(&mut self) {
        self.list.clear();
        self.index.clear();
    }

    /// The place of each id's text in text order (texts are distinct).
    fn places(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = (0..self.list.len() as u32).collect();
        ids.sort_unstable_by(|&a, &b| self.text(a).cmp(self.text(b)));
        let mut places = vec![0; ids.len()];
        for (place, id) in (0u32..).zip(ids) {
            if let Some(p) = places.get_mut(id as usize) {
                *p = place;
            }
        }
        places
    }
}

/// One client's contacts in a chunk.
struct PartRow {
    client: IpAddr,
    /// `client` hashed as [`Rows`] hashes it.
    hash: u64,
    span: Span,
    sums: Sums,
    /// First and last of its entries in [`Part::entries`], in the order
    /// the chunk first shows them.
    head: u32,
    tail: u32,
    /// Entries in the list; past [`WALK`] they are found by [`Shard::by_text`].
    len: u32,
}

/// A text counted for a [`PartRow`]: its attempts, and the next entry of
/// the same row.
struct PartEntry {
    kind: Kind,
    id: u32,
    /// The MAC of a [`Kind::Machine`] entry.
    mac: u32,
    attempts: u64,
    next: u32,
}

/// The kept contacts of one chunk, summed per client on a worker, one
/// [`Shard`] per merging thread (a client's contacts are all in the same
/// one).
struct Part {
    shards: Vec<Shard>,
}

impl Part {
    fn add(&mut self, r: &Rec<'_>, ts: &str, client: IpAddr, hash: u64, after: bool, leases: Option<&Leases>) {
        let n = self.shards.len();
        if let Some(shard) = self.shards.get_mut(shard_of(hash, n)) {
            shard.add(r, ts, client, hash, after, leases);
        }
    }
}

/// Merged shards, emptied, for the next chunks: a chunk's tables are
/// reused rather than allocated on a reading thread and freed on a merging
/// one (which cost page faults and allocator locks on every chunk). Holds
/// at most `room` shards.
struct Spare {
    shards: Mutex<Vec<Shard>>,
    room: usize,
}

impl Spare {
    fn new(room: usize) -> Spare {
        Spare { shards: Mutex::new(Vec::new()), room }
    }

    /// A part of `shards` empty shards, spare ones first, new ones with
    /// room for about `rows` clients each (so that a chunk's tables do not
    /// grow step by step).
    fn part(&self, shards: usize, rows: usize) -> Part {
        let shards = shards.max(1);
        let mut part = match self.shards.lock() {
            Ok(mut spare) => {
                let keep = spare.len().saturating_sub(shards);
                spare.split_off(keep)
            }
            Err(_) => Vec::new(),
        };
        part.resize_with(shards, || Shard::with_capacity(rows));
        Part { shards: part }
    }

    /// Keeps `shard`, emptied, if there is room.
    fn put(&self, mut shard: Shard) {
        shard.clear();
        if let Ok(mut spare) = self.shards.lock()
            && spare.len() < self.room
        {
            spare.push(shard);
        }
    }
}

/// The shard of a client by its hash (bits the hash tables use least).
fn shard_of(hash: u64, shards: usize) -> usize {
    ((hash >> 32) as usize) % shards.max(1)
}

/// The contacts of the clients of one shard in a chunk; texts are ids into
/// [`Shard::strings`] (a chunk has few distinct ones).
#[derive(Default)]
struct Shard {
    strings: Strings,
    rows: Vec<PartRow>,
    by_client: HashTable<u32>,
    entries: Vec<PartEntry>,
    /// Entry of each (row, kind, text, MAC), for rows with more than
    /// [`WALK`] entries (shorter lists are walked).
    by_text: HashMap<(u32, Kind, u32, u32), u32>,
    /// The text last counted of each kind but machines: the next record
    /// mostly has the same, found without hashing.
    recent: [Option<u32>; 4],
}

impl Shard {
    fn with_capacity(rows: usize) -> Shard {
        Shard {
            rows: Vec::with_capacity(rows),
            by_client: HashTable::with_capacity(rows),
            entries: Vec::with_capacity(2 * rows),
            ..Shard::default()
        }
    }

    /// Empties the shard, keeping the room of its tables.
    fn clear(&mut self) {
        self.strings.clear();
        self.rows.clear();
        self.by_client.clear();
        self.entries.clear();
        self.by_text.clear();
        self.recent = [None; 4];
    }

    /// The id of `text`, counted as `kind` (see [`Shard::recent`]).
    fn intern(&mut self, kind: Kind, text: &str) -> u32 {
        let recent = self.recent.get_mut(kind as usize);
        if let Some(Some(id)) = recent.as_deref()
            && self.strings.text(*id) == text
        {
            return *id;
        }
        let id = self.strings.intern(text);
        if let Some(slot) = recent {
            *slot = Some(id);
        }
        id
    }

    fn add(&mut self, r: &Rec<'_>, ts: &str, client: IpAddr, hash: u64, after: bool, leases: Option<&Leases>) {
        let Shard { rows, by_client, .. } = self;
        let row = match by_client.entry(hash, |&i| rows[i as usize].client == client, |&i| rows[i as usize].hash) {
            Entry::Occupied(e) => {
                let row = *e.get();
                rows[row as usize].span.widen(ts);
                row
            }
            Entry::Vacant(e) => {
                let row = rows.len() as u32;
                e.insert(row);
                let span = Span::new(ts);
                rows.push(PartRow { client, hash, span, sums: Sums::default(), head: NONE, tail: NONE, len: 0 });
                row
            }
        };
        if r.last_ts.is_some() {
            // A count record's repeats run on to its `last_ts`.
            rows[row as usize].span.widen(&r.last_seen(ts));
        }
        let n = r.attempts();
        let category = r.category.as_deref().unwrap_or("-");
        let sums = &mut rows[row as usize].sums;
        sums.contacts += n;
        if after {
            sums.after += n;
            sums.software_after += if BROWSING.contains(&category) { 0 } else { n };
        }
        match r.action.as_deref() {
            Some("block") => sums.blocked += n,
            Some("monitor") => sums.monitored += n,
            _ => {}
        }
        let name = r.name.as_deref().or(r.dst.as_ref().map(|_| "(ip)")).unwrap_or("-");
        for (kind, text) in [
            (Kind::Category, category),
            (Kind::Layer, r.layer.as_deref().unwrap_or("-")),
            (Kind::Gateway, &r.host),
            (Kind::Name, name),
        ] {
            let id = self.intern(kind, text);
            self.count(row, kind, id, 0, n);
        }
        if let Some(m) = leases.and_then(|l| l.at(client, millis(ts).unwrap_or(0))) {
            let (hostname, mac) = (self.strings.intern(&m.hostname), self.strings.intern(&m.mac));
            self.count(row, Kind::Machine, hostname, mac, n);
        }
    }

    fn count(&mut self, row: u32, kind: Kind, id: u32, mac: u32, attempts: u64) {
        let Some(r) = self.rows.get(row as usize) else { return };
        if r.len as usize <= WALK {
            let mut next = r.head;
            while let Some(e) = self.entries.get_mut(next as usize) {
                if e.kind == kind && e.id == id && e.mac == mac {
                    e.attempts += attempts;
                    return;
                }
                next = e.next;
            }
        } else if let Some(&i) = self.by_text.get(&(row, kind, id, mac)) {
            if let Some(e) = self.entries.get_mut(i as usize) {
                e.attempts += attempts;
            }
            return;
        }
        let new = self.entries.len() as u32;
        self.entries.push(PartEntry { kind, id, mac, attempts, next: NONE });
        let Some(r) = self.rows.get_mut(row as usize) else { return };
        match self.entries.get_mut(r.tail as usize) {
            Some(tail) => tail.next = new,
            None => r.head = new,
        }
        r.tail = new;
        r.len += 1;
        if r.len as usize == WALK + 1 {
            // Too long to walk from now on: index the whole list.
            let mut next = r.head;
            while let Some(e) = self.entries.get(next as usize) {
                self.by_text.insert((row, e.kind, e.id, e.mac), next);
                next = e.next;
            }
        } else if r.len as usize > WALK + 1 {
            self.by_text.insert((row, kind, id, mac), new);
        }
    }
}

/// A client's row while reading; texts are ids into [`Rows::strings`].
struct Row {
    client: IpAddr,
    span: Span,
    sums: Sums,
    /// Distinct names counted (at most [`NAMES_PER_CLIENT`], and `(other)`).
    names: usize,
    /// Attempts per (kind, text): categories, layers, gateways, names.
    counts: Vec<(Kind, u32, u64)>,
    /// (hostname, MAC) of the leases that held the address.
    machines: Vec<(u32, u32)>,
}

impl Row {
    /// Adds `attempts` to (kind, id); whether the pair is new.
    fn count(&mut self, kind: Kind, id: u32, attempts: u64) -> bool {
        match self.counts.iter_mut().find(|c| c.0 == kind && c.1 == id) {
            Some(c) => {
                c.2 += attempts;
                false
            }
            None => {
                self.counts.push((kind, id, attempts));
                true
            }
        }
    }

    fn has(&self, kind: Kind, id: u32) -> bool {
        self.counts.iter().any(|c| c.0 == kind && c.1 == id)
    }

    /// See [`Rank`].
    fn rank(&self) -> Rank<'_> {
        rank(self.sums.software_after, self.sums.after, &self.span.last)
    }

    /// Writes the row as reported into `block` (`rank`: the place of a
    /// text id in text order). Takes its counts and machines, freed on the
    /// way, on this thread.
    fn report(&mut self, block: &mut Block, rank: impl Fn(u32) -> u32) {
        let (counts, mut machines) = (std::mem::take(&mut self.counts), std::mem::take(&mut self.machines));
        let at = block.entries.len();
        let mut runs = [0u32; 4];
        // Texts are distinct in a run, as their ids are.
        for (run, kind) in runs.iter_mut().zip([Kind::Category, Kind::Layer, Kind::Name, Kind::Gateway]) {
            let start = block.entries.len();
            if kind == Kind::Name {
                let mut top = [None; TOP_NAMES];
                for &(_, id, n) in counts.iter().filter(|c| c.0 == Kind::Name) {
                    keep_top(&mut top, (rank(id), n, id));
                }
                block.entries.extend(top.iter().flatten().map(|&(_, n, id)| (id, n)));
            } else {
                block.entries.extend(counts.iter().filter(|c| c.0 == kind).map(|&(_, id, n)| (id, n)));
                if let Some(added) = block.entries.get_mut(start..) {
                    added.sort_unstable_by_key(|&(id, _)| rank(id));
                }
            }
            // At most one entry per text id (a `u32`).
            *run = (block.entries.len() - start) as u32;
        }
        machines.sort_unstable_by_key(|&(hostname, mac)| (rank(hostname), rank(mac)));
        let machines_at = block.machines.len();
        block.machines.extend_from_slice(&machines);
        let (first, last) = (self.span.first.clone(), self.span.last.clone());
        let (client, sums, machines) = (self.client, self.sums, machines.len() as u32);
        block.lines.push(Line { client, first, last, sums, at, runs, machines_at, machines });
    }
}

/// Puts `name` (text or its place in text order, attempts, id) among the
/// [`TOP_NAMES`] names held in `top`, which stay ordered most attempts
/// first, then by text (the texts are distinct).
fn keep_top<K: Ord + Copy>(top: &mut [Option<(K, u64, u32)>; TOP_NAMES], mut name: (K, u64, u32)) {
    for slot in top.iter_mut() {
        match slot {
            Some(held) if held.1 > name.1 || (held.1 == name.1 && held.0 < name.0) => {}
            Some(held) => name = std::mem::replace(held, name),
            None => {
                *slot = Some(name);
                return;
            }
        }
    }
}

/// Row numbers by client hash: open addressing with linear probing over
/// 8-byte slots, each a row number and the low half of its client's hash.
/// A lookup reads one slot (mostly one cache line) before the row itself,
/// where a [`HashTable`] reads its control bytes, then its slot: with
/// hundreds of thousands of clients, each is a cache miss. Growing moves
/// the slots by their hash half, without reading a row. At most half full.
struct Index {
    /// A power of two of them; [`Index::EMPTY`] or `hash half << 32 | row`.
    slots: Vec<u64>,
    len: usize,
}

impl Index {
    const EMPTY: u64 = u64::MAX;

    fn new() -> Index {
        Index { slots: vec![Index::EMPTY; 16], len: 0 }
    }

    /// The row of the client of `hash` that `is` (given a row number)
    /// recognizes: `Ok(row)`, or `Err(slot)` to [`Index::insert`] it at.
    fn find(&self, hash: u64, is: impl Fn(u32) -> bool) -> Result<u32, usize> {
        let half = hash as u32;
        let mask = self.slots.len() - 1;
        let mut at = half as usize & mask;
        loop {
            match self.slots.get(at) {
                Some(&slot) if slot != Index::EMPTY => {
                    if (slot >> 32) as u32 == half && is(slot as u32) {
                        return Ok(slot as u32);
                    }
                }
                _ => return Err(at),
            }
            at = (at + 1) & mask;
        }
    }

    /// Puts `row` (of `hash`) at `at`, the empty slot [`Index::find`] gave.
    fn insert(&mut self, at: usize, hash: u64, row: u32) {
        if let Some(slot) = self.slots.get_mut(at) {
            *slot = (hash & 0xffff_ffff) << 32 | u64::from(row);
            self.len += 1;
        }
        if 2 * self.len > self.slots.len() {
            let grown = vec![Index::EMPTY; 2 * self.slots.len()];
            let old = std::mem::replace(&mut self.slots, grown);
            let mask = self.slots.len() - 1;
            for slot in old.into_iter().filter(|&s| s != Index::EMPTY) {
                let mut at = (slot >> 32) as usize & mask;
                while self.slots.get(at).is_some_and(|&s| s != Index::EMPTY) {
                    at = (at + 1) & mask;
                }
                if let Some(free) = self.slots.get_mut(at) {
                    *free = slot;
                }
            }
        }
    }
}

/// The rows, filled from the chunks' [`Part`]s in file order.
struct Rows {
    strings: Strings,
    other: u32,
    rows: Vec<Row>,
    /// The row of each client in `rows`.
    by_client: Index,
    /// Scratch: the global id of each of a part's texts.
    ids: Vec<u32>,
    /// Scratch: the row of each of a part's rows.
    found: Vec<u32>,
}

impl Rows {
    fn new() -> Rows {
        let mut strings = Strings::default();
        let other = strings.intern(OTHER);
        Rows { strings, other, rows: Vec::new(), by_client: Index::new(), ids: Vec::new(), found: Vec::new() }
    }

    /// Adds the sums of the next chunk (its shard of them), taking its
    /// rows out.
    fn add(&mut self, part: &mut Shard) {
        self.ids.clear();
        for s in &part.strings.list {
            self.ids.push(self.strings.intern(s));
        }
        // First the row of every client (new ones made), then the sums:
        // lookups with little work between them overlap their cache misses.
        self.found.clear();
        for p in &part.rows {
            let rows = &mut self.rows;
            match self.by_client.find(p.hash, |i| rows.get(i as usize).is_some_and(|r| r.client == p.client)) {
                Ok(i) => self.found.push(i),
                Err(at) => {
                    let i = rows.len() as u32;
                    self.by_client.insert(at, p.hash, i);
                    // Made with the part's span; its sums are added below.
                    rows.push(Row {
                        client: p.client,
                        span: p.span.clone(),
                        sums: Sums::default(),
                        names: 0,
                        counts: Vec::with_capacity(8),
                        machines: Vec::new(),
                    });
                    self.found.push(i);
                }
            }
        }
        let id = |local: u32| self.ids.get(local as usize).copied().unwrap_or(0);
        for (p, &i) in part.rows.drain(..).zip(&self.found) {
            let Some(row) = self.rows.get_mut(i as usize) else { continue };
            row.span.join(p.span);
            row.sums.add(&p.sums);
            let mut next = p.head;
            while let Some(e) = part.entries.get(next as usize) {
                next = e.next;
                let text = id(e.id);
                match e.kind {
                    Kind::Name => {
                        // As counting line by line: a name is kept if the
                        // row has it, or had room when the name came first.
                        let full = row.names >= NAMES_PER_CLIENT && !row.has(Kind::Name, text);
                        if row.count(Kind::Name, if full { self.other } else { text }, e.attempts) {
                            row.names += 1;
                        }
                    }
                    Kind::Machine => {
                        let m = (text, id(e.mac));
                        if !row.machines.contains(&m) {
                            row.machines.push(m);
                        }
                    }
                    kind => {
                        row.count(kind, text, e.attempts);
                    }
                }
            }
        }
    }

    /// The rows, ranked, as a [`Block`]. Sorts their compact keys, not the
    /// rows, and texts once to compare them by their place.
    fn finish(mut self) -> Block {
        let order: Vec<u32> = {
            let mut keys: Vec<(Rank<'_>, IpAddr, u32)> =
                self.rows.iter().zip(0u32..).map(|(r, i)| (r.rank(), r.client, i)).collect();
            keys.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            keys.iter().map(|k| k.2).collect()
        };
        let places = self.strings.places();
        let place = |id: u32| places.get(id as usize).copied().unwrap_or(u32::MAX);
        let mut block = Block {
            texts: Vec::new(),
            lines: Vec::with_capacity(order.len()),
            entries: Vec::with_capacity(6 * order.len()),
            machines: Vec::new(),
        };
        for i in order {
            if let Some(row) = self.rows.get_mut(i as usize) {
                row.report(&mut block, place);
            }
        }
        block.texts = std::mem::take(&mut self.strings.list);
        block
    }
}

/// A row's place in the report, highest first: software contacts after
/// the prohibition, then any contacts after it, then the most recent last
/// contact, then the most contacts after the prohibition. One definition
/// for [`Rows::finish`]'s sort and [`row::merge_ranked`], which must agree.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Rank<'a> {
    software_after: bool,
    after: bool,
    last: Last<'a>,
    after_count: u64,
}

fn rank(software_after: u64, after: u64, last: &Ts) -> Rank<'_> {
    Rank { software_after: software_after > 0, after: after > 0, last: Last::of(last), after_count: after }
}

/// The last contact in a [`Rank`]: ordered as its text, by [`words`] when
/// it is 24 bytes long (the text is then not read, so sorting does not
/// reach into the rows), else by the text itself.
#[derive(Clone, Copy)]
struct Last<'a> {
    words: Option<[u64; 3]>,
    text: &'a [u8],
}

impl Last<'_> {
    fn of(ts: &Ts) -> Last<'_> {
        match ts {
            Ts::Inline(bytes) => Last { words: Some(words(bytes)), text: bytes },
            Ts::Heap(s) => Last { words: None, text: s.as_bytes() },
        }
    }
}

impl PartialEq for Last<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Last<'_> {}

impl PartialOrd for Last<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Last<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.words, other.words) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => self.text.cmp(other.text),
        }
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
    let hasher = DefaultHashBuilder::default();
    // Each client's rows are merged (in file order) by the thread of its
    // shard; the shards' ranked rows are merged at the end.
    let shards = if reading.workers < 2 { 1 } else { reading.workers.min(MAX_SHARDS) };
    let add = |part: &mut Part, r: &Rec<'_>, ts: &str, _: &[u8]| {
        let Some(client) = r.client.filter(|_| filter.keep(r, ts)) else { return };
        let after = prohibition.is_some_and(|p| ts >= p);
        part.add(r, ts, client, hasher.hash_one(client), after, leases);
    };
    // A chunk has about one line per 256 bytes.
    let rows = (reading.chunk / 256 / shards).clamp(16, 4096);
    let spare = &Spare::new(SPARE_PER_MERGER * shards);
    let new = || spare.part(shards, rows);
    if shards == 1 {
        let mut rows = Rows::new();
        let input = scan(paths, reading, new, add, |part| {
            for mut shard in part.shards {
                rows.add(&mut shard);
                spare.put(shard);
            }
            true
        })?;
        let rows = merge_ranked(vec![rows.finish()]);
        return Ok(Hosts { prohibition: prohibition.map(str::to_owned), rows, input });
    }
    let (input, blocks) = std::thread::scope(|scope| {
        let (mut senders, mut mergers) = (Vec::with_capacity(shards), Vec::with_capacity(shards));
        for _ in 0..shards {
            let (tx, rx) = mpsc::sync_channel::<Shard>(MERGE_QUEUE);
            senders.push(tx);
            mergers.push(scope.spawn(move || {
                let mut rows = Rows::new();
                for mut shard in rx {
                    rows.add(&mut shard);
                    spare.put(shard);
                }
                rows.finish()
            }));
        }
        let input = scan(paths, reading, new, add, |part| {
            // A merger that panicked stops the reading; joining re-raises it.
            part.shards.into_iter().zip(&senders).all(|(shard, tx)| tx.send(shard).is_ok())
        });
        drop(senders);
        let blocks: Vec<Block> =
            mergers.into_iter().map(|m| m.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect();
        (input, blocks)
    });
    Ok(Hosts { prohibition: prohibition.map(str::to_owned), rows: merge_ranked(blocks), input: input? })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Instants of every shape a row can hold: canonical ones, years past
    /// 9999 (`+10000-...`, 26 bytes) and before year 0, and 24-byte texts
    /// the quick canonical check lets through with odd separators.
    const STAMPS: &[&str] = &[
        "2024-09-29T04:00:01.123Z",
        "2024-09-29T04:00:01.124Z",
        "2024-09-29T04:00:02.000Z",
        "2024-09-30T00:00:00.000Z",
        "2023-12-31T23:59:59.999Z",
        "0000-01-01T00:00:00.000Z",
        "9999-12-31T23:59:59.999Z",
        "+10000-01-01T01:59:59.155Z",
        "+10000-01-01T01:59:59.156Z",
        "+99999-12-31T23:59:59.999Z",
        "-0001-12-31T23:59:59.999Z",
        "2024-09x29T04:00:01.123Z",
        "2024-09-29T04:00:01.12\u{e9}",
        "2024-09-29T04:00:01.12Z",
        "2024-09-29T04:00:01.1234Z",
        "",
    ];

    #[test]
    fn instants_order_as_their_text() {
        for a in STAMPS {
            for b in STAMPS {
                let want = a.cmp(b);
                assert_eq!(order(a.as_bytes(), b.as_bytes()), want, "{a} {b}");
                let (ta, tb) = (Ts::new(a), Ts::new(b));
                assert_eq!(ta.cmp(&tb), want, "{a} {b}");
                assert_eq!(ta == tb, want.is_eq(), "{a} {b}");
                assert_eq!(Last::of(&ta).cmp(&Last::of(&tb)), want, "{a} {b}");
                assert_eq!(rank(1, 1, &ta).cmp(&rank(1, 1, &tb)), want, "{a} {b}");
            }
        }
        let mut span = Span::new(STAMPS[0]);
        for ts in STAMPS {
            span.widen(ts);
        }
        let (min, max) = (STAMPS.iter().min().copied(), STAMPS.iter().max().copied());
        assert_eq!((Some(span.first.as_str()), Some(span.last.as_str())), (min, max));
    }

    #[test]
    fn index_finds_each_row_through_colliding_hashes() {
        // Hashes of equal low halves (the same first slot), equal hashes
        // and spread ones; rows are told apart by number, as by client.
        let hashes: Vec<u64> = (0..3000u64)
            .map(|i| match i % 3 {
                0 => i << 32 | 7,
                1 => i.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                _ => 42,
            })
            .collect();
        let mut index = Index::new();
        for (row, &hash) in (0u32..).zip(&hashes) {
            let at = index.find(hash, |r| r == row).expect_err("not there yet");
            index.insert(at, hash, row);
            assert_eq!(index.find(hash, |r| r == row), Ok(row));
            assert!(2 * index.len <= index.slots.len());
        }
        for (row, &hash) in (0u32..).zip(&hashes) {
            assert_eq!(index.find(hash, |r| r == row), Ok(row));
        }
        assert_eq!(index.len, hashes.len());
        assert!(index.find(7, |_| false).is_err());
    }

    #[test]
    fn top_names_are_those_of_a_full_sort() {
        let names: Vec<(String, u64)> = (0..40u64).map(|i| (format!("n{}", (i * 7) % 40), (i * 13) % 5)).collect();
        for len in 0..names.len() {
            let some = &names[..len];
            let mut top = [None; TOP_NAMES];
            for (id, (text, n)) in some.iter().enumerate() {
                keep_top(&mut top, (text.as_str(), *n, id as u32));
            }
            let mut sorted: Vec<(&str, u64)> = some.iter().map(|(t, n)| (t.as_str(), *n)).collect();
            sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
            sorted.truncate(TOP_NAMES);
            let got: Vec<(&str, u64)> = top.iter().flatten().map(|&(t, n, _)| (t, n)).collect();
            assert_eq!(got, sorted, "{len}");
        }
    }
}
