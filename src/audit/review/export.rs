//! `export`: the contacts a filter keeps, as CSV (for spreadsheets) or as
//! the original JSON lines (for SIEMs; hashes intact). Streams straight to
//! the writer it is given.

use std::io::{self, Write};
use std::path::PathBuf;

use serde::Serialize;

use super::rec::{Filter, Rec};
use super::{ReviewError, ScanStats};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Jsonl,
}

pub const CSV_HEADER: &str = "ts,gateway,seq,client,layer,name,qtype,dst,dport,action,category,rule,phase,policy\n";

/// Writes the kept contacts to `out`. An error writing stops the export
/// (a closed pipe is the caller's to handle).
pub fn export(
    paths: &[PathBuf],
    filter: &Filter,
    format: Format,
    out: &mut dyn Write,
) -> Result<(u64, ScanStats), ExportError> {
    if format == Format::Csv {
        out.write_all(CSV_HEADER.as_bytes()).map_err(ExportError::Write)?;
    }
    let mut kept = 0;
    let mut failed: Option<io::Error> = None;
    let stats = super::scan(paths, |r, ts, bytes| {
        if failed.is_some() || !filter.keep(r, ts) {
            return;
        }
        kept += 1;
        let result = match format {
            Format::Jsonl => out.write_all(bytes).and_then(|()| out.write_all(b"\n")),
            Format::Csv => write_csv(out, r, ts),
        };
        failed = result.err();
    })?;
    match failed {
        Some(e) => Err(ExportError::Write(e)),
        None => Ok((kept, stats)),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Read(#[from] ReviewError),
    #[error("cannot write the export")]
    Write(#[source] io::Error),
}

fn write_csv(out: &mut dyn Write, r: &Rec<'_>, ts: &str) -> io::Result<()> {
    let opt = |v: &Option<std::borrow::Cow<'_, str>>| v.as_deref().map(csv_field).unwrap_or_default();
    let ip = |v: Option<std::net::IpAddr>| v.map(|a| a.to_string()).unwrap_or_default();
    writeln!(
        out,
        "{ts},{},{},{},{},{},{},{},{},{},{},{},{},{}",
        csv_field(&r.host),
        r.seq,
        ip(r.client),
        opt(&r.layer),
        opt(&r.name),
        opt(&r.qtype),
        ip(r.dst),
        r.dport.map(|p| p.to_string()).unwrap_or_default(),
        opt(&r.action),
        opt(&r.category),
        opt(&r.rule),
        opt(&r.phase),
        r.policy.as_ref().map(|p| csv_field(&p.id)).unwrap_or_default(),
    )
}

/// RFC 4180 quoting when needed; a leading `=`, `+`, `-` or `@` is
/// prefixed with `'` so spreadsheets do not run it as a formula.
fn csv_field(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@']) { format!("'{v}") } else { v.to_owned() };
    if v.contains([',', '"', '\n', '\r']) { format!("\"{}\"", v.replace('"', "\"\"")) } else { v }
}
