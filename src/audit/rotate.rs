//! Rotation and retention, as the writer thread does them. Rotation: sign
//! the head (if a key is set), write out and fsync, rename the live file to
//! its closed name, open a new live file whose first record (`rotate`)
//! links to the last one of the closed file, then compress the closed file
//! beside the writer. Retention: for each file to delete, the `retention`
//! record reaches the disk first, and only then is the file removed.

use std::path::Path;

use chrono::Utc;

use super::compress::{self, Compression};
use super::log_file::Sink;
use super::record::{Record, RecordType, Retention};
use super::rotation::{self, ClosedFile};
use super::tail;
use super::worker::Worker;

impl<S: Sink> Worker<S> {
    /// Closes the live file and continues the chain in a new one. On any
    /// failure the writer keeps appending to the file it has.
    pub(super) fn rotate(&mut self) {
        self.checkpoint();
        if !self.flush() {
            return; // the write failed; try again at the next tick
        }
        let span = self.log.span.clone();
        let Some((first_seq, first_ts)) = span.first else { return };
        let last_ts = span.last_ts.unwrap_or(first_ts);
        let closed = rotation::closed_name(&self.path, first_seq, first_ts, last_ts, span.contacts);
        if let Err(error) = std::fs::rename(&self.path, &closed) {
            self.log_error("cannot rename the audit log for rotation", &error);
            return;
        }
        let opened = match tail::create_new_log(&self.path) {
            Ok(file) => file,
            Err(error) => {
                // Put the old file back so the writer goes on where it was.
                let _ = std::fs::rename(&closed, &self.path);
                self.log_error("cannot open a new audit log after rotation", &error);
                return;
            }
        };
        compress::sync_dir(&self.path);
        self.log.replace_sink((self.wrap)(opened));
        let (seq, _) = self.log.head();
        let name = file_name(&closed);
        let text = format!("rotated: {name} holds seq {first_seq} to {seq}; the chain continues here");
        self.push(&Record::event(Utc::now(), RecordType::Rotate, text), false);
        self.flush();
        self.compress_later(closed);
        self.retention();
    }

    fn compress_later(&mut self, closed: std::path::PathBuf) {
        if let Some(job) = self.compressing.take() {
            let _ = job.join();
        }
        let how = self.config.rotation.compress;
        if how == Compression::None {
            return;
        }
        let spawned = std::thread::Builder::new().name("warden-audit-compress".into()).spawn(move || {
            if let Err(error) = compress::compress_file(&closed, how) {
                tracing::error!(file = %closed.display(), %error, "cannot compress a closed audit log");
            }
        });
        match spawned {
            Ok(job) => self.compressing = Some(job),
            Err(error) => self.log_error("cannot start the compression thread", &error),
        }
    }

    /// Deletes what the retention limit selects, each after its record.
    fn retention(&mut self) {
        let retention = &self.config.rotation.retention;
        if retention.max_files.is_none() && retention.max_age.is_none() {
            return;
        }
        if let Some(job) = self.compressing.take() {
            let _ = job.join(); // list the files under their final names
        }
        let files = match rotation::list_closed(&self.path) {
            Ok(files) => files,
            Err(error) => return self.log_error("cannot list closed audit logs", &error),
        };
        let doomed: Vec<ClosedFile> = retention.select(&files, Utc::now()).into_iter().cloned().collect();
        for file in doomed {
            if !self.delete(&file) {
                return;
            }
        }
    }

    /// Writes the `retention` record, fsyncs, then removes the file.
    fn delete(&mut self, file: &ClosedFile) -> bool {
        let (last_seq, last_hash) = match rotation::last_link(&file.path) {
            Ok(Some(link)) => link,
            Ok(None) => (file.first_seq, String::new()),
            Err(error) => {
                self.log_error("cannot read a closed audit log before deleting it; kept", &error);
                return false;
            }
        };
        let name = file_name(&file.path);
        let text = format!("retention limit: deleting {name} (seq {} to {last_seq})", file.first_seq);
        let retention = Retention { file: name, first_seq: file.first_seq, last_seq, last_hash };
        let record = Record { retention: Some(retention), ..Record::event(Utc::now(), RecordType::Retention, text) };
        if !self.push(&record, false) || !self.flush() {
            return false;
        }
        match std::fs::remove_file(&file.path) {
            Ok(()) => true,
            Err(error) => {
                self.log_error("cannot delete a closed audit log", &error);
                false
            }
        }
    }

    fn log_error(&self, what: &str, error: &std::io::Error) {
        if self.error_log.allow() {
            tracing::error!(path = %self.path.display(), %error, "{what}");
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}
