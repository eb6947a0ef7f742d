//! User-supplied blocklists beside the policy: plain lists (one name per
//! line), hosts files (`0.0.0.0 name`) and adblock-style `||name^` lines.
//! Every entry blocks the name and its subdomains in every phase, under the
//! category `blocklist`. Lines that are not a blockable name are skipped and
//! counted; the first few are reported with their line numbers.

use super::Problem;
use crate::matcher::validate_pattern_name;

/// The category blocklist entries get.
pub const CATEGORY: &str = "blocklist";
/// How many skipped lines are reported individually.
const REPORTED: usize = 5;

/// A blocklist's text and the name it is known by (its path).
#[derive(Debug, Clone, Copy)]
pub struct Blocklist<'a> {
    pub source: &'a str,
    pub text: &'a str,
}

/// What loading the lists did.
#[derive(Debug, Clone, Default)]
pub struct BlocklistStats {
    pub entries: usize,
    pub duplicates: usize,
    pub skipped: usize,
    /// The first skipped lines, per source.
    pub problems: Vec<(String, Problem)>,
}

/// Names that are never blocked from a list: hosts files map them locally.
const LOCAL_NAMES: &[&str] =
    &["localhost", "localhost.localdomain", "local", "broadcasthost", "ip6-localhost", "ip6-loopback"];

/// The name an entry line blocks, `Ok(None)` for comments and blank lines.
pub fn entry(line: &str) -> Result<Option<&str>, &'static str> {
    let line = line.split('#').next().unwrap_or("").trim();
    if line.is_empty() || line.starts_with('!') || line.starts_with('[') {
        return Ok(None);
    }
    if let Some(rest) = line.strip_prefix("||") {
        let name = rest.split(['^', '$', '/']).next().unwrap_or("");
        return if name.is_empty() { Err("empty adblock rule") } else { Ok(Some(name)) };
    }
    if line.starts_with("@@") {
        return Err("exception rules (@@) are not supported in blocklists");
    }
    let mut fields = line.split_whitespace();
    let first = fields.next().unwrap_or("");
    match fields.next() {
        None => Ok(Some(first)),
        Some(name) if first.parse::<std::net::IpAddr>().is_ok() => {
            if LOCAL_NAMES.contains(&name) {
                Ok(None)
            } else {
                Ok(Some(name))
            }
        }
        Some(_) => Err("expected one name, or an address followed by a name"),
    }
}

/// Normalise and validate an entry's name.
pub fn normalize_entry(name: &str) -> Result<crate::matcher::NameBuf, String> {
    validate_pattern_name(name, false).map_err(|e| format!("{name:?}: {e}"))
}

impl BlocklistStats {
    pub(crate) fn skip(&mut self, source: &str, line: usize, message: String) {
        self.skipped += 1;
        if self.problems.iter().filter(|(s, _)| s == source).count() < REPORTED {
            self.problems.push((source.to_owned(), Problem { line, column: 1, message }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::entry;

    #[test]
    fn reads_plain_hosts_and_adblock_lines() {
        assert_eq!(entry("example.com"), Ok(Some("example.com")));
        assert_eq!(entry("0.0.0.0 ads.example.com # tracker"), Ok(Some("ads.example.com")));
        assert_eq!(entry("127.0.0.1 localhost"), Ok(None));
        assert_eq!(entry("||track.example.net^"), Ok(Some("track.example.net")));
        assert_eq!(entry("||track.example.net^$third-party"), Ok(Some("track.example.net")));
        assert_eq!(entry("! adblock comment"), Ok(None));
        assert_eq!(entry("[Adblock Plus 2.0]"), Ok(None));
        assert_eq!(entry("   # comment"), Ok(None));
        assert!(entry("@@||good.example^").is_err());
        assert!(entry("two names here").is_err());
    }
}
