//! Checks the methods' settings share, each naming the setting it rejects.

use medssl_data::masks::MaskGrid;

use crate::error::{Result, SslError};

/// `value` must be positive and finite.
pub(super) fn positive(name: &str, value: f64) -> Result<()> {
    if value > 0.0 && value.is_finite() {
        Ok(())
    } else {
        Err(SslError::Invalid(format!(
            "{name} must be positive, got {value}"
        )))
    }
}

/// Layer widths must be positive.
pub(super) fn widths(named: &[(&str, usize)]) -> Result<()> {
    match named.iter().find(|(_, width)| *width == 0) {
        Some((name, _)) => Err(SslError::Invalid(format!("{name} must be positive"))),
        None => Ok(()),
    }
}

/// Local crops (when there are any) must fit the encoder (sides multiples of 32) and
/// the global crop.
pub(super) fn local_crops(count: usize, size: [usize; 3], crop: [usize; 3]) -> Result<()> {
    let misfit = (0..3).any(|a| size[a] == 0 || size[a] % 32 != 0 || size[a] > crop[a]);
    if count > 0 && misfit {
        return Err(SslError::Invalid(format!(
            "local_size {size:?} must be multiples of 32 no larger than the crop {crop:?}"
        )));
    }
    Ok(())
}

/// Mask blocks must tile the crop and be whole tokens of the stage whose tokens the loss
/// uses (`stride` voxels), so that each of them is wholly masked or wholly visible.
pub(super) fn mask_blocks(
    block_size: usize,
    patch: usize,
    stride: usize,
    crop: [usize; 3],
) -> Result<()> {
    if block_size == 0 || block_size % stride != 0 {
        return Err(SslError::Invalid(format!(
            "block_size {block_size} must be a multiple of {stride}, the stride of the tokens \
             the loss uses"
        )));
    }
    MaskGrid::new(crop, patch, block_size)
        .map(|_| ())
        .map_err(|e| SslError::Invalid(format!("block_size: {e}")))
}
