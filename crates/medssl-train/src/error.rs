//! Errors of training runs. Each names the run file, case or setting it is about.

use std::path::PathBuf;

/// Result with [`TrainError`].
pub type Result<T> = std::result::Result<T, TrainError>;

/// Why a run could not start, continue or save.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// An operating-system error on a run file.
    #[error("{path}: {source}")]
    Os {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A run file with content that cannot be used.
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    /// A configuration or input that does not fit the run (checked before training).
    #[error("{0}")]
    Invalid(String),
    /// Validating, predicting with, evaluating or comparing a network failed; the
    /// message is the evaluation's own, which names the case or file.
    #[error(transparent)]
    Eval(#[from] medssl_eval::EvalError),
    /// The loss stopped being finite; the last good checkpoint is kept.
    #[error(
        "the loss became {loss} at epoch {epoch}, iteration {iteration}; training stopped, \
         the last good checkpoint is kept (lower the learning rate or enable grad_clip_norm)"
    )]
    NonFiniteLoss {
        loss: f64,
        epoch: u64,
        iteration: u64,
    },
    /// The gradient stopped being finite; the step was not applied.
    #[error(
        "the gradient norm became {norm} at epoch {epoch}, iteration {iteration}; the step \
         was not applied, training stopped, the last good checkpoint is kept (lower the \
         learning rate or enable grad_clip_norm)"
    )]
    NonFiniteGradient {
        norm: f64,
        epoch: u64,
        iteration: u64,
    },
}

impl TrainError {
    /// An OS error on `path`.
    pub fn os(path: impl Into<PathBuf>, source: std::io::Error) -> TrainError {
        TrainError::Os {
            path: path.into(),
            source,
        }
    }

    /// Invalid content in the file at `path`.
    pub fn file(path: impl Into<PathBuf>, message: impl Into<String>) -> TrainError {
        TrainError::File {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// A data-pipeline error (task, collection, transform or loader) stops a run with its
/// message, which already names the case or file.
impl From<medssl_data::DataError> for TrainError {
    fn from(e: medssl_data::DataError) -> TrainError {
        TrainError::Invalid(e.to_string())
    }
}
