//! `Image`: a decoded file before it becomes a `Volume` — stored samples, their scaling,
//! shape and geometry — and the entry points that read any supported path.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use ndarray::Array4;

use crate::error::{IoError, Result};
use crate::geometry::Affine;
use crate::samples::{SampleType, Samples, Scaling, Stats};
use crate::volume::Volume;
use crate::{dicom, nifti, nrrd};

/// The container a file was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Nifti1,
    Nifti2,
    /// One DICOM file (single- or multi-frame).
    Dicom,
    /// A directory of DICOM files forming one series.
    DicomSeries,
    /// An NRRD file (`.nrrd`) or header with detached data (`.nhdr`).
    Nrrd,
    /// Greyscale PNGs, one per slice of a reference DICOM series, stacked on its grid
    /// (see [`crate::png_slices::label_stack`]).
    PngStack,
}

impl Format {
    /// The name `medssl info --json` prints.
    pub fn name(self) -> &'static str {
        match self {
            Format::Nifti1 => "nifti1",
            Format::Nifti2 => "nifti2",
            Format::Dicom => "dicom",
            Format::DicomSeries => "dicom-series",
            Format::Nrrd => "nrrd",
            Format::PngStack => "png-slice-stack",
        }
    }
}

/// A decoded image file: samples in their stored type and file order (first index
/// fastest), the scaling to physical values, and the geometry.
#[derive(Debug, Clone)]
pub struct Image {
    pub path: PathBuf,
    pub format: Format,
    /// Array shape, first index fastest in `samples`: NIfTI `(i, j, k[, t, ...])`,
    /// DICOM `[columns, rows, frames or slices]`.
    pub shape: Vec<usize>,
    /// The sample type on disk. `samples` may hold a wider type when slices of a series
    /// had different rescale values and were scaled while stacking.
    pub stored_type: SampleType,
    pub samples: Samples,
    pub scaling: Scaling,
    /// Voxel index to RAS+ mm, or `None` when the file carries no geometry.
    pub affine: Option<Affine>,
    /// Set only when `affine` is `None`: the geometry a converter may assume instead.
    pub assumed_geometry: Option<AssumedGeometry>,
    /// Format-specific header facts for people (`medssl info` without `--json`).
    pub details: Vec<(String, String)>,
}

/// What dcm2niix (and ITK) assume for a DICOM file without a complete geometry: the
/// voxel spacing the file states — PixelSpacing for columns and rows,
/// SpacingBetweenSlices or else SliceThickness between frames, 1 mm for whatever is
/// absent — the direction cosines of ImageOrientationPatient, or the identity in DICOM
/// patient coordinates (LPS) without it, and the first ImagePositionPatient as origin,
/// or 0. In RAS terms a file with none of them gets `diag(-column spacing, -row
/// spacing, slice spacing)` with origin 0.
#[derive(Debug, Clone, PartialEq)]
pub struct AssumedGeometry {
    pub affine: Affine,
    /// The attributes the file lacks, e.g. `["ImagePositionPatient",
    /// "ImageOrientationPatient"]`.
    pub missing: Vec<&'static str>,
}

impl Image {
    /// Statistics of the scaled values, in f64.
    pub fn stats(&self) -> Stats {
        Stats::of(&self.samples, self.scaling)
    }

    /// Converts to a channel-first f32 volume. Dimensions beyond the third become
    /// channels (a 4-D NIfTI's volumes); missing ones have size 1.
    pub fn to_volume(&self) -> Result<Volume> {
        let affine = self.affine.ok_or_else(|| {
            let missing = match &self.assumed_geometry {
                Some(g) => g.missing.join(", "),
                None => "position/orientation/spacing".to_string(),
            };
            IoError::invalid(
                &self.path,
                format!(
                    "the file carries no geometry (no {missing}), so it cannot become a volume"
                ),
            )
        })?;
        self.volume_with(affine)
    }

    /// Like [`Image::to_volume`], but a file without geometry becomes a volume with its
    /// [`AssumedGeometry`] (returned too, so the caller can say so) instead of an error.
    pub fn to_volume_or_assumed(&self) -> Result<(Volume, Option<&AssumedGeometry>)> {
        match (&self.affine, &self.assumed_geometry) {
            (None, Some(assumed)) => Ok((self.volume_with(assumed.affine)?, Some(assumed))),
            _ => Ok((self.to_volume()?, None)),
        }
    }

    fn volume_with(&self, affine: Affine) -> Result<Volume> {
        let dim = |a: usize| self.shape.get(a).copied().unwrap_or(1);
        let channels: usize = self.shape.iter().skip(3).product();
        let dims = [dim(0), dim(1), dim(2)];
        let channels = channels.max(1);
        let expected = dims.iter().product::<usize>() * channels;
        if self.samples.len() != expected {
            return Err(IoError::invalid(
                &self.path,
                format!(
                    "{} samples for shape {:?}, which needs {expected}",
                    self.samples.len(),
                    self.shape
                ),
            ));
        }
        let values = self
            .samples
            .to_f32_channel_first(self.scaling, dims, channels);
        let data = Array4::from_shape_vec((channels, dims[0], dims[1], dims[2]), values)
            .expect("the sample count was checked against the shape");
        Ok(Volume::new(data, affine))
    }
}

/// Choices for reading DICOM directories.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// SeriesInstanceUID to read from a directory holding several series.
    pub series: Option<String>,
}

/// Reads a NIfTI file (`.nii`, `.nii.gz`, NIfTI-1 or -2), an NRRD file (`.nrrd`, or a
/// `.nhdr` with detached data), a DICOM file or a directory holding a DICOM series. The
/// format is recognised from the content, not the name.
pub fn read_image(path: &Path, options: &ReadOptions) -> Result<Image> {
    let meta = std::fs::metadata(path).map_err(|e| IoError::os(path, e))?;
    if meta.is_dir() {
        return dicom::read_series(path, options.series.as_deref());
    }
    match sniff(path)? {
        Sniffed::Nifti => nifti::read(path),
        Sniffed::Dicom => dicom::read_file(path),
        Sniffed::Nrrd => nrrd::read(path),
        Sniffed::Unknown => Err(IoError::invalid(
            path,
            "not a NIfTI file (no NIfTI header size 348/540), not an NRRD file (no 'NRRD000N' \
             magic) and not a DICOM file (no 'DICM' marker at byte 128)",
        )),
    }
}

/// Reads any supported path straight to a `Volume`.
pub fn read_volume(path: &Path, options: &ReadOptions) -> Result<Volume> {
    read_image(path, options)?.to_volume()
}

enum Sniffed {
    Nifti,
    Dicom,
    Nrrd,
    Unknown,
}

/// Looks at the first bytes to tell NIfTI (gzip or not) from NRRD and DICOM.
fn sniff(path: &Path) -> Result<Sniffed> {
    let mut head = Vec::with_capacity(132);
    let file = File::open(path).map_err(|e| IoError::os(path, e))?;
    file.take(132)
        .read_to_end(&mut head)
        .map_err(|e| IoError::os(path, e))?;
    if head.starts_with(&[0x1f, 0x8b]) {
        return Ok(Sniffed::Nifti);
    }
    if nrrd::has_magic(&head) {
        return Ok(Sniffed::Nrrd);
    }
    if head.len() >= 132 && &head[128..132] == b"DICM" {
        return Ok(Sniffed::Dicom);
    }
    if head.len() >= 4 && nifti::header_size(head[..4].try_into().expect("4 bytes")).is_some() {
        return Ok(Sniffed::Nifti);
    }
    Ok(Sniffed::Unknown)
}
