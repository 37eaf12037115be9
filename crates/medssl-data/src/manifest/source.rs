//! The entries of an indexed collection as a [`SampleSource`] of unlabelled samples:
//! what pretraining reads.

use std::path::Path;

use medssl_io::{ReadOptions, read_volume};

use super::{Entry, Manifest};
use crate::dataset::check_voxels_finite;
use crate::error::{DataError, Result};
use crate::loader::{SampleSource, file_fingerprint};
use crate::sample::Sample;

/// A collection's readable entries, in the manifest's (path) order. A case's id is its
/// path relative to the collection (or the list file's directory), so ids are unique.
#[derive(Debug, Clone)]
pub struct CollectionSource {
    entries: Vec<Entry>,
    ids: Vec<String>,
}

impl CollectionSource {
    /// The readable entries of `manifest`.
    pub fn new(manifest: &Manifest) -> CollectionSource {
        let base = if manifest.source.is_dir() {
            manifest.source.as_path()
        } else {
            manifest.source.parent().unwrap_or(Path::new("/"))
        };
        let ids = manifest
            .entries
            .iter()
            .map(|e| {
                e.path
                    .strip_prefix(base)
                    .unwrap_or(&e.path)
                    .display()
                    .to_string()
            })
            .collect();
        CollectionSource {
            entries: manifest.entries.clone(),
            ids,
        }
    }

    /// The entries.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }
}

impl SampleSource for CollectionSource {
    fn len(&self) -> usize {
        self.entries.len()
    }

    fn id(&self, index: usize) -> String {
        self.ids[index].clone()
    }

    fn fingerprint(&self, index: usize) -> Result<String> {
        file_fingerprint(&self.entries[index].path)
    }

    /// Reads the scan; fails naming it when it cannot be read (changed since it was
    /// indexed) or holds NaN or infinite voxels.
    fn load(&self, index: usize) -> Result<Sample> {
        let (entry, id) = (&self.entries[index], &self.ids[index]);
        let volume = read_volume(&entry.path, &ReadOptions::default())
            .map_err(|e| DataError::case(id, e.to_string()))?;
        check_voxels_finite(id, &entry.path, &volume)?;
        Ok(Sample::unlabelled(id, volume))
    }
}
