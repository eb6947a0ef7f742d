//! The audit log: owns the record format, the hash chain and the single
//! writer of the log file. It makes no policy decisions: producers submit
//! what they saw and decided, and this module only records it.
//!
//! * [`record`]: the [`Record`] a producer submits; [`contact_record`]
//!   fills one from a policy verdict.
//! * [`chain`]: the line format and hash chain ([`encode`], [`check_line`]).
//! * [`verify`]: walking a whole log ([`verify_reader`]).
//! * [`writer`]: [`spawn`] the writer thread; [`AuditHandle::submit`] never blocks.
//!   Rotation ([`rotation`], [`retention`], [`compress`]), checkpoints
//!   ([`sign`]) and syslog shipping ([`syslog`]) hang off the writer.
//! * [`review`]: streaming readers behind `warden audit` (verify across
//!   files, summary, hosts, timeline, export, HTML report).
//!
//! The format is documented in `docs/audit-log.md` (format version 1).

pub mod chain;
pub mod compress;
mod contact;
mod contact_line;
mod duties;
mod error;
mod handle;
mod log_file;
pub mod record;
pub mod retention;
pub mod review;
mod rotate;
pub mod rotation;
pub mod sign;
mod syncer;
pub mod syslog;
mod tail;
pub mod verify;
mod worker;
pub mod writer;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_durable;

pub use chain::{ChainError, ChainLink, GENESIS, check_line, encode};
pub use contact::{Contact, Repeats, contact_record};
pub use error::AuditError;
pub use handle::{AuditHandle, AuditStats};
pub use record::{Checkpoint, Heartbeat, Layer, PolicyRef, Record, RecordType, Retention};
pub use verify::{Problem, ProblemKind, VerifyReport, verify_reader};
pub use writer::{AuditConfig, AuditWriter, FsyncPolicy, RotationConfig, WriterSummary, spawn};
