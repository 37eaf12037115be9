//! NRRD reading (`.nrrd` with attached data, `.nhdr` with a detached data file).
//!
//! Public datasets such as HaN-Seg ship NRRD, so medssl reads it natively rather than
//! asking for a conversion to NIfTI first. The reader follows the NRRD format
//! specification (teem, `NRRD0001`-`NRRD0005`) and, where the specification leaves the
//! world geometry open, ITK's `NrrdImageIO`, so the affine agrees with SimpleITK:
//!
//! - data: attached after the blank line that ends the header, or in the file named by
//!   `data file` (relative to the header); `line skip` lines and then `byte skip` bytes
//!   are skipped (the byte skip counts decompressed bytes for gzip, and `-1` means "the
//!   data are the last bytes of the file", raw only). Encodings `raw`, `gzip`/`gz` and
//!   `ascii`/`text`/`txt`; `bzip2` and `hex` and the multi-file `LIST` / format-string
//!   forms of `data file` are refused as unsupported.
//! - samples: every `type` spelling of the specification except `block`, in the stated
//!   `endian`.
//! - geometry: `space` (RAS, LAS, LPS and their long names) with `space directions` and
//!   `space origin`, mapped to RAS+ mm (LPS negates x and y, LAS x). Spaces that do not
//!   say how they relate to the patient (`3D-right-handed`, `scanner-xyz`, ...) and
//!   time-augmented spaces are refused. Without `space directions`, the older
//!   `spacings` give an axis-aligned affine with origin 0, identity direction in ITK's
//!   LPS (`diag(-s0, -s1, s2)` in RAS), as ITK reads it; axis mins are not used. A file
//!   with neither has no affine; its assumed geometry is the same rule with 1 mm.
//! - axes: an axis whose direction is `none` (or, without directions, whose kind is not
//!   `domain`/`space`/`time`) is a non-spatial axis (a vector or list of channels). Its
//!   samples are moved so that the spatial axes come first and the non-spatial ones
//!   last, as [`Image::to_volume`] expects channels after the three spatial dimensions;
//!   NRRD vector images usually store the components first (fastest).
//!
//! Field names are matched case-insensitively; `key:=value` pairs and `#` comments are
//! skipped; fields medssl does not need are ignored.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::error::{IoError, Result, chain};
use crate::geometry::Affine;
use crate::image::{AssumedGeometry, Format, Image};
use crate::samples::{ByteOrder, SampleType, Samples, Scaling};

/// The magic every NRRD file starts with, before the version digit.
pub(crate) const MAGIC_PREFIX: &[u8] = b"NRRD000";

/// True when `head` (the first bytes of a file) starts with an NRRD magic.
pub(crate) fn has_magic(head: &[u8]) -> bool {
    head.starts_with(MAGIC_PREFIX)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Raw,
    Gzip,
    Ascii,
}

/// Where the data lies.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DataSource {
    /// After the header, in the same file.
    Attached,
    /// In this file (resolved relative to the header's folder).
    Detached(PathBuf),
}

/// The header fields medssl uses, as parsed.
#[derive(Debug, Default)]
struct Header {
    version: String,
    type_name: Option<String>,
    sample_type: Option<SampleType>,
    dimension: Option<usize>,
    sizes: Option<Vec<usize>>,
    endian: Option<ByteOrder>,
    encoding: Option<Encoding>,
    encoding_name: Option<String>,
    data_file: Option<String>,
    byte_skip: i64,
    line_skip: usize,
    space: Option<String>,
    space_dimension: Option<usize>,
    space_units: Option<Vec<String>>,
    /// One entry per axis; `None` for `none`.
    space_directions: Option<Vec<Option<Vec<f64>>>>,
    space_origin: Option<Vec<f64>>,
    kinds: Option<Vec<String>>,
    spacings: Option<Vec<f64>>,
    content: Option<String>,
}

/// Reads an NRRD file (`.nrrd`, or a `.nhdr` header with its detached data).
pub fn read(path: &Path) -> Result<Image> {
    let bytes = std::fs::read(path).map_err(|e| IoError::os(path, e))?;
    let (header, data_start) = parse_header(path, &bytes)?;
    let invalid = |p: String| IoError::invalid(path, p);

    let ty = header
        .sample_type
        .ok_or_else(|| invalid("the header has no `type` field".into()))?;
    let sizes = header
        .sizes
        .clone()
        .ok_or_else(|| invalid("the header has no `sizes` field".into()))?;
    let dimension = header
        .dimension
        .ok_or_else(|| invalid("the header has no `dimension` field".into()))?;
    if sizes.len() != dimension {
        return Err(invalid(format!(
            "`sizes` lists {} values for dimension {dimension}",
            sizes.len()
        )));
    }
    if sizes.contains(&0) {
        return Err(invalid(format!("`sizes` {sizes:?} contains 0")));
    }
    let encoding = header
        .encoding
        .ok_or_else(|| invalid("the header has no `encoding` field".into()))?;
    let count = sizes
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| invalid(format!("`sizes` {sizes:?} overflow")))?;
    let nbytes = count
        .checked_mul(ty.size())
        .ok_or_else(|| invalid(format!("`sizes` {sizes:?} overflow")))?;
    let order = match (header.endian, ty.size(), encoding) {
        (Some(order), _, _) => order,
        (None, 1, _) | (None, _, Encoding::Ascii) => ByteOrder::Little,
        (None, _, _) => {
            return Err(invalid(format!(
                "no `endian` field for the multi-byte type {}",
                ty.name()
            )));
        }
    };

    // The data bytes: the rest of this file or the detached file.
    let source = match &header.data_file {
        None => DataSource::Attached,
        Some(name) => DataSource::Detached(detached_path(path, name)?),
    };
    let detached_bytes;
    let data: &[u8] = match &source {
        DataSource::Attached => {
            let start = data_start.ok_or_else(|| {
                invalid(
                    "the header is not ended by a blank line and names no `data file`, so \
                     there are no data"
                        .into(),
                )
            })?;
            &bytes[start..]
        }
        DataSource::Detached(data_path) => {
            detached_bytes = std::fs::read(data_path).map_err(|e| {
                invalid(format!(
                    "cannot read the detached data file {} (`data file: {}`): {e}",
                    data_path.display(),
                    header.data_file.as_deref().unwrap_or_default()
                ))
            })?;
            &detached_bytes
        }
    };
    let data_name = match &source {
        DataSource::Attached => "the attached data".to_string(),
        DataSource::Detached(p) => format!("the data file {}", p.display()),
    };
    let data = skip_lines(data, header.line_skip).ok_or_else(|| {
        invalid(format!(
            "`line skip: {}` passes the end of {data_name}",
            header.line_skip
        ))
    })?;

    let samples = match encoding {
        Encoding::Raw => {
            let skip = if header.byte_skip == -1 {
                data.len().checked_sub(nbytes).ok_or_else(|| {
                    invalid(format!(
                        "data shorter than the header says: {sizes:?} {} samples need \
                         {nbytes} bytes, {data_name} has {}",
                        ty.name(),
                        data.len()
                    ))
                })?
            } else {
                header.byte_skip as usize
            };
            let available = data.len().saturating_sub(skip);
            if available < nbytes {
                return Err(truncated(
                    path, &sizes, ty, nbytes, skip, &data_name, available,
                ));
            }
            Samples::from_bytes(ty, &data[skip..skip + nbytes], order)
        }
        Encoding::Gzip => {
            if header.byte_skip < 0 {
                return Err(invalid(
                    "`byte skip: -1` is only allowed with raw encoding, this data is gzip".into(),
                ));
            }
            let skip = header.byte_skip as usize;
            let wanted = skip.saturating_add(nbytes);
            let mut out = Vec::new();
            MultiGzDecoder::new(data)
                .take(wanted as u64)
                .read_to_end(&mut out)
                .map_err(|e| invalid(format!("corrupt gzip data in {data_name}: {}", chain(&e))))?;
            let available = out.len().saturating_sub(skip);
            if available < nbytes {
                return Err(truncated(
                    path,
                    &sizes,
                    ty,
                    nbytes,
                    skip,
                    &format!("{data_name} (decompressed)"),
                    available,
                ));
            }
            Samples::from_bytes(ty, &out[skip..skip + nbytes], order)
        }
        Encoding::Ascii => {
            if header.byte_skip < 0 {
                return Err(invalid(
                    "`byte skip: -1` is only allowed with raw encoding, this data is ascii".into(),
                ));
            }
            let skip = (header.byte_skip as usize).min(data.len());
            parse_ascii(path, &data[skip..], ty, count, &data_name)?
        }
    };

    let axes = classify_axes(path, &header, dimension)?;
    let (shape, samples) = reorder(&sizes, &axes, samples);
    let (affine, assumed, geometry_from) = geometry(path, &header, &axes)?;
    let details = describe(&header, &sizes, &axes, &source, geometry_from);
    Ok(Image {
        path: path.to_path_buf(),
        format: Format::Nrrd,
        shape,
        stored_type: ty,
        samples,
        scaling: Scaling::IDENTITY,
        affine,
        assumed_geometry: assumed,
        details,
    })
}

fn truncated(
    path: &Path,
    sizes: &[usize],
    ty: SampleType,
    nbytes: usize,
    skip: usize,
    data_name: &str,
    available: usize,
) -> IoError {
    IoError::invalid(
        path,
        format!(
            "data shorter than the header says: {sizes:?} {} samples need {nbytes} bytes \
             after a byte skip of {skip}, {data_name} has {available}",
            ty.name()
        ),
    )
}

/// The detached data file named by `data file`, relative to the header's folder.
fn detached_path(path: &Path, name: &str) -> Result<PathBuf> {
    let name = name.trim();
    if name.starts_with("LIST") {
        return Err(IoError::unsupported(
            path,
            "`data file: LIST` (data split over a list of files); join them into one file",
        ));
    }
    if name.contains('%') {
        return Err(IoError::unsupported(
            path,
            format!(
                "`data file: {name}` (data split over files named by a format string); join \
                 them into one file"
            ),
        ));
    }
    let given = Path::new(name);
    Ok(if given.is_absolute() {
        given.to_path_buf()
    } else {
        path.parent().unwrap_or(Path::new(".")).join(given)
    })
}

/// `data` after its first `n` lines, or `None` when it has fewer.
fn skip_lines(mut data: &[u8], n: usize) -> Option<&[u8]> {
    for _ in 0..n {
        let end = data.iter().position(|&b| b == b'\n')?;
        data = &data[end + 1..];
    }
    Some(data)
}

/// Parses the header; returns it and where attached data start (after the blank line
/// that ends the header; `None` when the file ends without one).
fn parse_header(path: &Path, bytes: &[u8]) -> Result<(Header, Option<usize>)> {
    let invalid = |p: String| IoError::invalid(path, p);
    if !has_magic(bytes) {
        return Err(invalid(
            "not an NRRD file (it does not start with the magic `NRRD000N`)".into(),
        ));
    }
    let mut pos = 0;
    let mut header = Header::default();
    let mut first = true;
    let mut data_start = None;
    while pos < bytes.len() {
        let end = bytes[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|e| pos + e);
        let line_end = end.unwrap_or(bytes.len());
        let raw = &bytes[pos..line_end];
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        pos = end.map_or(bytes.len(), |e| e + 1);
        if raw.is_empty() {
            data_start = end.map(|e| e + 1);
            break;
        }
        let line = std::str::from_utf8(raw).map_err(|_| {
            invalid(
                "a header line is not text (is the blank line that ends the header missing?)"
                    .into(),
            )
        })?;
        if first {
            first = false;
            let version = line.trim();
            match version.strip_prefix("NRRD000") {
                Some("1" | "2" | "3" | "4" | "5") => {}
                _ => {
                    return Err(IoError::unsupported(
                        path,
                        format!("NRRD magic `{version}` (medssl reads NRRD0001 to NRRD0005)"),
                    ));
                }
            }
            header.version = version.to_string();
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let field_at = line.find(": ");
        let kv_at = line.find(":=");
        match (field_at, kv_at) {
            (_, Some(k)) if field_at.is_none_or(|f| k < f) => continue,
            (Some(f), _) => {
                let name = line[..f].trim().to_ascii_lowercase();
                let value = line[f + 2..].trim();
                parse_field(path, &mut header, &name, value)?;
                if header
                    .data_file
                    .as_deref()
                    .is_some_and(|f| f.starts_with("LIST"))
                {
                    // The rest of the header lists the data files; refused in `read`.
                    break;
                }
            }
            _ => {
                return Err(invalid(format!(
                    "header line `{line}` is neither `field: value` nor `key:=value`"
                )));
            }
        }
    }
    Ok((header, data_start))
}

fn parse_field(path: &Path, h: &mut Header, name: &str, value: &str) -> Result<()> {
    let invalid = |p: String| IoError::invalid(path, p);
    let words = || value.split_whitespace();
    let numbers = |what: &str| -> Result<Vec<f64>> {
        words()
            .map(|w| {
                parse_f64(w).ok_or_else(|| invalid(format!("`{what}`: `{w}` is not a number")))
            })
            .collect()
    };
    match name {
        "type" => {
            h.sample_type = Some(sample_type(path, value)?);
            h.type_name = Some(value.to_string());
        }
        "dimension" => {
            let d: usize = value
                .parse()
                .map_err(|_| invalid(format!("`dimension: {value}` is not a count")))?;
            if d == 0 {
                return Err(invalid("`dimension: 0`".into()));
            }
            h.dimension = Some(d);
        }
        "sizes" => {
            h.sizes = Some(
                words()
                    .map(|w| {
                        w.parse::<usize>()
                            .map_err(|_| invalid(format!("`sizes`: `{w}` is not a size")))
                    })
                    .collect::<Result<_>>()?,
            );
        }
        "endian" => {
            h.endian = Some(match value.to_ascii_lowercase().as_str() {
                "little" => ByteOrder::Little,
                "big" => ByteOrder::Big,
                _ => return Err(invalid(format!("unknown `endian: {value}`"))),
            });
        }
        "encoding" => {
            let lower = value.to_ascii_lowercase();
            h.encoding = Some(match lower.as_str() {
                "raw" => Encoding::Raw,
                "gzip" | "gz" => Encoding::Gzip,
                "ascii" | "text" | "txt" => Encoding::Ascii,
                "bzip2" | "bz2" | "hex" => {
                    return Err(IoError::unsupported(
                        path,
                        format!(
                            "NRRD encoding `{value}` (medssl reads raw, gzip and ascii; \
                             recompress the file, e.g. with SimpleITK or unu)"
                        ),
                    ));
                }
                _ => return Err(invalid(format!("unknown NRRD `encoding: {value}`"))),
            });
            h.encoding_name = Some(value.to_string());
        }
        "data file" | "datafile" => h.data_file = Some(value.to_string()),
        "byte skip" | "byteskip" => {
            let skip: i64 = value
                .parse()
                .map_err(|_| invalid(format!("`byte skip: {value}` is not a number")))?;
            if skip < -1 {
                return Err(invalid(format!(
                    "`byte skip: {value}` (only -1 may be negative)"
                )));
            }
            h.byte_skip = skip;
        }
        "line skip" | "lineskip" => {
            h.line_skip = value
                .parse()
                .map_err(|_| invalid(format!("`line skip: {value}` is not a count")))?;
        }
        "space" => h.space = Some(value.to_string()),
        "space dimension" => {
            h.space_dimension = Some(
                value
                    .parse()
                    .map_err(|_| invalid(format!("`space dimension: {value}` is not a count")))?,
            );
        }
        "space units" => {
            h.space_units = Some(
                value
                    .split('"')
                    .skip(1)
                    .step_by(2)
                    .map(str::to_string)
                    .collect(),
            );
        }
        "space directions" => {
            h.space_directions = Some(
                words()
                    .map(|w| {
                        if w.eq_ignore_ascii_case("none") {
                            Ok(None)
                        } else {
                            parse_vector(w).map(Some).ok_or_else(|| {
                                invalid(format!("`space directions`: `{w}` is not a vector"))
                            })
                        }
                    })
                    .collect::<Result<_>>()?,
            );
        }
        "space origin" => {
            h.space_origin = Some(
                parse_vector(value)
                    .ok_or_else(|| invalid(format!("`space origin: {value}` is not a vector")))?,
            );
        }
        "kinds" => h.kinds = Some(words().map(str::to_ascii_lowercase).collect()),
        "spacings" => h.spacings = Some(numbers("spacings")?),
        "content" => h.content = Some(value.to_string()),
        _ => {}
    }
    Ok(())
}

/// A float as teem writes it (`nan`, `NaN`, `inf`, `-inf` included).
fn parse_f64(w: &str) -> Option<f64> {
    w.parse::<f64>().ok()
}

/// `(x,y,z)` (spaces allowed only inside the words split by whitespace, as teem writes).
fn parse_vector(w: &str) -> Option<Vec<f64>> {
    let inner = w.trim().strip_prefix('(')?.strip_suffix(')')?;
    inner.split(',').map(|c| parse_f64(c.trim())).collect()
}

/// Every `type` spelling of the NRRD specification.
fn sample_type(path: &Path, value: &str) -> Result<SampleType> {
    let normal = value.split_whitespace().collect::<Vec<_>>().join(" ");
    Ok(match normal.as_str() {
        "signed char" | "int8" | "int8_t" => SampleType::I8,
        "uchar" | "unsigned char" | "uint8" | "uint8_t" => SampleType::U8,
        "short" | "short int" | "signed short" | "signed short int" | "int16" | "int16_t" => {
            SampleType::I16
        }
        "ushort" | "unsigned short" | "unsigned short int" | "uint16" | "uint16_t" => {
            SampleType::U16
        }
        "int" | "signed int" | "int32" | "int32_t" => SampleType::I32,
        "uint" | "unsigned int" | "uint32" | "uint32_t" => SampleType::U32,
        "longlong"
        | "long long"
        | "long long int"
        | "signed long long"
        | "signed long long int"
        | "int64"
        | "int64_t" => SampleType::I64,
        "ulonglong" | "unsigned long long" | "unsigned long long int" | "uint64" | "uint64_t" => {
            SampleType::U64
        }
        "float" => SampleType::F32,
        "double" => SampleType::F64,
        "block" => {
            return Err(IoError::unsupported(
                path,
                "NRRD `type: block` (opaque blocks of bytes are not image samples)",
            ));
        }
        _ => {
            return Err(IoError::invalid(
                path,
                format!("unknown NRRD `type: {value}`"),
            ));
        }
    })
}

/// Reads `count` whitespace- (or comma-) separated numbers of type `ty`.
fn parse_ascii(
    path: &Path,
    data: &[u8],
    ty: SampleType,
    count: usize,
    data_name: &str,
) -> Result<Samples> {
    let text = String::from_utf8_lossy(data);
    let mut words = text
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty());
    let mut n = 0usize;
    let mut next = || -> Result<&str> {
        let w = words.next().ok_or_else(|| {
            IoError::invalid(
                path,
                format!("{data_name} holds {n} ascii values, the header says {count}"),
            )
        })?;
        n += 1;
        Ok(w)
    };
    macro_rules! collect {
        ($variant:ident, $t:ty) => {{
            let mut v: Vec<$t> = Vec::with_capacity(count.min(data.len()));
            for _ in 0..count {
                let w = next()?;
                v.push(w.parse::<$t>().map_err(|_| {
                    IoError::invalid(
                        path,
                        format!("{data_name}: ascii value `{w}` is not a {}", ty.name()),
                    )
                })?);
            }
            Samples::$variant(v)
        }};
    }
    Ok(match ty {
        SampleType::U8 => collect!(U8, u8),
        SampleType::I8 => collect!(I8, i8),
        SampleType::U16 => collect!(U16, u16),
        SampleType::I16 => collect!(I16, i16),
        SampleType::U32 => collect!(U32, u32),
        SampleType::I32 => collect!(I32, i32),
        SampleType::U64 => collect!(U64, u64),
        SampleType::I64 => collect!(I64, i64),
        SampleType::F32 => collect!(F32, f32),
        SampleType::F64 => collect!(F64, f64),
    })
}

/// Which axes are spatial, in file order.
#[derive(Debug)]
struct Axes {
    /// File axes that are spatial, in order (at most three).
    spatial: Vec<usize>,
    /// File axes that become channels, in order.
    channels: Vec<usize>,
}

/// Kinds of the specification that are domain (spatial or temporal sample positions)
/// rather than range (components of a value); unknown kinds count as domain.
fn is_domain_kind(kind: &str) -> bool {
    matches!(kind, "domain" | "space" | "time" | "???" | "none")
}

fn classify_axes(path: &Path, h: &Header, dimension: usize) -> Result<Axes> {
    let invalid = |p: String| IoError::invalid(path, p);
    if let Some(kinds) = &h.kinds
        && kinds.len() != dimension
    {
        return Err(invalid(format!(
            "`kinds` lists {} values for dimension {dimension}",
            kinds.len()
        )));
    }
    if let Some(spacings) = &h.spacings
        && spacings.len() != dimension
    {
        return Err(invalid(format!(
            "`spacings` lists {} values for dimension {dimension}",
            spacings.len()
        )));
    }
    let (mut spatial, mut channels) = (Vec::new(), Vec::new());
    if let Some(dirs) = &h.space_directions {
        if dirs.len() != dimension {
            return Err(invalid(format!(
                "`space directions` lists {} entries for dimension {dimension}",
                dirs.len()
            )));
        }
        for (a, d) in dirs.iter().enumerate() {
            if d.is_some() {
                spatial.push(a);
            } else {
                channels.push(a);
            }
        }
        if spatial.len() != 3 {
            return Err(IoError::unsupported(
                path,
                format!(
                    "{} spatial axes in `space directions` (medssl reads images with three)",
                    spatial.len()
                ),
            ));
        }
    } else {
        for a in 0..dimension {
            let by_kind = h.kinds.as_ref().is_none_or(|k| is_domain_kind(&k[a]));
            let by_spacing = h.spacings.as_ref().is_none_or(|s| !s[a].is_nan());
            if by_kind && by_spacing && spatial.len() < 3 {
                spatial.push(a);
            } else {
                channels.push(a);
            }
        }
    }
    Ok(Axes { spatial, channels })
}

/// The shape in medssl's order (spatial axes, padded to three when there are channels,
/// then channels) and the samples rearranged to match, first index fastest.
fn reorder(sizes: &[usize], axes: &Axes, samples: Samples) -> (Vec<usize>, Samples) {
    let mut order: Vec<usize> = axes.spatial.clone();
    let mut shape: Vec<usize> = order.iter().map(|&a| sizes[a]).collect();
    if !axes.channels.is_empty() {
        shape.resize(3, 1);
    }
    order.extend(&axes.channels);
    shape.extend(axes.channels.iter().map(|&a| sizes[a]));
    if order.iter().enumerate().all(|(o, &a)| o == a) {
        return (shape, samples);
    }
    let permuted = match samples {
        Samples::U8(v) => Samples::U8(permute(&v, sizes, &order)),
        Samples::I8(v) => Samples::I8(permute(&v, sizes, &order)),
        Samples::U16(v) => Samples::U16(permute(&v, sizes, &order)),
        Samples::I16(v) => Samples::I16(permute(&v, sizes, &order)),
        Samples::U32(v) => Samples::U32(permute(&v, sizes, &order)),
        Samples::I32(v) => Samples::I32(permute(&v, sizes, &order)),
        Samples::U64(v) => Samples::U64(permute(&v, sizes, &order)),
        Samples::I64(v) => Samples::I64(permute(&v, sizes, &order)),
        Samples::F32(v) => Samples::F32(permute(&v, sizes, &order)),
        Samples::F64(v) => Samples::F64(permute(&v, sizes, &order)),
    };
    (shape, permuted)
}

/// Rearranges a first-index-fastest array of `sizes` so that output axis `o` is input
/// axis `order[o]` (also first index fastest).
fn permute<T: Copy>(src: &[T], sizes: &[usize], order: &[usize]) -> Vec<T> {
    let mut strides = vec![1usize; sizes.len()];
    for a in 1..sizes.len() {
        strides[a] = strides[a - 1] * sizes[a - 1];
    }
    let out_sizes: Vec<usize> = order.iter().map(|&a| sizes[a]).collect();
    let out_strides: Vec<usize> = order.iter().map(|&a| strides[a]).collect();
    let mut out = Vec::with_capacity(src.len());
    let mut index = vec![0usize; order.len()];
    let mut offset = 0usize;
    for _ in 0..src.len() {
        out.push(src[offset]);
        for o in 0..index.len() {
            index[o] += 1;
            offset += out_strides[o];
            if index[o] < out_sizes[o] {
                break;
            }
            offset -= out_strides[o] * out_sizes[o];
            index[o] = 0;
        }
    }
    out
}

/// Sign flips that take a named NRRD space to RAS.
fn space_to_ras(path: &Path, space: &str) -> Result<[f64; 3]> {
    Ok(match space.to_ascii_lowercase().as_str() {
        "right-anterior-superior" | "ras" => [1.0, 1.0, 1.0],
        "left-anterior-superior" | "las" => [-1.0, 1.0, 1.0],
        "left-posterior-superior" | "lps" => [-1.0, -1.0, 1.0],
        "right-anterior-superior-time"
        | "rast"
        | "left-anterior-superior-time"
        | "last"
        | "left-posterior-superior-time"
        | "lpst" => {
            return Err(IoError::unsupported(
                path,
                format!("NRRD `space: {space}` (a space with a time axis)"),
            ));
        }
        "scanner-xyz"
        | "scanner-xyz-time"
        | "3d-right-handed"
        | "3d-left-handed"
        | "3d-right-handed-time"
        | "3d-left-handed-time" => {
            return Err(IoError::unsupported(
                path,
                format!(
                    "NRRD `space: {space}`, which does not say how its axes lie in the \
                     patient (medssl reads RAS, LAS and LPS)"
                ),
            ));
        }
        _ => {
            return Err(IoError::invalid(
                path,
                format!("unknown NRRD `space: {space}`"),
            ));
        }
    })
}

/// The affine, or the assumed geometry of a file without one, and a word on its source.
fn geometry(
    path: &Path,
    h: &Header,
    axes: &Axes,
) -> Result<(Option<Affine>, Option<AssumedGeometry>, &'static str)> {
    let invalid = |p: String| IoError::invalid(path, p);
    if let Some(units) = &h.space_units
        && let Some(u) = units
            .iter()
            .find(|u| !matches!(u.as_str(), "mm" | "millimeter" | "millimeters" | ""))
    {
        return Err(IoError::unsupported(
            path,
            format!("NRRD `space units` \"{u}\" (medssl reads mm)"),
        ));
    }
    let Some(dirs) = &h.space_directions else {
        if h.space.is_some() || h.space_dimension.is_some() || h.space_origin.is_some() {
            return Err(invalid(
                "the header names a `space` but gives no `space directions`".into(),
            ));
        }
        // ITK: identity direction in LPS, the stated spacings (1 where absent), origin 0.
        let spacing = |o: usize| -> f64 {
            axes.spatial
                .get(o)
                .and_then(|&a| h.spacings.as_ref().map(|s| s[a]))
                .filter(|s| s.is_finite())
                .unwrap_or(1.0)
        };
        let affine = Affine::from_diagonal(&nalgebra::Vector4::new(
            -spacing(0),
            -spacing(1),
            spacing(2),
            1.0,
        ));
        return Ok(if h.spacings.is_some() {
            (
                Some(affine),
                None,
                "spacings (ITK: LPS axis-aligned, origin 0)",
            )
        } else {
            (
                None,
                Some(AssumedGeometry {
                    affine,
                    missing: vec!["space directions", "spacings"],
                }),
                "none",
            )
        });
    };
    let space = h.space.as_deref().ok_or_else(|| {
        IoError::unsupported(
            path,
            "`space directions` without a named `space` (medssl reads RAS, LAS and LPS)",
        )
    })?;
    let flip = space_to_ras(path, space)?;
    if let Some(d) = h.space_dimension
        && d != 3
    {
        return Err(IoError::unsupported(
            path,
            format!("`space dimension: {d}` (medssl reads 3)"),
        ));
    }
    let mut affine = Affine::identity();
    for (o, &a) in axes.spatial.iter().enumerate() {
        let v = dirs[a].as_ref().expect("spatial axes have a direction");
        if v.len() != 3 || v.iter().any(|x| !x.is_finite()) {
            return Err(invalid(format!(
                "`space directions` entry {a} is not a finite 3-vector: {v:?}"
            )));
        }
        for r in 0..3 {
            affine[(r, o)] = flip[r] * v[r];
        }
    }
    if let Some(origin) = &h.space_origin {
        if origin.len() != 3 || origin.iter().any(|x| !x.is_finite()) {
            return Err(invalid(format!(
                "`space origin` is not a finite 3-vector: {origin:?}"
            )));
        }
        for r in 0..3 {
            affine[(r, 3)] = flip[r] * origin[r];
        }
    }
    Ok((Some(affine), None, "space directions"))
}

fn describe(
    h: &Header,
    sizes: &[usize],
    axes: &Axes,
    source: &DataSource,
    geometry_from: &str,
) -> Vec<(String, String)> {
    let mut d = vec![
        ("NRRD version".into(), h.version.clone()),
        ("type".into(), h.type_name.clone().unwrap_or_default()),
        (
            "encoding".into(),
            h.encoding_name.clone().unwrap_or_default(),
        ),
        (
            "endian".into(),
            match h.endian {
                Some(ByteOrder::Little) => "little".into(),
                Some(ByteOrder::Big) => "big".into(),
                None => "(not given)".into(),
            },
        ),
        ("sizes".into(), format!("{sizes:?}")),
        (
            "space".into(),
            h.space.clone().unwrap_or_else(|| "(none)".into()),
        ),
        ("geometry from".into(), geometry_from.into()),
    ];
    if let Some(kinds) = &h.kinds {
        d.push(("kinds".into(), kinds.join(" ")));
    }
    if !axes.channels.is_empty() {
        d.push((
            "channel axes".into(),
            format!(
                "file axes {:?} (moved after the spatial axes {:?})",
                axes.channels, axes.spatial
            ),
        ));
    }
    if let DataSource::Detached(p) = source {
        d.push(("data file".into(), p.display().to_string()));
    }
    if h.byte_skip != 0 {
        d.push(("byte skip".into(), h.byte_skip.to_string()));
    }
    if h.line_skip != 0 {
        d.push(("line skip".into(), h.line_skip.to_string()));
    }
    if let Some(c) = &h.content {
        d.push(("content".into(), c.clone()));
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_moves_the_first_axis_last() {
        // sizes (c=2, i=3, j=2), c fastest; want (i, j, c), i fastest.
        let src: Vec<u32> = (0..12).collect();
        let out = permute(&src, &[2, 3, 2], &[1, 2, 0]);
        // out[i + 3 j + 6 c] = src[c + 2 i + 6 j]
        for c in 0..2 {
            for j in 0..2 {
                for i in 0..3 {
                    assert_eq!(out[i + 3 * j + 6 * c], src[c + 2 * i + 6 * j]);
                }
            }
        }
    }

    #[test]
    fn every_type_spelling_is_known() {
        let p = Path::new("x.nrrd");
        for (names, ty) in [
            ("signed char|int8|int8_t", SampleType::I8),
            ("uchar|unsigned char|uint8|uint8_t", SampleType::U8),
            (
                "short|short int|signed short|signed short int|int16|int16_t",
                SampleType::I16,
            ),
            (
                "ushort|unsigned short|unsigned short int|uint16|uint16_t",
                SampleType::U16,
            ),
            ("int|signed int|int32|int32_t", SampleType::I32),
            ("uint|unsigned int|uint32|uint32_t", SampleType::U32),
            (
                "longlong|long long|long long int|signed long long|signed long long int|int64|int64_t",
                SampleType::I64,
            ),
            (
                "ulonglong|unsigned long long|unsigned long long int|uint64|uint64_t",
                SampleType::U64,
            ),
            ("float", SampleType::F32),
            ("double", SampleType::F64),
        ] {
            for name in names.split('|') {
                assert_eq!(sample_type(p, name).unwrap(), ty, "{name}");
            }
        }
        assert!(matches!(
            sample_type(p, "block"),
            Err(IoError::Unsupported { .. })
        ));
    }

    #[test]
    fn header_fields_are_case_insensitive_and_key_values_ignored() {
        let text = b"NRRD0004\n# comment\nTYPE: short\nDimension: 3\nsizes: 2 1 1\n\
                     Encoding: ascii\nmy key:=not: a field\nSpace: LPS\n\
                     space directions: (1,0,0) (0,1,0) (0,0,1)\n\n1 -2\n";
        let p = Path::new("x.nrrd");
        let (h, start) = parse_header(p, text).unwrap();
        assert_eq!(h.sample_type, Some(SampleType::I16));
        assert_eq!(h.dimension, Some(3));
        assert_eq!(h.encoding, Some(Encoding::Ascii));
        assert_eq!(&text[start.unwrap()..], b"1 -2\n");
    }
}
