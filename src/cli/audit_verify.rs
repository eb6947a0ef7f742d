//! `warden audit verify`: print where and what is wrong with the chains;
//! exit 1 on any problem (warnings such as a torn tail or a gap do not fail).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::audit::{print_json, stdout};
use crate::audit::review::verify::{Finding, Outcome, verify as verify_files};
use crate::audit::sign;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Public key (`warden audit keygen`) to check checkpoint signatures.
    #[arg(long, value_name = "PUBLIC_KEY_FILE")]
    key: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
    /// Audit log files (plain, .gz or .zst), any order, any gateways.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

pub fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let key = args.key.as_deref().map(sign::load_public_key).transpose()?;
    let outcome = verify_files(&args.files, key.as_ref())?;
    if args.json {
        print_json(&outcome)?;
    } else {
        print_human(&outcome)?;
    }
    Ok(if outcome.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn print_human(o: &Outcome) -> anyhow::Result<()> {
    let mut out = stdout();
    for c in &o.chains {
        let range = match (c.first_seq, c.last_seq) {
            (Some(a), Some(b)) => format!("seq {a}..{b}"),
            _ => "no records".into(),
        };
        writeln!(
            out,
            "gateway {}: {} records, {range}, {} file(s), {} start(s), {} checkpoint(s){}",
            c.host,
            c.records,
            c.files.len(),
            c.starts,
            c.checkpoints,
            if o.signatures_checked {
                format!(", {} signature(s) valid", c.checkpoints_verified)
            } else {
                String::new()
            }
        )?;
    }
    let line = |out: &mut dyn Write, tag: &str, f: &Finding| {
        let at = if f.line == 0 { f.file.display().to_string() } else { format!("{}:{}", f.file.display(), f.line) };
        writeln!(out, "{tag} {at}: [{}] {}", f.kind, f.message)
    };
    for f in &o.problems {
        line(&mut out, "FAIL", f)?;
    }
    for f in &o.warnings {
        line(&mut out, "WARN", f)?;
    }
    for f in &o.notes {
        line(&mut out, "note", f)?;
    }
    if o.omitted > 0 {
        writeln!(out, "... {} more findings not listed", o.omitted)?;
    }
    let sig = if o.signatures_checked { "signatures checked" } else { "signatures NOT checked (no --key)" };
    let verdict = if o.ok { "OK" } else { "FAILED" };
    writeln!(
        out,
        "{verdict}: {} files, {} records, {} problem(s), {} warning(s); {sig}",
        o.files,
        o.records,
        o.problems.len(),
        o.warnings.len()
    )?;
    out.flush()?;
    Ok(())
}
