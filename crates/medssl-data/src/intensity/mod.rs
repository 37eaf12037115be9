//! Intensity transforms: windowing, normalisation, clipping and random intensity changes.

use crate::transform::TransformSpec;

/// The intensity transforms a configuration may name.
pub fn catalogue() -> Vec<TransformSpec> {
    Vec::new()
}
