//! On-disk sample values kept in their stored type, with the linear scaling a format
//! declares (NIfTI `scl_slope`/`scl_inter`, DICOM Rescale Slope/Intercept).
//!
//! Keeping the stored type lets `medssl info` report statistics of the scaled values in
//! f64 exactly as nibabel and pydicom compute them, and lets a volume be built in f32
//! only when a model needs it.

use crate::layout;

/// The stored sample type of an image file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
}

impl SampleType {
    /// numpy's name for the type (`int16`, `float32`, ...), as `medssl info` prints it.
    pub fn name(self) -> &'static str {
        match self {
            SampleType::U8 => "uint8",
            SampleType::I8 => "int8",
            SampleType::U16 => "uint16",
            SampleType::I16 => "int16",
            SampleType::U32 => "uint32",
            SampleType::I32 => "int32",
            SampleType::U64 => "uint64",
            SampleType::I64 => "int64",
            SampleType::F32 => "float32",
            SampleType::F64 => "float64",
        }
    }

    /// Bytes per sample.
    pub fn size(self) -> usize {
        match self {
            SampleType::U8 | SampleType::I8 => 1,
            SampleType::U16 | SampleType::I16 => 2,
            SampleType::U32 | SampleType::I32 | SampleType::F32 => 4,
            SampleType::U64 | SampleType::I64 | SampleType::F64 => 8,
        }
    }
}

/// Byte order of stored samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteOrder {
    Little,
    Big,
}

/// Sample values in their stored type, in file order.
#[derive(Debug, Clone, PartialEq)]
pub enum Samples {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
}

/// Runs `$body` with `$v` bound to the typed vector inside a [`Samples`].
macro_rules! each_samples {
    ($samples:expr, $v:ident => $body:expr) => {
        match $samples {
            Samples::U8($v) => $body,
            Samples::I8($v) => $body,
            Samples::U16($v) => $body,
            Samples::I16($v) => $body,
            Samples::U32($v) => $body,
            Samples::I32($v) => $body,
            Samples::U64($v) => $body,
            Samples::I64($v) => $body,
            Samples::F32($v) => $body,
            Samples::F64($v) => $body,
        }
    };
}

/// Decodes fixed-size numbers from bytes of either byte order.
trait FromBytes: Sized {
    const SIZE: usize;
    fn from_bytes(bytes: &[u8], order: ByteOrder) -> Self;
}

macro_rules! from_bytes_impl {
    ($($t:ty),*) => {$(
        impl FromBytes for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            #[inline]
            fn from_bytes(bytes: &[u8], order: ByteOrder) -> Self {
                let arr = bytes.try_into().expect("chunk of exactly SIZE bytes");
                match order {
                    ByteOrder::Little => <$t>::from_le_bytes(arr),
                    ByteOrder::Big => <$t>::from_be_bytes(arr),
                }
            }
        }
    )*};
}
from_bytes_impl!(u8, i8, u16, i16, u32, i32, u64, i64, f32, f64);

fn decode<T: FromBytes>(bytes: &[u8], order: ByteOrder) -> Vec<T> {
    bytes
        .chunks_exact(T::SIZE)
        .map(|c| T::from_bytes(c, order))
        .collect()
}

impl Samples {
    /// Decodes `bytes` (whose length must be a multiple of the sample size) as `ty`.
    pub fn from_bytes(ty: SampleType, bytes: &[u8], order: ByteOrder) -> Samples {
        match ty {
            SampleType::U8 => Samples::U8(bytes.to_vec()),
            SampleType::I8 => Samples::I8(decode(bytes, order)),
            SampleType::U16 => Samples::U16(decode(bytes, order)),
            SampleType::I16 => Samples::I16(decode(bytes, order)),
            SampleType::U32 => Samples::U32(decode(bytes, order)),
            SampleType::I32 => Samples::I32(decode(bytes, order)),
            SampleType::U64 => Samples::U64(decode(bytes, order)),
            SampleType::I64 => Samples::I64(decode(bytes, order)),
            SampleType::F32 => Samples::F32(decode(bytes, order)),
            SampleType::F64 => Samples::F64(decode(bytes, order)),
        }
    }

    /// The stored type.
    pub fn sample_type(&self) -> SampleType {
        match self {
            Samples::U8(_) => SampleType::U8,
            Samples::I8(_) => SampleType::I8,
            Samples::U16(_) => SampleType::U16,
            Samples::I16(_) => SampleType::I16,
            Samples::U32(_) => SampleType::U32,
            Samples::I32(_) => SampleType::I32,
            Samples::U64(_) => SampleType::U64,
            Samples::I64(_) => SampleType::I64,
            Samples::F32(_) => SampleType::F32,
            Samples::F64(_) => SampleType::F64,
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        each_samples!(self, v => v.len())
    }

    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f` with every scaled value, in file order, computed in f64.
    // The macro expands the cast for every stored type, f64 included.
    #[allow(clippy::unnecessary_cast)]
    pub fn for_each_scaled(&self, scaling: Scaling, mut f: impl FnMut(f64)) {
        each_samples!(self, v => v.iter().for_each(|&x| f(scaling.apply(x as f64))))
    }

    /// The scaled values (computed in f64, then rounded to f32) rearranged from file order
    /// `(i, j, k, c)` into the `[C, I, J, K]` standard order of a `Volume`.
    ///
    /// `dims` and `channels` must describe exactly `self.len()` samples.
    #[allow(clippy::unnecessary_cast)]
    pub fn to_f32_channel_first(
        &self,
        scaling: Scaling,
        dims: [usize; 3],
        channels: usize,
    ) -> Vec<f32> {
        each_samples!(self, v => layout::file_order_to_channel_first(v, dims, channels, |x| {
            scaling.apply(x as f64) as f32
        }))
    }

    /// Appends `other` (same stored type) to these samples; used to stack DICOM slices.
    pub(crate) fn extend(&mut self, other: Samples) -> std::result::Result<(), SampleType> {
        match (self, other) {
            (Samples::U8(a), Samples::U8(b)) => a.extend(b),
            (Samples::I8(a), Samples::I8(b)) => a.extend(b),
            (Samples::U16(a), Samples::U16(b)) => a.extend(b),
            (Samples::I16(a), Samples::I16(b)) => a.extend(b),
            (Samples::U32(a), Samples::U32(b)) => a.extend(b),
            (Samples::I32(a), Samples::I32(b)) => a.extend(b),
            (Samples::U64(a), Samples::U64(b)) => a.extend(b),
            (Samples::I64(a), Samples::I64(b)) => a.extend(b),
            (Samples::F32(a), Samples::F32(b)) => a.extend(b),
            (Samples::F64(a), Samples::F64(b)) => a.extend(b),
            (_, other) => return Err(other.sample_type()),
        }
        Ok(())
    }
}

/// A linear map from stored to physical values: `value = stored * slope + inter`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scaling {
    pub slope: f64,
    pub inter: f64,
}

impl Scaling {
    /// No scaling.
    pub const IDENTITY: Scaling = Scaling {
        slope: 1.0,
        inter: 0.0,
    };

    /// nibabel's rule for NIfTI: a slope of 0 or a non-finite slope means "no scaling"
    /// (and the intercept is then ignored too); a non-finite intercept counts as 0.
    pub fn nifti(scl_slope: f64, scl_inter: f64) -> Scaling {
        if scl_slope == 0.0 || !scl_slope.is_finite() {
            return Scaling::IDENTITY;
        }
        Scaling {
            slope: scl_slope,
            inter: if scl_inter.is_finite() {
                scl_inter
            } else {
                0.0
            },
        }
    }

    /// True when this is the identity map.
    pub fn is_identity(self) -> bool {
        self == Scaling::IDENTITY
    }

    /// Applies the map; the identity is applied as no operation, so stored values come
    /// back bit-exact.
    #[inline]
    pub fn apply(self, x: f64) -> f64 {
        if self.is_identity() {
            x
        } else {
            x * self.slope + self.inter
        }
    }
}

/// Summary statistics of scaled values, accumulated in f64 in file order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// Number of values.
    pub count: usize,
    /// Number of NaN or infinite values; they are left out of min, max, sum and mean.
    pub non_finite: usize,
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    /// `sum / (count - non_finite)`.
    pub mean: f64,
}

impl Stats {
    /// Statistics of `samples` after `scaling`.
    pub fn of(samples: &Samples, scaling: Scaling) -> Stats {
        let (mut min, mut max, mut sum) = (f64::INFINITY, f64::NEG_INFINITY, 0.0);
        let (mut count, mut non_finite) = (0usize, 0usize);
        samples.for_each_scaled(scaling, |v| {
            count += 1;
            if v.is_finite() {
                min = min.min(v);
                max = max.max(v);
                sum += v;
            } else {
                non_finite += 1;
            }
        });
        let finite = count - non_finite;
        if finite == 0 {
            (min, max) = (f64::NAN, f64::NAN);
        }
        Stats {
            count,
            non_finite,
            min,
            max,
            sum,
            mean: if finite == 0 {
                f64::NAN
            } else {
                sum / finite as f64
            },
        }
    }
}
