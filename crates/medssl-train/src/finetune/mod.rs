//! Fine-tuning a SwinUNETR on a labelled task: configuration, default pipelines, the
//! training loop (validating through `medssl_eval::validate`), and reopening a trained
//! run to predict, evaluate and compare it with `medssl-eval`.

pub mod config;
pub mod init_weights;
pub mod pipelines;
pub mod probe_encoder;
pub mod run_info;
pub mod trained_run;
pub mod trainer;

pub use config::{FinetuneConfig, Preset, Strategy};
pub use init_weights::InitReport;
pub use trainer::{Event, Finetune, Init};
