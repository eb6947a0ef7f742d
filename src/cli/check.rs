//! `warden check`: run the real load path on policy files (and a config
//! file: the same parsing and validation as `warden run`, plus the `user`
//! lookup), print every problem, or a summary of each policy.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::config::Config;
use crate::policy::Policy;
use crate::time::rfc3339;

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Policy files to validate (default: the config's policy, else the
    /// built-in one).
    files: Vec<PathBuf>,
    /// Blocklist files to load with each policy (repeatable).
    #[arg(long = "blocklist", value_name = "FILE")]
    blocklist: Vec<PathBuf>,
    /// Also validate this config file (and its policy).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Show the phase in force at this instant instead of now (RFC 3339).
    #[arg(long)]
    at: Option<String>,
}

pub fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let now = super::instant(args.at.as_deref())?;
    let mut files: Vec<Option<PathBuf>> = args.files.into_iter().map(Some).collect();
    let mut failed = false;
    if let Some(path) = &args.config {
        match Config::load(path) {
            Ok(config) => {
                if let Some(user) = &config.user
                    && let Err(e) = crate::privilege::lookup_user(user)
                {
                    eprintln!("{}: user: {e}", path.display());
                    failed = true;
                } else {
                    println!("config {}: ok", path.display());
                }
                if files.is_empty() {
                    files.push(config.policy.file);
                }
            }
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    if files.is_empty() && !failed {
        files.push(None);
    }
    for file in &files {
        match crate::policy::load(file.as_deref(), &args.blocklist) {
            Ok((policy, lists)) => {
                print_summary(&policy, now);
                if !args.blocklist.is_empty() {
                    print_lists(&lists);
                }
            }
            Err(e) => {
                eprintln!("{e:#}");
                failed = true;
            }
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// What the blocklists gave, and the lines skipped (on stderr, as
/// `file:line: skipped: why`; the rest of the list is used).
fn print_lists(lists: &crate::policy::BlocklistStats) {
    println!(
        "  blocklists: {} entries, {} duplicates, {} lines skipped",
        lists.entries, lists.duplicates, lists.skipped
    );
    for (source, p) in &lists.problems {
        eprintln!("{source}:{}: skipped: {}", p.line, p.message);
    }
    let told = lists.problems.len();
    if lists.skipped > told {
        eprintln!("({} more skipped lines not shown)", lists.skipped - told);
    }
}

fn print_summary(p: &Policy, now: i64) {
    let current = p.phase_at(now);
    println!("policy {} ({}): ok", p.meta.id, p.meta.source);
    println!("  title:   {}", p.meta.title);
    println!("  basis:   {}", p.meta.legal_basis);
    println!("  hash:    {}", p.meta.hash);
    match p.blocklist_entries() {
        0 => println!("  rules:   {}", p.rule_total()),
        n => println!("  rules:   {} ({n} blocklist entries)", p.rule_total()),
    }
    println!("  phases:");
    for (i, ph) in p.phases().iter().enumerate() {
        let start = ph.start.map_or_else(|| "(beginning)".to_owned(), rfc3339);
        let marker = if usize::from(current.0) == i { "  <- in force" } else { "" };
        let prohibition = if ph.prohibition { " [prohibition]" } else { "" };
        println!("    {start:<24} {:<18} default {}{prohibition}{marker}", ph.name, ph.default);
    }
    println!("  categories (rules, action now):");
    let phase = p.phase(current);
    for (i, (cat, count)) in p.rule_counts().into_iter().enumerate() {
        println!("    {:<18} {count:>6}  {:<8} {}", cat.name, phase.actions[i].as_str(), cat.description);
    }
    println!("  in force at {}: phase {}", rfc3339(now), phase.name);
}
