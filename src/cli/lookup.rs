//! `warden lookup NAME|IP`: the verdict, the rule that decided it, and what
//! the schedule does to that category over time.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::policy::{Action, Subject};
use crate::time::rfc3339;

#[derive(Debug, Args)]
pub struct LookupArgs {
    /// A DNS name or an IP address.
    target: String,
    /// The instant to decide at (RFC 3339; default now).
    #[arg(long)]
    at: Option<String>,
    /// Policy file (default: the built-in policy).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Blocklist files loaded with the policy (repeatable).
    #[arg(long = "blocklist", value_name = "FILE")]
    blocklist: Vec<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub fn lookup(args: LookupArgs) -> anyhow::Result<ExitCode> {
    let policy = super::load_policy(args.policy.as_deref(), &args.blocklist)?;
    let now = super::instant(args.at.as_deref())?;
    let subject = match args.target.parse::<IpAddr>() {
        Ok(ip) => Subject::Ip(ip),
        Err(_) => {
            crate::matcher::normalize(&args.target).map_err(|e| anyhow::anyhow!("{:?}: {e}", args.target))?;
            Subject::Name(&args.target)
        }
    };
    let v = policy.decide(subject, now);
    let phase = policy.phase(v.phase);
    let rule = policy.rule_label_for(&v, &args.target);
    let category = v.matched.map(|(_, c)| policy.category(c));
    let schedule: Vec<(String, String, Action)> = match v.matched {
        Some((_, c)) => policy
            .phases()
            .iter()
            .map(|ph| {
                (
                    ph.start.map_or_else(|| "(beginning)".to_owned(), rfc3339),
                    ph.name.clone(),
                    ph.actions[usize::from(c.0)],
                )
            })
            .collect(),
        None => Vec::new(),
    };
    if args.json {
        let out = serde_json::json!({
            "target": args.target, "at": rfc3339(now), "action": v.action, "rule": rule,
            "category": category.map(|c| &c.name), "phase": phase.name,
            "valid_until": v.valid_until.map(rfc3339),
            "policy": { "id": policy.meta.id, "hash": policy.meta.hash },
            "schedule": schedule.iter().map(|(s, n, a)| serde_json::json!({"start": s, "phase": n, "action": a})).collect::<Vec<_>>(),
        });
        println!("{out}");
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}: {} (phase {}, at {})", args.target, v.action, phase.name, rfc3339(now));
    match (rule, category) {
        (Some(rule), Some(cat)) => {
            println!("  rule:     {rule}");
            println!("  category: {} ({})", cat.name, cat.description);
        }
        _ => println!("  no rule of policy {} matches", policy.meta.id),
    }
    if let Some(t) = v.valid_until {
        println!("  changes:  at {}", rfc3339(t));
    }
    if !schedule.is_empty() {
        println!("  schedule for this category:");
        for (start, name, action) in &schedule {
            println!("    {start:<24} {name:<18} {action}");
        }
    }
    println!("  policy:   {} {}", policy.meta.id, policy.meta.hash);
    Ok(ExitCode::SUCCESS)
}
