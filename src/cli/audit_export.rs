//! `warden audit export`: filtered contacts as CSV or JSON lines on stdout.

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::audit::{FilterArgs, Input, report_malformed, stdout};
use crate::audit::review::export::{ExportError, Format, export as export_review};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Fmt {
    Csv,
    Jsonl,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    input: Input,
    /// Output format: CSV for spreadsheets, the original JSON lines for SIEMs.
    #[arg(long, value_enum)]
    format: Fmt,
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let prohibition = args.input.prohibition()?;
    let filter = args.filter.build(prohibition.as_deref())?;
    let format = match args.format {
        Fmt::Csv => Format::Csv,
        Fmt::Jsonl => Format::Jsonl,
    };
    let mut out = stdout();
    let stats = match export_review(&args.input.files, &filter, format, &mut out) {
        Ok((_, stats)) => stats,
        Err(ExportError::Write(e)) => return Err(e.into()),
        Err(ExportError::Read(e)) => return Err(e.into()),
    };
    out.flush()?;
    report_malformed(&stats);
    Ok(ExitCode::SUCCESS)
}
