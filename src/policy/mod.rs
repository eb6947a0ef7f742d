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
use std::sync::atomic::{AtomicU64, Ordering};

pub use blocklist::{Blocklist, BlocklistStats};
pub use compile::{compile, compile_with};
pub use error::{PolicyError, Problem, Problems};
pub use raw::EdeCode;
pub use verdict::{Action, CategoryId, PhaseId, RuleId, Subject, Verdict};

use crate::matcher::{
    CidrTable, FingerprintSet, NameTable, Specificity, Suffixes, already_normal, normalize, suffix_of,
};

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
    /// One blocklist file: its entries live in the policy's fingerprint set,
    /// not in the name table (see [`crate::matcher::FingerprintSet`]).
    Blocklist,
}

impl RuleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Domain => "domain",
            RuleKind::Host => "host",
            RuleKind::Wildcard => "wildcard",
            RuleKind::Network => "network",
            RuleKind::Blocklist => "blocklist",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub kind: RuleKind,
    pub category: CategoryId,
    /// Offset of the pattern text in the name table's arena; for a
    /// blocklist, the index of the list.
    text: u32,
}

/// The blocklists of a policy: their entries and the rules that stand for
/// each list (one per file, in load order).
#[derive(Default)]
pub(crate) struct Lists {
    pub(crate) set: FingerprintSet,
    /// Source (path) of each list.
    pub(crate) sources: Vec<String>,
    /// The rule of list 0; list `i` is rule `first + i`.
    pub(crate) first: u32,
}

/// A compiled, validated policy.
pub struct Policy {
    pub meta: PolicyMeta,
    categories: Vec<Category>,
    phases: Vec<Phase>,
    rules: Vec<Rule>,
    names: NameTable,
    lists: Lists,
    nets: CidrTable,
    /// `valid_until[phase][category]`: next instant the category's action
    /// changes after this phase.
    valid_until: Vec<Vec<Option<i64>>>,
    /// `blocked by policy <id> (<category>)` per category, for refusals.
    refusal_texts: Vec<String>,
    /// See [`Policy::generation`].
    generation: u64,
}

/// The next [`Policy::generation`].
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

/// Read, parse and compile a policy file.
pub fn load_file(path: &Path) -> Result<Policy, PolicyError> {
    let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read { path: path.to_owned(), source })?;
    compile(&text, &path.display().to_string())
}

/// Load a policy (a file, or the built-in one) with blocklist files. Each
/// list is read line by line (its text is never held whole).
pub fn load(file: Option<&Path>, blocklists: &[std::path::PathBuf]) -> Result<(Policy, BlocklistStats), PolicyError> {
    let text = match file {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|source| PolicyError::Read { path: path.to_owned(), source })?
        }
        None => BUILTIN_POLICY.to_owned(),
    };
    let name = file.map_or_else(|| BUILTIN_NAME.to_owned(), |p| p.display().to_string());
    let sources: Vec<String> = blocklists.iter().map(|p| p.display().to_string()).collect();
    compile::compile_lists(&text, &name, &sources, |i, loader| {
        let path = &blocklists[i];
        let read = |source| PolicyError::Read { path: path.clone(), source };
        let file = std::fs::File::open(path).map_err(read)?;
        loader.read(std::io::BufReader::with_capacity(64 * 1024, file)).map_err(read)
    })
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
        lists: Lists,
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
        let generation = NEXT_GENERATION.fetch_add(1, Ordering::Relaxed);
        Policy { meta, categories, phases, rules, names, lists, nets, valid_until, refusal_texts, generation }
    }

    /// This compiled policy's number, unique in the process: what remembers
    /// which policy an answer was checked under (an address could be reused
    /// by a later policy, a number is not). Two compilations of one file are
    /// two generations.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The decision: what `subject` gets at `now_ms` (Unix milliseconds).
    /// Pure, allocation-free for ASCII names.
    pub fn decide(&self, subject: Subject<'_>, now_ms: i64) -> Verdict {
        let phase = self.phase_at(now_ms);
        let matched = match subject {
            Subject::Name(name) => match already_normal(name) {
                Some(n) => self.match_name(n, phase),
                None => normalize(name).ok().and_then(|n| self.match_name(n.as_bytes(), phase)),
            },
            Subject::Ip(ip) => self.nets.lookup(ip).map(|(r, _)| (r, 0)),
        };
        self.verdict(matched, phase)
    }

    /// `decide` for a name already normalised (see [`crate::matcher::normalize`]).
    pub fn decide_normalized(&self, name: &[u8], now_ms: i64) -> Verdict {
        let phase = self.phase_at(now_ms);
        self.verdict(self.match_name(name, phase), phase)
    }

    /// The most specific rule for `name` and the labels it matched. One
    /// pass over the name hashes its suffixes for both tables. A blocklist
    /// entry is a domain rule at its depth: it beats a policy rule with
    /// fewer labels and a label wildcard with as many, loses to a policy
    /// host or domain rule with as many (exceptions for a listed name win).
    fn match_name(&self, name: &[u8], phase: PhaseId) -> Option<(RuleId, u8)> {
        let actions = &self.phases[usize::from(phase.0)].actions;
        let rank = |r: RuleId| {
            let cat = self.rules[r.0 as usize].category;
            actions[usize::from(cat.0)] as u8
        };
        let suffixes = Suffixes::of(name);
        let hit = self.names.lookup_suffixes(name, &suffixes, rank);
        if !self.lists.set.is_empty() {
            let deeper = |s: Specificity| usize::from(s.labels) + usize::from(s.kind >= Specificity::DOMAIN);
            let min_labels = hit.map_or(1, |h| deeper(h.specificity));
            if let Some(l) = self.lists.set.deepest(&suffixes, min_labels) {
                return Some((RuleId(self.lists.first + u32::from(l.list)), l.labels));
            }
        }
        hit.map(|h| (h.rule, h.specificity.labels))
    }

    fn verdict(&self, matched: Option<(RuleId, u8)>, phase: PhaseId) -> Verdict {
        let p = usize::from(phase.0);
        match matched {
            None => Verdict { action: Action::Allow, matched: None, depth: 0, phase, valid_until: None },
            Some((rule, depth)) => {
                let category = self.rules[rule.0 as usize].category;
                let c = usize::from(category.0);
                Verdict {
                    action: self.phases[p].actions[c],
                    matched: Some((rule, category)),
                    depth,
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

    /// The rule as written, e.g. `upd.kaspersky.com` or `77.74.176.0/21`;
    /// for a blocklist, the list's source (path).
    pub fn rule_pattern(&self, id: RuleId) -> &str {
        let rule = &self.rules[id.0 as usize];
        match rule.kind {
            RuleKind::Blocklist => self.lists.sources.get(rule.text as usize).map_or("", String::as_str),
            _ => self.names.text(rule.text),
        }
    }

    /// The Extended DNS Error text of a refusal in `category`.
    pub fn refusal_text(&self, category: Option<CategoryId>) -> &str {
        category.and_then(|c| self.refusal_texts.get(usize::from(c.0))).map_or("blocked by policy", String::as_str)
    }

    /// The rule as written with its kind: `kind:pattern`
    /// (`blocklist:<path>` for a list). Audit records name the matched
    /// list entry instead: see [`Self::rule_label_for`].
    pub fn rule_label(&self, id: RuleId) -> String {
        self.label_of(id).to_string()
    }

    fn label_of(&self, id: RuleId) -> RuleLabel<'_> {
        RuleLabel { kind: self.rules[id.0 as usize].kind.as_str(), text: self.rule_pattern(id) }
    }

    /// The matched rule of `verdict` as audit records name it: `kind:pattern`
    /// for a policy rule, `domain:<entry>` for a blocklist entry (as each
    /// entry was a domain rule of its own). `name` is the name `verdict` was
    /// taken for: a list entry is the suffix of that name the verdict's
    /// `depth` gives. When it is not a listed suffix (the verdict was taken
    /// for another name, e.g. a CNAME target) the list itself is named
    /// (`blocklist:<path>`). `None` when no rule matched.
    pub fn rule_label_for(&self, verdict: &Verdict, name: &str) -> Option<String> {
        if let Some(label) = self.rule_label_parts(verdict, name) {
            return Some(label.to_string());
        }
        let normal = normalize(name).ok()?;
        self.rule_label_parts(verdict, normal.as_str()).map(|l| l.to_string())
    }

    /// [`Self::rule_label_for`] without allocating, for a `name` already
    /// normalised (see [`crate::matcher::normalize`]); `None` also when it
    /// is not.
    pub fn rule_label_parts<'a>(&'a self, verdict: &Verdict, name: &'a str) -> Option<RuleLabel<'a>> {
        self.label_parts(verdict, name, TakenFor::Unknown)
    }

    /// [`Self::rule_label_parts`] for a `verdict` this policy took for
    /// `name` itself: the suffix at the verdict's depth is then the entry
    /// that matched, so it is not looked up in the lists again (the audit
    /// writer labels every blocked contact; the lookup was a cache miss per
    /// record). A verdict taken for another name (a CNAME target) must use
    /// [`Self::rule_label_parts`].
    pub fn own_rule_label_parts<'a>(&'a self, verdict: &Verdict, name: &'a str) -> Option<RuleLabel<'a>> {
        let label = self.label_parts(verdict, name, TakenFor::Name);
        debug_assert_eq!(
            label.map(|l| l.to_string()),
            self.rule_label_parts(verdict, name).map(|l| l.to_string()),
            "a verdict labelled as taken for {name:?} was taken for another name"
        );
        label
    }

    fn label_parts<'a>(&'a self, verdict: &Verdict, name: &'a str, taken_for: TakenFor) -> Option<RuleLabel<'a>> {
        let (id, _) = verdict.matched?;
        let rule = self.rules.get(id.0 as usize)?;
        if rule.kind != RuleKind::Blocklist {
            return Some(self.label_of(id));
        }
        let normal = already_normal(name)?;
        let entry = suffix_of(normal, usize::from(verdict.depth)).filter(|e| {
            taken_for == TakenFor::Name || self.lists.set.find_name(e).is_some_and(|list| u32::from(list) == rule.text)
        });
        Some(match entry {
            // A suffix of an ASCII name: a char boundary.
            Some(entry) => {
                RuleLabel { kind: RuleKind::Domain.as_str(), text: &name[..normal.len()][normal.len() - entry.len()..] }
            }
            None => self.label_of(id),
        })
    }

    /// Start of the phase marked `prohibition`, if any.
    pub fn prohibition_start(&self) -> Option<i64> {
        self.phases.iter().find(|p| p.prohibition).and_then(|p| p.start)
    }

    /// Rules per category, in category order; each blocklist entry counts
    /// as one rule.
    pub fn rule_counts(&self) -> Vec<(&Category, usize)> {
        let mut counts = vec![0usize; self.categories.len()];
        for r in &self.rules {
            counts[usize::from(r.category.0)] += match r.kind {
                RuleKind::Blocklist => self.lists.set.count_of(r.text as usize),
                _ => 1,
            };
        }
        self.categories.iter().zip(counts).collect()
    }

    /// Rules of the policy plus blocklist entries.
    pub fn rule_total(&self) -> usize {
        self.rules.len() - self.lists.sources.len() + self.lists.set.len()
    }

    /// Distinct blocklist entries.
    pub fn blocklist_entries(&self) -> usize {
        self.lists.set.len()
    }

    /// Approximate heap bytes of the match tables.
    pub fn table_bytes(&self) -> usize {
        self.names.heap_bytes() + self.rules.capacity() * std::mem::size_of::<Rule>() + self.lists.set.heap_bytes()
    }
}

/// Whether a verdict is known to have been taken for the name it is
/// labelled with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TakenFor {
    Name,
    Unknown,
}

/// A rule as audit records name it, `kind:text`, borrowed from the policy
/// (and, for a blocklist entry, from the name it matched).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleLabel<'a> {
    pub kind: &'static str,
    pub text: &'a str,
}

impl RuleLabel<'_> {
    /// Appends `kind:text` to `out`.
    pub fn write_to(&self, out: &mut String) {
        out.push_str(self.kind);
        out.push(':');
        out.push_str(self.text);
    }
}

impl std::fmt::Display for RuleLabel<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.kind, self.text)
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
