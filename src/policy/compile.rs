//! From `RawPolicy` to `Policy`: check everything, report every problem with
//! its position, then build the matcher tables. Pure: takes text, does no I/O.

use std::collections::HashMap;

use chrono::DateTime;
use ipnet::IpNet;
use sha2::{Digest, Sha256};
use toml::Spanned;

use super::blocklist::{self, Blocklist, BlocklistStats, ListLoader};
use super::error::{Collector, PolicyError};
use super::raw::{RawPhase, RawPolicy, RawRules};
use super::{Action, Category, CategoryId, Lists, Phase, Policy, PolicyMeta, Rule, RuleId, RuleKind};
use crate::matcher::{CidrTable, NameTableBuilder, validate_pattern_name};

/// Parse and compile policy text. `file` names it in error messages.
pub fn compile(text: &str, file: &str) -> Result<Policy, PolicyError> {
    compile_with(text, file, &[]).map(|(policy, _)| policy)
}

/// Compile policy text together with blocklists (see [`super::blocklist`]).
pub fn compile_with(text: &str, file: &str, lists: &[Blocklist]) -> Result<(Policy, BlocklistStats), PolicyError> {
    let sources: Vec<&str> = lists.iter().map(|l| l.source).collect();
    compile_lists(text, file, &sources, |i, loader| {
        if let Some(list) = lists.get(i) {
            loader.text(list.text);
        }
        Ok(())
    })
}

/// Compile policy text with the blocklists named `sources`: once the
/// policy's own rules are compiled, `feed(i, loader)` hands the lines of
/// list `i` to `loader` (from a text, or streamed from a file).
pub(crate) fn compile_lists<S: AsRef<str>>(
    text: &str,
    file: &str,
    sources: &[S],
    mut feed: impl FnMut(usize, &mut ListLoader) -> Result<(), PolicyError>,
) -> Result<(Policy, BlocklistStats), PolicyError> {
    let mut c = Collector::new(text);
    let raw: RawPolicy = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let offset = e.span().map_or(0, |s| s.start);
            c.at(offset, e.message().trim_end().to_owned());
            return Err(c.into_error(file));
        }
    };
    let id = raw.policy.id.get_ref();
    if !is_slug(id) {
        c.at(raw.policy.id.span().start, format!("policy id {id:?} must be lowercase letters, digits and '-'"));
    }
    let (mut categories, mut by_name) = categories(&raw, &mut c);
    let list_category = (!sources.is_empty()).then(|| blocklist_category(&mut categories, &mut by_name));
    let mut phases = phases(&raw.phases, &by_name, categories.len(), &mut c);
    let (mut rules, names, nets) = rules(&raw.rules, &by_name, &mut c);
    c.finish(file)?;
    let names = names.build();
    let mut stats = BlocklistStats::default();
    let mut lists = Lists::default();
    if let Some((category, declared)) = list_category {
        if !declared {
            phases.iter_mut().for_each(|p| p.actions[usize::from(category.0)] = Action::Block);
        }
        lists.first = rules.len() as u32;
        let mut loader = ListLoader::new(&names);
        for (i, source) in sources.iter().enumerate() {
            let source = source.as_ref();
            loader.begin(source)?;
            feed(i, &mut loader)?;
            rules.push(Rule { kind: RuleKind::Blocklist, category, text: i as u32 });
            lists.sources.push(source.to_owned());
        }
        (lists.set, stats) = loader.finish();
    }
    let meta = PolicyMeta {
        id: id.clone(),
        title: raw.policy.title,
        legal_basis: raw.policy.legal_basis,
        reference_url: raw.policy.reference_url,
        description: raw.policy.description,
        blocked_ede: raw.policy.blocked_ede,
        hash: format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes()))),
        source: file.to_owned(),
    };
    Ok((Policy::assemble(meta, categories, phases, rules, names, lists, nets), stats))
}

/// The `blocklist` category: the policy's own if it declares one (its
/// phases then decide), else a new one that blocks in every phase.
fn blocklist_category(categories: &mut Vec<Category>, by_name: &mut HashMap<String, CategoryId>) -> (CategoryId, bool) {
    if let Some(id) = by_name.get(blocklist::CATEGORY) {
        return (*id, true);
    }
    let id = CategoryId(categories.len() as u16);
    categories.push(Category {
        name: blocklist::CATEGORY.to_owned(),
        description: "entries of user-supplied blocklists".to_owned(),
    });
    by_name.insert(blocklist::CATEGORY.to_owned(), id);
    (id, false)
}

fn is_slug(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn categories(raw: &RawPolicy, c: &mut Collector) -> (Vec<Category>, HashMap<String, CategoryId>) {
    let mut list = Vec::new();
    let mut by_name = HashMap::new();
    for (name, description) in &raw.categories {
        if !is_slug(name.get_ref()) {
            c.at(name.span().start, format!("category {:?} must be lowercase letters, digits and '-'", name.get_ref()));
        }
        by_name.insert(name.get_ref().clone(), CategoryId(list.len() as u16));
        list.push(Category { name: name.get_ref().clone(), description: description.clone() });
    }
    if list.len() > usize::from(u16::MAX) {
        c.at(0, "too many categories");
    }
    (list, by_name)
}

fn category_id(name: &Spanned<String>, by_name: &HashMap<String, CategoryId>, c: &mut Collector) -> Option<CategoryId> {
    let id = by_name.get(name.get_ref()).copied();
    if id.is_none() {
        c.at(name.span().start, format!("unknown category {:?}: declare it under [categories]", name.get_ref()));
    }
    id
}

fn parse_instant(s: &Spanned<String>, c: &mut Collector) -> Option<i64> {
    let text = s.get_ref();
    match DateTime::parse_from_rfc3339(text) {
        Ok(t) if text.ends_with('Z') || text.ends_with('z') => Some(t.timestamp_millis()),
        Ok(_) => {
            c.at(s.span().start, format!("instant {text:?} must be in UTC (end in 'Z')"));
            None
        }
        Err(e) => {
            c.at(s.span().start, format!("instant {text:?} is not RFC 3339: {e}"));
            None
        }
    }
}

fn phases(
    raw: &[Spanned<RawPhase>],
    by_name: &HashMap<String, CategoryId>,
    ncat: usize,
    c: &mut Collector,
) -> Vec<Phase> {
    if raw.is_empty() {
        c.at(0, "a policy needs at least one [[phases]] entry");
    }
    let mut out: Vec<Phase> = Vec::new();
    let mut names = HashMap::new();
    let mut prohibitions = 0;
    for (i, p) in raw.iter().enumerate() {
        let at = p.span().start;
        let p = p.get_ref();
        if !is_slug(p.name.get_ref()) {
            c.at(
                p.name.span().start,
                format!("phase name {:?} must be lowercase letters, digits and '-'", p.name.get_ref()),
            );
        }
        if names.insert(p.name.get_ref().clone(), ()).is_some() {
            c.at(p.name.span().start, format!("phase {:?} is defined twice", p.name.get_ref()));
        }
        let start = match (&p.start, i) {
            (None, 0) => None,
            (Some(s), 0) => {
                c.at(s.span().start, "the first phase has no start: it is in force from the beginning");
                None
            }
            (None, _) => {
                c.at(at, format!("phase {:?} needs a start instant", p.name.get_ref()));
                None
            }
            (Some(s), _) => {
                let t = parse_instant(s, c);
                let prev = out.iter().rev().find_map(|ph| ph.start);
                if let (Some(t), Some(prev)) = (t, prev)
                    && t <= prev
                {
                    c.at(s.span().start, "phase starts must be strictly increasing");
                }
                t
            }
        };
        let mut actions = vec![p.default; ncat];
        for (cat, action) in &p.actions {
            if let Some(id) = category_id(cat, by_name, c) {
                actions[usize::from(id.0)] = *action;
            }
        }
        prohibitions += usize::from(p.prohibition);
        out.push(Phase {
            name: p.name.get_ref().clone(),
            start,
            default: p.default,
            actions,
            note: p.note.clone(),
            prohibition: p.prohibition,
        });
    }
    if prohibitions > 1 {
        c.at(0, "at most one phase may be marked `prohibition = true`");
    }
    out
}

type Tables = (Vec<Rule>, NameTableBuilder, CidrTable);

fn rules(raw: &[Spanned<RawRules>], by_name: &HashMap<String, CategoryId>, c: &mut Collector) -> Tables {
    let total: usize = raw.iter().map(|r| r.get_ref().domains.len() + r.get_ref().hosts.len()).sum();
    let mut names = NameTableBuilder::with_capacity(total);
    let mut nets = CidrTable::default();
    let mut rules = Vec::new();
    for group in raw {
        let g = group.get_ref();
        let Some(category) = category_id(&g.category, by_name, c) else { continue };
        if g.domains.is_empty() && g.hosts.is_empty() && g.wildcards.is_empty() && g.networks.is_empty() {
            c.at(group.span().start, "a [[rules]] entry needs at least one of domains, hosts, wildcards, networks");
        }
        for (kind, list) in
            [(RuleKind::Domain, &g.domains), (RuleKind::Host, &g.hosts), (RuleKind::Wildcard, &g.wildcards)]
        {
            for pattern in list {
                add_name(kind, pattern, category, &mut names, &mut rules, c);
            }
        }
        for net in &g.networks {
            add_network(net, category, &mut names, &mut nets, &mut rules, c);
        }
    }
    (rules, names, nets)
}

fn add_name(
    kind: RuleKind,
    pattern: &Spanned<String>,
    category: CategoryId,
    names: &mut NameTableBuilder,
    rules: &mut Vec<Rule>,
    c: &mut Collector,
) {
    let at = pattern.span().start;
    let text = pattern.get_ref();
    let wild = kind == RuleKind::Wildcard;
    let name = match validate_pattern_name(text, wild) {
        Ok(n) => n,
        Err(e) => return c.at(at, format!("{} {text:?}: {e}", kind.as_str())),
    };
    let name = name.as_str();
    if wild {
        let (first, rest) = name.split_once('.').unwrap_or((name, ""));
        if !first.contains('*') || rest.contains('*') || rest.is_empty() {
            return c.at(at, format!("wildcard {text:?}: '*' must be in the first label, followed by a parent name"));
        }
    } else if name.contains('*') {
        return c.at(at, format!("{} {text:?}: '*' is only allowed in wildcards", kind.as_str()));
    }
    let id = RuleId(rules.len() as u32);
    let added = match kind {
        RuleKind::Domain => names.add_domain(name, id),
        RuleKind::Host => names.add_host(name, id),
        _ => names.add_wildcard(name, id),
    };
    match added {
        Ok(text_off) => rules.push(Rule { kind, category, text: text_off }),
        Err(e) => c.at(at, format!("{} {text:?}: {e}", kind.as_str())),
    }
}

fn add_network(
    net: &Spanned<String>,
    category: CategoryId,
    names: &mut NameTableBuilder,
    nets: &mut CidrTable,
    rules: &mut Vec<Rule>,
    c: &mut Collector,
) {
    let at = net.span().start;
    let text = net.get_ref();
    let parsed: IpNet = match text.parse() {
        Ok(n) => n,
        Err(_) => return c.at(at, format!("network {text:?} is not an IP network in CIDR form (e.g. 192.0.2.0/24)")),
    };
    if parsed.network() != parsed.addr() {
        return c.at(at, format!("network {text:?} has host bits set; did you mean {}?", parsed.trunc()));
    }
    let id = RuleId(rules.len() as u32);
    if !nets.insert(parsed, id) {
        return c.at(at, format!("network {text:?}: the same pattern is already defined"));
    }
    match names.intern(&parsed.to_string()) {
        Ok(text_off) => rules.push(Rule { kind: RuleKind::Network, category, text: text_off }),
        Err(e) => c.at(at, format!("network {text:?}: {e}")),
    }
}
