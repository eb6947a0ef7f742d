//! `export`: the contacts a filter keeps, as CSV (for spreadsheets) or as
//! the original JSON lines (for SIEMs; hashes intact). Streams straight to
//! the writer it is given.

use std::io::{self, Write};
use std::path::PathBuf;

use serde::Serialize;

use super::rec::{Filter, Rec};
use super::{Reading, ReviewError, ScanStats};

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
    export_with(paths, filter, format, out, Reading::auto())
}

/// The kept contacts of one chunk, as they are to be written.
#[derive(Default)]
struct Part {
    kept: u64,
    bytes: Vec<u8>,
}

/// [`export`], reading as `reading` says.
pub fn export_with(
    paths: &[PathBuf],
    filter: &Filter,
    format: Format,
    out: &mut dyn Write,
    reading: Reading,
) -> Result<(u64, ScanStats), ExportError> {
    if format == Format::Csv {
        out.write_all(CSV_HEADER.as_bytes()).map_err(ExportError::Write)?;
    }
    let add = |part: &mut Part, r: &Rec<'_>, ts: &str, bytes: &[u8]| {
        if !filter.keep(r, ts) {
            return;
        }
        part.kept += 1;
        match format {
            Format::Jsonl => {
                part.bytes.extend_from_slice(bytes);
                part.bytes.push(b'\n');
            }
            Format::Csv => write_csv(&mut part.bytes, r, ts),
        }
    };
    let mut kept = 0;
    let mut failed: Option<io::Error> = None;
    let stats = super::scan(paths, reading, Part::default, add, |part| {
        kept += part.kept;
        failed = out.write_all(&part.bytes).err();
        failed.is_none()
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

fn write_csv(out: &mut Vec<u8>, r: &Rec<'_>, ts: &str) {
    let opt = |v: &Option<std::borrow::Cow<'_, str>>| v.as_deref().map(csv_field).unwrap_or_default();
    let ip = |v: Option<std::net::IpAddr>| v.map(|a| a.to_string()).unwrap_or_default();
    let line = format!(
        "{ts},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
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
    );
    out.extend_from_slice(line.as_bytes());
}

/// RFC 4180 quoting when needed; a leading `=`, `+`, `-` or `@` is
/// prefixed with `'` so spreadsheets do not run it as a formula.
fn csv_field(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@']) { format!("'{v}") } else { v.to_owned() };
    if v.contains([',', '"', '\n', '\r']) { format!("\"{}\"", v.replace('"', "\"\"")) } else { v }
}
