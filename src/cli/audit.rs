//! `warden audit`: review audit logs (verify, summary, hosts, timeline,
//! export, report) and make the checkpoint signing key (keygen). Parses
//! flags and prints; the reading is `audit::review`. Human tables by
//! default, `--json` for scripts; a closed pipe (`| head`) exits 0.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use ipnet::IpNet;

use super::{audit_export, audit_keygen, audit_report, audit_tables, audit_verify};
use crate::audit::review::rec::{Filter, canonical, from_millis};

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Make an Ed25519 key pair for signed checkpoints.
    Keygen(audit_keygen::KeygenArgs),
    /// Check chains, seq, signatures and torn lines across files; exit 1 on any problem.
    Verify(audit_verify::VerifyArgs),
    /// Time range and counts per phase, category, layer, action; distinct clients.
    Summary(audit_tables::SummaryArgs),
    /// One row per client: first/last contact, contacts after the prohibition, ...
    Hosts(audit_tables::HostsArgs),
    /// Contacts per hour or day, overall or for one client.
    Timeline(audit_tables::TimelineArgs),
    /// Contacts as CSV or JSON lines, filtered.
    Export(audit_export::ExportArgs),
    /// A self-contained HTML report for a reviewer.
    Report(audit_report::ReportArgs),
}

pub fn audit(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let result = match args.command {
        AuditCommand::Keygen(a) => audit_keygen::keygen(a),
        AuditCommand::Verify(a) => audit_verify::verify(a),
        AuditCommand::Summary(a) => audit_tables::summary(a),
        AuditCommand::Hosts(a) => audit_tables::hosts(a),
        AuditCommand::Timeline(a) => audit_tables::timeline(a),
        AuditCommand::Export(a) => audit_export::export(a),
        AuditCommand::Report(a) => audit_report::report(a),
    };
    match result {
        Err(e) if is_broken_pipe(&e) => Ok(ExitCode::SUCCESS),
        other => other,
    }
}

/// A closed stdout (`| head`) is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe))
}

/// Log files and the prohibition instant, shared by the review commands.
#[derive(Debug, Args)]
pub struct Input {
    /// Audit log files (plain, .gz or .zst), any number, any gateways.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Policy file whose `prohibition` phase gives the cut-off instant
    /// (default: the built-in Kaspersky policy).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
}

impl Input {
    /// The prohibition instant, canonical (`2024-09-29T04:00:00.000Z`).
    pub fn prohibition(&self) -> anyhow::Result<Option<String>> {
        let policy = super::load_policy(self.policy.as_deref(), &[])
            .context("cannot load the policy for the prohibition instant")?;
        Ok(policy.prohibition_start().map(from_millis))
    }
}

/// Contact filters of `export`, `hosts` and `timeline`.
#[derive(Debug, Args, Default)]
pub struct FilterArgs {
    /// Only contacts at or after this instant (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Only contacts before this instant (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// Only these clients (address or CIDR; repeatable).
    #[arg(long = "client", value_name = "CIDR", value_parser = parse_net)]
    pub client: Vec<IpNet>,
    /// Only this category (repeatable).
    #[arg(long)]
    pub category: Vec<String>,
    /// Only this layer: dns, dns-bypass, sni, http, ip (repeatable).
    #[arg(long)]
    pub layer: Vec<String>,
    /// Only contacts at or after the policy's prohibition instant.
    #[arg(long)]
    pub after_prohibition: bool,
}

/// An address is a /32 (or /128) network.
fn parse_net(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{s:?} is neither an IP address nor a CIDR"))
}

impl FilterArgs {
    pub fn build(&self, prohibition: Option<&str>) -> anyhow::Result<Filter> {
        let instant = |flag: &str, v: &Option<String>| -> anyhow::Result<Option<String>> {
            v.as_deref()
                .map(|t| {
                    canonical(t)
                        .map(|c| c.into_owned())
                        .with_context(|| format!("{flag} {t:?} is not an RFC 3339 instant"))
                })
                .transpose()
        };
        if self.after_prohibition && prohibition.is_none() {
            anyhow::bail!("--after-prohibition: the policy has no prohibition phase");
        }
        Ok(Filter {
            since: instant("--since", &self.since)?,
            until: instant("--until", &self.until)?,
            clients: self.client.clone(),
            categories: self.category.clone(),
            layers: self.layer.clone(),
            after: if self.after_prohibition { prohibition.map(str::to_owned) } else { None },
        })
    }
}

/// Stdout, buffered; every write returns its error (broken pipe included).
pub fn stdout() -> io::BufWriter<io::StdoutLock<'static>> {
    io::BufWriter::with_capacity(1 << 16, io::stdout().lock())
}

/// Prints `value` as pretty JSON and a newline.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = stdout();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// Lists malformed lines on stderr (reading went on past them).
pub fn report_malformed(stats: &crate::audit::review::ScanStats) {
    for m in &stats.malformed {
        eprintln!("warden: {}:{}: skipped: {}", m.file.display(), m.line, m.reason);
    }
    let more = stats.malformed_count.saturating_sub(stats.malformed.len() as u64);
    if more > 0 {
        eprintln!("warden: {more} more malformed lines skipped");
    }
}
