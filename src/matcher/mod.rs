//! Matching of names and addresses against compiled rules.
//!
//! Owns the compact, immutable lookup structures (`NameTable` for domains,
//! hosts and label wildcards; `CidrTable` for IP networks) and the name
//! normalisation every layer uses. It knows nothing of phases, actions or
//! files: it answers "which rule is the most specific match", nothing more.
//! Lookups allocate nothing and cost O(labels of the name), independent of the
//! number of rules.

mod cidr;
mod glob;
mod name;
mod table;

pub use cidr::CidrTable;
pub use glob::glob_match;
pub use name::{NameBuf, NameError, normalize, validate_pattern_name};
pub use table::{NameHit, NameTable, NameTableBuilder, Specificity};
