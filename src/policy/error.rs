//! Policy errors: every problem of a file, each with its line and column.

use std::fmt;
use std::path::PathBuf;

use thiserror::Error;

/// One thing wrong in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// All problems of one file, printed one per line as `file:line:col: msg`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems {
    pub file: String,
    pub list: Vec<Problem>,
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.list.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:{}:{}: {}", self.file, p.line, p.column, p.message)?;
        }
        Ok(())
    }
}

#[derive(Debug, Error)]
pub enum PolicyError {
    #[error("cannot read policy file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("too many blocklists (at most {max})")]
    TooManyBlocklists { max: usize },
    #[error("policy {} is invalid ({} problem{}):\n{problems}", problems.file, problems.list.len(), if problems.list.len() == 1 { "" } else { "s" })]
    Invalid { problems: Problems },
}

/// Collects problems against the source text, turning byte offsets into
/// line and column numbers.
pub(crate) struct Collector<'a> {
    text: &'a str,
    pub(crate) list: Vec<Problem>,
}

impl<'a> Collector<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Collector { text, list: Vec::new() }
    }

    pub(crate) fn at(&mut self, offset: usize, message: impl Into<String>) {
        let (line, column) = line_col(self.text, offset);
        self.list.push(Problem { line, column, message: message.into() });
    }

    pub(crate) fn finish(self, file: &str) -> Result<(), PolicyError> {
        if self.list.is_empty() {
            return Ok(());
        }
        Err(self.into_error(file))
    }

    pub(crate) fn into_error(mut self, file: &str) -> PolicyError {
        self.list.sort_by_key(|p| (p.line, p.column));
        PolicyError::Invalid { problems: Problems { file: file.to_owned(), list: self.list } }
    }
}

/// 1-based line and column of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    (line, column)
}
