//! The one error type of the IO crate: every variant names the file it is about, so a
//! message printed at the top of a study run still says which case was bad.

use std::path::{Path, PathBuf};

/// What went wrong reading or writing a medical image, and where.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// The operating system refused the read or write (missing file, permissions, disk).
    #[error("{}: {source}", path.display())]
    Os {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a valid file of the expected format (truncated, corrupt, bad header).
    #[error("{}: {problem}", path.display())]
    Invalid { path: PathBuf, problem: String },
    /// A valid file that uses a feature medssl does not read (datatype, transfer syntax, ...).
    #[error("{}: unsupported: {what}", path.display())]
    Unsupported { path: PathBuf, what: String },
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, IoError>;

impl IoError {
    pub(crate) fn os(path: &Path, source: std::io::Error) -> Self {
        IoError::Os {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn invalid(path: &Path, problem: impl Into<String>) -> Self {
        IoError::Invalid {
            path: path.to_path_buf(),
            problem: problem.into(),
        }
    }

    pub(crate) fn unsupported(path: &Path, what: impl Into<String>) -> Self {
        IoError::Unsupported {
            path: path.to_path_buf(),
            what: what.into(),
        }
    }

    /// The file or directory the error is about.
    pub fn path(&self) -> &Path {
        match self {
            IoError::Os { path, .. }
            | IoError::Invalid { path, .. }
            | IoError::Unsupported { path, .. } => path,
        }
    }
}

/// Joins an error and its sources into one line (`outer: inner: innermost`); the DICOM
/// crates nest their useful detail several sources deep.
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let piece = inner.to_string();
        if !text.contains(&piece) {
            text.push_str(": ");
            text.push_str(&piece);
        }
        source = inner.source();
    }
    text
}
