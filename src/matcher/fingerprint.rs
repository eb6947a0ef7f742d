//! `FingerprintSet`: the entries of large blocklists, one 64-bit fingerprint
//! per name and no name text at all.
//!
//! A blocklist entry blocks a name and its subdomains, so a query matches
//! when one of its suffixes is listed. The set stores the hash of each
//! listed name (the same right-to-left hash [`super::Suffixes`] computes for
//! every suffix of a query, so one pass over the query name serves the
//! policy's [`super::NameTable`] and this set). A hit reports how many labels
//! the matched suffix has: the matched entry's text is the query name's
//! suffix of that depth, so no name needs to be kept.
//!
//! # Layout
//!
//! One flat `u64` array of about 1.2 slots per entry (no power-of-two
//! rounding): a fingerprint's home slot is `fp * buckets / 2^64`
//! (multiply-shift), which is monotone in `fp`, and the sorted fingerprints
//! are placed in order, each at its home slot or just after its
//! predecessor (ordered linear probing; a short overflow tail instead of
//! wrap-around). The array is therefore sorted apart from empty slots (0),
//! and a lookup scans from the home slot until it finds the fingerprint, an
//! empty slot or a larger value: about 3–4 slots on average at this load
//! (mostly one cache line), hit or miss. When entries come from more than
//! one list a parallel `u16` array says which list (first list wins a name
//! listed twice); with a single list it is empty. A 32-bit mask of the
//! label counts entries have lets a lookup skip suffixes of other depths
//! (each probe of a large table is a likely cache miss). Memory: 8 bytes × 1.2
//! ≈ 9.6 bytes per entry (+ 2.4 with several lists), against ~50 for the
//! name table (arena text, index slot, rule record). Fingerprint 0 marks an
//! empty slot: a name hashing to 0 is stored as 1.
//!
//! # Exactness
//!
//! Two different names share a fingerprint only when their 64-bit hashes
//! collide. Treating the hash as a random function of distinct names, a
//! suffix that is not listed is taken for a listed one with probability
//! about n / 2^64 per probe: 5.4 × 10⁻¹⁴ with n = 1,000,000 entries, so
//! ~1.6 × 10⁻⁵ expected false hits over 10⁸ distinct query names of three
//! labels each. (Each mixing step of the hash is a bijection of the state,
//! so two names of the same length that differ in one 8-byte word never
//! collide; the length is mixed in too.) The hash (see [`super::Suffixes`])
//! is not cryptographic: a name can be crafted to collide with a listed one. Either way a
//! collision can only **over-block** (a name that is not listed is refused,
//! fail closed); a listed name always finds its own fingerprint, so no
//! listed name or subdomain is ever let through. An exact structure (a
//! label trie with suffix sharing) would need the label text plus child
//! links — tens of bytes per entry for lists of mostly distinct
//! second-level names — and could not meet the memory target.

use super::name::MAX_RULE_LABELS;
use super::suffix::{Suffixes, hash_name};

/// Slots per 1000 entries (load factor ≈ 0.83).
const SLOTS_PER_MILLE: usize = 1200;

/// Why a set could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FingerprintError {
    #[error("too many blocklists (at most {})", u16::MAX)]
    TooManyLists,
}

/// A listed suffix of a query name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListHit {
    /// Labels of the matched suffix: the entry is the query name's suffix
    /// of this many labels.
    pub labels: u8,
    /// Index of the list that named it (the order lists were added in).
    pub list: u16,
}

/// Immutable set of listed names. Build it with [`FingerprintSetBuilder`].
#[derive(Default)]
pub struct FingerprintSet {
    /// Ordered linear-probing table of fingerprints; 0 is an empty slot.
    slots: Vec<u64>,
    /// List of each slot; empty when there is a single list.
    lists: Vec<u16>,
    /// Home slots are `0..buckets`; `slots` may run a little past it.
    buckets: u64,
    len: usize,
    /// Distinct names per list (a name counts for the first list).
    counts: Vec<usize>,
    /// Bit `k` set when some entry has `k + 1` labels: suffixes of other
    /// depths are not probed (each probe of a large set is a cache miss).
    depths: u32,
}

/// The fingerprint stored for a name's hash (0 is reserved for "empty").
#[inline]
fn fingerprint(hash: u64) -> u64 {
    hash.max(1)
}

impl FingerprintSet {
    /// Number of distinct names.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Distinct names of list `list` (names listed earlier not counted).
    pub fn count_of(&self, list: usize) -> usize {
        self.counts.get(list).copied().unwrap_or(0)
    }

    /// Bytes held, for reporting.
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * 8 + self.lists.capacity() * 2
    }

    #[inline]
    fn home(&self, fp: u64) -> usize {
        ((u128::from(fp) * u128::from(self.buckets)) >> 64) as usize
    }

    /// The list of the name whose hash is `hash`, if listed.
    #[inline]
    pub fn find(&self, hash: u64) -> Option<u16> {
        let fp = fingerprint(hash);
        let mut i = self.home(fp);
        while let Some(&v) = self.slots.get(i) {
            if v == fp {
                return Some(self.lists.get(i).copied().unwrap_or(0));
            }
            if v == 0 || v > fp {
                return None;
            }
            i += 1;
        }
        None
    }

    /// The list of `name` (normalised) itself, if listed.
    pub fn find_name(&self, name: &[u8]) -> Option<u16> {
        self.find(hash_name(name))
    }

    /// The deepest listed suffix with at least `min_labels` labels.
    #[inline]
    pub fn deepest(&self, suffixes: &Suffixes, min_labels: usize) -> Option<ListHit> {
        if self.len == 0 {
            return None;
        }
        let lowest = min_labels.max(1);
        for labels in (lowest..=suffixes.len()).rev() {
            if self.depths & (1 << (labels - 1)) == 0 {
                continue;
            }
            if let Some(list) = self.find(suffixes.hash(labels)) {
                return Some(ListHit { labels: labels as u8, list });
            }
        }
        None
    }
}

/// Collects the hashes of listed names, list by list, then sorts,
/// deduplicates and freezes them into a [`FingerprintSet`].
#[derive(Default)]
pub struct FingerprintSetBuilder {
    lists: Vec<Vec<u64>>,
    depths: u32,
}

impl FingerprintSetBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Begin the next list; later names belong to it. Returns its index.
    pub fn start_list(&mut self) -> Result<u16, FingerprintError> {
        let index = u16::try_from(self.lists.len()).map_err(|_| FingerprintError::TooManyLists)?;
        self.lists.push(Vec::new());
        Ok(index)
    }

    /// Add a name (normalised, at most [`MAX_RULE_LABELS`] labels) whose
    /// [`hash_name`] is `hash` to the current list (starting one if none).
    pub fn insert(&mut self, hash: u64, name: &[u8]) {
        let labels = name.iter().filter(|&&b| b == b'.').count() + 1;
        self.depths |= 1u32.checked_shl(labels as u32 - 1).unwrap_or(0);
        let fp = fingerprint(hash);
        match self.lists.last_mut() {
            Some(list) => list.push(fp),
            None => self.lists.push(vec![fp]),
        }
    }

    /// Freeze. Returns the set and how many names were added more than
    /// once (within a list or across lists; the first list keeps the name).
    pub fn build(self) -> (FingerprintSet, usize) {
        let mut lists = self.lists;
        const { assert!(MAX_RULE_LABELS <= 32, "one bit of `depths` per label count") };
        let mut added = 0usize;
        for list in &mut lists {
            added += list.len();
            list.sort_unstable();
            list.dedup();
        }
        let len = merged(&lists).count();
        let mut set = FingerprintSet {
            slots: Vec::new(),
            lists: Vec::new(),
            buckets: (len * SLOTS_PER_MILLE).div_ceil(1000) as u64,
            len,
            counts: vec![0; lists.len()],
            depths: self.depths,
        };
        if len == 0 {
            return (set, added);
        }
        // Ordered placement overflows past the last home slot by a few
        // slots at most; the slack avoids a reallocation.
        let size = set.buckets as usize;
        set.slots.reserve_exact(size + 64);
        set.slots.resize(size, 0);
        let several = lists.len() > 1;
        if several {
            set.lists.reserve_exact(size + 64);
            set.lists.resize(size, 0);
        }
        let mut next = 0usize;
        for (fp, list) in merged(&lists) {
            let pos = set.home(fp).max(next);
            if pos < set.slots.len() {
                set.slots[pos] = fp;
            } else {
                set.slots.push(fp);
            }
            if several {
                if pos < set.lists.len() {
                    set.lists[pos] = list;
                } else {
                    set.lists.push(list);
                }
            }
            next = pos + 1;
            set.counts[usize::from(list)] += 1;
        }
        (set, added - len)
    }
}

/// The distinct fingerprints of sorted, deduplicated lists in ascending
/// order, each with the first list that has it.
fn merged(lists: &[Vec<u64>]) -> impl Iterator<Item = (u64, u16)> + '_ {
    let mut heads = vec![0usize; lists.len()];
    let mut last: Option<u64> = None;
    std::iter::from_fn(move || {
        loop {
            // Few lists: a linear scan of the heads beats a heap.
            let (list, fp) = lists
                .iter()
                .enumerate()
                .filter_map(|(i, l)| l.get(heads[i]).map(|&fp| (i, fp)))
                .min_by_key(|&(i, fp)| (fp, i))?;
            heads[list] += 1;
            if last != Some(fp) {
                last = Some(fp);
                return Some((fp, list as u16));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(lists: &[&[&str]]) -> (FingerprintSet, usize) {
        let mut b = FingerprintSetBuilder::new();
        for list in lists {
            b.start_list().unwrap();
            for name in *list {
                b.insert(hash_name(name.as_bytes()), name.as_bytes());
            }
        }
        b.build()
    }

    fn hit(s: &FingerprintSet, name: &str) -> Option<ListHit> {
        s.deepest(&Suffixes::of(name.as_bytes()), 1)
    }

    #[test]
    fn listed_names_and_subdomains_match_look_alikes_do_not() {
        let (s, dups) = set(&[&["example.com", "ads.example.net", "zip"]]);
        assert_eq!((s.len(), dups), (3, 0));
        assert_eq!(hit(&s, "example.com"), Some(ListHit { labels: 2, list: 0 }));
        assert_eq!(hit(&s, "a.b.example.com"), Some(ListHit { labels: 2, list: 0 }));
        assert_eq!(hit(&s, "x.ads.example.net"), Some(ListHit { labels: 3, list: 0 }));
        assert_eq!(hit(&s, "file.zip"), Some(ListHit { labels: 1, list: 0 }));
        for other in ["notexample.com", "example.com.evil.org", "com", "example.net", "example", "ads.example.org"] {
            assert_eq!(hit(&s, other), None, "{other}");
        }
        assert_eq!(s.deepest(&Suffixes::of(b"a.example.com"), 3), None, "too shallow for min_labels");
    }

    #[test]
    fn duplicates_are_counted_and_the_first_list_keeps_the_name() {
        let (s, dups) = set(&[&["a.example", "b.example", "a.example"], &["b.example", "c.example", "c.example"]]);
        assert_eq!((s.len(), dups), (3, 3));
        assert_eq!(hit(&s, "x.a.example").map(|h| h.list), Some(0));
        assert_eq!(hit(&s, "b.example").map(|h| h.list), Some(0));
        assert_eq!(hit(&s, "c.example").map(|h| h.list), Some(1));
        assert_eq!(s.find_name(b"d.example"), None);
    }

    #[test]
    fn empty_set_matches_nothing() {
        let (s, dups) = set(&[]);
        assert_eq!((s.len(), dups, s.heap_bytes()), (0, 0, 0));
        assert_eq!(hit(&s, "example.com"), None);
        assert_eq!(s.find(0), None);
    }

    #[test]
    fn every_entry_of_a_large_list_is_found_and_others_are_not() {
        let mut b = FingerprintSetBuilder::new();
        let n = 100_000;
        for i in 0..n {
            let name = format!("d{i:07}.blocked-example.net");
            b.insert(hash_name(name.as_bytes()), name.as_bytes());
        }
        let (s, dups) = b.build();
        assert_eq!((s.len(), dups), (n, 0));
        assert!(s.heap_bytes() <= n * 10, "{} bytes for {n} entries", s.heap_bytes());
        for i in 0..n {
            assert_eq!(s.find_name(format!("d{i:07}.blocked-example.net").as_bytes()), Some(0), "{i}");
        }
        for i in n..2 * n {
            assert_eq!(s.find_name(format!("d{i:07}.blocked-example.net").as_bytes()), None, "{i}");
        }
    }

    #[test]
    fn zero_is_stored_as_one() {
        let mut b = FingerprintSetBuilder { depths: 1, ..FingerprintSetBuilder::default() };
        b.lists.push(vec![fingerprint(0), 5]);
        let (s, _) = b.build();
        assert_eq!(s.find(0), Some(0));
        assert_eq!(s.find(1), Some(0));
        assert_eq!(s.find(5), Some(0));
        assert_eq!(s.find(4), None);
    }
}
