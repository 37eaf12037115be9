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

use serde::de::DeserializeOwned;

use crate::error::Result;
use crate::transform::{Transform, TransformSpec, parse_params};

/// A transform built from a parameter struct (`#[serde(deny_unknown_fields)]`) that a
/// configuration table deserialises into; `from_params` checks the values.
pub trait FromParams: Transform + Sized + 'static {
    /// Configuration name.
    const NAME: &'static str;
    /// The MONAI dictionary transform it matches.
    const MONAI: &'static str;
    /// The parameters, with MONAI's defaults.
    type Params: DeserializeOwned;

    /// Builds the transform; errors name the transform and the parameter.
    fn from_params(params: Self::Params) -> Result<Self>;
}

/// The catalogue entry of `T`.
fn spec<T: FromParams>() -> TransformSpec {
    TransformSpec {
        name: T::NAME,
        monai: T::MONAI,
        build: |table| {
            let params = parse_params::<T::Params>(T::NAME, table)?;
            Ok(Box::new(T::from_params(params)?) as Box<dyn Transform>)
        },
    }
}

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
