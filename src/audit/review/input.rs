//! Reading many log files, plain or compressed, and knowing where each line
//! is (file and 1-based line number): [`Chunker`] cuts the files into
//! chunks of whole lines (about [`CHUNK`] bytes each) that [`Chunk::lines`]
//! splits without copying; [`LineReader`] reads one file line by line. Both
//! hold a bounded amount, however long a line; neither writes.

use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use memchr::{memchr, memrchr};
use serde::Deserialize;

use super::ReviewError;
use crate::audit::compress::open_reader;

/// Longest line read; longer lines are reported as malformed, not held.
pub(crate) const MAX_LINE: usize = 1 << 20;
/// Bytes a chunk holds, give or take a line.
pub(crate) const CHUNK: usize = 1 << 20;
/// Bytes read from a file at a time.
const READ_BLOCK: usize = 256 << 10;

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

/// Whole lines of one file, read by [`Chunker`].
#[derive(Debug, Default)]
pub struct Chunk {
    /// Index of the file in the input list.
    pub file: usize,
    /// Number of the chunk's first line within its file (1-based).
    pub first_line: u64,
    /// Lines, each with its `\n` but the file's last if it has none. A
    /// line longer than [`MAX_LINE`] is cut to its first `MAX_LINE + 1`
    /// bytes.
    pub bytes: Vec<u8>,
}

impl Chunk {
    /// The lines, as [`LineReader::next_line`] reads them.
    pub fn lines(&self) -> Lines<'_> {
        Lines { file: self.file, number: self.first_line, rest: &self.bytes }
    }

    fn count_lines(&self) -> u64 {
        let newlines = memchr::memchr_iter(b'\n', &self.bytes).count() as u64;
        newlines + u64::from(self.bytes.last().is_some_and(|&b| b != b'\n'))
    }
}

/// The lines of a [`Chunk`].
pub struct Lines<'a> {
    file: usize,
    number: u64,
    rest: &'a [u8],
}

impl<'a> Iterator for Lines<'a> {
    type Item = Line<'a>;

    fn next(&mut self) -> Option<Line<'a>> {
        if self.rest.is_empty() {
            return None;
        }
        let (bytes, ends) = match memchr(b'\n', self.rest) {
            Some(i) => {
                let (line, rest) = self.rest.split_at(i);
                self.rest = rest.get(1..).unwrap_or_default();
                (line, true)
            }
            None => (std::mem::take(&mut self.rest), false),
        };
        let number = self.number;
        self.number += 1;
        let too_long = bytes.len() > MAX_LINE;
        let bytes = if too_long { bytes.get(..=MAX_LINE).unwrap_or(bytes) } else { bytes };
        Some(Line { file: self.file, number, bytes, torn: !ends && !too_long, too_long })
    }
}

/// Cuts files, in the order given, into [`Chunk`]s of whole lines.
pub struct Chunker<'p> {
    paths: &'p [PathBuf],
    target: usize,
    next_file: usize,
    /// The file being read: its index and reader.
    open: Option<(usize, Box<dyn Read + Send>)>,
    /// Lines of the open file handed out so far.
    lines: u64,
    /// Bytes read after the last whole line (never a `\n`).
    carry: Vec<u8>,
}

impl<'p> Chunker<'p> {
    /// Chunks of about `target` bytes.
    pub fn new(paths: &'p [PathBuf], target: usize) -> Chunker<'p> {
        Chunker { paths, target: target.max(1), next_file: 0, open: None, lines: 0, carry: Vec::new() }
    }

    /// Fills `chunk` with the next lines; `false` once every file is read.
    /// A file that cannot be opened or read ends the reading with an error.
    pub fn next_chunk(&mut self, chunk: &mut Chunk) -> Result<bool, ReviewError> {
        loop {
            if self.open.is_none() {
                let Some(path) = self.paths.get(self.next_file) else { return Ok(false) };
                let reader = open_reader(path).map_err(|source| ReviewError::Open { path: path.to_owned(), source })?;
                self.open = Some((self.next_file, reader));
                self.next_file += 1;
                self.lines = 0;
                self.carry.clear();
            }
            let Some((file, reader)) = &mut self.open else { continue };
            let file = *file;
            let out = &mut chunk.bytes;
            out.clear();
            out.append(&mut self.carry);
            let read_err = |source| ReviewError::Read { path: self.paths[file].clone(), source };
            match fill(reader, out, &mut self.carry, self.target).map_err(read_err)? {
                Fill::Eof if out.is_empty() => {
                    self.open = None;
                    continue;
                }
                Fill::Eof => self.open = None,
                Fill::More => {}
            }
            chunk.file = file;
            chunk.first_line = self.lines + 1;
            self.lines += chunk.count_lines();
            return Ok(true);
        }
    }
}

enum Fill {
    /// The file is read to its end.
    Eof,
    More,
}

/// Reads onto `out` (which starts with the previous carry, no `\n` in it)
/// until it holds at least `target` bytes and a whole line, then moves the
/// bytes after the last `\n` to `carry`. A line longer than [`MAX_LINE`]
/// is cut to `MAX_LINE + 1` bytes and the rest of it skipped.
fn fill(reader: &mut Box<dyn Read + Send>, out: &mut Vec<u8>, carry: &mut Vec<u8>, target: usize) -> io::Result<Fill> {
    // Small chunks (in tests) read in small blocks, to make many chunks.
    let block = target.clamp(64, READ_BLOCK);
    let mut has_newline = false;
    loop {
        if out.len() >= target && (has_newline || out.len() > MAX_LINE) {
            break;
        }
        let start = out.len();
        let n = Read::by_ref(reader).take(block as u64).read_to_end(out)?;
        has_newline = has_newline || memchr(b'\n', &out[start..]).is_some();
        if n < block {
            // `read_to_end` stops short only at the end of the file.
            let tail = memrchr(b'\n', out).map_or(0, |i| i + 1);
            out.truncate(tail.saturating_add(MAX_LINE + 1));
            return Ok(Fill::Eof);
        }
    }
    if has_newline {
        let cut = memrchr(b'\n', out).map_or(0, |i| i + 1);
        carry.extend_from_slice(&out[cut..]);
        out.truncate(cut);
    } else {
        out.truncate(MAX_LINE + 1);
        out.push(b'\n');
        skip_line(reader, carry)?;
    }
    Ok(Fill::More)
}

/// Skips to the end of the current line; what follows it goes to `carry`.
fn skip_line(reader: &mut Box<dyn Read + Send>, carry: &mut Vec<u8>) -> io::Result<()> {
    loop {
        carry.clear();
        let n = Read::by_ref(reader).take(READ_BLOCK as u64).read_to_end(carry)?;
        if let Some(i) = memchr(b'\n', carry) {
            carry.drain(..=i);
            return Ok(());
        }
        if n < READ_BLOCK {
            carry.clear();
            return Ok(());
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every line as `LineReader` reads it.
    fn by_line_reader(path: &Path) -> Vec<(u64, Vec<u8>, bool, bool)> {
        let mut reader = LineReader::open(path, 0).unwrap();
        let mut out = Vec::new();
        while let Some(l) = reader.next_line().unwrap() {
            out.push((l.number, l.bytes.to_vec(), l.torn, l.too_long));
        }
        out
    }

    fn by_chunks(path: &Path, target: usize) -> Vec<(u64, Vec<u8>, bool, bool)> {
        let paths = [path.to_owned()];
        let mut chunker = Chunker::new(&paths, target);
        let mut chunk = Chunk::default();
        let mut out = Vec::new();
        while chunker.next_chunk(&mut chunk).unwrap() {
            assert!(chunk.bytes.len() <= 2 * target.max(MAX_LINE + 1) + READ_BLOCK);
            out.extend(chunk.lines().map(|l| (l.number, l.bytes.to_vec(), l.torn, l.too_long)));
        }
        out
    }

    #[test]
    fn chunks_split_like_the_line_reader() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let long = |n: usize| "y".repeat(n);
        let cases: Vec<String> = vec![
            String::new(),
            "\n".into(),
            "a\n\nb\n".into(),
            "a\nb".into(),
            format!("a\n{}\nb\n", long(MAX_LINE)),
            format!("a\n{}\nb\n", long(MAX_LINE + 1)),
            format!("a\n{}\nb\nc", long(3 * MAX_LINE + 7)),
            format!("a\n{}", long(MAX_LINE)),
            format!("a\n{}", long(MAX_LINE + 1)),
            format!("{}\n{}", long(2 * MAX_LINE), long(10)),
            format!("{}\n", long(READ_BLOCK - 1)).repeat(9),
        ];
        for (i, text) in cases.iter().enumerate() {
            std::fs::write(&path, text).unwrap();
            let want = by_line_reader(&path);
            for target in [1, 100, READ_BLOCK, CHUNK, 3 * MAX_LINE] {
                assert!(by_chunks(&path, target) == want, "case {i}, {target}-byte chunks");
            }
        }
    }
}
