//! `Sample`: what flows through a pipeline — an image, its optional label map, and the
//! case id every error message names.

use medssl_io::geometry::affine_rows;
use medssl_io::{Affine, Volume};

use crate::error::{DataError, Result};

/// One training or pretraining example. Image and label share the spatial grid (same
/// `[I, J, K]` shape and affine); every spatial transform moves both together, applying
/// linear interpolation to the image and nearest-neighbour to the label, as MONAI's
/// dictionary transforms do with `mode=("bilinear", "nearest")`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Case identifier (file stem or dataset.json entry), used in error messages.
    pub id: String,
    /// Image, `[C, I, J, K]`.
    pub image: Volume,
    /// Label map, `[1, I, J, K]` with integer class indices, when the case has one.
    pub label: Option<Volume>,
}

impl Sample {
    /// An unlabelled sample.
    pub fn unlabelled(id: impl Into<String>, image: Volume) -> Sample {
        Sample {
            id: id.into(),
            image,
            label: None,
        }
    }

    /// A labelled sample; fails when the label does not lie on the image's grid.
    pub fn labelled(id: impl Into<String>, image: Volume, label: Volume) -> Result<Sample> {
        let sample = Sample {
            id: id.into(),
            image,
            label: Some(label),
        };
        sample.check_label_grid()?;
        Ok(sample)
    }

    /// `[I, J, K]` of the image.
    pub fn spatial_shape(&self) -> [usize; 3] {
        self.image.spatial_shape()
    }

    /// The error for this sample's case.
    pub fn error(&self, message: impl Into<String>) -> DataError {
        DataError::case(&self.id, message)
    }

    /// Checks that the label has one channel and the image's shape and affine (within
    /// 1e-3 mm / 1e-4 relative, the tolerance MONAI's and nnU-Net's checks allow for
    /// float32 headers).
    pub fn check_label_grid(&self) -> Result<()> {
        let Some(label) = &self.label else {
            return Ok(());
        };
        if label.channels() != 1 {
            return Err(self.error(format!(
                "label has {} channels, expected 1",
                label.channels()
            )));
        }
        if label.spatial_shape() != self.image.spatial_shape() {
            return Err(self.error(format!(
                "label shape {:?} differs from image shape {:?}",
                label.spatial_shape(),
                self.image.spatial_shape()
            )));
        }
        let (a, b) = (self.image.affine(), label.affine());
        if !affines_agree(a, b) {
            return Err(self.error(format!(
                "label affine differs from the image's beyond the tolerance \
                 ({GRID_TOLERANCE}): label rows {:?}, image rows {:?}",
                &affine_rows(b)[..3],
                &affine_rows(a)[..3]
            )));
        }
        Ok(())
    }
}

/// [`affines_agree`]'s tolerance in words, for messages and documentation.
pub const GRID_TOLERANCE: &str = "affine entries may differ by 1e-4 of their magnitude, \
                                  at least 1e-3 mm";

/// Whether two affines describe the same grid placement: every entry within 1e-4 of the
/// larger magnitude (at least 10, so 1e-3 mm on translations), the tolerance MONAI's and
/// nnU-Net's checks allow for float32 headers.
pub fn affines_agree(a: &Affine, b: &Affine) -> bool {
    a.iter()
        .zip(b.iter())
        .all(|(x, y)| (x - y).abs() / x.abs().max(y.abs()).max(10.0) <= 1e-4)
}

/// Whether `b` lies on `a`'s grid: the same `[I, J, K]` and agreeing affines.
pub fn same_grid(a: &Volume, b: &Volume) -> bool {
    a.spatial_shape() == b.spatial_shape() && affines_agree(a.affine(), b.affine())
}
