//! Everything between files on disk and the arrays a training step consumes.
//!
//! This crate will own the MONAI-style transforms (orientation, spacing, intensity,
//! crops, augmentation), the dataset formats (MSD / nnU-Net `dataset.json`, folders,
//! list files), few-shot splits, SSL view and mask generation, the synthetic CT/MRI
//! phantoms and the background loader. It never depends on Burn: its output is plain
//! `ndarray` arrays.
