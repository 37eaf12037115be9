//! DICOM reading: single files (multi-frame included) and directories holding series.
//!
//! Array index order is i = column, j = row, k = frame or slice, as ITK and dcm2niix
//! write DICOM to NIfTI; the affine maps that index to RAS+ mm (DICOM's LPS with x and
//! y negated). Values have the modality LUT (Rescale Slope/Intercept) applied, so CT is
//! in Hounsfield units; no VOI LUT or windowing is applied.

mod lengths;
mod series;
mod tags;

use std::path::Path;

use dicom_dictionary_std::tags as T;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::{InMemDicomObject, OpenFileOptions};
use dicom_pixeldata::{ConvertOptions, ModalityLutOption, PixelDecoder};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use nalgebra::Vector3;

pub use series::{SeriesSummary, list_series, read_series, series_files};

use crate::error::{IoError, Result, chain};
use crate::geometry::{Affine, affine_from_rows};
use crate::image::{AssumedGeometry, Format, Image};
use crate::samples::{SampleType, Samples, Scaling};

/// True when `path` has the DICOM Part 10 marker `DICM` at byte 128.
pub fn has_dicom_marker(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 132];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && &head[128..] == b"DICM"
}

/// Opens a DICOM file, fully or up to (not including) the pixel data. The file is read
/// once: its element lengths are checked on the bytes, which are then parsed.
fn open(path: &Path, headers_only: bool) -> Result<dicom_object::DefaultDicomObject> {
    let bytes = std::fs::read(path).map_err(|e| IoError::os(path, e))?;
    lengths::check_declared_lengths(&bytes)
        .map_err(|problem| IoError::invalid(path, format!("unreadable DICOM file: {problem}")))?;
    let options = OpenFileOptions::new();
    let options = if headers_only {
        options.read_until(T::PIXEL_DATA)
    } else {
        options
    };
    options
        .from_reader(bytes.as_slice())
        .map_err(|e| IoError::invalid(path, format!("unreadable DICOM file: {}", chain(&e))))
}

/// Position, orientation and pixel spacing of one frame.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Plane {
    position: Option<[f64; 3]>,
    orientation: Option<[f64; 6]>,
    /// (row spacing, column spacing) in mm, as PixelSpacing stores them.
    pixel_spacing: Option<[f64; 2]>,
}

/// The attributes of one image file that grouping, sorting and geometry need.
#[derive(Debug, Clone)]
struct FileInfo {
    series_uid: String,
    series_description: Option<String>,
    series_number: Option<i64>,
    modality: Option<String>,
    transfer_syntax: String,
    rows: usize,
    columns: usize,
    frames: usize,
    /// One per frame when the file has per-frame positions, else one for the file.
    planes: Vec<Plane>,
    slice_thickness: Option<f64>,
    spacing_between_slices: Option<f64>,
    scaling: Scaling,
}

impl FileInfo {
    /// Reads the attributes; `None` for objects without an image (no Rows/Columns).
    fn of(obj: &dicom_object::DefaultDicomObject) -> Option<FileInfo> {
        let rows = tags::int(obj, T::ROWS)?;
        let columns = tags::int(obj, T::COLUMNS)?;
        let frames = tags::int(obj, T::NUMBER_OF_FRAMES).unwrap_or(1).max(1) as usize;
        let shared = tags::first_item(obj, T::SHARED_FUNCTIONAL_GROUPS_SEQUENCE);
        let per_frame = tags::items(obj, T::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE);
        let iop = |o: &InMemDicomObject| tags::float_array(o, T::IMAGE_ORIENTATION_PATIENT);
        let plane_of = |frame: Option<&InMemDicomObject>| Plane {
            position: tags::in_group(frame, T::PLANE_POSITION_SEQUENCE, obj, |o| {
                tags::float_array(o, T::IMAGE_POSITION_PATIENT)
            }),
            orientation: frame
                .and_then(|f| tags::first_item(f, T::PLANE_ORIENTATION_SEQUENCE))
                .and_then(iop)
                .or_else(|| tags::in_group(shared, T::PLANE_ORIENTATION_SEQUENCE, obj, iop)),
            pixel_spacing: tags::in_group(shared, T::PIXEL_MEASURES_SEQUENCE, obj, |o| {
                tags::float_array(o, T::PIXEL_SPACING)
            }),
        };
        let planes = if per_frame.len() == frames && frames > 1 {
            per_frame.iter().map(|f| plane_of(Some(f))).collect()
        } else {
            vec![plane_of(None)]
        };
        let rescale = |tag| {
            tags::in_group(shared, T::PIXEL_VALUE_TRANSFORMATION_SEQUENCE, obj, |o| {
                tags::float(o, tag)
            })
        };
        Some(FileInfo {
            series_uid: tags::text(obj, T::SERIES_INSTANCE_UID).unwrap_or_default(),
            series_description: tags::text(obj, T::SERIES_DESCRIPTION),
            series_number: tags::int(obj, T::SERIES_NUMBER),
            modality: tags::text(obj, T::MODALITY),
            transfer_syntax: obj
                .meta()
                .transfer_syntax()
                .trim_end_matches('\0')
                .to_string(),
            rows: rows.max(0) as usize,
            columns: columns.max(0) as usize,
            frames,
            planes,
            slice_thickness: tags::in_group(shared, T::PIXEL_MEASURES_SEQUENCE, obj, |o| {
                tags::float(o, T::SLICE_THICKNESS)
            }),
            spacing_between_slices: tags::in_group(shared, T::PIXEL_MEASURES_SEQUENCE, obj, |o| {
                tags::float(o, T::SPACING_BETWEEN_SLICES)
            }),
            scaling: Scaling {
                slope: rescale(T::RESCALE_SLOPE).unwrap_or(1.0),
                inter: rescale(T::RESCALE_INTERCEPT).unwrap_or(0.0),
            },
        })
    }

    /// The slice spacing to use when positions cannot give it (a single slice): the
    /// first positive of SpacingBetweenSlices and SliceThickness, else 1 mm.
    fn nominal_slice_spacing(&self) -> f64 {
        [self.spacing_between_slices, self.slice_thickness]
            .into_iter()
            .flatten()
            .find(|s| *s > 0.0)
            .unwrap_or(1.0)
    }
}

/// A readable name for a transfer syntax UID.
fn transfer_syntax_name(uid: &str) -> String {
    match TransferSyntaxRegistry.get(uid) {
        Some(ts) => format!("{} ({uid})", ts.name()),
        None => format!("unknown transfer syntax ({uid})"),
    }
}

/// Decoded pixel data up to this size is always accepted, however small the file.
const ALWAYS_ALLOWED_BYTES: u64 = 256 << 20;
/// Above [`ALWAYS_ALLOWED_BYTES`], the most bytes of decoded pixel data per byte of file
/// (far beyond what lossless compression of real images reaches).
const MAX_EXPANSION: u64 = 4096;

/// Fails when the header declares more decoded pixel data than the file can hold:
/// decoders allocate the declared size before reading, so a damaged Rows, Columns or
/// Number of Frames would otherwise cost gigabytes before the error.
fn check_decoded_size(
    path: &Path,
    obj: &dicom_object::DefaultDicomObject,
    info: &FileInfo,
) -> Result<()> {
    let file_bytes = std::fs::metadata(path)
        .map_err(|e| IoError::os(path, e))?
        .len();
    let samples = tags::int(obj, T::SAMPLES_PER_PIXEL).unwrap_or(1).max(1) as u64;
    let bytes_per_sample = tags::int(obj, T::BITS_ALLOCATED).unwrap_or(16).max(8) as u64 / 8;
    let declared = [info.rows, info.columns, info.frames]
        .iter()
        .try_fold(samples * bytes_per_sample, |acc, &n| {
            acc.checked_mul(n as u64)
        });
    let fits =
        declared.is_some_and(|d| d <= ALWAYS_ALLOWED_BYTES || d / MAX_EXPANSION <= file_bytes);
    if !fits {
        return Err(IoError::invalid(
            path,
            format!(
                "the header declares {} x {} pixels x {} frames x {samples} samples of \
                 {bytes_per_sample} bytes, more than a {file_bytes}-byte file can hold \
                 (damaged Rows, Columns or Number of Frames)",
                info.columns, info.rows, info.frames
            ),
        ));
    }
    Ok(())
}

/// Decodes the stored pixel values of all frames, row-major `[frame, row, column]`.
fn decode_samples(
    path: &Path,
    obj: &dicom_object::DefaultDicomObject,
    info: &FileInfo,
) -> Result<Samples> {
    let ts_name = || transfer_syntax_name(&info.transfer_syntax);
    check_decoded_size(path, obj, info)?;
    // The decoders of dicom-pixeldata index past the end of some damaged compressed
    // streams and panic; that is an error about this file, not a crash.
    let decoded =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| obj.decode_pixel_data()))
            .map_err(|_| {
                IoError::invalid(
                    path,
                    format!("damaged pixel data: the {} decoder failed", ts_name()),
                )
            })?;
    let decoded = decoded.map_err(|e| {
        let known = TransferSyntaxRegistry
            .get(&info.transfer_syntax)
            .is_some_and(|ts| ts.can_decode_all());
        if known {
            IoError::invalid(path, format!("cannot decode pixel data: {}", chain(&e)))
        } else {
            IoError::unsupported(
                path,
                format!(
                    "transfer syntax {} cannot be decoded: {}",
                    ts_name(),
                    chain(&e)
                ),
            )
        }
    })?;
    if decoded.samples_per_pixel() != 1 {
        return Err(IoError::unsupported(
            path,
            format!(
                "{} samples per pixel ({:?}): only single-channel images form volumes",
                decoded.samples_per_pixel(),
                decoded.photometric_interpretation()
            ),
        ));
    }
    let signed = decoded.pixel_representation() == dicom_pixeldata::PixelRepresentation::Signed;
    let ty = match (decoded.bits_allocated(), signed) {
        (8, false) => SampleType::U8,
        (8, true) => SampleType::I8,
        (16, false) => SampleType::U16,
        (16, true) => SampleType::I16,
        (32, false) => SampleType::U32,
        (32, true) => SampleType::I32,
        (bits, _) => {
            return Err(IoError::unsupported(
                path,
                format!("{bits} bits allocated per sample"),
            ));
        }
    };
    let stored = ConvertOptions::new().with_modality_lut(ModalityLutOption::None);
    let err = |e: dicom_pixeldata::Error| {
        IoError::invalid(path, format!("cannot convert pixel data: {}", chain(&e)))
    };
    let samples = match ty {
        SampleType::U8 => Samples::U8(decoded.to_vec_with_options(&stored).map_err(err)?),
        SampleType::I8 => Samples::I8(decoded.to_vec_with_options(&stored).map_err(err)?),
        SampleType::U16 => Samples::U16(decoded.to_vec_with_options(&stored).map_err(err)?),
        SampleType::I16 => Samples::I16(decoded.to_vec_with_options(&stored).map_err(err)?),
        SampleType::U32 => Samples::U32(decoded.to_vec_with_options(&stored).map_err(err)?),
        _ => Samples::I32(decoded.to_vec_with_options(&stored).map_err(err)?),
    };
    let expected = info.rows * info.columns * info.frames;
    if samples.len() != expected {
        return Err(IoError::invalid(
            path,
            format!(
                "pixel data holds {} samples, Rows x Columns x Frames = {expected}",
                samples.len()
            ),
        ));
    }
    Ok(samples)
}

/// The unit normal of the slice plane, `row_dir x col_dir`.
fn slice_normal(orientation: &[f64; 6]) -> Vector3<f64> {
    let row = Vector3::new(orientation[0], orientation[1], orientation[2]);
    let col = Vector3::new(orientation[3], orientation[4], orientation[5]);
    row.cross(&col).normalize()
}

/// The RAS affine of slices at `positions` (in array order), checking that they are
/// evenly spaced along the slice normal. `name(i)` names slice `i` in errors.
fn stack_affine(
    path: &Path,
    orientation: &[f64; 6],
    pixel_spacing: &[f64; 2],
    positions: &[[f64; 3]],
    nominal_spacing: f64,
    name: &dyn Fn(usize) -> String,
) -> Result<Affine> {
    let row = Vector3::new(orientation[0], orientation[1], orientation[2]);
    let col = Vector3::new(orientation[3], orientation[4], orientation[5]);
    let normal = slice_normal(orientation);
    if !normal.iter().all(|v| v.is_finite()) || row.norm() < 1e-6 || col.norm() < 1e-6 {
        return Err(IoError::invalid(
            path,
            format!("degenerate ImageOrientationPatient {orientation:?}"),
        ));
    }
    let along: Vec<f64> = positions
        .iter()
        .map(|p| Vector3::from(*p).dot(&normal))
        .collect();
    let gap = if along.len() >= 2 {
        let gaps: Vec<f64> = along.windows(2).map(|w| w[1] - w[0]).collect();
        let mut sorted = gaps.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        if median.abs() < 1e-4 {
            return Err(IoError::invalid(
                path,
                format!(
                    "slices {} and {} lie at the same position along the slice normal: \
                     duplicate slices or several volumes in one series",
                    name(0),
                    name(1)
                ),
            ));
        }
        let tolerance = 1e-3 + 0.01 * median.abs();
        if let Some(i) = gaps.iter().position(|g| (g - median).abs() > tolerance) {
            return Err(IoError::invalid(
                path,
                format!(
                    "uneven slice spacing: gap of {:.4} mm between {} and {} (at {:.4} and \
                     {:.4} mm along the slice normal), the other gaps are {:.4} mm; a slice \
                     is missing or extra",
                    gaps[i],
                    name(i),
                    name(i + 1),
                    along[i],
                    along[i + 1],
                    median
                ),
            ));
        }
        (along[along.len() - 1] - along[0]) / (along.len() - 1) as f64
    } else {
        nominal_spacing
    };
    let [dr, dc] = *pixel_spacing;
    let c0 = row * dc;
    let c1 = col * dr;
    let c2 = normal * gap;
    let p = positions[0];
    // LPS -> RAS: negate the x and y rows.
    let r = |i: usize, s: f64| [s * c0[i], s * c1[i], s * c2[i], s * p[i]];
    Ok(affine_from_rows([
        r(0, -1.0),
        r(1, -1.0),
        r(2, 1.0),
        [0.0, 0.0, 0.0, 1.0],
    ]))
}

/// Reads one DICOM file (any number of frames) into an [`Image`] of shape
/// `[columns, rows, frames]`. The affine is `None` when the file lacks position,
/// orientation or pixel spacing.
pub fn read_file(path: &Path) -> Result<Image> {
    let obj = open(path, false)?;
    let info = FileInfo::of(&obj)
        .ok_or_else(|| IoError::invalid(path, "DICOM object without an image (no Rows/Columns)"))?;
    let samples = decode_samples(path, &obj, &info)?;
    let first = info.planes[0];
    let positions: Option<Vec<[f64; 3]>> = info.planes.iter().map(|p| p.position).collect();
    let affine = match (first.orientation, first.pixel_spacing, positions) {
        (Some(o), Some(ps), Some(pos)) => Some(stack_affine(
            path,
            &o,
            &ps,
            &pos,
            info.nominal_slice_spacing(),
            &|i| format!("frame {}", i + 1),
        )?),
        _ => None,
    };
    let assumed_geometry = match affine {
        Some(_) => None,
        None => Some(assumed_geometry(path, &info)),
    };
    Ok(Image {
        path: path.to_path_buf(),
        format: Format::Dicom,
        shape: vec![info.columns, info.rows, info.frames],
        stored_type: samples.sample_type(),
        samples,
        scaling: info.scaling,
        affine,
        assumed_geometry,
        details: describe(&info),
    })
}

/// The geometry dcm2niix assumes for a file lacking position, orientation or pixel
/// spacing (see [`AssumedGeometry`]): what the file has, the identity direction (LPS),
/// origin 0 and 1 mm for the rest; frames are `nominal_slice_spacing` apart.
fn assumed_geometry(path: &Path, info: &FileInfo) -> AssumedGeometry {
    const IDENTITY: [f64; 6] = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
    let first = info.planes[0];
    let mut missing = Vec::new();
    if info.planes.iter().any(|p| p.position.is_none()) {
        missing.push("ImagePositionPatient");
    }
    if first.orientation.is_none() {
        missing.push("ImageOrientationPatient");
    }
    if first.pixel_spacing.is_none() {
        missing.push("PixelSpacing");
    }
    let spacing = first.pixel_spacing.unwrap_or([1.0, 1.0]);
    let origin = first.position.unwrap_or([0.0; 3]);
    let nominal = info.nominal_slice_spacing();
    let no_name = |i: usize| format!("frame {}", i + 1);
    // A single position never fails the evenness check; only a degenerate orientation
    // can fail, and then the identity stands in for it too.
    let affine = first
        .orientation
        .and_then(|o| stack_affine(path, &o, &spacing, &[origin], nominal, &no_name).ok())
        .unwrap_or_else(|| {
            if first.orientation.is_some() {
                missing.push("a valid ImageOrientationPatient");
            }
            stack_affine(path, &IDENTITY, &spacing, &[origin], nominal, &no_name)
                .expect("the identity orientation is valid")
        });
    AssumedGeometry { affine, missing }
}

fn describe(info: &FileInfo) -> Vec<(String, String)> {
    let mut d = vec![
        (
            "modality".to_string(),
            info.modality.clone().unwrap_or_else(|| "?".into()),
        ),
        (
            "transfer syntax".to_string(),
            transfer_syntax_name(&info.transfer_syntax),
        ),
        ("series".to_string(), info.series_uid.clone()),
        (
            "rescale slope / intercept".to_string(),
            format!("{} / {}", info.scaling.slope, info.scaling.inter),
        ),
    ];
    if let Some(desc) = &info.series_description {
        d.push(("series description".into(), desc.clone()));
    }
    if let Some(ps) = info.planes[0].pixel_spacing {
        d.push(("pixel spacing (row, col)".into(), format!("{ps:?}")));
    }
    if let Some(t) = info.slice_thickness {
        d.push(("slice thickness".into(), t.to_string()));
    }
    d
}
