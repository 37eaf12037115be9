//! Fine-tuning a SwinUNETR on a labelled task: configuration, default pipelines, the
//! training loop and validation.

pub mod config;
pub mod evaluate;
pub mod feature_reuse;
pub mod inference;
pub mod init_weights;
pub mod pipelines;
pub mod trainer;
pub mod validate;

pub use config::{FinetuneConfig, Preset};
pub use init_weights::InitReport;
pub use trainer::{Event, Finetune, Init};
