//! Evaluation of segmentation models.
//!
//! Sliding-window inference ([`sliding_window`]) works on plain arrays with any
//! predictor, so this crate stays free of the deep-learning framework. Segmentation
//! metrics (Dice, HD95, ASSD, NSD with MONAI's definitions) and centered kernel
//! alignment (CKA) will live here too.

pub mod cka;
pub mod metrics;
pub mod sliding_window;
