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
    /// A job failed; the source is what failed in it (boxed: a training or evaluation
    /// error is large, and every study result would carry its size).
    #[error("job {job}: {source}")]
    Job {
        job: String,
        #[source]
        source: Box<JobError>,
    },
    /// A method name that no registered method has (the message lists those that
    /// exist).
    #[error(transparent)]
    Method(#[from] medssl_ssl::SslError),
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

/// What failed inside a job, kept typed so that a caller can tell a training failure
/// from an evaluation failure and reach the case or file it names.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Training, resuming or evaluating a run failed.
    #[error(transparent)]
    Train(#[from] medssl_train::error::TrainError),
    /// Comparing networks (CKA) failed.
    #[error(transparent)]
    Eval(#[from] medssl_eval::EvalError),
    /// A job's result could not be written as JSON.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A CKA job whose plan gives it no fine-tune.
    #[error("no fine-tune to compare")]
    NothingToCompare,
}

impl BenchError {
    /// The failure of job `job`, caused by `source`.
    pub fn job(job: impl Into<String>, source: impl Into<JobError>) -> BenchError {
        BenchError::Job {
            job: job.into(),
            source: Box::new(source.into()),
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
