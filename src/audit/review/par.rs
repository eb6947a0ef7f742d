//! Reading on several cores: the calling thread cuts the files into chunks
//! of whole lines ([`Chunker`]), worker threads run the per-line work on
//! whole chunks (hashing, parsing, counting), and the results come back to
//! the calling thread in file order, so whatever it folds them into is the
//! same as one thread reading line by line would make. Memory stays
//! bounded: at most [`IN_FLIGHT`] chunks per worker are out at once.

use std::path::PathBuf;
use std::sync::mpsc;
use std::thread;

use super::ReviewError;
use super::input::{CHUNK, Chunk, Chunker};

/// Worker threads at most, whatever the core count.
const MAX_WORKERS: usize = 8;
/// Chunks queued or in work per worker.
const IN_FLIGHT: usize = 2;

/// How a review reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reading {
    /// Worker threads; 0 or 1 reads on the calling thread only.
    pub workers: usize,
    /// Bytes per chunk (a line longer than this still makes one chunk).
    pub chunk: usize,
}

impl Reading {
    /// One worker per core (the calling thread mostly waits).
    pub fn auto() -> Reading {
        let cores = thread::available_parallelism().map_or(1, |n| n.get());
        Reading { workers: cores.min(MAX_WORKERS), chunk: CHUNK }
    }

    /// Everything on the calling thread.
    pub fn sequential() -> Reading {
        Reading { workers: 0, chunk: CHUNK }
    }
}

/// Runs `work` on every chunk of `paths` and hands each result to `fold`
/// with its chunk, in file order; `fold` returns `false` to stop reading.
/// An input that fits in one chunk is read on the calling thread.
pub(crate) fn run<T: Send>(
    paths: &[PathBuf],
    reading: Reading,
    work: impl Fn(&Chunk) -> T + Sync,
    mut fold: impl FnMut(&Chunk, T) -> bool,
) -> Result<(), ReviewError> {
    let mut chunker = Chunker::new(paths, reading.chunk);
    let mut first = Chunk::default();
    if !chunker.next_chunk(&mut first)? {
        return Ok(());
    }
    let mut second = Chunk::default();
    if reading.workers < 2 || !chunker.next_chunk(&mut second)? {
        let mut chunk = first;
        loop {
            let result = work(&chunk);
            if !fold(&chunk, result) || !chunker.next_chunk(&mut chunk)? {
                return Ok(());
            }
        }
    }
    let workers = reading.workers;
    thread::scope(|scope| {
        let (mut jobs, mut results) = (Vec::with_capacity(workers), Vec::with_capacity(workers));
        let mut threads = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (job_tx, job_rx) = mpsc::channel::<Chunk>();
            let (result_tx, result_rx) = mpsc::channel::<(Chunk, T)>();
            let work = &work;
            threads.push(scope.spawn(move || {
                for chunk in job_rx {
                    let result = work(&chunk);
                    if result_tx.send((chunk, result)).is_err() {
                        break;
                    }
                }
            }));
            jobs.push(job_tx);
            results.push(result_rx);
        }
        let read = feed(&mut chunker, [second, first], &jobs, &results, &mut fold);
        // Hang up and join each worker (all its thread's state gone, not
        // only its closure) before returning; one that panicked re-raises.
        drop((jobs, results));
        for thread in threads {
            if let Err(panic) = thread.join() {
                std::panic::resume_unwind(panic);
            }
        }
        read
    })
}

/// Hands chunks to the workers and their results to `fold`, in file order.
/// Chunk `i` goes to worker `i % workers`, whose results come back in the
/// order it got them: reading results round-robin keeps the file order
/// without sorting.
fn feed<T>(
    chunker: &mut Chunker,
    read: [Chunk; 2],
    jobs: &[mpsc::Sender<Chunk>],
    results: &[mpsc::Receiver<(Chunk, T)>],
    fold: &mut impl FnMut(&Chunk, T) -> bool,
) -> Result<(), ReviewError> {
    let workers = jobs.len();
    let (mut sent, mut done) = (0usize, 0usize);
    let mut spare = Vec::from(read);
    let mut more = true;
    loop {
        while more && sent - done < IN_FLIGHT * workers {
            // The first two chunks are read already.
            let mut chunk = spare.pop().unwrap_or_default();
            if sent >= 2 && !chunker.next_chunk(&mut chunk)? {
                more = false;
                break;
            }
            if jobs[sent % workers].send(chunk).is_err() {
                break;
            }
            sent += 1;
        }
        if done == sent {
            return Ok(());
        }
        // A worker that panicked drops its sender; joining it re-raises.
        let Ok((chunk, result)) = results[done % workers].recv() else { return Ok(()) };
        done += 1;
        let go_on = fold(&chunk, result);
        spare.push(chunk);
        if !go_on {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn numbers(paths: &[PathBuf], reading: Reading) -> Vec<(usize, u64, Vec<u8>, bool, bool)> {
        let mut out = Vec::new();
        run(
            paths,
            reading,
            |chunk| chunk.lines().map(|l| (l.file, l.number, l.bytes.to_vec(), l.torn, l.too_long)).collect::<Vec<_>>(),
            |_, lines| {
                out.extend(lines);
                true
            },
        )
        .unwrap();
        out
    }

    #[test]
    fn chunks_come_back_in_file_order_with_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        for (i, tail) in ["", "torn"].iter().enumerate() {
            let path = dir.path().join(format!("{i}.jsonl"));
            let mut f = std::fs::File::create(&path).unwrap();
            for n in 0..1000 {
                writeln!(f, "file {i} line {n} {}", "x".repeat(n % 50)).unwrap();
            }
            f.write_all(tail.as_bytes()).unwrap();
            paths.push(path);
        }
        let one = numbers(&paths, Reading::sequential());
        assert_eq!(one.len(), 2001);
        assert_eq!((one[999].0, one[999].1), (0, 1000));
        assert_eq!((one[1000].0, one[1000].1), (1, 1));
        assert_eq!(one[2000], (1, 1001, b"torn".to_vec(), true, false));
        for (workers, chunk) in [(2, 100), (3, 1), (2, 5000), (0, 7)] {
            assert_eq!(numbers(&paths, Reading { workers, chunk }), one, "{workers} workers, {chunk}-byte chunks");
        }
    }

    #[test]
    fn fold_can_stop_the_reading() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        std::fs::write(&path, "line\n".repeat(10_000)).unwrap();
        let mut folded = 0;
        run(
            &[path],
            Reading { workers: 2, chunk: 64 },
            |chunk| chunk.lines().count(),
            |_, _| {
                folded += 1;
                folded < 3
            },
        )
        .unwrap();
        assert_eq!(folded, 3);
    }
}
