//! Finding the entries of a collection (a directory tree or a list file) and stamping
//! them with what the file system says about them, so unchanged ones are not read again.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use medssl_io::dicom::has_dicom_marker;
use serde::{Deserialize, Serialize};

use super::Kind;
use crate::error::{DataError, Result};

/// What the file system says about an entry: a NIfTI file, or every file below a DICOM
/// series directory (medssl-io reads them all). Any change to the data changes one of
/// these: a rewritten file its size or time, an added or removed slice the count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    /// Number of files.
    pub files: usize,
    /// Their total size in bytes.
    pub bytes: u64,
    /// The latest modification time, in nanoseconds since 1970.
    pub modified_ns: u64,
}

/// Every NIfTI file and every directory holding DICOM files below `root`, sorted.
/// Hidden files and directories (a leading `.`) are left out, and links to
/// directories are not followed (they could form loops).
pub(super) fn tree(root: &Path) -> Result<Vec<(PathBuf, Kind)>> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut dicom = false;
        for path in children(&dir)? {
            let is_dir = std::fs::symlink_metadata(&path)
                .map_err(|e| DataError::os(&path, e))?
                .is_dir();
            if is_dir {
                stack.push(path);
            } else if is_nifti_name(&path) {
                found.push((path, Kind::Nifti));
            } else if !dicom && path.is_file() && has_dicom_marker(&path) {
                dicom = true;
            }
        }
        if dicom {
            found.push((dir, Kind::Dicom));
        }
    }
    found.sort();
    Ok(found)
}

/// The entries a list file names: one path per line, relative to the list file's
/// directory, blank lines and lines starting with `#` ignored. A directory is a DICOM
/// series; a file is NIfTI when its name says so, else DICOM. Paths are made absolute
/// (links resolved) where they exist, and a path named twice counts once.
pub(super) fn list(file: &Path) -> Result<Vec<(PathBuf, Kind)>> {
    if is_nifti_name(file) {
        return Err(DataError::file(
            file,
            "a NIfTI file, not a list: give the collection's directory, or a list file naming \
             one scan per line",
        ));
    }
    let text = std::fs::read_to_string(file).map_err(|e| DataError::os(file, e))?;
    let base = file.parent().unwrap_or(Path::new("."));
    let paths: BTreeSet<PathBuf> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let path = base.join(line);
            std::fs::canonicalize(&path).unwrap_or(path)
        })
        .collect();
    Ok(paths
        .into_iter()
        .map(|path| {
            let kind = if is_nifti_name(&path) {
                Kind::Nifti
            } else {
                Kind::Dicom
            };
            (path, kind)
        })
        .collect())
}

/// Stamps an entry from metadata only (no file is opened).
pub(super) fn stamp(path: &Path, kind: Kind) -> Result<Stamp> {
    let files = match kind {
        Kind::Nifti => vec![path.to_path_buf()],
        Kind::Dicom if path.is_dir() => files_below(path)?,
        Kind::Dicom => vec![path.to_path_buf()],
    };
    let mut stamp = Stamp {
        files: files.len(),
        bytes: 0,
        modified_ns: 0,
    };
    for file in &files {
        let meta = std::fs::metadata(file).map_err(|e| DataError::os(file, e))?;
        stamp.bytes += meta.len();
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as u64);
        stamp.modified_ns = stamp.modified_ns.max(modified);
    }
    Ok(stamp)
}

/// Every regular file below `dir`, as medssl-io's series reader sees them.
fn files_below(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| DataError::os(&d, e))? {
            let entry = entry.map_err(|e| DataError::os(&d, e))?;
            let kind = entry
                .file_type()
                .map_err(|e| DataError::os(entry.path(), e))?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
    }
    Ok(files)
}

/// The visible entries of `dir`, sorted.
fn children(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::os(dir, e))? {
        let entry = entry.map_err(|e| DataError::os(dir, e))?;
        if !entry.file_name().to_string_lossy().starts_with('.') {
            paths.push(entry.path());
        }
    }
    paths.sort();
    Ok(paths)
}

/// Whether the file name ends in `.nii` or `.nii.gz` (any case).
fn is_nifti_name(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    name.ends_with(".nii") || name.ends_with(".nii.gz")
}
