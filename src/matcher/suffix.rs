//! The one hash every name table is keyed by, and the single pass over a
//! query name that yields the hash of each of its suffixes.
//!
//! A name is hashed right to left (FNV-1a over its bytes, last byte first,
//! then a murmur3 finaliser), so the hash of `upd.kaspersky.com` is the
//! running state after reading `moc.yksrepsak.dpu`: one pass from the right
//! produces the hash of `com`, `kaspersky.com` and `upd.kaspersky.com` on
//! the way. [`Suffixes::of`] does that pass once per lookup, on the stack;
//! the policy's [`super::NameTable`] and the blocklists'
//! [`super::FingerprintSet`] are both probed with its hashes.

use super::name::MAX_RULE_LABELS;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

#[inline]
fn step(h: u64, b: u8) -> u64 {
    (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
}

/// murmur3's 64-bit finaliser: a bijection that spreads every input bit
/// over the whole word (FNV alone leaves the low bits poorly mixed).
#[inline]
fn finish(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Hash of a whole (normalised) name: equal to the hash [`Suffixes::of`]
/// yields for the suffix with the same bytes.
pub fn hash_name(name: &[u8]) -> u64 {
    finish(name.iter().rev().fold(FNV_OFFSET, |h, &b| step(h, b)))
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
        if name.is_empty() {
            return s;
        }
        let mut h = FNV_OFFSET;
        for i in (0..name.len()).rev() {
            if name[i] == b'.' {
                if s.len == MAX_RULE_LABELS {
                    // Deeper suffixes cannot match a rule.
                    return s;
                }
                s.starts[s.len] = (i + 1) as u8;
                s.hashes[s.len] = finish(h);
                s.len += 1;
            }
            h = step(h, name[i]);
        }
        if s.len < MAX_RULE_LABELS {
            s.starts[s.len] = 0;
            s.hashes[s.len] = finish(h);
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
}
