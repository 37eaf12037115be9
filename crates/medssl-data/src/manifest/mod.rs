//! Unlabelled pretraining collections (directory trees of NIfTI files and DICOM series,
//! or list files) and their manifest cache.
//!
//! A collection is a directory searched recursively — every `.nii`/`.nii.gz` file is an
//! entry, and so is every directory holding DICOM files (one series) — or a list file
//! naming one file or series directory per line. [`Manifest::index`] reads the headers
//! of every entry in parallel and records shape, spacing and modality; with a cache
//! directory it keeps the result in `manifest.json` there and, on the next call, reads
//! only entries that are new or whose files changed (size, modification time or file
//! count), dropping those that are gone.
//!
//! An entry that cannot be read does not make a large collection unusable: it goes to
//! the manifest's `skipped` list with the reason, and [`IndexStats`] says how many.

mod discover;
mod read;
mod source;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use discover::Stamp;
pub use source::CollectionSource;

use crate::error::{DataError, Result};
use medssl_io::atomic::write_atomically;

/// The cache file's name inside the cache directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Format version of the cache file; a cache of another version is rebuilt.
const VERSION: u32 = 1;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A NIfTI-1/2 file.
    Nifti,
    /// A DICOM series directory (or a DICOM file named in a list).
    Dicom,
}

/// One readable scan of the collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Absolute path of the file or series directory.
    pub path: PathBuf,
    pub kind: Kind,
    /// `[I, J, K]` (DICOM: columns, rows, slices).
    pub shape: [usize; 3],
    /// Channels (volumes of a 4-D NIfTI file), 1 for 3-D images.
    pub channels: usize,
    /// Voxel spacing in mm along I, J, K.
    pub spacing: [f64; 3],
    /// The DICOM Modality (`CT`, `MR`, ...); NIfTI files do not record it.
    pub modality: Option<String>,
    pub stamp: Stamp,
}

/// An entry that could not be read, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    pub path: PathBuf,
    pub kind: Kind,
    pub reason: String,
    /// The stamp when the entry was tried, so an unchanged bad file is not tried again;
    /// `None` when even its metadata could not be read.
    pub stamp: Option<Stamp>,
}

/// The indexed collection: what the cache file holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub version: u32,
    /// The directory or list file indexed (absolute).
    pub source: PathBuf,
    /// Readable entries, sorted by path.
    pub entries: Vec<Entry>,
    /// Unreadable entries, sorted by path.
    pub skipped: Vec<Skipped>,
}

/// What one call of [`Manifest::index`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexStats {
    /// Entries found in the collection (readable or not).
    pub found: usize,
    /// Entries taken unchanged from the cache, without opening their files.
    pub reused: usize,
    /// Entries whose headers were read (new or changed since the cache was written).
    pub read: usize,
    /// Cached entries dropped because they are no longer in the collection.
    pub removed: usize,
    /// Why an existing cache file was not used (unreadable, other version or source).
    pub cache_discarded: Option<String>,
}

/// A cached or fresh result for one entry.
#[derive(Debug, Clone)]
enum Outcome {
    Entry(Entry),
    Skipped(Skipped),
}

impl Outcome {
    fn path(&self) -> &Path {
        match self {
            Outcome::Entry(e) => &e.path,
            Outcome::Skipped(s) => &s.path,
        }
    }

    /// Whether this cached result still describes `kind` with `stamp`.
    fn matches(&self, kind: Kind, stamp: Stamp) -> bool {
        match self {
            Outcome::Entry(e) => e.kind == kind && e.stamp == stamp,
            Outcome::Skipped(s) => s.kind == kind && s.stamp == Some(stamp),
        }
    }
}

impl Manifest {
    /// Indexes the collection at `source` (a directory, or a list file) and, with
    /// `cache_dir`, reuses and updates `cache_dir/manifest.json`. Fails when the
    /// collection has no entries or none of them can be read.
    pub fn index(source: &Path, cache_dir: Option<&Path>) -> Result<(Manifest, IndexStats)> {
        let source = std::fs::canonicalize(source).map_err(|e| DataError::os(source, e))?;
        let candidates = if source.is_dir() {
            discover::tree(&source)?
        } else {
            discover::list(&source)?
        };
        if candidates.is_empty() {
            return Err(DataError::file(
                &source,
                if source.is_dir() {
                    "no NIfTI files (.nii, .nii.gz) or DICOM series found in this directory or \
                     below"
                } else {
                    "the list names no files"
                },
            ));
        }

        let mut stats = IndexStats {
            found: candidates.len(),
            ..IndexStats::default()
        };
        let cache_file = cache_dir.map(|dir| dir.join(MANIFEST_FILE));
        let previous = match &cache_file {
            Some(file) => Self::cached(file, &source).unwrap_or_else(|reason| {
                stats.cache_discarded = Some(reason);
                None
            }),
            None => None,
        };
        let mut cached: HashMap<PathBuf, Outcome> = previous
            .map(|m| {
                let entries = m.entries.into_iter().map(Outcome::Entry);
                let skipped = m.skipped.into_iter().map(Outcome::Skipped);
                entries
                    .chain(skipped)
                    .map(|o| (o.path().to_path_buf(), o))
                    .collect()
            })
            .unwrap_or_default();

        // Stamps first (metadata only), then read what the cache cannot answer: NIfTI
        // headers in parallel, DICOM series one at a time (each decodes in parallel).
        let stamped: Vec<(PathBuf, Kind, Result<Stamp>)> = candidates
            .into_par_iter()
            .map(|(path, kind)| {
                let stamp = discover::stamp(&path, kind);
                (path, kind, stamp)
            })
            .collect();
        let mut outcomes = Vec::with_capacity(stamped.len());
        let mut to_read = Vec::new();
        for (path, kind, stamp) in stamped {
            let old = cached.remove(&path);
            match stamp {
                Err(e) => outcomes.push(Outcome::Skipped(Skipped {
                    path,
                    kind,
                    reason: e.to_string(),
                    stamp: None,
                })),
                Ok(stamp) => match old {
                    Some(old) if old.matches(kind, stamp) => {
                        stats.reused += 1;
                        outcomes.push(old);
                    }
                    _ => to_read.push((path, kind, stamp)),
                },
            }
        }
        stats.removed = cached.len();
        stats.read = to_read.len();
        let (dicom, nifti): (Vec<_>, Vec<_>) = to_read
            .into_iter()
            .partition(|(_, kind, _)| *kind == Kind::Dicom);
        outcomes.par_extend(nifti.into_par_iter().map(|(p, k, s)| read_entry(p, k, s)));
        outcomes.extend(dicom.into_iter().map(|(p, k, s)| read_entry(p, k, s)));

        let mut manifest = Manifest {
            version: VERSION,
            source,
            entries: Vec::new(),
            skipped: Vec::new(),
        };
        for outcome in outcomes {
            match outcome {
                Outcome::Entry(e) => manifest.entries.push(e),
                Outcome::Skipped(s) => manifest.skipped.push(s),
            }
        }
        manifest.entries.sort_by(|a, b| a.path.cmp(&b.path));
        manifest.skipped.sort_by(|a, b| a.path.cmp(&b.path));

        if let Some(file) = &cache_file
            && (stats.reused < stats.found || stats.removed > 0)
        {
            manifest.save(file)?;
        }
        if manifest.entries.is_empty() {
            let first = &manifest.skipped[0];
            return Err(DataError::file(
                &manifest.source,
                format!(
                    "none of the {} entries could be read; the first: {}",
                    manifest.skipped.len(),
                    first.reason
                ),
            ));
        }
        Ok((manifest, stats))
    }

    /// Reads the cache file; `Ok(None)` when there is none, `Err(reason)` when it
    /// cannot be used for `source`.
    fn cached(file: &Path, source: &Path) -> std::result::Result<Option<Manifest>, String> {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", file.display())),
        };
        let manifest: Manifest = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a manifest: {e}", file.display()))?;
        if manifest.version != VERSION {
            return Err(format!(
                "{}: manifest version {}, this medssl writes {VERSION}",
                file.display(),
                manifest.version
            ));
        }
        if manifest.source != source {
            return Err(format!(
                "{}: indexes {}, not {}",
                file.display(),
                manifest.source.display(),
                source.display()
            ));
        }
        Ok(Some(manifest))
    }

    /// Writes the manifest as JSON, atomically, creating the directory when needed.
    fn save(&self, file: &Path) -> Result<()> {
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(|e| DataError::os(dir, e))?;
        }
        let text = serde_json::to_string(self)
            .map_err(|e| DataError::file(file, format!("cannot encode the manifest: {e}")))?;
        write_atomically(file, text.as_bytes()).map_err(|e| DataError::os(file, e))
    }
}

/// Reads one entry's header into an entry, or a skipped record with the reason.
fn read_entry(path: PathBuf, kind: Kind, stamp: Stamp) -> Outcome {
    match read::header(&path, kind) {
        Ok(h) => Outcome::Entry(Entry {
            path,
            kind,
            shape: h.shape,
            channels: h.channels,
            spacing: h.spacing,
            modality: h.modality,
            stamp,
        }),
        Err(e) => Outcome::Skipped(Skipped {
            path,
            kind,
            reason: e.to_string(),
            stamp: Some(stamp),
        }),
    }
}
