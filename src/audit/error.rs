//! Why the audit writer could not start or stop cleanly: one variant per
//! failing step. Errors while running are counted in `AuditStats`, not here.

use std::io;
use std::path::PathBuf;

use super::chain::ChainError;
use super::sign::SignError;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("invalid audit configuration: {0}")]
    Config(&'static str),
    #[error("audit log directory {dir} does not exist (warden does not create it)")]
    NoDirectory { dir: PathBuf },
    #[error("cannot open audit log {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the tail of audit log {path}")]
    ReadTail {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "the tail of audit log {path} is corrupt: the last complete line (at byte {offset}) \
         does not check; refusing to append to a broken chain (verify the log and move it aside)"
    )]
    CorruptTail {
        path: PathBuf,
        offset: u64,
        #[source]
        reason: ChainError,
    },
    #[error("the last line of audit log {path} is longer than {limit} bytes; refusing to append")]
    TailTooLong { path: PathBuf, limit: u64 },
    #[error("cannot move the torn tail of the audit log to {path}")]
    MoveTorn {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot truncate audit log {path} to its last complete line")]
    Truncate {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write the start record to audit log {path}")]
    WriteStart {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot encode an audit record")]
    Encode(#[source] ChainError),
    #[error("cannot start the audit writer thread")]
    Spawn(#[source] io::Error),
    #[error("cannot write or sync the last records of audit log {path}")]
    Close {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the audit writer thread panicked")]
    Join,
    #[error("cannot load the checkpoint signing key")]
    Key(#[source] SignError),
    #[error(
        "the signing key {key} is in the audit log's directory; keep it elsewhere \
         (whoever can rewrite the log must not be able to re-sign it)"
    )]
    KeyInLogDir { key: PathBuf },
}
