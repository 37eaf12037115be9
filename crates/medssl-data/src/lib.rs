//! Everything between files on disk and the arrays a training step consumes.
//!
//! MONAI-style transforms (orientation, spacing, intensity, crops, augmentation) built
//! from TOML into a [`Pipeline`], the dataset formats (MSD / nnU-Net `dataset.json`,
//! folders, list files), few-shot splits, SSL view and mask generation and the
//! background loader. It never depends on Burn: its output is plain `ndarray` arrays.
//! The synthetic phantoms live in `medssl-synth`.
//!
//! All randomness comes from [`rng::stream`]s derived from the run seed, so results do
//! not depend on thread count or timing.

pub mod cache;
pub mod checks;
pub mod convert;
pub mod dataset;
pub mod error;
pub mod intensity;
pub mod loader;
pub mod manifest;
pub mod masks;
pub mod rng;
pub mod sample;
pub mod spatial;
pub mod splits;
pub mod transform;
pub mod views;

pub use error::{DataError, Result};
pub use rng::Rng;
pub use sample::Sample;
pub use transform::{Pipeline, PipelineConfig, Transform, TransformSpec, TransformStep};
