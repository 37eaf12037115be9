//! Training loops for pretraining and fine-tuning.
//!
//! The segmentation losses (MONAI's `DiceLoss` / `DiceCELoss`), and, as they land, the
//! loops, AdamW with warm-up + cosine schedules, the EMA teacher, atomic checkpoints
//! with resume, and the metrics log of a run directory.

pub mod loss;

pub use loss::{DiceCeLoss, DiceLoss, Reduction};
