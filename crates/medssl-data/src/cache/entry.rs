//! The file format of one cache entry: raw little-endian numbers, read and written in
//! one streaming pass, so an entry loads at disk / page-cache speed.
//!
//! ```text
//! magic "MEDSSLPC" | version u32 | flags u32 (bit 0: has label)
//! image geometry: shape [C, I, J, K] 4 x u64, affine 16 x f64 (row-major)
//! label geometry (when labelled): the same
//! case id, source fingerprint, configuration fingerprint: each u64 length + UTF-8
//! image voxels f32 | label voxels f32
//! XXH64 (seed 0) of every byte before it, u64
//! ```
//!
//! The f32 voxels and the f64 affine are stored bit for bit. An entry is written to a
//! temporary file beside its final name and renamed into place, so readers see a whole
//! entry or none, and workers writing the same entry at once each rename a complete
//! copy. The file is not synced before the rename: after a power loss a torn entry
//! fails its length or checksum check and is recomputed. A writer killed mid-write
//! leaves only its hidden `.*.tmp` file, which is never read.

use std::fs::File;
use std::io::{self, BufReader, ErrorKind, Read, Write};
use std::path::Path;

use medssl_io::{Affine, Volume};
use ndarray::Array4;

use super::xxh64::Xxh64;
use crate::sample::Sample;

const MAGIC: [u8; 8] = *b"MEDSSLPC";
/// Format version; part of every key, so a new format never reads an old entry.
pub(super) const VERSION: u32 = 1;
const HAS_LABEL: u32 = 1;
/// Bytes converted and hashed per step: large enough for few system calls, small
/// enough to stay in the CPU cache between reading, hashing and converting.
const CHUNK: usize = 1 << 18;
/// Longest identity string accepted, so a corrupt length cannot ask for gigabytes.
const MAX_TEXT: u64 = 1 << 20;

/// What an entry was made from; stored in it and compared on every read, so an entry
/// is used only for exactly its case, source file and configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Identity<'a> {
    pub(super) id: &'a str,
    pub(super) source: &'a str,
    pub(super) config: &'a str,
}

/// Reads the entry at `path` and checks its identity, length and checksum: `None`
/// when there is no entry yet, `Err(why)` for a file that must not be used
/// (truncated, corrupt, made for another identity).
pub(super) fn read(path: &Path, identity: &Identity<'_>) -> Result<Option<Sample>, String> {
    match File::open(path) {
        Ok(file) => read_file(file, identity)
            .map(Some)
            .map_err(|e| e.to_string()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// Writes `sample` as the entry at `path`, atomically (temporary file and rename).
pub(super) fn write(path: &Path, identity: &Identity<'_>, sample: &Sample) -> io::Result<()> {
    medssl_io::atomic::write_with(path, |file| {
        let mut out = HashingWriter {
            inner: file,
            hash: Xxh64::new(0),
        };
        out.put(&MAGIC)?;
        out.put(&VERSION.to_le_bytes())?;
        let flags = if sample.label.is_some() { HAS_LABEL } else { 0 };
        out.put(&flags.to_le_bytes())?;
        out.geometry(&sample.image)?;
        if let Some(label) = &sample.label {
            out.geometry(label)?;
        }
        for text in [identity.id, identity.source, identity.config] {
            out.put(&(text.len() as u64).to_le_bytes())?;
            out.put(text.as_bytes())?;
        }
        out.voxels(&sample.image)?;
        if let Some(label) = &sample.label {
            out.voxels(label)?;
        }
        let checksum = out.hash.finish();
        out.inner.write_all(&checksum.to_le_bytes())
    })
}

fn read_file(file: File, identity: &Identity<'_>) -> io::Result<Sample> {
    let file_len = file.metadata()?.len();
    let mut input = HashingReader {
        inner: BufReader::with_capacity(CHUNK, file),
        hash: Xxh64::new(0),
        position: 0,
    };
    if input.array::<8>()? != MAGIC {
        return Err(invalid("not a medssl preprocessing cache entry"));
    }
    let version = input.u32()?;
    if version != VERSION {
        return Err(invalid(format!(
            "format version {version}, expected {VERSION}"
        )));
    }
    let flags = input.u32()?;
    let image = input.geometry()?;
    let label = if flags & HAS_LABEL != 0 {
        Some(input.geometry()?)
    } else {
        None
    };
    let mut stored = [String::new(), String::new(), String::new()];
    for text in &mut stored {
        *text = input.text(file_len)?;
    }
    if [identity.id, identity.source, identity.config] != stored.each_ref().map(String::as_str) {
        return Err(invalid(format!(
            "made for case {:?} from {:?} with configuration {:?}, not this case",
            stored[0], stored[1], stored[2]
        )));
    }
    let voxels = label
        .as_ref()
        .map_or(Some(0), Geometry::voxels)
        .zip(image.voxels())
        .and_then(|(a, b)| a.checked_add(b));
    let expected_len = voxels
        .and_then(|v| v.checked_mul(4))
        .and_then(|bytes| bytes.checked_add(input.position + 8));
    if expected_len != Some(file_len) {
        return Err(invalid(format!(
            "{file_len} bytes where the header announces {} (truncated or partly \
             written)",
            expected_len.map_or("more than 2^64".into(), |n| n.to_string())
        )));
    }
    let image = input.volume(image)?;
    let label = label.map(|g| input.volume(g)).transpose()?;
    let computed = input.hash.finish();
    let mut checksum = [0u8; 8];
    input.inner.read_exact(&mut checksum)?;
    if u64::from_le_bytes(checksum) != computed {
        return Err(invalid("checksum mismatch (the file is corrupt)"));
    }
    Ok(Sample {
        id: identity.id.to_string(),
        image,
        label,
    })
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, message.into())
}

/// Shape and affine of a stored volume.
#[derive(Debug)]
struct Geometry {
    shape: [usize; 4],
    affine: Affine,
}

impl Geometry {
    /// Voxel count, `None` when it overflows.
    fn voxels(&self) -> Option<u64> {
        self.shape
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
    }
}

/// Writes and hashes.
struct HashingWriter<W: Write> {
    inner: W,
    hash: Xxh64,
}

impl<W: Write> HashingWriter<W> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.hash.update(bytes);
        self.inner.write_all(bytes)
    }

    fn geometry(&mut self, volume: &Volume) -> io::Result<()> {
        for &d in volume.data().shape() {
            self.put(&(d as u64).to_le_bytes())?;
        }
        let affine = volume.affine();
        for r in 0..4 {
            for c in 0..4 {
                self.put(&affine[(r, c)].to_le_bytes())?;
            }
        }
        Ok(())
    }

    /// The voxels in standard (C) order, converted a chunk at a time.
    fn voxels(&mut self, volume: &Volume) -> io::Result<()> {
        let mut bytes = Vec::with_capacity(CHUNK);
        let mut values = volume.data().iter();
        loop {
            bytes.clear();
            for value in values.by_ref().take(CHUNK / 4) {
                bytes.extend_from_slice(&value.to_le_bytes());
            }
            if bytes.is_empty() {
                return Ok(());
            }
            self.put(&bytes)?;
        }
    }
}

/// Reads, hashes and counts.
struct HashingReader<R: Read> {
    inner: R,
    hash: Xxh64,
    position: u64,
}

impl<R: Read> HashingReader<R> {
    fn take(&mut self, bytes: &mut [u8]) -> io::Result<()> {
        self.inner.read_exact(bytes)?;
        self.hash.update(bytes);
        self.position += bytes.len() as u64;
        Ok(())
    }

    fn array<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let mut bytes = [0u8; N];
        self.take(&mut bytes)?;
        Ok(bytes)
    }

    fn u32(&mut self) -> io::Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> io::Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn geometry(&mut self) -> io::Result<Geometry> {
        let mut shape = [0usize; 4];
        for d in &mut shape {
            *d = usize::try_from(self.u64()?).map_err(|_| invalid("shape too large"))?;
        }
        let mut affine = Affine::zeros();
        for r in 0..4 {
            for c in 0..4 {
                affine[(r, c)] = f64::from_le_bytes(self.array()?);
            }
        }
        Ok(Geometry { shape, affine })
    }

    fn text(&mut self, file_len: u64) -> io::Result<String> {
        let len = self.u64()?;
        if len > MAX_TEXT || len > file_len {
            return Err(invalid(format!("implausible text length {len}")));
        }
        let mut bytes = vec![0u8; len as usize];
        self.take(&mut bytes)?;
        String::from_utf8(bytes).map_err(|_| invalid("text is not UTF-8"))
    }

    /// The voxels of a volume of `geometry`, whose size the caller checked against the
    /// file length.
    fn volume(&mut self, geometry: Geometry) -> io::Result<Volume> {
        let count = geometry.shape.iter().product::<usize>();
        let mut values = Vec::with_capacity(count);
        let mut bytes = vec![0u8; CHUNK.min(count * 4)];
        while values.len() < count {
            let n = (count - values.len()).min(CHUNK / 4);
            let chunk = &mut bytes[..n * 4];
            self.take(chunk)?;
            values.extend(
                chunk
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            );
        }
        let [c, i, j, k] = geometry.shape;
        let data = Array4::from_shape_vec((c, i, j, k), values)
            .map_err(|e| invalid(format!("voxels do not fit the shape: {e}")))?;
        Ok(Volume::new(data, geometry.affine))
    }
}
