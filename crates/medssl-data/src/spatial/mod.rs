//! Spatial transforms: orientation, resampling, crops, pads, flips, rotations, affine.
//!
//! Each matches a MONAI dictionary transform applied to `keys=["image", "label"]`: image
//! and label move together, the image interpolated (trilinear unless `mode = "nearest"`)
//! and the label read nearest, and the affine follows so every voxel keeps its world
//! position. Parameter names and defaults are MONAI's.

pub mod affine;
pub mod axes;
pub mod crop;
pub mod flip_rotate;
pub mod orientation;
pub mod params;
pub mod pos_neg;
pub mod region;
pub mod resample;
pub mod spacing;

pub use crate::transform::FromParams;
use crate::transform::{TransformSpec, spec};

/// The spatial transforms a configuration may name.
pub fn catalogue() -> Vec<TransformSpec> {
    vec![
        spec::<orientation::Orientation>(),
        spec::<spacing::Spacing>(),
        spec::<crop::CropForeground>(),
        spec::<crop::SpatialPad>(),
        spec::<crop::CenterSpatialCrop>(),
        spec::<crop::RandSpatialCrop>(),
        spec::<pos_neg::RandCropByPosNegLabel>(),
        spec::<flip_rotate::RandFlip>(),
        spec::<flip_rotate::RandRotate90>(),
        spec::<affine::RandAffine>(),
    ]
}
