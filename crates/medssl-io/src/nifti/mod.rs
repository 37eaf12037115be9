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

/// The largest expansion deflate can achieve; bounds what a header may make us allocate.
const MAX_GZIP_RATIO: u64 = 1032;

/// A NIfTI file opened for reading, decompressed on the fly when it starts with the
/// gzip magic bytes (whatever its name).
struct Stream {
    path: PathBuf,
    reader: Box<dyn Read>,
    gz: bool,
    /// The most bytes the file can yield: its size, times the deflate limit when gzip.
    max_len: u64,
}

impl Stream {
    fn open(path: &Path) -> Result<Stream> {
        let file = File::open(path).map_err(|e| IoError::os(path, e))?;
        let size = file.metadata().map_err(|e| IoError::os(path, e))?.len();
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let gz = reader
            .fill_buf()
            .map_err(|e| IoError::os(path, e))?
            .starts_with(&[0x1f, 0x8b]);
        let (reader, max_len): (Box<dyn Read>, u64) = if gz {
            (
                Box::new(MultiGzDecoder::new(reader)),
                size.saturating_mul(MAX_GZIP_RATIO),
            )
        } else {
            (Box::new(reader), size)
        };
        Ok(Stream {
            path: path.to_path_buf(),
            reader,
            gz,
            max_len,
        })
    }

    /// Appends up to `n` more bytes to `buf`; fewer only at the end of the file.
    /// Memory is reserved for at most what the file can really hold, so a header that
    /// claims a huge volume cannot make us allocate it.
    fn read_into(&mut self, buf: &mut Vec<u8>, n: usize) -> Result<()> {
        let room = self.max_len.saturating_sub(buf.len() as u64);
        buf.reserve_exact((n as u64).min(room) as usize);
        let result = (&mut self.reader).take(n as u64).read_to_end(buf);
        result.map(|_| ()).map_err(|e| {
            if self.gz {
                IoError::invalid(&self.path, format!("corrupt gzip stream: {}", chain(&e)))
            } else {
                IoError::os(&self.path, e)
            }
        })
    }
}

/// Reads only the header of a NIfTI file (gzip or not).
pub fn read_header(path: &Path) -> Result<NiftiHeader> {
    let mut head = Vec::new();
    Stream::open(path)?.read_into(&mut head, header::NIFTI2_SIZE)?;
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
    let mut stream = Stream::open(path)?;
    let mut bytes = Vec::new();
    stream.read_into(&mut bytes, header::NIFTI2_SIZE)?;
    let header = NiftiHeader::parse(&bytes).map_err(|p| IoError::invalid(path, p))?;
    let ty = header
        .sample_type()
        .map_err(|what| IoError::unsupported(path, what))?;
    let shape = header.shape();
    let nbytes = shape
        .iter()
        .try_fold(ty.size(), |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| IoError::invalid(path, format!("dimensions {shape:?} overflow")))?;

    // Single files carry the data after the header and extensions; a pair keeps it in
    // the .img file. nifti_clib treats a single-file offset inside the header as 352/544.
    let (offset, data_path, pair_data) = if header.single_file {
        let offset = (header.vox_offset as usize).max(header.size() + 4);
        let wanted = offset.saturating_add(nbytes).saturating_sub(bytes.len());
        stream.read_into(&mut bytes, wanted)?;
        (offset, path.to_path_buf(), None)
    } else {
        let img = image_file_of_pair(path).ok_or_else(|| {
            IoError::invalid(
                path,
                "header of a .hdr/.img pair, but the .img file beside it is missing",
            )
        })?;
        stream.read_into(&mut bytes, usize::MAX)?;
        let offset = header.vox_offset as usize;
        let mut data = Vec::new();
        Stream::open(&img)?.read_into(&mut data, offset.saturating_add(nbytes))?;
        (offset, img, Some(data))
    };
    let data = pair_data.as_deref().unwrap_or(&bytes);
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

    let (affine, source) = header
        .best_affine()
        .map_err(|p| IoError::invalid(path, p))?;
    let extensions_end = if pair_data.is_some() {
        bytes.len()
    } else {
        offset.min(bytes.len())
    };
    let exts = extensions(&bytes, &header, extensions_end);
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
        assumed_geometry: None,
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
