//! Opening the log to continue its chain: reads only the end of the file,
//! checks the last complete line, and moves a torn last line (a crash in the
//! middle of a write) aside. It never rewrites complete lines.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::chain::{ChainLink, check_line};
use super::error::AuditError;

/// How much of the end of the file is read first.
const TAIL_WINDOW: u64 = 64 * 1024;
/// A last line longer than this is refused instead of read.
const TAIL_LIMIT: u64 = 16 * 1024 * 1024;

/// The log, open for appending, positioned after its last complete line.
#[derive(Debug)]
pub(crate) struct OpenedLog {
    pub file: File,
    /// Length of the file after any repair.
    pub len: u64,
    /// Chain fields of the last line; `None` for an empty log.
    pub last: Option<ChainLink>,
    /// The torn tail that was moved aside: byte count and where to.
    pub torn: Option<(u64, PathBuf)>,
}

/// Where the last complete line and the torn tail lie in a window of bytes.
struct Split {
    /// Range of the last complete line (with its `\n`), if any.
    last_line: Option<(usize, usize)>,
    /// Offset of the first byte after the last `\n`.
    complete_end: usize,
}

pub(crate) fn open_log(path: &Path) -> Result<OpenedLog, AuditError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !fs::metadata(dir).is_ok_and(|m| m.is_dir())
    {
        return Err(AuditError::NoDirectory { dir: dir.to_path_buf() });
    }
    let open_err = |source| AuditError::Open { path: path.to_path_buf(), source };
    let mut file = create_append().read(true).open(path).map_err(open_err)?;
    let read_err = |source| AuditError::ReadTail { path: path.to_path_buf(), source };
    let len = file.metadata().map_err(read_err)?.len();
    let (start, bytes, split) = read_tail(&mut file, path, len)?;

    let last = match split.last_line {
        None => None,
        Some((a, b)) => {
            let line = String::from_utf8_lossy(&bytes[a..b]);
            let offset = start + a as u64;
            let reason = |reason| AuditError::CorruptTail { path: path.to_path_buf(), offset, reason };
            Some(check_line(&line).map_err(reason)?)
        }
    };
    let complete_len = start + split.complete_end as u64;
    let torn = match bytes.get(split.complete_end..) {
        Some(torn) if !torn.is_empty() => Some(move_torn(&file, path, torn, complete_len)?),
        _ => None,
    };
    Ok(OpenedLog { file, len: complete_len, last, torn })
}

/// Reads a window from the end of the file, growing it until it holds the
/// whole last complete line. Returns the window's offset, bytes and split.
fn read_tail(file: &mut File, path: &Path, len: u64) -> Result<(u64, Vec<u8>, Split), AuditError> {
    let read_err = |source| AuditError::ReadTail { path: path.to_path_buf(), source };
    let mut window = TAIL_WINDOW.min(len);
    loop {
        let start = len - window;
        file.seek(SeekFrom::Start(start)).map_err(read_err)?;
        let mut bytes = Vec::new();
        Read::by_ref(file).take(window).read_to_end(&mut bytes).map_err(read_err)?;
        if let Some(split) = split(&bytes, start == 0) {
            return Ok((start, bytes, split));
        }
        if window >= TAIL_LIMIT {
            return Err(AuditError::TailTooLong { path: path.to_path_buf(), limit: TAIL_LIMIT });
        }
        window = window.saturating_mul(4).min(len).min(TAIL_LIMIT);
    }
}

/// `None` when the window must grow to see where the last line starts.
fn split(bytes: &[u8], at_file_start: bool) -> Option<Split> {
    let complete_end = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(i) => i + 1,
        None if at_file_start => {
            return Some(Split { last_line: None, complete_end: 0 });
        }
        None => return None,
    };
    let line_start = match bytes[..complete_end - 1].iter().rposition(|&b| b == b'\n') {
        Some(i) => i + 1,
        None if at_file_start => 0,
        None => return None,
    };
    Some(Split { last_line: Some((line_start, complete_end)), complete_end })
}

/// Appends the torn bytes to `<path>.torn-<unix seconds>`, then truncates
/// the log to `complete_len`. In that order: a crash in between only
/// duplicates bytes in the side file.
fn move_torn(log: &File, path: &Path, torn: &[u8], complete_len: u64) -> Result<(u64, PathBuf), AuditError> {
    let mut side = path.as_os_str().to_owned();
    side.push(format!(".torn-{}", chrono::Utc::now().timestamp()));
    let side = PathBuf::from(side);
    let move_err = |source| AuditError::MoveTorn { path: side.clone(), source };
    let mut out = create_append().open(&side).map_err(move_err)?;
    out.write_all(torn).and_then(|()| out.sync_all()).map_err(move_err)?;
    let trunc_err = |source| AuditError::Truncate { path: path.to_path_buf(), source };
    log.set_len(complete_len).and_then(|()| log.sync_all()).map_err(trunc_err)?;
    Ok((torn.len() as u64, side))
}

/// A new live file after rotation (created, or appended to if it exists).
pub(crate) fn create_new_log(path: &Path) -> std::io::Result<File> {
    create_append().open(path)
}

/// Append, create if missing; a new file is readable by owner and group only
/// (it names clients).
fn create_append() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o640);
    options
}
