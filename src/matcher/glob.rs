//! Label globs: `*` matches any run of characters inside one label.

/// Whether `label` matches `pattern`, where `*` stands for any (possibly
/// empty) run of bytes. Iterative with one backtrack point: linear in
/// practice, never recursive, never allocates.
pub fn glob_match(pattern: &[u8], label: &[u8]) -> bool {
    let (mut p, mut l) = (0usize, 0usize);
    let mut backtrack: Option<(usize, usize)> = None;
    while l < label.len() {
        match pattern.get(p) {
            Some(b'*') => {
                backtrack = Some((p, l));
                p += 1;
            }
            Some(&c) if c == label[l] => {
                p += 1;
                l += 1;
            }
            _ => match backtrack {
                Some((bp, bl)) => {
                    p = bp + 1;
                    l = bl + 1;
                    backtrack = Some((bp, bl + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn matches_within_a_label() {
        assert!(glob_match(b"dnl-*", b"dnl-01"));
        assert!(glob_match(b"dnl-*", b"dnl-"));
        assert!(glob_match(b"ksn-*-geo", b"ksn-file-geo"));
        assert!(glob_match(b"ksn-*-geo", b"ksn-crypto-url-geo"));
        assert!(!glob_match(b"ksn-*-geo", b"ksn-file-geox"));
        assert!(!glob_match(b"ksn-*-geo", b"xksn-file-geo"));
        assert!(!glob_match(b"dnl-*", b"dnl"));
        assert!(glob_match(b"*", b"anything"));
        assert!(glob_match(b"a*b*c", b"aXXbYYc"));
        assert!(!glob_match(b"a*b*c", b"aXXbYY"));
    }
}
