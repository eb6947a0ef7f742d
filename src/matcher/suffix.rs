//! The one hash every name table is keyed by, and the single pass over a
//! query name that yields the hash of each of its suffixes.
//!
//! A name is hashed from its right end, eight bytes at a time: the words
//! `name[n-8..n]`, `name[n-16..n-8]`, … are mixed into the state one after
//! the other (`state = (state ^ word) * K`), then the bytes left over at the
//! left end (fewer than eight, as one zero-padded word) and the length, and
//! a murmur3 finaliser spreads the result. Because the words are anchored at
//! the right end, every suffix of a name sees the same words as the name
//! itself up to its own left end: one pass over the name from the right
//! gives the hash of `com`, `kaspersky.com` and `upd.kaspersky.com` on the
//! way, the partial word of each being the top bytes of the word its first
//! byte falls in. Dots are found a word at a time too (SWAR), so the pass
//! costs one multiply per eight bytes plus a little per label, not a
//! multiply per byte. [`Suffixes::of`] does that pass once per lookup, on
//! the stack; the policy's [`super::NameTable`] and the blocklists'
//! [`super::FingerprintSet`] are both probed with its hashes, and
//! [`hash_name`] gives the same value for a whole name.

use super::name::MAX_RULE_LABELS;

const SEED: u64 = 0xcbf2_9ce4_8422_2325;
/// Odd multiplier (2^64 / golden ratio).
const K: u64 = 0x9e37_79b9_7f4a_7c15;
const HIGHS: u64 = 0x8080_8080_8080_8080;
const DOTS: u64 = 0x2e2e_2e2e_2e2e_2e2e;

#[inline]
fn mix(h: u64, word: u64) -> u64 {
    (h ^ word).wrapping_mul(K)
}

/// murmur3's 64-bit finaliser: a bijection that spreads every input bit
/// over the whole word.
#[inline]
fn finish(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The hash of a suffix of `len` bytes: `state` after its whole words,
/// `partial` its leftmost `len % 8` bytes (little-endian, zero-padded).
#[inline]
fn close(state: u64, partial: u64, len: usize) -> u64 {
    finish(mix(state, partial) ^ len as u64)
}

/// Eight bytes of `name` from `at`, little-endian.
#[inline]
fn word(name: &[u8], at: usize) -> u64 {
    name.get(at..at + 8).and_then(|w| <[u8; 8]>::try_from(w).ok()).map_or(0, u64::from_le_bytes)
}

/// The leftmost `bytes.len() < 8` bytes of a name placed at the top of a
/// word, as if the word started 8 - len bytes before the name.
#[inline]
fn left_word(bytes: &[u8]) -> u64 {
    let shift = 8 * (8 - bytes.len());
    bytes.iter().enumerate().fold(0u64, |w, (i, &b)| w | u64::from(b) << (8 * i)).checked_shl(shift as u32).unwrap_or(0)
}

/// The top `r` bytes of `w` moved to the bottom (`r` in 0..8).
#[inline]
fn top(w: u64, r: usize) -> u64 {
    w.checked_shr(8 * (8 - r) as u32).unwrap_or(0)
}

/// Hash of a whole (normalised) name: equal to the hash [`Suffixes::of`]
/// yields for the suffix with the same bytes.
pub fn hash_name(name: &[u8]) -> u64 {
    let mut state = SEED;
    let mut end = name.len();
    while end >= 8 {
        state = mix(state, word(name, end - 8));
        end -= 8;
    }
    close(state, top(left_word(&name[..end]), end), name.len())
}

/// Every suffix of a name that can match a rule (at most
/// [`MAX_RULE_LABELS`] labels), with its hash. Index `k` is the suffix of
/// `k + 1` labels.
pub struct Suffixes {
    starts: [u8; MAX_RULE_LABELS],
    hashes: [u64; MAX_RULE_LABELS],
    len: usize,
}

impl Suffixes {
    /// One pass from the right over `name` (normalised, at most 255 bytes).
    #[inline]
    pub fn of(name: &[u8]) -> Suffixes {
        let mut s = Suffixes { starts: [0; MAX_RULE_LABELS], hashes: [0; MAX_RULE_LABELS], len: 0 };
        let n = name.len();
        if n == 0 || n > usize::from(u8::MAX) {
            return s;
        }
        // Hash state after the whole words right of `end`.
        let mut state = SEED;
        let mut end = n;
        // The bytes of the name left of its last whole word.
        let mut partial = 0;
        while end > 0 {
            // The word ending at `end`; at the left end, the bytes left
            // (zero-padded below the name: padding is never a dot).
            let w = if end >= 8 { word(name, end - 8) } else { left_word(&name[..end]) };
            // Bit 7 of each byte of `w` that is a dot (exact SWAR test).
            let x = w ^ DOTS;
            let mut dots = !((x & !HIGHS).wrapping_add(!HIGHS) | x | !HIGHS);
            while dots != 0 {
                let byte = (63 - dots.leading_zeros() as usize) / 8;
                dots &= !(0x80 << (8 * byte));
                if s.len == MAX_RULE_LABELS {
                    // Deeper suffixes cannot match a rule.
                    return s;
                }
                // The suffix right of this dot has `r` bytes in this word.
                let r = 7 - byte;
                let start = end - r;
                s.starts[s.len] = start as u8;
                s.hashes[s.len] = close(state, top(w, r), n - start);
                s.len += 1;
            }
            if end < 8 {
                partial = top(w, end);
                break;
            }
            state = mix(state, w);
            end -= 8;
        }
        if s.len < MAX_RULE_LABELS {
            s.starts[s.len] = 0;
            s.hashes[s.len] = close(state, partial, n);
            s.len += 1;
        }
        s
    }

    /// Number of suffixes (labels of the name, capped at [`MAX_RULE_LABELS`]).
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Hash of the suffix of `labels` labels (1..=len).
    #[inline]
    pub fn hash(&self, labels: usize) -> u64 {
        self.hashes[labels - 1]
    }

    /// Byte offset in the name where the suffix of `labels` labels starts.
    #[inline]
    pub fn start(&self, labels: usize) -> usize {
        usize::from(self.starts[labels - 1])
    }
}

/// The last `labels` labels of `name` (`None` if it has fewer).
pub fn suffix_of(name: &[u8], labels: usize) -> Option<&[u8]> {
    if labels == 0 {
        return None;
    }
    let mut seen = 0;
    for i in (0..name.len()).rev() {
        if name[i] == b'.' {
            seen += 1;
            if seen == labels {
                return Some(&name[i + 1..]);
            }
        }
    }
    (seen + 1 == labels && !name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffix_hashes_equal_whole_name_hashes() {
        let s = Suffixes::of(b"s10.upd.kaspersky.com");
        assert_eq!(s.len(), 4);
        for (labels, text) in [(1, "com"), (2, "kaspersky.com"), (3, "upd.kaspersky.com"), (4, "s10.upd.kaspersky.com")]
        {
            assert_eq!(s.hash(labels), hash_name(text.as_bytes()), "{text}");
            assert_eq!(&b"s10.upd.kaspersky.com"[s.start(labels)..], text.as_bytes());
            assert_eq!(suffix_of(b"s10.upd.kaspersky.com", labels), Some(text.as_bytes()));
        }
        assert_eq!(suffix_of(b"s10.upd.kaspersky.com", 5), None);
        assert_eq!(suffix_of(b"s10.upd.kaspersky.com", 0), None);
        assert!(Suffixes::of(b"").is_empty());
    }

    #[test]
    fn deep_names_keep_the_rightmost_suffixes() {
        let deep = format!("{}example.com", "a.".repeat(40));
        let s = Suffixes::of(deep.as_bytes());
        assert_eq!(s.len(), MAX_RULE_LABELS);
        assert_eq!(s.hash(2), hash_name(b"example.com"));
    }

    /// Suffix starts as a plain right-to-left scan finds them.
    fn reference_starts(name: &[u8]) -> Vec<usize> {
        let mut starts: Vec<usize> = (0..name.len()).rev().filter(|&i| name[i] == b'.').map(|i| i + 1).collect();
        starts.push(0);
        starts.truncate(MAX_RULE_LABELS);
        starts
    }

    #[test]
    fn every_suffix_of_random_names_hashes_like_the_name_itself() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let alphabet = b"abcxyz019-_.";
        let mut seen = std::collections::HashMap::new();
        for round in 0..20_000 {
            let len = 1 + (next() % if round % 4 == 0 { 255 } else { 40 }) as usize;
            let name: Vec<u8> = (0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect();
            let s = Suffixes::of(&name);
            let starts = reference_starts(&name);
            assert_eq!(s.len(), starts.len(), "{:?}", String::from_utf8_lossy(&name));
            for (k, &start) in starts.iter().enumerate() {
                assert_eq!(s.start(k + 1), start, "{:?} suffix {k}", String::from_utf8_lossy(&name));
                assert_eq!(s.hash(k + 1), hash_name(&name[start..]), "{:?} suffix {k}", String::from_utf8_lossy(&name));
            }
            if let Some(other) = seen.insert(hash_name(&name), name.clone()) {
                assert_eq!(other, name, "two names share a hash");
            }
        }
    }

    #[test]
    fn names_differing_in_length_or_padding_hash_apart() {
        let names: [&[u8]; 6] = [b"a", b"a\0", b"\0a", b"ab", b"abcdefgh", b"\0abcdefgh"];
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                assert_ne!(hash_name(a), hash_name(b), "{a:?} {b:?}");
            }
        }
        assert_ne!(hash_name(b""), hash_name(b"\0"));
    }
}
