//! Training loops for pretraining and fine-tuning.
//!
//! The segmentation losses (MONAI's `DiceLoss` / `DiceCELoss`), and, as they land, the
//! loops, AdamW with warm-up + cosine schedules, the EMA teacher, atomic checkpoints
//! with resume, and the metrics log of a run directory.

pub mod checkpoint;
pub mod convergence;
pub mod error;
mod exact_f64;
pub mod finetune;
pub mod loss;
pub mod optimizer;
pub mod param_ids;
pub mod pretrain;
pub mod run_dir;
pub mod schedule;
pub mod settings;
mod swin_shape;
pub mod transforms;

pub use loss::{DiceCeLoss, DiceLoss, Reduction};
pub use optimizer::{OptimizerConfig, SegmentationOptimizer};
pub use schedule::WarmupCosine;
