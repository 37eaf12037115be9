//! Spatial transforms: orientation, resampling, crops, pads, flips, rotations, affine.

pub mod region;

use crate::transform::TransformSpec;

/// The spatial transforms a configuration may name.
pub fn catalogue() -> Vec<TransformSpec> {
    Vec::new()
}
