//! Ground truth stored as one greyscale PNG per DICOM slice, read onto the grid of its
//! series.
//!
//! Some challenges (CHAOS among them) ship their labels not as a volume but as one PNG
//! per DICOM file. A PNG carries no geometry: it belongs to its slice only through the
//! dataset's file naming. [`label_stack`] therefore takes the PNGs already in the slice
//! order of the reference series (which [`crate::dicom::series_files`] gives) and lays
//! them on that series' voxel grid and affine, pixel for pixel.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use png::{ColorType, Decoder, Transformations};
use rayon::prelude::*;

use crate::error::{IoError, Result, chain};
use crate::image::{Format, Image};
use crate::samples::{SampleType, Samples, Scaling};

/// One greyscale PNG image, values widened to u16 whatever the stored bit depth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraySlice {
    pub width: usize,
    pub height: usize,
    /// Row-major as stored, row 0 (the top row) first: pixel (row r, column c) is
    /// `values[c + width * r]`.
    pub values: Vec<u16>,
}

/// A deflate stream decodes to at most 1032 bytes per compressed byte, so a PNG whose
/// header declares more pixel bytes than that is damaged.
const MAX_DEFLATE_EXPANSION: usize = 1032;

/// Reads a PNG holding label values: greyscale of any bit depth (values below 8 bits are
/// kept as the integers they are, not scaled to 0-255), greyscale with alpha (the alpha
/// is ignored), or indexed and RGB(A) images whose colours are all grey (r = g = b, the
/// value taken from r), as image editors often save label maps. A colour pixel is an
/// error rather than a guess at which label it means.
pub fn read_png_gray(path: &Path) -> Result<GraySlice> {
    let bytes = std::fs::read(path).map_err(|e| IoError::os(path, e))?;
    let file_len = bytes.len();
    let unreadable =
        |e: png::DecodingError| IoError::invalid(path, format!("unreadable PNG: {}", chain(&e)));
    let mut decoder = Decoder::new(Cursor::new(bytes));
    decoder.set_transformations(Transformations::IDENTITY);
    let mut reader = decoder.read_info().map_err(unreadable)?;
    let size = reader
        .output_buffer_size()
        .filter(|&size| size / MAX_DEFLATE_EXPANSION <= file_len)
        .ok_or_else(|| {
            let (width, height) = reader.info().size();
            IoError::invalid(
                path,
                format!(
                    "the header declares {width}x{height} pixels, more than a \
                     {file_len}-byte PNG can hold"
                ),
            )
        })?;
    let mut buf = vec![0; size];
    let frame = reader.next_frame(&mut buf).map_err(unreadable)?;
    let (width, height) = (frame.width as usize, frame.height as usize);
    let bits = frame.bit_depth as usize;
    let channels = frame.color_type.samples();
    let palette = reader.info().palette.as_deref().unwrap_or(&[]);
    // Sample `i` of a row: big-endian at 16 bits, packed from the high bit below 8.
    let sample = |row: &[u8], i: usize| -> u16 {
        match bits {
            16 => u16::from_be_bytes([row[2 * i], row[2 * i + 1]]),
            8 => u16::from(row[i]),
            _ => {
                let bit = i * bits;
                let shift = 8 - bits - bit % 8;
                u16::from((row[bit / 8] >> shift) & ((1 << bits) - 1))
            }
        }
    };
    let grey = |r: usize, c: usize, [red, green, blue]: [u16; 3]| {
        if red == green && green == blue {
            Ok(red)
        } else {
            Err(IoError::invalid(
                path,
                format!(
                    "colour PNG, expected greyscale ground truth: pixel (row {r}, column {c}) \
                     is RGB ({red}, {green}, {blue})"
                ),
            ))
        }
    };
    let mut values = Vec::with_capacity(width * height);
    for (r, row) in buf.chunks_exact(frame.line_size).take(height).enumerate() {
        for c in 0..width {
            let channel = |ch: usize| sample(row, c * channels + ch);
            let value = match frame.color_type {
                ColorType::Grayscale | ColorType::GrayscaleAlpha => channel(0),
                ColorType::Rgb | ColorType::Rgba => {
                    grey(r, c, [channel(0), channel(1), channel(2)])?
                }
                ColorType::Indexed => {
                    let index = usize::from(channel(0));
                    let entry = palette.get(3 * index..3 * index + 3).ok_or_else(|| {
                        IoError::invalid(
                            path,
                            format!(
                                "pixel (row {r}, column {c}) has palette index {index}, beyond \
                                 the {}-entry palette",
                                palette.len() / 3
                            ),
                        )
                    })?;
                    grey(r, c, [entry[0], entry[1], entry[2]].map(u16::from))?
                }
            };
            values.push(value);
        }
    }
    Ok(GraySlice {
        width,
        height,
        values,
    })
}

/// Stacks per-slice label PNGs on the grid of `reference`, a DICOM image of shape
/// `[columns, rows, slices]` (as [`crate::dicom::read_series`] or
/// [`crate::dicom::read_file`] give it): `pngs_in_slice_order[k]` must be the PNG of
/// slice `k`, e.g. the PNG named after file `k` of [`crate::dicom::series_files`]. PNG
/// pixel (row r, column c) of slice k becomes voxel (c, r, k), exactly where the
/// reference holds its DICOM pixel (row r, column c) of slice k, so the labels share the
/// reference's affine (and assumed geometry) and nothing is resampled.
///
/// The image holds the values as u16 with identity scaling and format
/// [`Format::PngStack`]; its path is the folder of the first PNG (the reference's path
/// when there are no slices). Every PNG must have the reference's columns as width and
/// rows as height, and there must be one per slice; errors name the PNG at fault.
pub fn label_stack(pngs_in_slice_order: &[PathBuf], reference: &Image) -> Result<Image> {
    let &[columns, rows, slices] = reference.shape.as_slice() else {
        return Err(IoError::invalid(
            &reference.path,
            format!(
                "a reference of shape {:?}: per-slice labels need [columns, rows, slices]",
                reference.shape
            ),
        ));
    };
    let pngs = pngs_in_slice_order;
    if pngs.len() != slices {
        let counts = format!(
            "{} PNG slices for the {slices} slices of {}",
            pngs.len(),
            reference.path.display()
        );
        return Err(match (pngs.get(slices), pngs.last()) {
            (Some(extra), _) => IoError::invalid(
                extra,
                format!("{counts}: this is the first PNG without a slice"),
            ),
            (None, Some(last)) => IoError::invalid(last, format!("{counts}: this is the last PNG")),
            (None, None) => IoError::invalid(&reference.path, counts),
        });
    }
    let read: Vec<GraySlice> = pngs
        .par_iter()
        .map(|path| {
            let slice = read_png_gray(path)?;
            if (slice.width, slice.height) != (columns, rows) {
                return Err(IoError::invalid(
                    path,
                    format!(
                        "{}x{} pixels (width x height), but the slices of {} are {columns}x{rows} \
                         (columns x rows)",
                        slice.width,
                        slice.height,
                        reference.path.display()
                    ),
                ));
            }
            Ok(slice)
        })
        .collect::<Result<_>>()?;
    let values: Vec<u16> = read.into_iter().flat_map(|s| s.values).collect();
    let path = match pngs.first() {
        Some(first) => first.parent().unwrap_or(first),
        None => &reference.path,
    };
    Ok(Image {
        path: path.to_path_buf(),
        format: Format::PngStack,
        shape: vec![columns, rows, slices],
        stored_type: SampleType::U16,
        samples: Samples::U16(values),
        scaling: Scaling::IDENTITY,
        affine: reference.affine,
        assumed_geometry: reference.assumed_geometry.clone(),
        details: vec![
            ("reference".into(), reference.path.display().to_string()),
            ("files".into(), slices.to_string()),
        ],
    })
}
