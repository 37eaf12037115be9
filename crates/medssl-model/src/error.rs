//! Errors of the model crate's conversions and file checks, kept typed so that a caller
//! can tell a damaged weights file from a checkpoint of another network and print the
//! whole chain of causes.

/// Why a tensor could not be read back, a safetensors file could not be sealed or
/// checked, or a checkpoint's tensors are not a SwinUNETR.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A tensor whose values could not be copied to the host as `f32`.
    #[error(transparent)]
    TensorData(#[from] burn::tensor::DataError),
    /// Values that do not fill the tensor's shape.
    #[error(transparent)]
    Shape(#[from] ndarray::ShapeError),
    /// Bytes whose layout is not a safetensors file (too short, a header that is not
    /// UTF-8 or not a JSON object, metadata already present).
    #[error("{0}")]
    Safetensors(String),
    /// A safetensors header that the safetensors crate cannot read.
    #[error("not a readable safetensors file: {0}")]
    Unreadable(#[source] safetensors::SafeTensorError),
    /// A sealed file whose tensor data no longer has the SHA-256 it was written with.
    #[error(
        "the file is corrupt: its tensor data has SHA-256 {actual}, the file recorded \
         {expected} when it was written"
    )]
    Corrupt { actual: String, expected: String },
    /// A tensor every SwinUNETR or Swin encoder checkpoint has is missing.
    #[error("no tensor {name}: not a SwinUNETR / Swin encoder checkpoint")]
    MissingTensor { name: String },
    /// Tensors whose shapes or layout do not give a SwinUNETR architecture.
    #[error("{0}")]
    Architecture(String),
    /// An input the configured network cannot take.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}
