//! Training loops for pretraining and fine-tuning.
//!
//! The loops and their optimisation: layered settings, run directories with their
//! metrics log, AdamW with warm-up + cosine schedules, the segmentation losses (MONAI's
//! `DiceLoss` / `DiceCELoss`), atomic checkpoints with resume. Applying a trained
//! network (prediction, validation scoring, evaluation, feature reuse) is
//! `medssl-eval`'s; [`finetune::trained_run`] reopens a fine-tune run for it.

pub mod checkpoint;
pub mod convergence;
pub mod error;
mod exact_f64;
pub mod finetune;
pub mod fit;
pub mod launch;
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
