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
    /// Parses a header from the start of `bytes`, with the repairs nibabel makes on
    /// loading (zero or negative pixdim[1..3], a qfac other than ±1, unknown xform
    /// codes); the error is a sentence for a person.
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
        let mut header = if version == 1 {
            parse_nifti1(&bytes[..size])?
        } else {
            match order {
                ByteOrder::Little => parse_nifti2::<LittleEndian>(&bytes[..size], order)?,
                ByteOrder::Big => parse_nifti2::<BigEndian>(&bytes[..size], order)?,
            }
        };
        header.validate()?;
        header.fix_like_nibabel();
        Ok(header)
    }

    /// The repairs nibabel makes to every header it loads (`check_fix`), so that the
    /// affine, zooms and qform are the ones nibabel reports: a zero pixdim[1..3] becomes
    /// 1 and a negative one its absolute value; a qfac (pixdim[0]) other than -1 or 1
    /// becomes 1; a qform or sform code outside 0..=5 becomes 0 (unused).
    fn fix_like_nibabel(&mut self) {
        for zoom in &mut self.pixdim[1..4] {
            if *zoom == 0.0 {
                *zoom = 1.0;
            } else if *zoom < 0.0 {
                *zoom = zoom.abs();
            }
        }
        if self.pixdim[0] != -1.0 && self.pixdim[0] != 1.0 {
            self.pixdim[0] = 1.0;
        }
        for code in [&mut self.qform_code, &mut self.sform_code] {
            if !(0..=5).contains(code) {
                *code = 0;
            }
        }
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

    /// The qform (quaternion, pixdim, qfac, qoffset) as an affine, as nibabel 5's
    /// `Nifti1Header.get_qform` computes it.
    ///
    /// nibabel recovers the quaternion's real part `a` from the stored (b, c, d) in its
    /// widest float type (`fillpositive`): `a² = 1 − b² − c² − d²`, set to 0 when
    /// `|a²|` is below 3 machine epsilons of the stored type (float32 for NIfTI-1,
    /// float64 for NIfTI-2) and an error when more negative. Near a half turn `a²`
    /// cancels to a few ulps, so it is evaluated here without rounding error
    /// (double-double) before its one rounding to f64: computing it in float32, or
    /// naively in f64, moves `a` and the rotation entries `2·a·b` etc. visibly (5e-5 for
    /// `a ≈ 1e-3`). The rotation is nibabel's `quat2mat`, term for term; the columns are
    /// scaled by pixdim[1..3], the third times qfac (pixdim[0], -1 or 1 after
    /// [`NiftiHeader::parse`]).
    pub fn qform_affine(&self) -> Result<Affine, String> {
        let [b, c, d] = self.quatern;
        let w2 = one_minus_sum_of_squares([b, c, d]);
        let threshold = if self.version == 1 {
            3.0 * f64::from(f32::EPSILON)
        } else {
            3.0 * f64::EPSILON
        };
        let a = if w2.abs() < threshold {
            0.0
        } else if w2 < 0.0 {
            return Err(format!(
                "invalid qform quaternion (b, c, d) = ({b}, {c}, {d}): b^2 + c^2 + d^2 > 1"
            ));
        } else {
            w2.sqrt()
        };
        let r = quat_to_rotation(a, b, c, d);
        let qfac = if self.pixdim[0] == -1.0 { -1.0 } else { 1.0 };
        let scale = [self.pixdim[1], self.pixdim[2], self.pixdim[3] * qfac];
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

/// `1 − (x₀² + x₁² + x₂²)` with a single rounding at the end: products split exactly
/// with a fused multiply-add and the sum carried as a double-double, so the cancellation
/// near 1 loses nothing (nibabel evaluates it in extended precision).
fn one_minus_sum_of_squares(xs: [f64; 3]) -> f64 {
    let (mut hi, mut lo) = (1.0f64, 0.0f64);
    for x in xs {
        let p = x * x;
        let p_err = x.mul_add(x, -p);
        // Two-sum of hi and -p: s + e == hi - p exactly.
        let s = hi - p;
        let back = s - hi;
        let e = (hi - (s - back)) + (-p - back);
        hi = s;
        lo += e - p_err;
    }
    hi + lo
}

/// nibabel's `quaternions.quat2mat` for the quaternion (w, x, y, z), term for term:
/// the rotation of a (not necessarily unit) quaternion, identity when it is ~0.
fn quat_to_rotation(w: f64, x: f64, y: f64, z: f64) -> [[f64; 3]; 3] {
    let nq = w * w + x * x + y * y + z * z;
    if nq < f64::EPSILON {
        return [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    }
    let s = 2.0 / nq;
    let (xs, ys, zs) = (x * s, y * s, z * s);
    let (wx, wy, wz) = (w * xs, w * ys, w * zs);
    let (xx, xy, xz) = (x * xs, x * ys, x * zs);
    let (yy, yz, zz) = (y * ys, y * zs, z * zs);
    [
        [1.0 - (yy + zz), xy - wz, xz + wy],
        [xy + wz, 1.0 - (xx + zz), yz - wx],
        [xz - wy, yz + wx, 1.0 - (xx + yy)],
    ]
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

#[cfg(test)]
mod tests {
    use super::*;

    fn header(version: u8, quatern: [f64; 3], pixdim: [f64; 4], qoffset: [f64; 3]) -> NiftiHeader {
        NiftiHeader {
            version,
            byte_order: ByteOrder::Little,
            dim: [3, 4, 5, 6, 1, 1, 1, 1],
            datatype: 16,
            bitpix: 32,
            pixdim: [
                pixdim[0], pixdim[1], pixdim[2], pixdim[3], 0.0, 0.0, 0.0, 0.0,
            ],
            vox_offset: 352.0,
            scl_slope: 1.0,
            scl_inter: 0.0,
            cal_min: 0.0,
            cal_max: 0.0,
            qform_code: 1,
            sform_code: 0,
            quatern,
            qoffset,
            srow: [[0.0; 4]; 3],
            xyzt_units: 2,
            intent_code: 0,
            descrip: String::new(),
            single_file: true,
        }
    }

    /// `1 − b² − c² − d²` for float32 b, c, d, exactly: in units of 2^-100 every square
    /// of a float32 above 2^-26 is an integer, and the sum fits an i128. Rounded to f64
    /// once. Independent of the double-double evaluation under test.
    fn exact_w2_of_f32(bcd: [f32; 3]) -> f64 {
        let unit = 2f64.powi(-100);
        let mut total: i128 = 1 << 100;
        for x in bcd {
            let scaled = f64::from(x) * 2f64.powi(50); // exact: x has 24 bits, |x| >= 2^-26
            assert_eq!(scaled.fract(), 0.0);
            let m = scaled as i128;
            total -= m * m;
        }
        total as f64 * unit
    }

    /// Rotation of the quaternion (a, v), normalised first, by the vector formula
    /// R = (a² − |v|²) I + 2 v vᵀ + 2 a [v]×, a different route from `quat2mat`.
    fn rotation_by_vector_formula(a: f64, v: [f64; 3]) -> [[f64; 3]; 3] {
        let norm = (a * a + v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
        let (a, v) = (a / norm, v.map(|x| x / norm));
        let vv = v[0] * v[0] + v[1] * v[1] + v[2] * v[2];
        let cross = [[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]];
        std::array::from_fn(|i| {
            std::array::from_fn(|j| {
                let diag = if i == j { a * a - vv } else { 0.0 };
                diag + 2.0 * v[i] * v[j] + 2.0 * a * cross[i][j]
            })
        })
    }

    #[test]
    fn near_zero_real_part_matches_nibabel() {
        // b, c, d as float32 with a² = 1 − b² − c² − d² ≈ 1.53e-6, above nibabel's
        // NIfTI-1 threshold 3·eps(float32) ≈ 3.6e-7, so a ≈ 1.235e-3 is kept.
        let bcd = [0.6f32, -0.48f32, 0.639_998_8_f32];
        let quatern = bcd.map(f64::from);
        let pixdim = [-1.0, 1.5, 0.75, 2.5];
        let qoffset = [10.0, -20.5, 30.25];
        let got = header(1, quatern, pixdim, qoffset).qform_affine().unwrap();

        // nibabel 5.4.2 (numpy 2.4.6, x86-64) on this header: `h = Nifti1Header();
        // h.set_data_shape((4, 5, 6)); h['quatern_b'], h['quatern_c'], h['quatern_d'] =
        // np.float32(0.6), np.float32(-0.48), np.float32(0.6399987936019897);
        // h['pixdim'][:4] = [-1, 1.5, 0.75, 2.5]; qoffset (10, -20.5, 30.25);
        // qform_code 1; h.get_qform()`, printed with repr(float(x)).
        let nibabel = [
            [
                -0.4199953365369593,
                -0.43318585883161315,
                -1.917031823274139,
                10.0,
            ],
            [
                -0.8616283123775131,
                -0.4043977266333485,
                1.5397028628246903,
                -20.5,
            ],
            [
                1.1537766545552415,
                -0.45968738334013176,
                0.4520000915527378,
                30.25,
            ],
        ];
        // An independent f64 derivation: exact a², then the vector rotation formula.
        let w2 = exact_w2_of_f32(bcd);
        assert!((w2 - 1.525_877_450_170_298_7e-6).abs() < 1e-20, "{w2}");
        let r = rotation_by_vector_formula(w2.sqrt(), quatern);
        let scale = [1.5, 0.75, -2.5];
        for i in 0..3 {
            for j in 0..4 {
                let g = got[(i, j)];
                assert!(
                    (g - nibabel[i][j]).abs() <= 1e-12,
                    "[{i}][{j}]: {g} vs nibabel {}",
                    nibabel[i][j]
                );
                let independent = if j < 3 {
                    r[i][j] * scale[j]
                } else {
                    qoffset[i]
                };
                assert!(
                    (g - independent).abs() <= 1e-12,
                    "[{i}][{j}]: {g} vs {independent}"
                );
            }
        }
        // a² in float32 (1.5497208e-6) would have moved a by 1e-5 and element [0][2]
        // by 2e-5: far outside these tolerances.
        let [b, c, d] = bcd;
        let a_f32 = f64::from(1.0f32 - (b * b + c * c + d * d)).sqrt();
        assert!((a_f32 - w2.sqrt()).abs() > 5e-6);
    }

    #[test]
    fn real_part_below_the_stored_precision_is_zero_as_in_nibabel() {
        // nibabel 5.4.2 stores this half turn as (0.18202418, -0.5920768, 0.7850556);
        // a² = 2.587e-8 is below 3·eps(float32), so nibabel sets a = 0 for NIfTI-1. A
        // NIfTI-2 header holds float64 values, whose threshold is 3·eps(float64).
        let quatern = [0.18202418f32, -0.5920768f32, 0.7850556f32].map(f64::from);
        let pixdim = [1.0, 1.0, 1.0, 1.0];
        let one = header(1, quatern, pixdim, [0.0; 3]).qform_affine().unwrap();
        let r = rotation_by_vector_formula(0.0, quatern);
        let two = header(2, quatern, pixdim, [0.0; 3]).qform_affine().unwrap();
        let a = one_minus_sum_of_squares(quatern).sqrt();
        let r2 = rotation_by_vector_formula(a, quatern);
        for i in 0..3 {
            for j in 0..3 {
                assert!((one[(i, j)] - r[i][j]).abs() < 1e-12, "{one}");
                assert!((two[(i, j)] - r2[i][j]).abs() < 1e-12, "{two}");
            }
        }
        assert!((one - two).amax() > 1e-4);
        // More negative than the threshold is an error, as in nibabel.
        let err = header(1, [0.8, 0.6, 0.1], pixdim, [0.0; 3])
            .qform_affine()
            .unwrap_err();
        assert!(err.contains("b^2 + c^2 + d^2 > 1"), "{err}");
    }

    #[test]
    fn load_repairs_follow_nibabel() {
        let mut h = header(1, [0.0; 3], [0.5, 0.0, -2.0, 3.0], [0.0; 3]);
        h.qform_code = 7;
        h.sform_code = -1;
        h.fix_like_nibabel();
        assert_eq!(&h.pixdim[..4], &[1.0, 1.0, 2.0, 3.0]);
        assert_eq!((h.qform_code, h.sform_code), (0, 0));
        let mut h = header(1, [0.0; 3], [-1.0, 1.0, 1.0, 1.0], [0.0; 3]);
        h.sform_code = 5;
        h.fix_like_nibabel();
        assert_eq!((h.pixdim[0], h.qform_code, h.sform_code), (-1.0, 1, 5));
    }
}
