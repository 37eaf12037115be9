//! Errors of the study: each names the file, key or job it is about.

use std::path::PathBuf;

/// What went wrong with a study.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The study file (or a file it names) is missing, unreadable or invalid.
    #[error("{path}: {message}")]
    Definition { path: PathBuf, message: String },
    /// The study file has these problems, each starting with the key it is about
    /// (`finetune.budgets: ...`); all of them are listed so that one pass fixes the file.
    #[error("{}", list_problems(path, problems))]
    Problems {
        path: PathBuf,
        problems: Vec<String>,
    },
    /// A job failed.
    #[error("job {job}: {message}")]
    Job { job: String, message: String },
    /// A file of the study's output could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A request that does not fit the study (an unknown job, a bad shard).
    #[error("{0}")]
    Invalid(String),
}

impl BenchError {
    /// An error about the study file at `path`.
    pub fn definition(path: impl Into<PathBuf>, message: impl Into<String>) -> BenchError {
        BenchError::Definition {
            path: path.into(),
            message: message.into(),
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> BenchError {
        BenchError::Io {
            path: path.into(),
            source,
        }
    }
}

/// `FILE: problem` for one problem, else `FILE: N problems:` and one indented line each.
fn list_problems(path: &std::path::Path, problems: &[String]) -> String {
    match problems {
        [one] => format!("{}: {one}", path.display()),
        _ => {
            let mut text = format!("{}: {} problems:", path.display(), problems.len());
            for problem in problems {
                text.push_str("\n  ");
                text.push_str(problem);
            }
            text
        }
    }
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, BenchError>;
