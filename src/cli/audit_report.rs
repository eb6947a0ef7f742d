//! `warden audit report --html FILE`: one self-contained HTML page with the
//! headline figures, a chart, the hosts table and the verification result.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::audit::{FilterArgs, Input, report_malformed};
use crate::audit::review::html::{Report, render};
use crate::audit::review::leases::Leases;
use crate::audit::review::timeline::Bucket;
use crate::audit::review::{hosts, summary, timeline, verify};
use crate::audit::sign;

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    input: Input,
    /// Where to write the HTML page.
    #[arg(long, value_name = "FILE")]
    html: PathBuf,
    /// Public key to check checkpoint signatures.
    #[arg(long, value_name = "PUBLIC_KEY_FILE")]
    key: Option<PathBuf>,
    /// DHCP leases (dnsmasq, ISC or Kea CSV) to name clients.
    #[arg(long, value_name = "FILE")]
    leases: Option<PathBuf>,
    /// Page title.
    #[arg(long, default_value = "warden audit report")]
    title: String,
}

pub fn report(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let prohibition = args.input.prohibition()?;
    let p = prohibition.as_deref();
    let files = &args.input.files;
    let key = args.key.as_deref().map(sign::load_public_key).transpose()?;
    let leases = args.leases.as_deref().map(Leases::load).transpose()?;
    let summary = summary::summarize(files, p)?;
    report_malformed(&summary.input);
    let filter = FilterArgs::default().build(p)?;
    let by = match (summary.first_contact.as_deref(), summary.last_contact.as_deref()) {
        (Some(a), Some(b)) if a.get(..10) == b.get(..10) => Bucket::Hour,
        _ => Bucket::Day,
    };
    let timeline = timeline::timeline(files, by, &filter, p)?;
    let hosts = hosts::hosts(files, p, &filter, leases.as_ref())?;
    let verify = verify::verify(files, key.as_ref())?;
    let generated = crate::time::rfc3339(crate::time::now_ms());
    let html = render(&Report {
        title: &args.title,
        generated: &generated,
        summary: &summary,
        timeline: &timeline,
        hosts: &hosts,
        verify: &verify,
    });
    std::fs::write(&args.html, html).with_context(|| format!("cannot write {}", args.html.display()))?;
    println!(
        "wrote {} ({} hosts, log {})",
        args.html.display(),
        hosts.rows.len(),
        if verify.ok { "verifies" } else { "does NOT verify" }
    );
    Ok(ExitCode::SUCCESS)
}
