//! The decision's vocabulary: what a layer asks (`Subject`) and what the policy
//! answers (`Verdict`). Plain `Copy` data, so taking a verdict allocates nothing.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// What a phase does to the traffic of one category.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Let through, do not log (exempt).
    Allow,
    /// Let through and log.
    Monitor,
    /// Refuse and log.
    Block,
}

impl Action {
    /// Lowercase name as used in policy files and audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Monitor => "monitor",
            Action::Block => "block",
        }
    }

    /// Whether the contact is written to the audit log.
    pub fn is_logged(self) -> bool {
        !matches!(self, Action::Allow)
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a layer saw and asks about: a DNS name (any case, trailing dot allowed)
/// or an IP address.
#[derive(Clone, Copy, Debug)]
pub enum Subject<'a> {
    Name(&'a str),
    Ip(IpAddr),
}

/// Index of a rule in [`crate::policy::Policy::rules`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RuleId(pub u32);

/// Index of a category in [`crate::policy::Policy::categories`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CategoryId(pub u16);

/// Index of a phase in [`crate::policy::Policy::phases`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PhaseId(pub u16);

/// The policy's answer for one subject at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// What to do. `Allow` when no rule matched.
    pub action: Action,
    /// The most specific rule that matched, with its category.
    pub matched: Option<(RuleId, CategoryId)>,
    /// Labels of the subject name's suffix the rule matched (0 for an
    /// address or no match). For a blocklist rule this suffix is the
    /// matched list entry (see [`crate::policy::Policy::rule_label_for`]).
    pub depth: u8,
    /// The phase in force at the instant asked about.
    pub phase: PhaseId,
    /// Unix seconds at which this verdict may change (next phase boundary
    /// where the category's action differs). Caches must not outlive it.
    pub valid_until: Option<i64>,
}
