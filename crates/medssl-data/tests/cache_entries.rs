//! The preprocessing cache against running its pipeline directly: entries give back
//! the pipeline's output bit for bit, are reused without running it, and are recomputed
//! when the configuration or the source changes or the file is damaged.

use std::fs::{self, OpenOptions};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use medssl_data::cache::{CacheStats, PreprocessCache};
use medssl_data::loader::{Loader, LoaderConfig, SampleSource, file_fingerprint};
use medssl_data::{DataError, Pipeline, Result, Rng, Sample, Transform, rng};
use medssl_io::Volume;
use medssl_io::nalgebra::Matrix4;
use ndarray::Array4;
use rand::RngExt;

/// Scans whose content changes with `version` (as a rewritten file would).
struct Scans {
    count: usize,
    shape: [usize; 3],
    version: AtomicU64,
}

impl Scans {
    fn new(count: usize) -> Arc<Scans> {
        Arc::new(Scans {
            count,
            shape: [5, 6, 7],
            version: AtomicU64::new(1),
        })
    }
}

impl SampleSource for Scans {
    fn len(&self) -> usize {
        self.count
    }

    fn id(&self, index: usize) -> String {
        format!("scan {index}/ct")
    }

    fn fingerprint(&self, index: usize) -> Result<String> {
        Ok(format!(
            "/data/scan{index}.nii.gz|v{}",
            self.version.load(Ordering::SeqCst)
        ))
    }

    /// Values that stress a bit-exact format: negative zero, subnormals, NaN payloads,
    /// the extremes of f32; an oblique affine with no short decimal form.
    fn load(&self, index: usize) -> Result<Sample> {
        let version = self.version.load(Ordering::SeqCst) as f32;
        let [a, b, c] = self.shape;
        let specials = [
            -0.0,
            f32::from_bits(1),
            f32::from_bits(0x7fc0_1234),
            f32::MAX,
            f32::MIN_POSITIVE,
        ];
        let image = Array4::from_shape_fn((2, a, b, c), |(ch, x, y, z)| {
            let n = ((ch * a + x) * b + y) * c + z;
            if n % 17 == 3 {
                specials[n % specials.len()]
            } else {
                (index as f32 + 1.0) * version * (n as f32 * 0.731).sin()
            }
        });
        let label = Array4::from_shape_fn((1, a, b, c), |(_, x, y, z)| ((x * y + z) % 4) as f32);
        let (s, t) = (0.3f64.sin(), 0.3f64.cos());
        let affine = Matrix4::new(
            0.8 * t,
            -0.8 * s,
            0.0,
            -91.1 + index as f64 / 3.0,
            0.8 * s,
            0.8 * t,
            0.0,
            1.0 / 7.0,
            0.0,
            0.0,
            2.5e-3 * 1e3 / 3.0,
            -0.1 - 0.2,
            0.0,
            0.0,
            0.0,
            1.0,
        );
        Sample::labelled(
            self.id(index),
            Volume::new(image, affine),
            Volume::new(label, affine),
        )
    }
}

/// The expensive deterministic step, counting its runs: multiplies the image by 2.
#[derive(Debug)]
struct Doubled {
    runs: Arc<AtomicUsize>,
}

impl Transform for Doubled {
    fn name(&self) -> &'static str {
        "doubled"
    }

    fn is_random(&self) -> bool {
        false
    }

    fn apply(&self, mut sample: Sample, _: &mut Rng) -> Result<Vec<Sample>> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        sample.image.data_mut().mapv_inplace(|v| v * 2.0);
        Ok(vec![sample])
    }
}

/// A random step: negates the image with probability 1/2.
#[derive(Debug)]
struct RandomNegation;

impl Transform for RandomNegation {
    fn name(&self) -> &'static str {
        "random_negation"
    }

    fn is_random(&self) -> bool {
        true
    }

    fn apply(&self, mut sample: Sample, rng: &mut Rng) -> Result<Vec<Sample>> {
        if rng.random_bool(0.5) {
            sample.image.data_mut().mapv_inplace(|v| -v);
        }
        Ok(vec![sample])
    }
}

/// A deterministic step that wrongly gives two samples.
#[derive(Debug)]
struct Twice;

impl Transform for Twice {
    fn name(&self) -> &'static str {
        "twice"
    }

    fn is_random(&self) -> bool {
        false
    }

    fn apply(&self, sample: Sample, _: &mut Rng) -> Result<Vec<Sample>> {
        Ok(vec![sample.clone(), sample])
    }
}

fn doubling(runs: &Arc<AtomicUsize>) -> Pipeline {
    Pipeline::new(vec![Box::new(Doubled { runs: runs.clone() })])
}

fn cache(dir: &Path, scans: &Arc<Scans>, runs: &Arc<AtomicUsize>, config: &str) -> PreprocessCache {
    PreprocessCache::new(dir, scans.clone(), doubling(runs), config).unwrap()
}

/// The pipeline's own output for case `index`.
fn direct(scans: &Scans, index: usize) -> Sample {
    let sample = scans.load(index).unwrap();
    let mut out = doubling(&Arc::default())
        .run(sample, &mut rng::stream(0, &[]))
        .unwrap();
    out.pop().unwrap()
}

/// Equal bit for bit: NaN payloads, signed zeros and every affine bit included.
fn assert_same_bits(got: &Sample, expected: &Sample) {
    assert_eq!(got.id, expected.id);
    let volumes = |s: &Sample| [Some(s.image.clone()), s.label.clone()];
    for (g, e) in volumes(got).iter().zip(volumes(expected).iter()) {
        let (g, e) = (g.as_ref().unwrap(), e.as_ref().unwrap());
        assert_eq!(g.data().shape(), e.data().shape(), "{}", got.id);
        assert!(
            g.data()
                .iter()
                .zip(e.data())
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "voxels of {} differ",
            got.id
        );
        assert!(
            g.affine()
                .iter()
                .zip(e.affine().iter())
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "affine of {} differs",
            got.id
        );
    }
}

fn runs(count: &Arc<AtomicUsize>) -> usize {
    count.load(Ordering::SeqCst)
}

#[test]
fn entries_give_back_the_pipeline_output_without_running_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let scans = Scans::new(4);
    let count = Arc::new(AtomicUsize::new(0));
    let first = cache(dir.path(), &scans, &count, "doubled v1");
    for i in 0..4 {
        assert_same_bits(&first.load(i).unwrap(), &direct(&scans, i));
    }
    assert_eq!(runs(&count), 4);
    assert_eq!(
        first.stats(),
        CacheStats {
            hits: 0,
            computed: 4,
            rejected: 0
        }
    );

    // A new cache on the same directory, as the next run would make.
    let second = cache(dir.path(), &scans, &count, "doubled v1");
    for i in (0..4).rev() {
        assert_same_bits(&second.load(i).unwrap(), &direct(&scans, i));
    }
    assert_eq!(runs(&count), 4, "the pipeline ran again");
    assert_eq!(
        second.stats(),
        CacheStats {
            hits: 4,
            computed: 0,
            rejected: 0
        }
    );
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 4);
    let name = second.entry_path(1).unwrap();
    let name = name.file_name().unwrap().to_string_lossy();
    assert!(
        name.starts_with("scan_1_ct-") && name.ends_with(".bin"),
        "{name}"
    );
}

#[test]
fn a_changed_configuration_or_source_file_is_recomputed() {
    let dir = tempfile::tempdir().unwrap();
    let scans = Scans::new(3);
    let count = Arc::new(AtomicUsize::new(0));
    let v1 = cache(dir.path(), &scans, &count, "doubled v1");
    (0..3).for_each(|i| drop(v1.load(i).unwrap()));
    let fingerprint_v1 = v1.fingerprint(0).unwrap();

    let v2 = cache(dir.path(), &scans, &count, "doubled v2");
    (0..3).for_each(|i| drop(v2.load(i).unwrap()));
    assert_eq!(runs(&count), 6);
    assert_ne!(v2.fingerprint(0).unwrap(), fingerprint_v1);

    scans.version.store(2, Ordering::SeqCst);
    for i in 0..3 {
        assert_same_bits(&v1.load(i).unwrap(), &direct(&scans, i));
    }
    assert_eq!(runs(&count), 9);
    assert_ne!(v1.fingerprint(0).unwrap(), fingerprint_v1);
    assert_eq!(v1.stats().rejected, 0);
}

#[test]
fn damaged_entries_are_detected_and_recomputed() {
    let dir = tempfile::tempdir().unwrap();
    let scans = Scans::new(5);
    let count = Arc::new(AtomicUsize::new(0));
    let warm = cache(dir.path(), &scans, &count, "doubled");
    (0..5).for_each(|i| drop(warm.load(i).unwrap()));
    let path = |i| warm.entry_path(i).unwrap();
    let len = fs::metadata(path(0)).unwrap().len();

    // Cut short by the last byte of the checksum.
    OpenOptions::new()
        .write(true)
        .open(path(0))
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    // One voxel bit flipped in the middle.
    let mut bytes = fs::read(path(1)).unwrap();
    bytes[len as usize / 2] ^= 0x10;
    fs::write(path(1), bytes).unwrap();
    // Only the first bytes of the header.
    OpenOptions::new()
        .write(true)
        .open(path(2))
        .unwrap()
        .set_len(10)
        .unwrap();
    // Another case's entry under this case's name.
    fs::copy(path(4), path(3)).unwrap();

    let count_after_warm = runs(&count);
    let reader = cache(dir.path(), &scans, &count, "doubled");
    for i in 0..5 {
        assert_same_bits(&reader.load(i).unwrap(), &direct(&scans, i));
    }
    assert_eq!(runs(&count) - count_after_warm, 4);
    assert_eq!(
        reader.stats(),
        CacheStats {
            hits: 1,
            computed: 4,
            rejected: 4
        }
    );

    let again = cache(dir.path(), &scans, &count, "doubled");
    (0..5).for_each(|i| drop(again.load(i).unwrap()));
    assert_eq!(
        again.stats(),
        CacheStats {
            hits: 5,
            computed: 0,
            rejected: 0
        }
    );
}

#[test]
fn threads_sharing_a_directory_get_identical_results() {
    let dir = tempfile::tempdir().unwrap();
    let scans = Scans::new(6);
    let count = Arc::new(AtomicUsize::new(0));
    // Separate caches on one directory, as separate processes would have.
    let caches: Vec<_> = (0..6)
        .map(|_| cache(dir.path(), &scans, &count, "doubled"))
        .collect();
    let expected: Vec<Sample> = (0..6).map(|i| direct(&scans, i)).collect();
    std::thread::scope(|scope| {
        for (t, cache) in caches.iter().enumerate() {
            let expected = &expected;
            scope.spawn(move || {
                for round in 0..3 {
                    for k in 0..6 {
                        let i = (k + t + round) % 6;
                        assert_same_bits(&cache.load(i).unwrap(), &expected[i]);
                    }
                }
            });
        }
    });
    let rejected: usize = caches.iter().map(|c| c.stats().rejected).sum();
    assert_eq!(rejected, 0, "a reader saw a partial entry");
    let names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 6, "temporary files left: {names:?}");
    let fresh = cache(dir.path(), &scans, &count, "doubled");
    (0..6).for_each(|i| drop(fresh.load(i).unwrap()));
    assert_eq!(
        fresh.stats(),
        CacheStats {
            hits: 6,
            computed: 0,
            rejected: 0
        }
    );
}

#[test]
fn a_loader_over_the_cache_delivers_what_the_whole_pipeline_does() {
    let dir = tempfile::tempdir().unwrap();
    let scans = Scans::new(5);
    let count = Arc::new(AtomicUsize::new(0));
    let whole = || {
        Pipeline::new(vec![
            Box::new(Doubled {
                runs: count.clone(),
            }),
            Box::new(RandomNegation),
        ])
    };
    let (prefix, rest) = whole().split_deterministic();
    assert_eq!((prefix.steps().len(), rest.steps().len()), (1, 1));
    let cached =
        Arc::new(PreprocessCache::new(dir.path(), scans.clone(), prefix, "doubled").unwrap());
    let config = LoaderConfig {
        batch_size: 2,
        num_workers: 3,
        ..LoaderConfig::default()
    };
    let uncached = Loader::new(scans.clone(), whole(), config.clone(), 11).unwrap();
    let from_cache = Loader::new(cached.clone(), rest, config, 11).unwrap();
    // Batches as bit patterns, so NaN voxels compare equal to themselves.
    let bits = |loader: &Loader, epoch| -> Vec<(Vec<u32>, Vec<u32>, Vec<String>)> {
        loader
            .epoch(epoch, 0)
            .map(|batch| {
                let batch = batch.unwrap();
                let label = batch.label.unwrap();
                (
                    batch.image.iter().map(|v| v.to_bits()).collect(),
                    label.iter().map(|v| v.to_bits()).collect(),
                    batch.ids,
                )
            })
            .collect()
    };
    for epoch in 0..3 {
        let expected = bits(&uncached, epoch);
        let got = bits(&from_cache, epoch);
        assert_eq!(got, expected, "epoch {epoch}");
    }
    assert_eq!(
        cached.stats(),
        CacheStats {
            hits: 10,
            computed: 5,
            rejected: 0
        }
    );
}

#[test]
fn random_steps_and_several_outputs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let scans = Scans::new(1);
    let random = Pipeline::new(vec![Box::new(RandomNegation)]);
    let err = PreprocessCache::new(dir.path(), scans.clone(), random, "x")
        .err()
        .unwrap();
    assert!(matches!(err, DataError::Config(_)));
    assert!(
        err.to_string().contains("step `random_negation` is random"),
        "{err}"
    );

    let twice =
        PreprocessCache::new(dir.path(), scans, Pipeline::new(vec![Box::new(Twice)]), "x").unwrap();
    let err = twice.load(0).unwrap_err().to_string();
    assert!(
        err.starts_with("case scan 0/ct: the cached preprocessing gave 2 samples"),
        "{err}"
    );
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn file_fingerprints_follow_the_file_content() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scan.nii");
    fs::write(&path, b"abc").unwrap();
    let before = file_fingerprint(&path).unwrap();
    assert!(
        before.starts_with(&format!("{}|3|", path.display())),
        "{before}"
    );
    fs::write(&path, b"abcde").unwrap();
    assert_ne!(file_fingerprint(&path).unwrap(), before);

    let missing = dir.path().join("missing.nii");
    let err = file_fingerprint(&missing).unwrap_err();
    assert!(
        matches!(&err, DataError::Os { path, .. } if *path == missing),
        "{err}"
    );
}

/// Writes one 300^3 entry and reads it back: MB/s of reading (page cache) and
/// writing. `cargo test --release -p medssl-data --test cache_entries -- --ignored
/// --nocapture`.
#[test]
#[ignore = "throughput measurement"]
fn read_throughput_of_a_300_cubed_entry() {
    let dir = tempfile::tempdir().unwrap();
    let scans = Arc::new(Scans {
        count: 1,
        shape: [300, 300, 300],
        version: AtomicU64::new(1),
    });
    let count = Arc::new(AtomicUsize::new(0));
    let cache = cache(dir.path(), &scans, &count, "doubled");
    let started = Instant::now();
    let written = cache.load(0).unwrap();
    let compute_and_write = started.elapsed().as_secs_f64();
    let bytes = fs::metadata(cache.entry_path(0).unwrap()).unwrap().len() as f64;
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let started = Instant::now();
        let read = cache.load(0).unwrap();
        best = best.min(started.elapsed().as_secs_f64());
        assert_same_bits(&read, &written);
    }
    assert_eq!(
        cache.stats(),
        CacheStats {
            hits: 5,
            computed: 1,
            rejected: 0
        }
    );
    println!(
        "entry {:.0} MB: read {:.0} MB/s (best of 5), load + compute + write {:.2} s",
        bytes / 1e6,
        bytes / 1e6 / best,
        compute_and_write
    );
}
