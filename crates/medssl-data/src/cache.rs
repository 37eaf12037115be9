//! The preprocessing cache, as nnU-Net's preprocessed folder: the deterministic prefix
//! of a pipeline (reorientation, resampling, intensity normalisation: see
//! [`Pipeline::split_deterministic`]) runs once per volume and its output is stored, so
//! each epoch only reads it back and runs the random crops and augmentation.
//!
//! An entry's key hashes the case id, the source's fingerprint of the case (file paths,
//! sizes, modification times) and the configuration fingerprint of the prefix, so a
//! replaced file or a changed parameter leads to a new entry; stale entries stay on
//! disk until the directory is removed. Entries that are truncated, corrupt or made
//! for something else are detected and recomputed, never used; a warning naming each
//! is kept for the caller ([`PreprocessCache::take_warnings`]), which reports it with
//! its other warnings: the cache runs on loader worker threads, where printing would
//! cut through progress bars and bypass `--quiet` and the study's logs. Several
//! threads or processes may share one directory.

mod entry;
mod xxh64;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use entry::Identity;
use xxh64::Xxh64;

use crate::error::{DataError, Result};
use crate::loader::SampleSource;
use crate::rng;
use crate::sample::Sample;
use crate::transform::Pipeline;

/// A [`SampleSource`] that serves another source's cases after a deterministic
/// pipeline, computing each once and reading it from `dir` afterwards.
pub struct PreprocessCache {
    dir: PathBuf,
    source: Arc<dyn SampleSource>,
    pipeline: Pipeline,
    config_fingerprint: String,
    hits: AtomicUsize,
    computed: AtomicUsize,
    rejected: AtomicUsize,
    /// Warnings about rejected entries not yet taken by the caller.
    warnings: Mutex<Vec<String>>,
}

/// What a cache has done since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Cases read from a valid entry.
    pub hits: usize,
    /// Cases computed and stored.
    pub computed: usize,
    /// Entries found unusable (truncated, corrupt, another identity) and recomputed.
    pub rejected: usize,
}

impl PreprocessCache {
    /// A cache in `dir` (created when missing) of `source` through `pipeline`, whose
    /// steps must all be deterministic. `config_fingerprint` must change whenever any
    /// parameter of those steps does: [`PipelineConfig::cache_key`](crate::PipelineConfig::cache_key) of the configured
    /// steps.
    pub fn new(
        dir: impl Into<PathBuf>,
        source: Arc<dyn SampleSource>,
        pipeline: Pipeline,
        config_fingerprint: impl Into<String>,
    ) -> Result<PreprocessCache> {
        if let Some(step) = pipeline.steps().iter().find(|s| s.is_random()) {
            return Err(DataError::Config(format!(
                "preprocessing cache: step `{}` is random; only deterministic steps (those \
                 before the first random one) can be cached",
                step.name()
            )));
        }
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| DataError::os(&dir, e))?;
        Ok(PreprocessCache {
            dir,
            source,
            pipeline,
            config_fingerprint: config_fingerprint.into(),
            hits: AtomicUsize::new(0),
            computed: AtomicUsize::new(0),
            rejected: AtomicUsize::new(0),
            warnings: Mutex::new(Vec::new()),
        })
    }

    /// The directory holding the entries.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Counts of hits, computations and rejected entries so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            computed: self.computed.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
        }
    }

    /// The warnings about entries found unusable and recomputed since the last call
    /// (`preprocessing cache entry PATH: REASON; recomputing it`), oldest first, for the
    /// caller to report as it reports its other warnings.
    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *self.warnings.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Where the entry of case `index` lives (whether or not it exists yet).
    pub fn entry_path(&self, index: usize) -> Result<PathBuf> {
        let id = self.source.id(index);
        let fingerprint = self.source.fingerprint(index)?;
        Ok(self.path_of(&self.identity(&id, &fingerprint)))
    }

    fn identity<'a>(&'a self, id: &'a str, fingerprint: &'a str) -> Identity<'a> {
        Identity {
            id,
            source: fingerprint,
            config: &self.config_fingerprint,
        }
    }

    /// `<case id>-<key>.bin`: the id (made safe for file names) keeps the directory
    /// readable; the key makes the name unique.
    fn path_of(&self, identity: &Identity<'_>) -> PathBuf {
        let readable: String = identity
            .id
            .chars()
            .take(64)
            .map(|c| match c {
                'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_' => c,
                _ => '_',
            })
            .collect();
        self.dir
            .join(format!("{readable}-{:016x}.bin", key(identity)))
    }

    /// Runs the deterministic pipeline on case `index`.
    fn compute(&self, index: usize, id: &str) -> Result<Sample> {
        let sample = self.source.load(index)?;
        // The steps are deterministic: the stream is never drawn from.
        let outputs = self.pipeline.run(sample, &mut rng::stream(0, &[]))?;
        let count = outputs.len();
        <[Sample; 1]>::try_from(outputs)
            .map(|[sample]| sample)
            .map_err(|_| {
                DataError::case(
                    id,
                    format!(
                        "the cached preprocessing gave {count} samples; it must give \
                         exactly one per case (random crops belong after the cached prefix)"
                    ),
                )
            })
    }
}

impl SampleSource for PreprocessCache {
    fn len(&self) -> usize {
        self.source.len()
    }

    fn id(&self, index: usize) -> String {
        self.source.id(index)
    }

    /// The entry's key: it changes with the case's source fingerprint and with the
    /// configuration, so caches can be stacked.
    fn fingerprint(&self, index: usize) -> Result<String> {
        let id = self.source.id(index);
        let fingerprint = self.source.fingerprint(index)?;
        Ok(format!("{:016x}", key(&self.identity(&id, &fingerprint))))
    }

    fn load(&self, index: usize) -> Result<Sample> {
        let id = self.source.id(index);
        let fingerprint = self.source.fingerprint(index)?;
        let identity = self.identity(&id, &fingerprint);
        let path = self.path_of(&identity);
        match entry::read(&path, &identity) {
            Ok(Some(sample)) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(sample);
            }
            Ok(None) => {}
            Err(reason) => {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                let warning = format!(
                    "preprocessing cache entry {}: {reason}; recomputing it",
                    path.display()
                );
                self.warnings
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(warning);
            }
        }
        let sample = self.compute(index, &id)?;
        entry::write(&path, &identity, &sample).map_err(|e| DataError::os(&path, e))?;
        self.computed.fetch_add(1, Ordering::Relaxed);
        Ok(sample)
    }
}

/// XXH64 of the format version and the identity, each string length-prefixed so no
/// two identities hash the same bytes.
fn key(identity: &Identity<'_>) -> u64 {
    let mut hash = Xxh64::new(0);
    hash.update(&entry::VERSION.to_le_bytes());
    for text in [identity.id, identity.source, identity.config] {
        hash.update(&(text.len() as u64).to_le_bytes());
        hash.update(text.as_bytes());
    }
    hash.finish()
}

#[cfg(test)]
mod tests {
    use medssl_io::{Affine, Volume};
    use ndarray::Array4;

    use super::*;

    /// Two tiny cases whose loads are counted.
    struct Counted(AtomicUsize);

    impl SampleSource for Counted {
        fn len(&self) -> usize {
            2
        }

        fn id(&self, index: usize) -> String {
            format!("case{index}")
        }

        fn fingerprint(&self, index: usize) -> Result<String> {
            Ok(format!("case{index}.nii"))
        }

        fn load(&self, index: usize) -> Result<Sample> {
            self.0.fetch_add(1, Ordering::Relaxed);
            let data = Array4::from_elem((1, 2, 3, 4), index as f32 + 0.5);
            Ok(Sample::unlabelled(
                self.id(index),
                Volume::new(data, Affine::identity()),
            ))
        }
    }

    #[test]
    fn a_damaged_entry_is_recomputed_and_its_warning_kept_for_the_caller() {
        let dir = tempfile::tempdir().unwrap();
        let source = Arc::new(Counted(AtomicUsize::new(0)));
        let cache = |source: &Arc<Counted>| {
            PreprocessCache::new(dir.path(), source.clone(), Pipeline::new(Vec::new()), "x")
                .unwrap()
        };
        let warm = cache(&source);
        (0..2).for_each(|i| drop(warm.load(i).unwrap()));
        assert!(warm.take_warnings().is_empty());
        let damaged = warm.entry_path(1).unwrap();
        let len = std::fs::metadata(&damaged).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&damaged)
            .unwrap()
            .set_len(len - 1)
            .unwrap();

        let reader = cache(&source);
        let loads_before = source.0.load(Ordering::Relaxed);
        let sample = reader.load(1).unwrap();
        assert_eq!(sample.image.data()[[0, 1, 2, 3]], 1.5);
        assert_eq!(source.0.load(Ordering::Relaxed), loads_before + 1);
        assert_eq!(
            reader.stats(),
            CacheStats {
                hits: 0,
                computed: 1,
                rejected: 1
            }
        );
        let warnings = reader.take_warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let prefix = format!("preprocessing cache entry {}: ", damaged.display());
        assert!(
            warnings[0].starts_with(&prefix) && warnings[0].ends_with("; recomputing it"),
            "{}",
            warnings[0]
        );
        assert!(reader.take_warnings().is_empty(), "taken once");
        // The recomputed entry is whole again: read back without a warning.
        drop(reader.load(1).unwrap());
        assert_eq!(reader.stats().hits, 1);
        assert!(reader.take_warnings().is_empty());
    }
}
