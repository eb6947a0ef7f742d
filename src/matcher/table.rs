//! `NameTable`: every rule name stored once in a byte arena, indexed by a
//! hash of the name. A lookup hashes each suffix of the query name (one pass
//! from the right, on the stack) and probes from the longest suffix to the
//! shortest, so the first hit is the most specific rule. Memory per rule: the
//! name plus one length byte in the arena and an 8-byte table slot.

use hashbrown::HashTable;

use super::glob::glob_match;
use crate::policy::RuleId;

use super::suffix::{Suffixes, hash_name};

const TAG_SHIFT: u32 = 30;
const ID_MASK: u32 = (1 << TAG_SHIFT) - 1;
const TAG_SUBTREE: u32 = 0;
const TAG_EXACT: u32 = 1;
const TAG_WILD: u32 = 2;
const TAG_MULTI: u32 = 3;

/// How specific a match is: more labels first, then exact host > domain >
/// label wildcard at the same depth.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Specificity {
    pub labels: u8,
    pub kind: u8,
}

impl Specificity {
    /// `kind` of a label wildcard match.
    pub const WILDCARD: u8 = 1;
    /// `kind` of a domain rule match (the name or a subdomain).
    pub const DOMAIN: u8 = 2;
    /// `kind` of an exact host match.
    pub const HOST: u8 = 3;
}

/// The winning rule of a name lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameHit {
    pub rule: RuleId,
    pub specificity: Specificity,
}

#[derive(Clone, Copy)]
struct Entry {
    /// Offset of the length-prefixed name in the arena.
    off: u32,
    /// Tagged: a single rule, a wildcard group, or an index into `multi`.
    slot: u32,
}

#[derive(Clone, Copy, Default)]
struct Multi {
    exact: Option<RuleId>,
    subtree: Option<RuleId>,
    wild: Option<u32>,
}

/// Immutable name index. Build it with [`NameTableBuilder`].
pub struct NameTable {
    arena: Vec<u8>,
    index: HashTable<Entry>,
    multi: Vec<Multi>,
    /// Wildcard groups: (glob offset in arena, rule), per parent name.
    wild: Vec<Vec<(u32, RuleId)>>,
}

/// Why a rule could not be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    #[error("rule table is full")]
    Full,
    #[error("the same pattern is already defined")]
    Duplicate,
}

fn decode(multi: &[Multi], slot: u32) -> Multi {
    let id = slot & ID_MASK;
    match slot >> TAG_SHIFT {
        TAG_SUBTREE => Multi { subtree: Some(RuleId(id)), ..Multi::default() },
        TAG_EXACT => Multi { exact: Some(RuleId(id)), ..Multi::default() },
        TAG_WILD => Multi { wild: Some(id), ..Multi::default() },
        _ => multi.get(id as usize).copied().unwrap_or_default(),
    }
}

fn arena_str(arena: &[u8], off: u32) -> &[u8] {
    let off = off as usize;
    let len = usize::from(arena[off]);
    &arena[off + 1..off + 1 + len]
}

impl NameTable {
    /// Text stored at `off` (a rule's pattern).
    pub fn text(&self, off: u32) -> &str {
        std::str::from_utf8(arena_str(&self.arena, off)).unwrap_or("")
    }

    /// Number of distinct names indexed.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Bytes held by the table (arena, index, side tables), for reporting.
    pub fn heap_bytes(&self) -> usize {
        self.arena.capacity()
            + self.index.capacity() * (std::mem::size_of::<Entry>() + 1)
            + self.multi.capacity() * std::mem::size_of::<Multi>()
            + self.wild.iter().map(|g| g.capacity() * 8).sum::<usize>()
    }

    fn find(&self, hash: u64, name: &[u8]) -> Option<u32> {
        self.index.find(hash, |e| arena_str(&self.arena, e.off) == name).map(|e| e.slot)
    }

    /// Whether `name` (whose [`hash_name`] is `hash`) is a domain rule
    /// (the name and its subdomains).
    pub fn has_domain(&self, hash: u64, name: &[u8]) -> bool {
        self.find(hash, name).is_some_and(|slot| decode(&self.multi, slot).subtree.is_some())
    }

    /// The most specific rule matching `name` (normalised, see
    /// [`super::normalize`]). Ties between label wildcards under the same
    /// parent go to the lowest `rank` (callers rank exceptions first).
    pub fn lookup(&self, name: &[u8], rank: impl Fn(RuleId) -> u8) -> Option<NameHit> {
        if self.index.is_empty() {
            return None;
        }
        self.lookup_suffixes(name, &Suffixes::of(name), rank)
    }

    /// [`Self::lookup`] with the suffix hashes of `name` already taken.
    #[inline]
    pub fn lookup_suffixes(&self, name: &[u8], suffixes: &Suffixes, rank: impl Fn(RuleId) -> u8) -> Option<NameHit> {
        if self.index.is_empty() {
            return None;
        }
        // Longest suffix first: the first hit is the most specific rule.
        for labels in (1..=suffixes.len()).rev() {
            let start = suffixes.start(labels);
            let Some(suffix) = name.get(start..) else { continue };
            let Some(slot) = self.find(suffixes.hash(labels), suffix) else { continue };
            let labels = labels as u8;
            let s = decode(&self.multi, slot);
            // A wildcard under this parent matches the label to its left
            // and outranks anything at this parent's own depth.
            if let (Some(group), true) = (s.wild, start > 1) {
                let left = &name[..start - 1];
                let label = left.rsplit(|&b| b == b'.').next().unwrap_or(left);
                if let Some(rule) = self.match_wild(group, label, &rank) {
                    let specificity = Specificity { labels: labels + 1, kind: Specificity::WILDCARD };
                    return Some(NameHit { rule, specificity });
                }
            }
            if start == 0
                && let Some(rule) = s.exact
            {
                return Some(NameHit { rule, specificity: Specificity { labels, kind: Specificity::HOST } });
            }
            if let Some(rule) = s.subtree {
                return Some(NameHit { rule, specificity: Specificity { labels, kind: Specificity::DOMAIN } });
            }
        }
        None
    }

    fn match_wild(&self, group: u32, label: &[u8], rank: &impl Fn(RuleId) -> u8) -> Option<RuleId> {
        self.wild
            .get(group as usize)?
            .iter()
            .filter(|(glob, _)| glob_match(arena_str(&self.arena, *glob), label))
            .map(|&(_, rule)| rule)
            .min_by_key(|&rule| rank(rule))
    }
}

/// Collects rules, then freezes into a [`NameTable`].
pub struct NameTableBuilder {
    table: NameTable,
}

impl Default for NameTableBuilder {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl NameTableBuilder {
    pub fn with_capacity(names: usize) -> Self {
        NameTableBuilder {
            table: NameTable {
                arena: Vec::with_capacity(names * 16),
                index: HashTable::with_capacity(names),
                multi: Vec::new(),
                wild: Vec::new(),
            },
        }
    }

    /// Store a text (e.g. a rule pattern) in the arena; returns its offset.
    pub fn intern(&mut self, text: &str) -> Result<u32, TableError> {
        let off = u32::try_from(self.table.arena.len()).map_err(|_| TableError::Full)?;
        let len = u8::try_from(text.len()).map_err(|_| TableError::Full)?;
        self.table.arena.push(len);
        self.table.arena.extend_from_slice(text.as_bytes());
        Ok(off)
    }

    /// Offset of `name` in the arena, adding an index entry if new.
    fn entry(&mut self, name: &str) -> Result<(u64, u32), TableError> {
        let hash = hash_name(name.as_bytes());
        if let Some(e) = self.table.index.find(hash, |e| arena_str(&self.table.arena, e.off) == name.as_bytes()) {
            return Ok((hash, e.off));
        }
        let off = self.intern(name)?;
        let arena = &self.table.arena;
        self.table.index.insert_unique(hash, Entry { off, slot: u32::MAX }, |e| hash_name(arena_str(arena, e.off)));
        Ok((hash, off))
    }

    fn update(&mut self, name: &str, apply: impl FnOnce(&mut Multi) -> bool) -> Result<u32, TableError> {
        let (hash, off) = self.entry(name)?;
        let arena = &self.table.arena;
        let Some(e) = self.table.index.find_mut(hash, |e| arena_str(arena, e.off) == name.as_bytes()) else {
            return Err(TableError::Full);
        };
        let mut m = if e.slot == u32::MAX { Multi::default() } else { decode(&self.table.multi, e.slot) };
        let was_multi = e.slot != u32::MAX && e.slot >> TAG_SHIFT == TAG_MULTI;
        let multi_id = e.slot & ID_MASK;
        if !apply(&mut m) {
            return Err(TableError::Duplicate);
        }
        let single = match (m.exact, m.subtree, m.wild) {
            (None, Some(r), None) => Some((TAG_SUBTREE << TAG_SHIFT) | r.0),
            (Some(r), None, None) => Some((TAG_EXACT << TAG_SHIFT) | r.0),
            (None, None, Some(w)) => Some((TAG_WILD << TAG_SHIFT) | w),
            _ => None,
        };
        e.slot = match (single, was_multi) {
            (Some(s), _) => s,
            (None, true) => {
                self.table.multi[multi_id as usize] = m;
                (TAG_MULTI << TAG_SHIFT) | multi_id
            }
            (None, false) => {
                self.table.multi.push(m);
                (TAG_MULTI << TAG_SHIFT) | (self.table.multi.len() - 1) as u32
            }
        };
        Ok(off)
    }

    fn check_id(rule: RuleId) -> Result<(), TableError> {
        if rule.0 > ID_MASK { Err(TableError::Full) } else { Ok(()) }
    }

    /// `name` and all its subdomains. Returns the name's arena offset.
    pub fn add_domain(&mut self, name: &str, rule: RuleId) -> Result<u32, TableError> {
        Self::check_id(rule)?;
        self.update(name, |m| m.subtree.replace(rule).is_none())
    }

    /// Exactly `name`. Returns the name's arena offset.
    pub fn add_host(&mut self, name: &str, rule: RuleId) -> Result<u32, TableError> {
        Self::check_id(rule)?;
        self.update(name, |m| m.exact.replace(rule).is_none())
    }

    /// `glob.parent` where `glob` is one label with `*`. Returns the offset
    /// of the whole pattern text.
    pub fn add_wildcard(&mut self, pattern: &str, rule: RuleId) -> Result<u32, TableError> {
        Self::check_id(rule)?;
        let (glob, parent) = pattern.split_once('.').unwrap_or((pattern, ""));
        let glob_off = self.intern(glob)?;
        let group_count = self.table.wild.len() as u32;
        let mut group = None;
        self.update(parent, |m| {
            group = Some(*m.wild.get_or_insert(group_count));
            true
        })?;
        let group = group.ok_or(TableError::Full)? as usize;
        if group == self.table.wild.len() {
            self.table.wild.push(Vec::new());
        }
        let members = &mut self.table.wild[group];
        let arena = &self.table.arena;
        if members.iter().any(|(g, _)| arena_str(arena, *g) == glob.as_bytes()) {
            return Err(TableError::Duplicate);
        }
        members.push((glob_off, rule));
        self.intern(pattern)
    }

    pub fn build(mut self) -> NameTable {
        self.table.arena.shrink_to_fit();
        self.table.multi.shrink_to_fit();
        self.table
    }
}
