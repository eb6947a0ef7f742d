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
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    /// A name a parser has already normalised: `bytes[..len]` is
    /// lowercase printable ASCII without a trailing dot. Lets the DNS wire
    /// parser fold labels in one pass instead of copying into `normalize`.
    pub(crate) fn from_normalized(buf: [u8; MAX_NAME_LEN], len: u8) -> NameBuf {
        debug_assert!(buf[..usize::from(len)].iter().all(|b| b.is_ascii_graphic() && !b.is_ascii_uppercase()));
        NameBuf { buf, len }
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII bytes are ever stored (see `normalize`).
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
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
pub fn normalize(input: &str) -> Result<NameBuf, NameError> {
    if input.is_ascii() {
        return fold(input.as_bytes());
    }
    let ascii = idna::domain_to_ascii(input).map_err(|_| NameError::Idna)?;
    fold(ascii.as_bytes())
}

fn fold(bytes: &[u8]) -> Result<NameBuf, NameError> {
    let bytes = bytes.strip_suffix(b".").unwrap_or(bytes);
    if bytes.is_empty() {
        return Err(NameError::Empty);
    }
    if bytes.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong);
    }
    let mut out = NameBuf { buf: [0; MAX_NAME_LEN], len: bytes.len() as u8 };
    for (dst, &b) in out.buf.iter_mut().zip(bytes) {
        if !b.is_ascii() {
            return Err(NameError::BadChar(char::from(b)));
        }
        *dst = b.to_ascii_lowercase();
    }
    Ok(out)
}

/// Strict check for names written in a policy: letters, digits, hyphen and
/// underscore, labels of 1..=63 characters. `allow_star` admits `*` (label
/// wildcards). Returns the normalised form.
pub fn validate_pattern_name(input: &str, allow_star: bool) -> Result<NameBuf, NameError> {
    let name = normalize(input)?;
    if name.as_str().split('.').count() > MAX_RULE_LABELS {
        return Err(NameError::TooManyLabels);
    }
    for label in name.as_str().split('.') {
        if label.is_empty() {
            return Err(NameError::EmptyLabel);
        }
        if label.len() > 63 {
            return Err(NameError::LabelTooLong);
        }
        if let Some(c) =
            label.chars().find(|&c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || (allow_star && c == '*')))
        {
            return Err(NameError::BadChar(c));
        }
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_case_and_trailing_dot() {
        assert_eq!(normalize("S10.UPD.Kaspersky.COM.").unwrap().as_str(), "s10.upd.kaspersky.com");
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
    }
}
