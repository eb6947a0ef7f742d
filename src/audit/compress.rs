//! Compression of closed log files (gzip or zstd) and opening any log file,
//! plain or compressed, for reading. A file is compressed to a temporary
//! name, synced, renamed, and only then is the plain file removed, so a
//! crash leaves at worst both copies, never neither.

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// How closed files are compressed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The suffix a compressed file gets (`""` for none).
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => ".gz",
            Compression::Zstd => ".zst",
        }
    }

    /// By file name: `.gz`, `.zst`, else plain.
    pub fn of(path: &Path) -> Compression {
        match path.extension().and_then(|e| e.to_str()) {
            Some("gz") => Compression::Gzip,
            Some("zst") => Compression::Zstd,
            _ => Compression::None,
        }
    }
}

/// Opens a log file for reading, decompressing by its name.
pub fn open_reader(path: &Path) -> io::Result<Box<dyn Read + Send>> {
    let file = File::open(path)?;
    Ok(match Compression::of(path) {
        Compression::None => Box::new(file),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 16, file))),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(file)?),
    })
}

/// Compresses `path` into `path + suffix`, then removes `path`. Returns the
/// new path (`path` itself when `how` is `None`).
pub fn compress_file(path: &Path, how: Compression) -> io::Result<PathBuf> {
    if how == Compression::None {
        return Ok(path.to_owned());
    }
    let mut name = path.as_os_str().to_owned();
    name.push(how.suffix());
    let done = PathBuf::from(name);
    let mut tmp = done.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut input = File::open(path)?;
    let output = File::create(&tmp)?;
    let output = match how {
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(output, flate2::Compression::default());
            io::copy(&mut input, &mut enc)?;
            enc.finish()?
        }
        _ => {
            let mut enc = zstd::stream::write::Encoder::new(output, 3)?;
            io::copy(&mut input, &mut enc)?;
            enc.finish()?
        }
    };
    output.sync_all()?;
    fs::rename(&tmp, &done)?;
    fs::remove_file(path)?;
    sync_dir(path);
    Ok(done)
}

/// Best effort: makes a rename or removal in `path`'s directory durable.
pub(crate) fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = File::open(dir)
    {
        let _ = d.sync_all();
    }
}

/// Writes `bytes` compressed as `how` (for tests and the bench).
pub fn write_compressed(path: &Path, bytes: &[u8], how: Compression) -> io::Result<()> {
    let file = File::create(path)?;
    match how {
        Compression::None => (&file).write_all(bytes),
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
            enc.write_all(bytes)?;
            enc.finish().map(drop)
        }
        Compression::Zstd => zstd::stream::copy_encode(bytes, file, 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_files_read_back_the_same_bytes_and_the_plain_file_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        for how in [Compression::Gzip, Compression::Zstd] {
            let plain = dir.path().join("a.jsonl");
            fs::write(&plain, b"line 1\nline 2\n").unwrap();
            let done = compress_file(&plain, how).unwrap();
            assert!(!plain.exists() && done.to_string_lossy().ends_with(how.suffix()));
            let mut text = String::new();
            open_reader(&done).unwrap().read_to_string(&mut text).unwrap();
            assert_eq!(text, "line 1\nline 2\n");
        }
    }
}
