//! The one error type of the data crate. Every variant names what it is about (a case,
//! a file, a configuration key) so a message is useful on its own in a long log.

use std::path::PathBuf;

use medssl_io::IoError;

/// Result with [`DataError`].
pub type Result<T> = std::result::Result<T, DataError>;

/// Why a dataset, a case or a pipeline could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// Reading or writing an image failed (the message names the file).
    #[error(transparent)]
    Io(#[from] IoError),
    /// An operating-system error on a file other than an image.
    #[error("{path}: {source}")]
    Os {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file (dataset.json, manifest, cache entry, list file) with invalid content.
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    /// One case (image/label pair or pretraining volume) that cannot be used.
    #[error("case {case}: {message}")]
    Case { case: String, message: String },
    /// A configuration that names an unknown transform or parameter, or a bad value.
    #[error("{0}")]
    Config(String),
}

impl DataError {
    /// A problem with one case.
    pub fn case(case: impl Into<String>, message: impl Into<String>) -> DataError {
        DataError::Case {
            case: case.into(),
            message: message.into(),
        }
    }

    /// A problem with the content of a file.
    pub fn file(path: impl Into<PathBuf>, message: impl Into<String>) -> DataError {
        DataError::File {
            path: path.into(),
            message: message.into(),
        }
    }

    /// An OS error on `path`.
    pub fn os(path: impl Into<PathBuf>, source: std::io::Error) -> DataError {
        DataError::Os {
            path: path.into(),
            source,
        }
    }
}
