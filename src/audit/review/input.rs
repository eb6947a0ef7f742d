//! Reading many log files, plain or compressed, line by line with a fixed
//! buffer, and knowing where each line is (file and 1-based line number).
//! It never holds more than one line; it never writes.

use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ReviewError;
use crate::audit::compress::open_reader;

/// Longest line read; longer lines are reported as malformed, not held.
const MAX_LINE: usize = 1 << 20;

/// One line as handed to a consumer.
pub struct Line<'a> {
    /// Index of the file in the input list.
    pub file: usize,
    /// 1-based line number within the file.
    pub number: u64,
    /// The bytes without `\n`.
    pub bytes: &'a [u8],
    /// The line had no `\n`: the file ends in the middle of a write.
    pub torn: bool,
    /// Longer than the read limit: only a prefix is in `bytes`.
    pub too_long: bool,
}

/// Streams the lines of one file.
pub struct LineReader {
    reader: BufReader<Box<dyn Read + Send>>,
    buf: Vec<u8>,
    number: u64,
    file: usize,
}

impl LineReader {
    pub fn open(path: &Path, file: usize) -> Result<LineReader, ReviewError> {
        let reader = open_reader(path).map_err(|source| ReviewError::Open { path: path.to_owned(), source })?;
        Ok(LineReader {
            reader: BufReader::with_capacity(1 << 18, reader),
            buf: Vec::with_capacity(1024),
            number: 0,
            file,
        })
    }

    /// The next line, or `None` at the end of the file.
    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        self.buf.clear();
        let limit = (MAX_LINE + 1) as u64;
        let n = Read::by_ref(&mut self.reader).take(limit).read_until(b'\n', &mut self.buf)?;
        if n == 0 {
            return Ok(None);
        }
        self.number += 1;
        let ends = self.buf.last() == Some(&b'\n');
        let too_long = !ends && self.buf.len() > MAX_LINE;
        if too_long {
            // Skip the rest of the line without holding it.
            let mut sink = Vec::new();
            while !sink.ends_with(b"\n") {
                sink.clear();
                if Read::by_ref(&mut self.reader).take(1 << 16).read_until(b'\n', &mut sink)? == 0 {
                    break;
                }
            }
        }
        let bytes = if ends { &self.buf[..self.buf.len() - 1] } else { &self.buf[..] };
        Ok(Some(Line { file: self.file, number: self.number, bytes, torn: !ends && !too_long, too_long }))
    }
}

/// Calls `f` for every line of every file, in the order given.
pub fn for_each_line(paths: &[PathBuf], mut f: impl FnMut(&Line<'_>)) -> Result<(), ReviewError> {
    for (i, path) in paths.iter().enumerate() {
        let mut reader = LineReader::open(path, i)?;
        while let Some(line) = reader.next_line().map_err(|source| ReviewError::Read { path: path.clone(), source })? {
            f(&line);
        }
    }
    Ok(())
}

/// Gateway and first seq of a file, from its first line that parses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileHead {
    pub host: Option<String>,
    pub first_seq: Option<u64>,
}

/// Reads up to the first 100 lines of `path` for its head.
pub fn file_head(path: &Path) -> Result<FileHead, ReviewError> {
    #[derive(Deserialize)]
    struct Head {
        seq: u64,
        host: String,
    }
    let mut reader = LineReader::open(path, 0)?;
    for _ in 0..100 {
        let read = reader.next_line().map_err(|source| ReviewError::Read { path: path.to_owned(), source })?;
        let Some(line) = read else { break };
        if let Ok(h) = serde_json::from_slice::<Head>(line.bytes) {
            return Ok(FileHead { host: Some(h.host), first_seq: Some(h.seq) });
        }
    }
    Ok(FileHead { host: None, first_seq: None })
}
