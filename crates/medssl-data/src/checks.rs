//! Value checks shared by every transform's parameters; each error names the transform
//! and the parameter.

use std::fmt::Display;

use crate::error::{DataError, Result};

/// The configuration error for `param` of `transform`: "transform `t`: `param` problem".
pub fn invalid(transform: &str, param: &str, problem: impl Display) -> DataError {
    DataError::Config(format!("transform `{transform}`: `{param}` {problem}"))
}

/// Checks that a probability lies in `[0, 1]`.
pub fn check_prob(transform: &str, prob: f64) -> Result<()> {
    if (0.0..=1.0).contains(&prob) {
        Ok(())
    } else {
        Err(invalid(
            transform,
            "prob",
            format!("must be in [0, 1], got {prob}"),
        ))
    }
}

/// Checks that every size is at least one voxel.
pub fn check_sizes(transform: &str, param: &str, sizes: [usize; 3]) -> Result<()> {
    if sizes.contains(&0) {
        return Err(invalid(
            transform,
            param,
            format!("must be positive on every axis, got {sizes:?}"),
        ));
    }
    Ok(())
}

/// Checks that every value is finite and within the f32 range (voxels and coordinates
/// are f32, so a larger constant would turn them into infinities).
pub fn check_finite(transform: &str, param: &str, values: &[f64]) -> Result<()> {
    match values
        .iter()
        .find(|v| !v.is_finite() || v.abs() > f64::from(f32::MAX))
    {
        Some(v) => Err(invalid(
            transform,
            param,
            format!("must be finite and within the f32 range, got {v}"),
        )),
        None => Ok(()),
    }
}
