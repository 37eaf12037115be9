//! Errors of applying a trained network. Each names the case or file it is about, so a
//! message printed at the end of a long evaluation still says which input was bad.

use std::path::PathBuf;

use medssl_data::DataError;
use medssl_data::dataset::MAX_CLASSES;
use medssl_io::IoError;
use medssl_model::ModelError;

use crate::cka::CkaError;
use crate::metrics::MetricsError;
use crate::sliding_window::SlidingWindowError;

/// Result with [`EvalError`].
pub type Result<T> = std::result::Result<T, EvalError>;

/// Why a prediction, a validation, an evaluation or a feature comparison failed.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Loading a case or running its pipeline failed, or an input path or folder cannot
    /// be used (the message names the case or file).
    #[error(transparent)]
    Data(#[from] DataError),
    /// Reading an input image or writing a prediction failed (the message names the file).
    #[error(transparent)]
    Io(#[from] IoError),
    /// One case that could not be predicted or scored.
    #[error("case {id}: {message}")]
    Case { id: String, message: String },
    /// One validation case that could not be predicted or scored.
    #[error("validation case {id}: {message}")]
    ValidationCase { id: String, message: String },
    /// A case to score that has no ground truth.
    #[error("case {id} has no label map")]
    NoLabel { id: String },
    /// A case of a run's split that the task does not hold (the task changed or the
    /// wrong task was given).
    #[error("case {id} of split.json is not in the task")]
    UnknownCase { id: String },
    /// More classes than a uint8 label map holds.
    #[error(
        "the network predicts {classes} classes, more than the {MAX_CLASSES} (values 0-255) a \
         uint8 label map can hold"
    )]
    TooManyClasses { classes: usize },
    /// A sliding-window pass that could not run.
    #[error(transparent)]
    SlidingWindow(#[from] SlidingWindowError<ModelError>),
    /// Per-case metrics that could not be summarised.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// Too few probe patches for the unbiased CKA estimator.
    #[error("CKA needs at least 4 probe patches, the cases give {patches}")]
    TooFewPatches { patches: usize },
    /// The CKA of one encoder stage could not be computed.
    #[error("{stage}: {source}")]
    Cka {
        stage: &'static str,
        #[source]
        source: CkaError,
    },
    /// The network could not be run on a batch of patches.
    #[error(transparent)]
    Network(#[from] ModelError),
    /// A frozen-feature probe that could not be fitted or scored.
    #[error("probe: {0}")]
    Probe(#[from] crate::probe::ProbeError),
}

impl EvalError {
    /// A problem with case `id`.
    pub fn case(id: impl Into<String>, message: impl ToString) -> EvalError {
        EvalError::Case {
            id: id.into(),
            message: message.to_string(),
        }
    }

    /// A problem with the path `path` (the data crate's file error, same text).
    pub fn file(path: impl Into<PathBuf>, message: impl Into<String>) -> EvalError {
        EvalError::Data(DataError::file(path, message))
    }
}
