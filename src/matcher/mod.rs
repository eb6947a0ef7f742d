//! Matching of names and addresses against compiled rules.
//!
//! Owns the compact, immutable lookup structures (`NameTable` for the
//! policy's domains, hosts and label wildcards; `FingerprintSet` for the
//! entries of large blocklists; `CidrTable` for IP networks), the suffix
//! hash both name structures share, and the name normalisation every layer
//! uses. It knows nothing of phases, actions or files: it answers "which
//! rule is the most specific match", nothing more. Lookups allocate nothing
//! and cost O(labels of the name), independent of the number of rules.

mod cidr;
mod fingerprint;
mod glob;
mod name;
mod suffix;
mod table;

pub use cidr::CidrTable;
pub use fingerprint::{FingerprintError, FingerprintSet, FingerprintSetBuilder, ListHit};
pub use glob::glob_match;
pub use name::{
    NameBuf, NameError, already_normal, normalize, normalize_into, validate_pattern_name, validate_pattern_name_into,
};
pub use suffix::{Suffixes, hash_name, suffix_of};
pub use table::{NameHit, NameTable, NameTableBuilder, Specificity};
