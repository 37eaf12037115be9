//! NIfTI-1 and NIfTI-2 reading (`.nii`, `.nii.gz`, `.hdr`/`.img` pairs) and writing.

mod header;
mod write;

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::bufread::MultiGzDecoder;

pub use header::{Extension, NiftiHeader, extensions, header_size};
pub use write::{OutputType, write_volume};

use crate::error::{IoError, Result, chain};
use crate::image::{Format, Image};
use crate::samples::{ByteOrder, Samples, Scaling};

/// Reads a whole file, decompressing it when it starts with the gzip magic bytes.
fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let file = File::open(path).map_err(|e| IoError::os(path, e))?;
    let size_hint = file.metadata().map(|m| m.len() as usize).unwrap_or(0);
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let gz = reader
        .fill_buf()
        .map_err(|e| IoError::os(path, e))?
        .starts_with(&[0x1f, 0x8b]);
    let mut bytes = Vec::new();
    if gz {
        bytes.reserve(size_hint.saturating_mul(3));
        MultiGzDecoder::new(reader)
            .read_to_end(&mut bytes)
            .map_err(|e| IoError::invalid(path, format!("corrupt gzip stream: {}", chain(&e))))?;
    } else {
        bytes.reserve(size_hint);
        reader
            .read_to_end(&mut bytes)
            .map_err(|e| IoError::os(path, e))?;
    }
    Ok(bytes)
}

/// Reads only the header of a NIfTI file (gzip or not).
pub fn read_header(path: &Path) -> Result<NiftiHeader> {
    let file = File::open(path).map_err(|e| IoError::os(path, e))?;
    let mut reader = BufReader::new(file);
    let gz = reader
        .fill_buf()
        .map_err(|e| IoError::os(path, e))?
        .starts_with(&[0x1f, 0x8b]);
    let mut head = Vec::with_capacity(header::NIFTI2_SIZE);
    let limit = header::NIFTI2_SIZE as u64;
    let read = if gz {
        MultiGzDecoder::new(reader)
            .take(limit)
            .read_to_end(&mut head)
    } else {
        reader.take(limit).read_to_end(&mut head)
    };
    read.map_err(|e| IoError::invalid(path, format!("cannot read header: {}", chain(&e))))?;
    NiftiHeader::parse(&head).map_err(|p| IoError::invalid(path, p))
}

/// The `.img` (or `.img.gz`) beside a `.hdr` file.
fn image_file_of_pair(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    let stem = name
        .strip_suffix(".hdr.gz")
        .or_else(|| name.strip_suffix(".hdr"))?;
    [".img", ".img.gz"]
        .iter()
        .map(|ext| path.with_file_name(format!("{stem}{ext}")))
        .find(|p| p.exists())
}

/// Reads a NIfTI-1 or NIfTI-2 file into an [`Image`]; 4-D and higher files keep their
/// shape (they become channels in [`Image::to_volume`]).
pub fn read(path: &Path) -> Result<Image> {
    let bytes = read_maybe_gz(path)?;
    let header = NiftiHeader::parse(&bytes).map_err(|p| IoError::invalid(path, p))?;
    let ty = header
        .sample_type()
        .map_err(|what| IoError::unsupported(path, what))?;
    let shape = header.shape();
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .and_then(|n| n.checked_mul(ty.size()).map(|b| (n, b)));
    let Some((count, nbytes)) = count else {
        return Err(IoError::invalid(
            path,
            format!("dimensions {shape:?} overflow"),
        ));
    };

    // Single files carry the data after the header and extensions; a pair keeps it in
    // the .img file. nifti_clib treats a single-file offset inside the header as 352/544.
    let (data_bytes, data_path, offset) = if header.single_file {
        let min = header.size() + 4;
        (
            None,
            path.to_path_buf(),
            (header.vox_offset as usize).max(min),
        )
    } else {
        let img = image_file_of_pair(path).ok_or_else(|| {
            IoError::invalid(
                path,
                "header of a .hdr/.img pair, but the .img file beside it is missing",
            )
        })?;
        let data = read_maybe_gz(&img)?;
        (Some(data), img, header.vox_offset as usize)
    };
    let data = data_bytes.as_deref().unwrap_or(&bytes);
    let available = data.len().saturating_sub(offset);
    if available < nbytes {
        return Err(IoError::invalid(
            &data_path,
            format!(
                "data shorter than the header says: {shape:?} {} voxels need {nbytes} bytes \
                 from offset {offset}, the file has {available}",
                ty.name()
            ),
        ));
    }
    let samples = Samples::from_bytes(ty, &data[offset..offset + nbytes], header.byte_order);
    debug_assert_eq!(samples.len(), count);

    let (affine, source) = header
        .best_affine()
        .map_err(|p| IoError::invalid(path, p))?;
    let exts = if header.single_file {
        extensions(&bytes, &header, offset)
    } else {
        extensions(&bytes, &header, bytes.len())
    };
    let details = describe(&header, source, offset, &exts);
    Ok(Image {
        path: path.to_path_buf(),
        format: if header.version == 1 {
            Format::Nifti1
        } else {
            Format::Nifti2
        },
        shape,
        stored_type: ty,
        samples,
        scaling: Scaling::nifti(header.scl_slope, header.scl_inter),
        affine: Some(affine),
        details,
    })
}

fn describe(
    h: &NiftiHeader,
    affine_source: &str,
    offset: usize,
    exts: &[Extension],
) -> Vec<(String, String)> {
    let order = match h.byte_order {
        ByteOrder::Little => "little-endian",
        ByteOrder::Big => "big-endian",
    };
    let ndim = h.dim[0] as usize;
    let mut d = vec![
        ("byte order".into(), order.into()),
        ("datatype code".into(), h.datatype.to_string()),
        ("pixdim".into(), format!("{:?}", &h.pixdim[1..=ndim])),
        ("affine from".into(), affine_source.into()),
        ("qform_code".into(), h.qform_code.to_string()),
        ("sform_code".into(), h.sform_code.to_string()),
        (
            "scl_slope / scl_inter".into(),
            format!("{} / {}", h.scl_slope, h.scl_inter),
        ),
        ("data offset".into(), offset.to_string()),
        ("xyzt_units".into(), h.xyzt_units.to_string()),
    ];
    if !h.descrip.is_empty() {
        d.push(("description".into(), h.descrip.clone()));
    }
    if !exts.is_empty() {
        let list: Vec<String> = exts
            .iter()
            .map(|e| format!("code {} ({} bytes)", e.code, e.size))
            .collect();
        d.push(("extensions".into(), list.join(", ")));
    }
    d
}
