//! Writing volumes as NIfTI-1 through the `nifti` crate, with both sform and qform set
//! (code 1, scanner anatomical) so nibabel, ITK and MONAI read back the same geometry.

use std::path::{Path, PathBuf};

use ndarray::{ArrayD, ArrayViewD, Axis, Dimension, IxDyn, ShapeBuilder, Zip};
use nifti::writer::WriterOptions;
use nifti::{NiftiHeader as CrateHeader, XForm};

use crate::error::{IoError, Result, chain};
use crate::volume::Volume;

/// Sample type of a written file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputType {
    Float32,
    Int16,
    UInt8,
}

impl OutputType {
    /// numpy's name for the type.
    pub fn name(self) -> &'static str {
        match self {
            OutputType::Float32 => "float32",
            OutputType::Int16 => "int16",
            OutputType::UInt8 => "uint8",
        }
    }

    /// The smallest type that holds every voxel exactly: `uint8` for label maps,
    /// `int16` for CT in HU, `float32` otherwise.
    pub fn smallest_exact(volume: &Volume) -> OutputType {
        let mut ty = OutputType::UInt8;
        for &v in volume.data() {
            if ty == OutputType::UInt8 && !fits(v, 0.0, 255.0) {
                ty = OutputType::Int16;
            }
            if ty == OutputType::Int16 && !fits(v, -32768.0, 32767.0) {
                return OutputType::Float32;
            }
        }
        ty
    }

    fn range(self) -> (f32, f32) {
        match self {
            OutputType::Float32 => (f32::NEG_INFINITY, f32::INFINITY),
            OutputType::Int16 => (-32768.0, 32767.0),
            OutputType::UInt8 => (0.0, 255.0),
        }
    }
}

fn fits(v: f32, lo: f32, hi: f32) -> bool {
    v.fract() == 0.0 && (lo..=hi).contains(&v)
}

/// Writes `volume` to `path` (`.nii` or `.nii.gz`) atomically: a temporary file in the
/// same directory is renamed into place, so a crash never leaves a half-written image.
/// Integer types refuse voxels they cannot hold exactly rather than rounding them.
pub fn write_volume(path: &Path, volume: &Volume, ty: OutputType) -> Result<()> {
    let tmp = temp_path(path)?;
    let written = write_to(&tmp, path, volume, ty)
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| IoError::os(path, e)));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

fn temp_path(path: &Path) -> Result<PathBuf> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let (stem, ext) = if let Some(stem) = name.strip_suffix(".nii.gz") {
        (stem, ".nii.gz")
    } else if let Some(stem) = name.strip_suffix(".nii") {
        (stem, ".nii")
    } else {
        return Err(IoError::invalid(
            path,
            "output name must end in .nii or .nii.gz",
        ));
    };
    // The `nifti` crate rewrites everything after the stem's last dot, so the stem of the
    // temporary name must have no dots.
    let stem = stem.replace('.', "_");
    Ok(path.with_file_name(format!(".tmp-{}-{stem}{ext}", std::process::id())))
}

/// The voxels converted by `f` into an array laid out in NIfTI storage order (first
/// index fastest), the layout the `nifti` crate's writer needs to stream slices.
fn storage_order<T: Copy + Default>(data: &ArrayViewD<f32>, f: impl Fn(f32) -> T) -> ArrayD<T> {
    let mut out = ArrayD::from_elem(IxDyn(data.shape()).f(), T::default());
    Zip::from(&mut out).and(data).for_each(|o, &v| *o = f(v));
    out
}

fn write_to(tmp: &Path, target: &Path, volume: &Volume, ty: OutputType) -> Result<()> {
    let mut header = CrateHeader::default();
    header.set_sform(volume.affine(), XForm::ScannerAnat);
    header.set_qform(volume.affine(), XForm::ScannerAnat);
    header.xyzt_units = 2; // millimetres

    // [C, I, J, K] -> [I, J, K(, C)]: the crate writes the first index fastest.
    let mut data: ArrayViewD<f32> = volume.data().view().permuted_axes([1, 2, 3, 0]).into_dyn();
    if volume.channels() == 1 {
        data = data.index_axis_move(Axis(3), 0);
    }
    let (lo, hi) = ty.range();
    if ty != OutputType::Float32
        && let Some((index, v)) = data.indexed_iter().find(|(_, v)| !fits(**v, lo, hi))
    {
        return Err(IoError::invalid(
            target,
            format!(
                "voxel {:?} = {v} cannot be stored exactly as {} (choose float32)",
                index.slice(),
                ty.name()
            ),
        ));
    }
    let options = WriterOptions::new(tmp).reference_header(&header);
    let result = match ty {
        OutputType::Float32 => options.write_nifti(&storage_order(&data, |v| v)),
        OutputType::Int16 => options.write_nifti(&storage_order(&data, |v| v as i16)),
        OutputType::UInt8 => options.write_nifti(&storage_order(&data, |v| v as u8)),
    };
    result.map_err(|e| match e {
        nifti::NiftiError::Io(io) => IoError::os(target, io),
        other => IoError::invalid(target, format!("cannot write NIfTI: {}", chain(&other))),
    })
}
