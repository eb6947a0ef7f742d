//! Policies: what is prohibited, since when, and why.
//!
//! Owns the policy file format (`raw`), its validation and compilation
//! (`compile`), the schedule of phases, and the one decision every layer
//! uses: [`Policy::decide`]. This module does no I/O except [`load_file`];
//! it never touches sockets, the audit log or the firewall. A `Policy` is
//! immutable: a reload builds a new one and swaps it in.

pub mod blocklist;
mod compile;
mod error;
mod raw;
mod verdict;

use std::path::Path;

pub use blocklist::{Blocklist, BlocklistStats};
pub use compile::{compile, compile_with};
pub use error::{PolicyError, Problem, Problems};
pub use raw::EdeCode;
pub use verdict::{Action, CategoryId, PhaseId, RuleId, Subject, Verdict};

use crate::matcher::{CidrTable, NameTable, normalize};

/// The policy shipped inside the binary (`policies/kaspersky.toml`).
pub const BUILTIN_POLICY: &str = include_str!("../../policies/kaspersky.toml");
/// How the built-in policy is named in messages and audit records.
pub const BUILTIN_NAME: &str = "<built-in>/kaspersky.toml";

/// Who wrote the policy and why.
#[derive(Debug, Clone)]
pub struct PolicyMeta {
    pub id: String,
    pub title: String,
    pub legal_basis: String,
    pub reference_url: String,
    pub description: Option<String>,
    pub blocked_ede: EdeCode,
    /// `sha256:<hex>` of the file's bytes.
    pub hash: String,
    /// File the policy came from.
    pub source: String,
}

#[derive(Debug, Clone)]
pub struct Category {
    pub name: String,
    pub description: String,
}

/// A period of the schedule with the action for each category.
#[derive(Debug, Clone)]
pub struct Phase {
    pub name: String,
    /// Unix milliseconds; `None` for the first phase (since the beginning).
    pub start: Option<i64>,
    pub default: Action,
    /// Indexed by `CategoryId`.
    pub actions: Vec<Action>,
    pub note: Option<String>,
    /// The phase in which the legal prohibition is in force.
    pub prohibition: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    Domain,
    Host,
    Wildcard,
    Network,
}

impl RuleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Domain => "domain",
            RuleKind::Host => "host",
            RuleKind::Wildcard => "wildcard",
            RuleKind::Network => "network",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub kind: RuleKind,
    pub category: CategoryId,
    /// Offset of the pattern text in the name table's arena.
    text: u32,
}

/// A compiled, validated policy.
pub struct Policy {
    pub meta: PolicyMeta,
    categories: Vec<Category>,
    phases: Vec<Phase>,
    rules: Vec<Rule>,
    names: NameTable,
    nets: CidrTable,
    /// `valid_until[phase][category]`: next instant the category's action
    /// changes after this phase.
    valid_until: Vec<Vec<Option<i64>>>,
    /// `blocked by policy <id> (<category>)` per category, for refusals.
    refusal_texts: Vec<String>,
}

/// Read, parse and compile a policy file.
pub fn load_file(path: &Path) -> Result<Policy, PolicyError> {
    let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read { path: path.to_owned(), source })?;
    compile(&text, &path.display().to_string())
}

/// Load a policy (a file, or the built-in one) with blocklist files.
pub fn load(file: Option<&Path>, blocklists: &[std::path::PathBuf]) -> Result<(Policy, BlocklistStats), PolicyError> {
    let text = match file {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|source| PolicyError::Read { path: path.to_owned(), source })?
        }
        None => BUILTIN_POLICY.to_owned(),
    };
    let name = file.map_or_else(|| BUILTIN_NAME.to_owned(), |p| p.display().to_string());
    let mut texts = Vec::with_capacity(blocklists.len());
    for path in blocklists {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read { path: path.clone(), source })?;
        texts.push((path.display().to_string(), text));
    }
    let lists: Vec<Blocklist> = texts.iter().map(|(source, text)| Blocklist { source, text }).collect();
    compile_with(&text, &name, &lists)
}

/// The built-in Kaspersky policy.
pub fn builtin() -> Result<Policy, PolicyError> {
    compile(BUILTIN_POLICY, BUILTIN_NAME)
}

impl Policy {
    fn assemble(
        meta: PolicyMeta,
        categories: Vec<Category>,
        phases: Vec<Phase>,
        rules: Vec<Rule>,
        names: NameTable,
        nets: CidrTable,
    ) -> Policy {
        let valid_until = (0..phases.len())
            .map(|p| {
                (0..categories.len())
                    .map(|c| {
                        let now = phases[p].actions[c];
                        phases[p + 1..].iter().find(|q| q.actions[c] != now).and_then(|q| q.start)
                    })
                    .collect()
            })
            .collect();
        let refusal_texts = categories.iter().map(|c| format!("blocked by policy {} ({})", meta.id, c.name)).collect();
        Policy { meta, categories, phases, rules, names, nets, valid_until, refusal_texts }
    }

    /// The decision: what `subject` gets at `now_ms` (Unix milliseconds).
    /// Pure, allocation-free for ASCII names.
    pub fn decide(&self, subject: Subject<'_>, now_ms: i64) -> Verdict {
        let phase = self.phase_at(now_ms);
        let matched = match subject {
            Subject::Name(name) => match normalize(name) {
                Ok(n) => self.match_name(n.as_bytes(), phase),
                Err(_) => None,
            },
            Subject::Ip(ip) => self.nets.lookup(ip).map(|(r, _)| r),
        };
        self.verdict(matched, phase)
    }

    /// `decide` for a name already normalised (see [`crate::matcher::normalize`]).
    pub fn decide_normalized(&self, name: &[u8], now_ms: i64) -> Verdict {
        let phase = self.phase_at(now_ms);
        self.verdict(self.match_name(name, phase), phase)
    }

    fn match_name(&self, name: &[u8], phase: PhaseId) -> Option<RuleId> {
        let actions = &self.phases[usize::from(phase.0)].actions;
        let rank = |r: RuleId| {
            let cat = self.rules[r.0 as usize].category;
            actions[usize::from(cat.0)] as u8
        };
        self.names.lookup(name, rank).map(|hit| hit.rule)
    }

    fn verdict(&self, rule: Option<RuleId>, phase: PhaseId) -> Verdict {
        let p = usize::from(phase.0);
        match rule {
            None => Verdict { action: Action::Allow, matched: None, phase, valid_until: None },
            Some(rule) => {
                let category = self.rules[rule.0 as usize].category;
                let c = usize::from(category.0);
                Verdict {
                    action: self.phases[p].actions[c],
                    matched: Some((rule, category)),
                    phase,
                    valid_until: self.valid_until[p][c],
                }
            }
        }
    }

    /// The phase in force at `now_ms`.
    pub fn phase_at(&self, now_ms: i64) -> PhaseId {
        let idx = self.phases.iter().rposition(|p| p.start.is_none_or(|s| s <= now_ms)).unwrap_or(0);
        PhaseId(idx as u16)
    }

    pub fn phases(&self) -> &[Phase] {
        &self.phases
    }

    pub fn phase(&self, id: PhaseId) -> &Phase {
        &self.phases[usize::from(id.0).min(self.phases.len() - 1)]
    }

    pub fn categories(&self) -> &[Category] {
        &self.categories
    }

    pub fn category(&self, id: CategoryId) -> &Category {
        &self.categories[usize::from(id.0)]
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The rule as written, e.g. `upd.kaspersky.com` or `77.74.176.0/21`.
    pub fn rule_pattern(&self, id: RuleId) -> &str {
        self.names.text(self.rules[id.0 as usize].text)
    }

    /// The Extended DNS Error text of a refusal in `category`.
    pub fn refusal_text(&self, category: Option<CategoryId>) -> &str {
        category.and_then(|c| self.refusal_texts.get(usize::from(c.0))).map_or("blocked by policy", String::as_str)
    }

    /// The rule as audit records name it: `kind:pattern`.
    pub fn rule_label(&self, id: RuleId) -> String {
        let rule = &self.rules[id.0 as usize];
        format!("{}:{}", rule.kind.as_str(), self.names.text(rule.text))
    }

    /// Start of the phase marked `prohibition`, if any.
    pub fn prohibition_start(&self) -> Option<i64> {
        self.phases.iter().find(|p| p.prohibition).and_then(|p| p.start)
    }

    /// Rules per category, in category order.
    pub fn rule_counts(&self) -> Vec<(&Category, usize)> {
        let mut counts = vec![0usize; self.categories.len()];
        for r in &self.rules {
            counts[usize::from(r.category.0)] += 1;
        }
        self.categories.iter().zip(counts).collect()
    }

    /// Approximate heap bytes of the match tables.
    pub fn table_bytes(&self) -> usize {
        self.names.heap_bytes() + self.rules.capacity() * std::mem::size_of::<Rule>()
    }
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("id", &self.meta.id)
            .field("hash", &self.meta.hash)
            .field("rules", &self.rules.len())
            .field("phases", &self.phases.len())
            .finish()
    }
}

#[cfg(test)]
mod tests;
