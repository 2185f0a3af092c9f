//! The one error type of Strata.
//!
//! Every fallible public function returns [`Result`]. Absence is not an error: `get` returns
//! `Ok(None)`. Messages read as English sentences and name the file and offset where it helps.

use std::path::PathBuf;

/// Everything that can go wrong in Strata.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The operating system reported an I/O error (disk full, permission denied, ...).
    #[error("I/O error while {context}: {source}")]
    Io {
        /// What Strata was doing, e.g. "appending to the write-ahead log 000004.log".
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A file's contents do not match their checksum or format: the data was damaged after it
    /// was written. Strata never serves damaged data.
    #[error("corruption in {file} at offset {offset}: {reason}")]
    Corruption {
        /// The damaged file.
        file: PathBuf,
        /// Byte offset of the damaged record, block or field.
        offset: u64,
        /// What is wrong, in a few words.
        reason: String,
    },

    /// The caller passed something Strata cannot accept (an empty or over-long key, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// Another process (or another `Db` in this process) holds the directory's LOCK file.
    #[error("the database at {0} is locked by another process or handle")]
    Locked(PathBuf),

    /// A previous write, fsync or background flush failed; the database refuses writes because
    /// it can no longer promise that acknowledged writes are durable. Reopen to recover.
    #[error("the database refuses writes after an earlier failure: {0}")]
    Poisoned(String),

    /// The database was closed.
    #[error("the database is closed")]
    Closed,
}

/// Shorthand for `std::result::Result<T, strata::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wrap an `std::io::Error` with a description of what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// A corruption error for `file` at `offset`.
    pub fn corruption(file: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) -> Self {
        Error::Corruption {
            file: file.into(),
            offset,
            reason: reason.into(),
        }
    }

    /// True for [`Error::Corruption`].
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corruption { .. })
    }

    /// A copy of this error for handing to several waiters (group commit, poisoned state).
    /// `std::io::Error` is not `Clone`, so the copy keeps its kind and message.
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::Io { context, source } => Error::Io {
                context: context.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            Error::Corruption {
                file,
                offset,
                reason,
            } => Error::Corruption {
                file: file.clone(),
                offset: *offset,
                reason: reason.clone(),
            },
            Error::InvalidArgument(m) => Error::InvalidArgument(m.clone()),
            Error::Locked(p) => Error::Locked(p.clone()),
            Error::Poisoned(m) => Error::Poisoned(m.clone()),
            Error::Closed => Error::Closed,
        }
    }
}
