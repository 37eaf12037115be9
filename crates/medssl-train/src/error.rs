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
    /// The data pipeline failed (task, split, collection, transform or loader); the
    /// message is the pipeline's own, which names the case or file.
    #[error(transparent)]
    Data(#[from] medssl_data::DataError),
    /// A pretraining method refused its settings or a batch; the message is the
    /// method's own.
    #[error(transparent)]
    Ssl(#[from] medssl_ssl::SslError),
    /// A GPU that failed during a step (out of memory, a failed kernel).
    #[error(transparent)]
    Device(#[from] medssl_model::arrays::DeviceReadError),
    /// Initial weights whose tensors do not give a SwinUNETR architecture.
    #[error("{path}: cannot read a SwinUNETR architecture: {source}")]
    Architecture {
        path: PathBuf,
        #[source]
        source: Box<medssl_model::ModelError>,
    },
    /// A checkpoint of another tool could not be read (the message names the file).
    #[error(transparent)]
    Checkpoint(#[from] medssl_model::foreign::CheckpointError),
    /// A checkpoint's optimiser state or parameter ids do not fit the network.
    #[error("{path}: {source}")]
    State {
        path: PathBuf,
        #[source]
        source: StateError,
    },
    /// Another crate's error, after what the run was doing when it happened (`views`,
    /// `pretext`, `cases a, b`, a file); the source stays reachable for callers that
    /// match on it.
    #[error("{context}: {source}")]
    Context {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
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

    /// `source` after `context`, what the run was doing when it failed.
    pub fn context(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> TrainError {
        TrainError::Context {
            context: context.into(),
            source: Box::new(source),
        }
    }
}

/// Why a checkpoint's optimiser state or parameter ids cannot be saved or restored.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The optimiser's moments could not be serialised.
    #[error("cannot serialise the optimiser state: {0}")]
    Serialise(#[source] burn::store::RecordError),
    /// The saved optimiser state does not load into the optimiser.
    #[error("cannot read the optimiser state: {0}")]
    Deserialise(#[source] burn::store::RecordError),
    /// The network has a parameter the checkpoint saved no id for.
    #[error("no saved parameter id for {path}")]
    MissingParamId { path: String },
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use medssl_data::DataError;

    use super::*;
    use crate::finetune::{Finetune, FinetuneConfig, Init, Preset};

    /// A task folder without dataset.json: the data crate's error reaches the caller
    /// as itself (matchable, same message) with the operating system's error as its
    /// source, not flattened into a string.
    #[test]
    fn a_data_error_keeps_its_type_and_its_source() {
        let dir = tempfile::tempdir().unwrap();
        let config = FinetuneConfig::preset(Preset::Tiny);
        let Err(err) = Finetune::check(dir.path(), config, Init::Scratch, None) else {
            panic!("a folder without dataset.json is not a task");
        };
        let json = dir.path().join("dataset.json");
        let TrainError::Data(DataError::Os { path, source }) = &err else {
            panic!("expected the data error on dataset.json, got {err:?}");
        };
        assert_eq!(path, &json);
        assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        assert_eq!(err.to_string(), format!("{}: {source}", json.display()));
        let cause = err.source().expect("the operating system's error");
        let io = cause
            .downcast_ref::<std::io::Error>()
            .expect("an io::Error");
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    }
}
