//! `warden audit summary | hosts | timeline`: human tables, or `--json`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::audit::{FilterArgs, Input, print_json, report_malformed, stdout};
use crate::audit::review::leases::Leases;
use crate::audit::review::timeline::Bucket;
use crate::audit::review::{hosts as hosts_review, summary as summary_review, timeline as timeline_review};

#[derive(Debug, Args)]
pub struct SummaryArgs {
    #[command(flatten)]
    input: Input,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

pub fn summary(args: SummaryArgs) -> anyhow::Result<ExitCode> {
    let prohibition = args.input.prohibition()?;
    let s = summary_review::summarize(&args.input.files, prohibition.as_deref())?;
    report_malformed(&s.input);
    if args.json {
        print_json(&s)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = stdout();
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    writeln!(
        out,
        "files            {}  ({} lines, {} malformed)",
        s.input.files, s.input.lines, s.input.malformed_count
    )?;
    writeln!(out, "records          {}  from {} to {}", s.records, dash(&s.first_ts), dash(&s.last_ts))?;
    writeln!(out, "contacts         {}  from {} to {}", s.contacts, dash(&s.first_contact), dash(&s.last_contact))?;
    writeln!(out, "prohibition      {}", dash(&s.prohibition))?;
    writeln!(
        out,
        "after it         {} contacts from {} clients",
        s.contacts_after_prohibition, s.clients_after_prohibition
    )?;
    writeln!(out, "clients          {}", s.clients)?;
    for (title, map) in [
        ("per gateway", &s.by_gateway),
        ("per phase", &s.by_phase),
        ("per category", &s.by_category),
        ("per layer", &s.by_layer),
        ("per action", &s.by_action),
        ("records per type", &s.by_type),
    ] {
        writeln!(out, "\n{title}")?;
        counts(&mut out, map)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn counts(out: &mut dyn Write, map: &BTreeMap<String, u64>) -> std::io::Result<()> {
    let mut rows: Vec<_> = map.iter().collect();
    rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (k, v) in rows {
        writeln!(out, "  {k:<24} {v:>12}")?;
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct HostsArgs {
    #[command(flatten)]
    input: Input,
    #[command(flatten)]
    filter: FilterArgs,
    /// DHCP leases (dnsmasq, ISC dhcpd.leases or Kea CSV) to name clients.
    #[arg(long, value_name = "FILE")]
    leases: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

pub fn hosts(args: HostsArgs) -> anyhow::Result<ExitCode> {
    let prohibition = args.input.prohibition()?;
    let filter = args.filter.build(prohibition.as_deref())?;
    let leases = args.leases.as_deref().map(Leases::load).transpose()?;
    let h = hosts_review::hosts(&args.input.files, prohibition.as_deref(), &filter, leases.as_ref())?;
    report_malformed(&h.input);
    if args.json {
        print_json(&h)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = stdout();
    writeln!(
        out,
        "{:<39} {:<24} {:<24} {:<24} {:>8} {:>8}  {:<28} {:<12} TOP NAMES",
        "CLIENT", "MACHINE", "FIRST CONTACT", "LAST CONTACT", "CONTACTS", "AFTER", "CATEGORIES", "LAYERS"
    )?;
    for r in &h.rows {
        let join =
            |m: hosts_review::Counts<'_>| m.iter().map(|(k, v)| format!("{k}:{v}")).collect::<Vec<_>>().join(",");
        let machine = r
            .machines()
            .map(|m| format!("{} {}", if m.hostname.is_empty() { "?" } else { &m.hostname }, m.mac))
            .collect::<Vec<_>>()
            .join("; ");
        let names = r.top_names().map(|(n, c)| format!("{n}({c})")).collect::<Vec<_>>().join(" ");
        writeln!(
            out,
            "{:<39} {:<24} {:<24} {:<24} {:>8} {:>8}  {:<28} {:<12} {names}",
            r.client().to_string(),
            if machine.is_empty() { "-".into() } else { machine },
            r.first_contact(),
            r.last_contact(),
            r.contacts(),
            r.after_prohibition(),
            join(r.categories()),
            join(r.layers())
        )?;
    }
    writeln!(
        out,
        "{} clients; AFTER = contacts at or after the prohibition ({})",
        h.rows.len(),
        h.prohibition.as_deref().unwrap_or("none")
    )?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum By {
    Hour,
    Day,
}

#[derive(Debug, Args)]
pub struct TimelineArgs {
    #[command(flatten)]
    input: Input,
    /// Bucket size (UTC).
    #[arg(long, value_enum, default_value = "day")]
    by: By,
    #[command(flatten)]
    filter: FilterArgs,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

pub fn timeline(args: TimelineArgs) -> anyhow::Result<ExitCode> {
    let prohibition = args.input.prohibition()?;
    let filter = args.filter.build(prohibition.as_deref())?;
    let by = match args.by {
        By::Hour => Bucket::Hour,
        By::Day => Bucket::Day,
    };
    let t = timeline_review::timeline(&args.input.files, by, &filter, prohibition.as_deref())?;
    report_malformed(&t.input);
    if args.json {
        print_json(&t)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = stdout();
    let max = t.buckets.iter().map(|b| b.1).max().unwrap_or(1).max(1);
    for (start, n) in &t.buckets {
        let mark = if t.prohibition.as_deref().is_some_and(|p| start.as_str() >= p) { "*" } else { " " };
        let bar = "#".repeat(((n * 50).div_ceil(max)) as usize);
        writeln!(out, "{start} {mark} {n:>10}  {bar}")?;
    }
    writeln!(out, "* = at or after the prohibition ({})", t.prohibition.as_deref().unwrap_or("none"))?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
