//! NIfTI-1 and NIfTI-2 headers in one type.
//!
//! NIfTI-1 headers are parsed by the `nifti` crate; it does not know NIfTI-2, whose
//! 540-byte layout (int64 dims, float64 pixdim/srow) is parsed here. Both become a
//! [`NiftiHeader`] with the wide field types of NIfTI-2.

use std::io::Cursor;

use byteorder::{BigEndian, ByteOrder as _, LittleEndian};

use crate::geometry::{Affine, affine_from_rows};
use crate::samples::{ByteOrder, SampleType};

/// Size in bytes of a NIfTI-1 header.
pub const NIFTI1_SIZE: usize = 348;
/// Size in bytes of a NIfTI-2 header.
pub const NIFTI2_SIZE: usize = 540;

/// A NIfTI header, either version, with fields widened to NIfTI-2's types.
#[derive(Debug, Clone, PartialEq)]
pub struct NiftiHeader {
    /// 1 or 2.
    pub version: u8,
    pub byte_order: ByteOrder,
    /// `dim[0]` is the number of dimensions, `dim[1..=dim[0]]` the sizes.
    pub dim: [i64; 8],
    pub datatype: i16,
    pub bitpix: i16,
    pub pixdim: [f64; 8],
    pub vox_offset: f64,
    pub scl_slope: f64,
    pub scl_inter: f64,
    pub cal_min: f64,
    pub cal_max: f64,
    pub qform_code: i32,
    pub sform_code: i32,
    /// Quaternion b, c, d.
    pub quatern: [f64; 3],
    /// qoffset x, y, z.
    pub qoffset: [f64; 3],
    /// srow_x, srow_y, srow_z.
    pub srow: [[f64; 4]; 3],
    pub xyzt_units: i32,
    pub intent_code: i32,
    pub descrip: String,
    /// True for a single `.nii` file (`n+1`/`n+2`), false for a `.hdr`/`.img` pair.
    pub single_file: bool,
}

/// Recognises a NIfTI header from its first four bytes (`sizeof_hdr`): the version and
/// byte order, or `None` when they are not 348 or 540 in either byte order.
pub fn header_size(first4: [u8; 4]) -> Option<(u8, ByteOrder)> {
    match (
        LittleEndian::read_i32(&first4) as usize,
        BigEndian::read_i32(&first4) as usize,
    ) {
        (NIFTI1_SIZE, _) => Some((1, ByteOrder::Little)),
        (_, NIFTI1_SIZE) => Some((1, ByteOrder::Big)),
        (NIFTI2_SIZE, _) => Some((2, ByteOrder::Little)),
        (_, NIFTI2_SIZE) => Some((2, ByteOrder::Big)),
        _ => None,
    }
}

impl NiftiHeader {
    /// Parses a header from the start of `bytes`; the error is a sentence for a person.
    pub fn parse(bytes: &[u8]) -> Result<NiftiHeader, String> {
        let first4: [u8; 4] = bytes
            .get(..4)
            .ok_or_else(|| {
                format!(
                    "file is {} bytes, too short for a NIfTI header",
                    bytes.len()
                )
            })?
            .try_into()
            .expect("4 bytes");
        let (version, order) = header_size(first4).ok_or_else(|| {
            format!(
                "not a NIfTI header: sizeof_hdr is {} (expected 348 for NIfTI-1 or 540 for NIfTI-2)",
                LittleEndian::read_i32(&first4)
            )
        })?;
        let size = if version == 1 {
            NIFTI1_SIZE
        } else {
            NIFTI2_SIZE
        };
        if bytes.len() < size {
            return Err(format!(
                "truncated header: NIfTI-{version} needs {size} bytes, the file has {}",
                bytes.len()
            ));
        }
        let header = if version == 1 {
            parse_nifti1(&bytes[..size])?
        } else {
            match order {
                ByteOrder::Little => parse_nifti2::<LittleEndian>(&bytes[..size], order)?,
                ByteOrder::Big => parse_nifti2::<BigEndian>(&bytes[..size], order)?,
            }
        };
        header.validate()?;
        Ok(header)
    }

    /// Size of this header in bytes.
    pub fn size(&self) -> usize {
        if self.version == 1 {
            NIFTI1_SIZE
        } else {
            NIFTI2_SIZE
        }
    }

    /// The array shape `dim[1..=dim[0]]`.
    pub fn shape(&self) -> Vec<usize> {
        self.dim[1..=self.dim[0] as usize]
            .iter()
            .map(|&d| d as usize)
            .collect()
    }

    /// The stored sample type, or `None` with the datatype's name when medssl cannot
    /// hold it in a volume.
    pub fn sample_type(&self) -> Result<SampleType, String> {
        Ok(match self.datatype {
            2 => SampleType::U8,
            4 => SampleType::I16,
            8 => SampleType::I32,
            16 => SampleType::F32,
            64 => SampleType::F64,
            256 => SampleType::I8,
            512 => SampleType::U16,
            768 => SampleType::U32,
            1024 => SampleType::I64,
            1280 => SampleType::U64,
            other => {
                let name = match other {
                    1 => "binary (1 bit)",
                    32 => "complex64",
                    128 => "RGB24",
                    1536 => "float128",
                    1792 => "complex128",
                    2048 => "complex256",
                    2304 => "RGBA32",
                    _ => "unknown",
                };
                return Err(format!("datatype {other} ({name})"));
            }
        })
    }

    /// The voxel-to-world affine by nibabel's rule: sform when `sform_code > 0`, else
    /// qform when `qform_code > 0`, else the pixdim-only fallback. Also says which.
    pub fn best_affine(&self) -> Result<(Affine, &'static str), String> {
        if self.sform_code > 0 {
            Ok((self.sform_affine(), "sform"))
        } else if self.qform_code > 0 {
            Ok((self.qform_affine()?, "qform"))
        } else {
            Ok((self.base_affine(), "pixdim"))
        }
    }

    /// The sform rows as an affine.
    pub fn sform_affine(&self) -> Affine {
        let s = &self.srow;
        affine_from_rows([s[0], s[1], s[2], [0.0, 0.0, 0.0, 1.0]])
    }

    /// The qform (quaternion, pixdim, qfac, qoffset) as an affine, as nibabel computes it.
    pub fn qform_affine(&self) -> Result<Affine, String> {
        let [b, c, d] = self.quatern;
        // The quaternion's real part comes from 1 - |bcd|^2, which cancels badly near 0:
        // compute it in the precision the header stores (float32 for NIfTI-1), as nibabel
        // and nifti_clib do, or near-180-degree rotations come out visibly different.
        let a2 = if self.version == 1 {
            let [b, c, d] = self.quatern.map(|v| v as f32);
            f64::from(1.0f32 - (b * b + c * c + d * d))
        } else {
            1.0 - (b * b + c * c + d * d)
        };
        // nibabel tolerates a slightly negative a^2 from float rounding and sets a = 0.
        if a2 < -3.0 * f64::from(f32::EPSILON) {
            return Err(format!(
                "invalid qform quaternion (b, c, d) = ({b}, {c}, {d}): b^2 + c^2 + d^2 > 1"
            ));
        }
        let a = a2.max(0.0).sqrt();
        let zooms = [self.pixdim[1], self.pixdim[2], self.pixdim[3]];
        if zooms.iter().any(|z| *z < 0.0) {
            return Err(format!("negative pixdim[1..3] {zooms:?} in a qform"));
        }
        let qfac = if self.pixdim[0] == -1.0 { -1.0 } else { 1.0 };
        let n = a * a + b * b + c * c + d * d;
        let s = if n > 0.0 { 2.0 / n } else { 0.0 };
        let r = [
            [
                1.0 - s * (c * c + d * d),
                s * (b * c - a * d),
                s * (b * d + a * c),
            ],
            [
                s * (b * c + a * d),
                1.0 - s * (b * b + d * d),
                s * (c * d - a * b),
            ],
            [
                s * (b * d - a * c),
                s * (c * d + a * b),
                1.0 - s * (b * b + c * c),
            ],
        ];
        let scale = [zooms[0], zooms[1], zooms[2] * qfac];
        let row = |i: usize| -> [f64; 4] {
            [
                r[i][0] * scale[0],
                r[i][1] * scale[1],
                r[i][2] * scale[2],
                self.qoffset[i],
            ]
        };
        Ok(affine_from_rows([
            row(0),
            row(1),
            row(2),
            [0.0, 0.0, 0.0, 1.0],
        ]))
    }

    /// nibabel's `get_base_affine`: pixdim zooms, x flipped, origin at the centre.
    pub fn base_affine(&self) -> Affine {
        let mut rows = [[0.0; 4]; 4];
        rows[3][3] = 1.0;
        for (axis, row) in rows.iter_mut().take(3).enumerate() {
            let present = axis < self.dim[0] as usize;
            let size = if present {
                self.dim[axis + 1] as f64
            } else {
                1.0
            };
            let mut zoom = if present { self.pixdim[axis + 1] } else { 1.0 };
            if axis == 0 {
                zoom = -zoom;
            }
            row[axis] = zoom;
            row[3] = -(size - 1.0) / 2.0 * zoom;
        }
        affine_from_rows(rows)
    }

    fn validate(&self) -> Result<(), String> {
        let ndim = self.dim[0];
        if !(1..=7).contains(&ndim) {
            return Err(format!(
                "dim[0] = {ndim}: the number of dimensions must be 1 to 7"
            ));
        }
        for axis in 1..=ndim as usize {
            let size = self.dim[axis];
            if size <= 0 {
                return Err(format!(
                    "dim[{axis}] = {size}: every dimension must be at least 1"
                ));
            }
        }
        if !self.vox_offset.is_finite() || self.vox_offset < 0.0 {
            return Err(format!("invalid vox_offset {}", self.vox_offset));
        }
        Ok(())
    }
}

fn text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).trim().to_string()
}

fn parse_nifti1(bytes: &[u8]) -> Result<NiftiHeader, String> {
    let h = nifti::NiftiHeader::from_reader(Cursor::new(bytes)).map_err(|e| match e {
        nifti::NiftiError::InvalidFormat => format!(
            "wrong magic {:?}: expected \"n+1\" (single file) or \"ni1\" (header/image pair)",
            String::from_utf8_lossy(&bytes[344..347])
        ),
        other => format!("unreadable NIfTI-1 header: {other}"),
    })?;
    // NIfTI-1 stores dims as int16; the crate reads them unsigned.
    let dim = h.dim.map(|d| i64::from(d as i16));
    Ok(NiftiHeader {
        version: 1,
        byte_order: match h.endianness {
            nifti::Endianness::Little => ByteOrder::Little,
            nifti::Endianness::Big => ByteOrder::Big,
        },
        dim,
        datatype: h.datatype,
        bitpix: h.bitpix,
        pixdim: h.pixdim.map(f64::from),
        vox_offset: f64::from(h.vox_offset),
        scl_slope: f64::from(h.scl_slope),
        scl_inter: f64::from(h.scl_inter),
        cal_min: f64::from(h.cal_min),
        cal_max: f64::from(h.cal_max),
        qform_code: i32::from(h.qform_code),
        sform_code: i32::from(h.sform_code),
        quatern: [h.quatern_b, h.quatern_c, h.quatern_d].map(f64::from),
        qoffset: [h.quatern_x, h.quatern_y, h.quatern_z].map(f64::from),
        srow: [h.srow_x, h.srow_y, h.srow_z].map(|r| r.map(f64::from)),
        xyzt_units: i32::from(h.xyzt_units),
        intent_code: i32::from(h.intent_code),
        descrip: text(&h.descrip),
        single_file: &h.magic == b"n+1\0",
    })
}

/// NIfTI-2 field offsets (nifti2.h).
fn parse_nifti2<E: byteorder::ByteOrder>(
    b: &[u8],
    order: ByteOrder,
) -> Result<NiftiHeader, String> {
    let magic = &b[4..12];
    let single_file = match &magic[..4] {
        b"n+2\0" => true,
        b"ni2\0" => false,
        _ => {
            return Err(format!(
                "wrong magic {:?}: expected \"n+2\" or \"ni2\"",
                String::from_utf8_lossy(&magic[..3])
            ));
        }
    };
    let f64_at = |off: usize| E::read_f64(&b[off..off + 8]);
    let f64s = |off: usize| -> [f64; 4] { std::array::from_fn(|i| f64_at(off + 8 * i)) };
    Ok(NiftiHeader {
        version: 2,
        byte_order: order,
        dim: std::array::from_fn(|i| E::read_i64(&b[16 + 8 * i..24 + 8 * i])),
        datatype: E::read_i16(&b[12..14]),
        bitpix: E::read_i16(&b[14..16]),
        pixdim: std::array::from_fn(|i| f64_at(104 + 8 * i)),
        vox_offset: E::read_i64(&b[168..176]) as f64,
        scl_slope: f64_at(176),
        scl_inter: f64_at(184),
        cal_max: f64_at(192),
        cal_min: f64_at(200),
        qform_code: E::read_i32(&b[344..348]),
        sform_code: E::read_i32(&b[348..352]),
        quatern: [f64_at(352), f64_at(360), f64_at(368)],
        qoffset: [f64_at(376), f64_at(384), f64_at(392)],
        srow: [f64s(400), f64s(432), f64s(464)],
        xyzt_units: E::read_i32(&b[500..504]),
        intent_code: E::read_i32(&b[504..508]),
        descrip: text(&b[240..320]),
        single_file,
    })
}

/// One header extension: its code and size in bytes (including its 8-byte head).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extension {
    pub code: i32,
    pub size: usize,
}

/// Lists the extensions between the header and `data_start`, stopping quietly at the
/// first malformed one (nibabel does the same: extensions never affect the voxels).
pub fn extensions(bytes: &[u8], header: &NiftiHeader, data_start: usize) -> Vec<Extension> {
    let mut out = Vec::new();
    let start = header.size();
    if bytes.get(start).copied().unwrap_or(0) == 0 {
        return out;
    }
    let end = data_start.min(bytes.len());
    let mut pos = start + 4;
    while pos + 8 <= end {
        let (size, code) = match header.byte_order {
            ByteOrder::Little => (
                LittleEndian::read_i32(&bytes[pos..]),
                LittleEndian::read_i32(&bytes[pos + 4..]),
            ),
            ByteOrder::Big => (
                BigEndian::read_i32(&bytes[pos..]),
                BigEndian::read_i32(&bytes[pos + 4..]),
            ),
        };
        if size < 16 || pos + size as usize > end {
            break;
        }
        out.push(Extension {
            code,
            size: size as usize,
        });
        pos += size as usize;
    }
    out
}
