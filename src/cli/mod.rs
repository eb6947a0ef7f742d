//! The `warden` command line: one file per subcommand. This is the edge of
//! the program: it parses flags (clap), calls into the library, prints, and
//! maps errors (anyhow) to exit codes.
//!
//! Exit codes: 0 success; 1 the command failed (invalid policy or config,
//! cannot start, upstream unusable); 2 usage error (unknown flag, bad value).

mod audit;
mod audit_export;
mod audit_keygen;
mod audit_report;
mod audit_tables;
mod audit_verify;
mod check;
mod export;
mod lookup;
mod packet_layer;
mod run;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Network egress policy enforcer: DNS filter, packet filter and
/// tamper-evident audit log for vendor prohibitions (first policy:
/// Kaspersky, US BIS Final Determination of June 2024).
#[derive(Debug, Parser)]
#[command(name = "warden", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon: DNS filtering proxy with audit log.
    Run(run::RunArgs),
    /// Validate policy files (and a config file) and summarise them.
    Check(check::CheckArgs),
    /// Show what the policy does to a name or an IP address, and why.
    Lookup(lookup::LookupArgs),
    /// Write the policy in force for another engine (RPZ, unbound, dnsmasq, hosts, nftables).
    Export(export::ExportArgs),
    /// Review audit logs: verify, summary, hosts, timeline, export, report; keygen.
    Audit(audit::AuditArgs),
}

/// Entry point of the `warden` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Check(args) => check::check(args),
        Command::Lookup(args) => lookup::lookup(args),
        Command::Export(args) => export::export(args),
        Command::Audit(args) => audit::audit(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("warden: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Load the policy named by a path (or the built-in one) with blocklists;
/// skipped blocklist lines are reported on stderr through tracing.
fn load_policy(
    path: Option<&std::path::Path>,
    blocklists: &[std::path::PathBuf],
) -> anyhow::Result<crate::policy::Policy> {
    let (policy, stats) = crate::policy::load(path, blocklists)?;
    if !blocklists.is_empty() {
        tracing::info!(
            entries = stats.entries,
            duplicates = stats.duplicates,
            skipped = stats.skipped,
            "blocklists loaded"
        );
        for (source, p) in &stats.problems {
            tracing::warn!("{source}:{}: skipped: {}", p.line, p.message);
        }
    }
    Ok(policy)
}

/// Parse `--at` (RFC 3339) or take now.
fn instant(at: Option<&str>) -> anyhow::Result<i64> {
    match at {
        Some(t) => {
            crate::time::parse_rfc3339(t).map_err(|e| anyhow::anyhow!("--at {t:?} is not an RFC 3339 instant: {e}"))
        }
        None => Ok(crate::time::now_ms()),
    }
}
