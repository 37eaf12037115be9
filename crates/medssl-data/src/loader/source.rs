//! `SampleSource`: the indexed collection of cases a loader or cache reads from.

use std::path::Path;
use std::time::UNIX_EPOCH;

use crate::error::{DataError, Result};
use crate::sample::Sample;

/// Cases addressed by index `0..len()`: a labelled task, a pretraining manifest, or a
/// preprocessing cache over either. Shared by loader threads, so `&self` only.
pub trait SampleSource: Send + Sync {
    /// Number of cases.
    fn len(&self) -> usize;

    /// Whether there are no cases.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The case id of `index` (what error messages and batches name), without loading
    /// it.
    fn id(&self, index: usize) -> String;

    /// A string that changes whenever the content of case `index` may have changed
    /// (file paths, sizes and modification times: see [`file_fingerprint`]). The
    /// preprocessing cache keys its entries on it, so a replaced file is recomputed.
    fn fingerprint(&self, index: usize) -> Result<String>;

    /// Reads case `index`.
    fn load(&self, index: usize) -> Result<Sample>;
}

/// `path|size|mtime` (modification time in nanoseconds since 1970), the identity of a
/// file's content that `make` and nnU-Net's preprocessing also rely on: rewriting or
/// replacing the file changes it. Sources with several files per case (image and label)
/// join their files' fingerprints. For a directory (a DICOM series) the size and time
/// are the directory's own, which change when files are added, removed or renamed.
pub fn file_fingerprint(path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path).map_err(|e| DataError::os(path, e))?;
    let modified = meta.modified().map_err(|e| DataError::os(path, e))?;
    let nanos = match modified.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_nanos() as i128,
        Err(before) => -(before.duration().as_nanos() as i128),
    };
    Ok(format!("{}|{}|{}", path.display(), meta.len(), nanos))
}
