//! Errors of the pretext tasks.

/// Why a method cannot be set up or cannot compute a loss.
#[derive(Debug, thiserror::Error)]
pub enum SslError {
    /// Settings that cannot work, or a batch that does not fit the method.
    #[error("{0}")]
    Invalid(String),
    /// The data pipeline's error (a view plan that cannot be built).
    #[error(transparent)]
    Data(#[from] medssl_data::DataError),
    /// A GPU that failed while computing a monitor (out of memory, a failed kernel).
    #[error(transparent)]
    Device(#[from] medssl_model::arrays::DeviceReadError),
    /// A method name that no registered method has; the message lists those that do.
    #[error("unknown method `{name}`; known methods: {}", known.join(", "))]
    UnknownMethod {
        name: String,
        known: Vec<&'static str>,
    },
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, SslError>;
