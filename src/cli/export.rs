//! `warden export --format rpz|unbound|dnsmasq|hosts|nft`: the policy in
//! force (now, or `--at`) in another engine's native form, on stdout.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::export::{Format, Plan, plan, render};

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The target engine's format.
    #[arg(long, value_enum)]
    format: Format,
    /// Policy file (repeatable; entries are merged). Default: the built-in policy.
    #[arg(long, value_name = "FILE")]
    policy: Vec<PathBuf>,
    /// Export the phase in force at this instant (RFC 3339; default now).
    #[arg(long)]
    at: Option<String>,
}

pub fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let now = super::instant(args.at.as_deref())?;
    let mut files: Vec<Option<PathBuf>> = args.policy.into_iter().map(Some).collect();
    if files.is_empty() {
        files.push(None);
    }
    let mut merged = Plan::default();
    for file in &files {
        let policy = super::load_policy(file.as_deref(), &[])?;
        plan(&policy, now, &mut merged)?;
    }
    let text = render(&merged, args.format, now);
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}
