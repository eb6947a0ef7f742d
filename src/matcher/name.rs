//! Name normalisation: ASCII case folding, trailing dot removal, IDN to
//! A-label. The result lives in a fixed stack buffer so the query path does
//! not allocate (only a non-ASCII name, which needs IDNA, does).

use thiserror::Error;

/// Longest name in presentation form without the trailing dot (RFC 1035).
pub const MAX_NAME_LEN: usize = 253;
/// Most labels a rule may have; lookups only consider this many suffixes.
pub const MAX_RULE_LABELS: usize = 32;

/// Why a name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    #[error("empty name")]
    Empty,
    #[error("name longer than {MAX_NAME_LEN} characters")]
    TooLong,
    #[error("empty label (two dots in a row, or a leading dot)")]
    EmptyLabel,
    #[error("label longer than 63 characters")]
    LabelTooLong,
    #[error("more than {MAX_RULE_LABELS} labels")]
    TooManyLabels,
    #[error("character {0:?} is not allowed in a name")]
    BadChar(char),
    #[error("not a valid internationalised name")]
    Idna,
}

/// A normalised name: lowercase ASCII, no trailing dot, at most 253 bytes.
#[derive(Clone)]
pub struct NameBuf {
    buf: [u8; MAX_NAME_LEN],
    len: u8,
}

impl NameBuf {
    /// An empty buffer to normalise into (see [`normalize_into`]).
    pub const fn new() -> NameBuf {
        NameBuf { buf: [0; MAX_NAME_LEN], len: 0 }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    /// Lets a parser write a name in place (no 254-byte moves): `write`
    /// gets the whole buffer and returns the name's length, after leaving
    /// `buf[..len]` lowercase printable ASCII without a trailing dot, or
    /// `None` (the buffer is then empty).
    pub(crate) fn write_normalized(&mut self, write: impl FnOnce(&mut [u8; MAX_NAME_LEN]) -> Option<u8>) -> bool {
        self.len = write(&mut self.buf).unwrap_or(0);
        debug_assert!(self.as_bytes().iter().all(|b| b.is_ascii_graphic() && !b.is_ascii_uppercase()));
        self.len > 0
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII bytes are ever stored (see `normalize`).
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }
}

impl Default for NameBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for NameBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Normalise a name for matching. Accepts any ASCII (DNS labels may carry
/// any octet; escaped forms are matched as written), converts non-ASCII
/// names to A-labels, lowercases, strips one trailing dot.
#[inline]
pub fn normalize(input: &str) -> Result<NameBuf, NameError> {
    let mut out = NameBuf::new();
    normalize_into(input, &mut out)?;
    Ok(out)
}

/// `input` as [`normalize`] would return it, without copying, when it is
/// already normal (lowercase ASCII; a trailing dot is cut off); `None` when
/// it needs [`normalize`] (or is not a name).
#[inline]
pub fn already_normal(input: &str) -> Option<&[u8]> {
    let bytes = input.as_bytes();
    let bytes = bytes.strip_suffix(b".").unwrap_or(bytes);
    // No short-circuit: the whole name is checked branch-free (vectorised).
    let upper_or_8bit = bytes.iter().fold(false, |bad, &b| bad | (b.wrapping_sub(b'A') < 26) | (b >= 0x80));
    let normal = !bytes.is_empty() && bytes.len() <= MAX_NAME_LEN && !upper_or_8bit;
    normal.then_some(bytes)
}

/// [`normalize`] into a buffer the caller reuses (no 254-byte moves when
/// many names are normalised in a row).
#[inline]
pub fn normalize_into(input: &str, out: &mut NameBuf) -> Result<(), NameError> {
    if input.is_ascii() {
        return fold(input.as_bytes(), out);
    }
    normalize_idn(input, out)
}

#[cold]
#[inline(never)]
fn normalize_idn(input: &str, out: &mut NameBuf) -> Result<(), NameError> {
    let ascii = idna::domain_to_ascii(input).map_err(|_| NameError::Idna)?;
    if let Some(c) = ascii.chars().find(|c| !c.is_ascii()) {
        return Err(NameError::BadChar(c));
    }
    fold(ascii.as_bytes(), out)
}

/// Lowercase ASCII `bytes` (callers check they are ASCII) into `out`.
#[inline]
fn fold(bytes: &[u8], out: &mut NameBuf) -> Result<(), NameError> {
    let bytes = bytes.strip_suffix(b".").unwrap_or(bytes);
    if bytes.is_empty() {
        return Err(NameError::Empty);
    }
    let Some(name) = out.buf.get_mut(..bytes.len()) else { return Err(NameError::TooLong) };
    name.copy_from_slice(bytes);
    name.make_ascii_lowercase();
    out.len = bytes.len() as u8;
    Ok(())
}

/// Strict check for names written in a policy: letters, digits, hyphen and
/// underscore, labels of 1..=63 characters. `allow_star` admits `*` (label
/// wildcards). Returns the normalised form.
#[inline]
pub fn validate_pattern_name(input: &str, allow_star: bool) -> Result<NameBuf, NameError> {
    let mut out = NameBuf::new();
    validate_pattern_name_into(input, allow_star, &mut out)?;
    Ok(out)
}

/// [`validate_pattern_name`] into a buffer the caller reuses.
#[inline]
pub fn validate_pattern_name_into(input: &str, allow_star: bool, out: &mut NameBuf) -> Result<(), NameError> {
    normalize_into(input, out)?;
    check_labels(out.as_bytes(), allow_star)
}

/// Bytes allowed in a label of a pattern name (besides `*` in wildcards).
const LABEL_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
        b += 1;
    }
    t
};

/// Check the labels of a normalised name: one tight pass for the common
/// valid name, the detailed pass only to say what is wrong.
#[inline]
fn check_labels(name: &[u8], allow_star: bool) -> Result<(), NameError> {
    let (mut labels, mut len, mut ok) = (1usize, 0usize, true);
    for &b in name {
        if b == b'.' {
            ok &= len.wrapping_sub(1) < 63;
            (labels, len) = (labels + 1, 0);
        } else {
            ok &= LABEL_BYTE[usize::from(b)] | (allow_star & (b == b'*'));
            len += 1;
        }
    }
    if ok && len.wrapping_sub(1) < 63 && labels <= MAX_RULE_LABELS {
        return Ok(());
    }
    label_problem(name, allow_star)
}

/// What is wrong with a name [`check_labels`] rejected. Too many labels is
/// reported first; otherwise the first bad label, left to right: empty, too
/// long, or its first character that is not allowed.
#[cold]
fn label_problem(name: &[u8], allow_star: bool) -> Result<(), NameError> {
    let label_error = |len: usize, bad: Option<u8>| match (len, bad) {
        (0, _) => Some(NameError::EmptyLabel),
        (64.., _) => Some(NameError::LabelTooLong),
        (_, bad) => bad.map(|b| NameError::BadChar(char::from(b))),
    };
    let mut labels = 1;
    let mut first = None;
    let (mut len, mut bad) = (0usize, None);
    for &b in name {
        if b == b'.' {
            first = first.or_else(|| label_error(len, bad));
            (labels, len, bad) = (labels + 1, 0, None);
            continue;
        }
        len += 1;
        if bad.is_none() && !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (allow_star && b == b'*')) {
            bad = Some(b);
        }
    }
    first = first.or_else(|| label_error(len, bad));
    if labels > MAX_RULE_LABELS {
        return Err(NameError::TooManyLabels);
    }
    first.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_case_and_trailing_dot() {
        assert_eq!(normalize("S10.UPD.Kaspersky.COM.").unwrap().as_str(), "s10.upd.kaspersky.com");
    }

    #[test]
    fn already_normal_names_are_taken_as_they_are() {
        for name in ["s10.upd.kaspersky.com", "a-b_c.example.", "x", "1.2.3.4", "a b.c", "a.b.."] {
            assert_eq!(already_normal(name), Some(normalize(name).unwrap().as_bytes()), "{name}");
        }
        for name in ["S10.upd.kaspersky.com", "bücher.example", "", "."] {
            assert_eq!(already_normal(name), None, "{name}");
        }
        assert_eq!(already_normal(&"a".repeat(254)), None);
    }

    #[test]
    fn converts_idn_to_a_label() {
        assert_eq!(normalize("bücher.example").unwrap().as_str(), "xn--bcher-kva.example");
    }

    #[test]
    fn rejects_bad_pattern_names() {
        assert_eq!(validate_pattern_name("a..b", false).unwrap_err(), NameError::EmptyLabel);
        assert_eq!(validate_pattern_name("a b.com", false).unwrap_err(), NameError::BadChar(' '));
        assert_eq!(validate_pattern_name("dnl-*.geo.com", false).unwrap_err(), NameError::BadChar('*'));
        assert!(validate_pattern_name("dnl-*.geo.com", true).is_ok());
        assert_eq!(validate_pattern_name(".", false).unwrap_err(), NameError::Empty);
        assert_eq!(validate_pattern_name("a.-b_.C9", false).unwrap().as_str(), "a.-b_.c9");
        assert_eq!(validate_pattern_name("a.b c.d..e", false).unwrap_err(), NameError::BadChar(' '));
        assert_eq!(validate_pattern_name("a..b c", false).unwrap_err(), NameError::EmptyLabel);
        assert_eq!(
            validate_pattern_name(&format!("{}.a b", "x".repeat(64)), false).unwrap_err(),
            NameError::LabelTooLong
        );
        assert_eq!(
            validate_pattern_name(&format!("{}a..", "a.".repeat(32)), false).unwrap_err(),
            NameError::TooManyLabels
        );
        assert_eq!(validate_pattern_name("ends.with.", false).unwrap().as_str(), "ends.with");
        assert_eq!(validate_pattern_name("a.b.", false).unwrap().as_str(), "a.b");
        assert_eq!(validate_pattern_name("*.b", false).unwrap_err(), NameError::BadChar('*'));
    }
}
