//! What the manifest records about one entry, read from its headers: NIfTI headers
//! alone; DICOM series through medssl-io's series reader.

use std::path::Path;

use medssl_io::{ReadOptions, geometry, nifti, read_image};

use super::Kind;
use crate::error::{DataError, Result};

/// The geometry and modality of one entry.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Header {
    pub shape: [usize; 3],
    pub channels: usize,
    pub spacing: [f64; 3],
    pub modality: Option<String>,
}

/// Reads the header facts of `path`. NIfTI files are read up to the end of the header;
/// DICOM series are decoded, because medssl-io builds a series' shape and geometry only
/// while stacking its slices (the manifest cache makes this a one-time cost).
pub(super) fn header(path: &Path, kind: Kind) -> Result<Header> {
    let (dims, affine, modality) = match kind {
        Kind::Nifti => {
            let header = nifti::read_header(path)?;
            header
                .sample_type()
                .map_err(|what| DataError::file(path, format!("unsupported: {what}")))?;
            let (affine, _) = header
                .best_affine()
                .map_err(|problem| DataError::file(path, problem))?;
            (header.shape(), affine, None)
        }
        Kind::Dicom => {
            let image = read_image(path, &ReadOptions::default())?;
            let affine = image.affine.ok_or_else(|| {
                DataError::file(path, "no geometry (position, orientation, spacing)")
            })?;
            // The series reader reports the Modality attribute among its header facts.
            let modality = image
                .details
                .iter()
                .find(|(key, value)| key == "modality" && value != "?")
                .map(|(_, value)| value.clone());
            (image.shape, affine, modality)
        }
    };
    let dim = |a: usize| dims.get(a).copied().unwrap_or(1);
    let spacing = geometry::spacing(&affine);
    if spacing.iter().any(|s| !s.is_finite() || *s <= 0.0) {
        return Err(DataError::file(
            path,
            format!("voxel spacing {spacing:?} mm is not positive and finite"),
        ));
    }
    Ok(Header {
        shape: [dim(0), dim(1), dim(2)],
        channels: dims.iter().skip(3).product::<usize>().max(1),
        spacing,
        modality,
    })
}
