//! The background loader against a sequential reference: the batches of an epoch are
//! those of running the pipeline case by case in the epoch's order, whatever the number
//! of workers, and resuming, errors and stopping behave as documented.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use medssl_data::loader::{Batch, Loader, LoaderConfig, SampleSource};
use medssl_data::spatial::region::extract_sample;
use medssl_data::{DataError, Pipeline, Result, Rng, Sample, Transform, rng};
use medssl_io::Volume;
use medssl_io::nalgebra::{Matrix4, Vector4};
use ndarray::{Array4, Array5};
use rand::RngExt;

/// Synthetic cases: case `i` is a `[1, I, J, K]` volume whose voxel `(x, y, z)` holds
/// `1000 i + 100 x + 10 y + z`, labelled with `(x + y + z) % 3`.
struct Cases {
    count: usize,
    /// The shape of case `i`.
    shape: fn(usize) -> [usize; 3],
    /// How long loading case `i` takes.
    delay: fn(usize) -> Duration,
    /// Cases whose loading fails.
    broken: Vec<usize>,
    loads: AtomicUsize,
}

impl Cases {
    fn new(count: usize) -> Cases {
        Cases {
            count,
            shape: |_| [4, 4, 4],
            // Uneven times, so workers finish out of order.
            delay: |i| Duration::from_micros((i as u64 * 7 % 5) * 300),
            broken: Vec::new(),
            loads: AtomicUsize::new(0),
        }
    }
}

impl SampleSource for Cases {
    fn len(&self) -> usize {
        self.count
    }

    fn id(&self, index: usize) -> String {
        format!("case{index:03}")
    }

    fn fingerprint(&self, index: usize) -> Result<String> {
        Ok(self.id(index))
    }

    fn load(&self, index: usize) -> Result<Sample> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        sleep((self.delay)(index));
        if self.broken.contains(&index) {
            return Err(DataError::file(
                format!("/data/{}.nii.gz", self.id(index)),
                "unexpected end of file",
            ));
        }
        let [a, b, c] = (self.shape)(index);
        let image = Array4::from_shape_fn((1, a, b, c), |(_, x, y, z)| {
            (1000 * index + 100 * x + 10 * y + z) as f32
        });
        let label = Array4::from_shape_fn((1, a, b, c), |(_, x, y, z)| ((x + y + z) % 3) as f32);
        let affine = Matrix4::from_diagonal(&Vector4::new(1.5, 2.0, 2.5, 1.0));
        Sample::labelled(
            self.id(index),
            Volume::new(image, affine),
            Volume::new(label, affine),
        )
    }
}

/// `num_samples` random `[3, 3, 3]` boxes inside the volume (a fan-out step).
#[derive(Debug)]
struct RandomBoxes {
    num_samples: usize,
}

impl Transform for RandomBoxes {
    fn name(&self) -> &'static str {
        "random_boxes"
    }

    fn is_random(&self) -> bool {
        true
    }

    fn apply(&self, sample: Sample, rng: &mut Rng) -> Result<Vec<Sample>> {
        let shape = sample.spatial_shape();
        Ok((0..self.num_samples)
            .map(|_| {
                let start = shape.map(|n| rng.random_range(0..=n - 3) as isize);
                extract_sample(&sample, start, [3, 3, 3], 0.0)
            })
            .collect())
    }
}

/// Adds one offset in `[-1, 1)` drawn from the stream to every image voxel.
#[derive(Debug)]
struct RandomShift;

impl Transform for RandomShift {
    fn name(&self) -> &'static str {
        "random_shift"
    }

    fn is_random(&self) -> bool {
        true
    }

    fn apply(&self, mut sample: Sample, rng: &mut Rng) -> Result<Vec<Sample>> {
        let offset: f32 = rng.random_range(-1.0..1.0);
        sample.image.data_mut().mapv_inplace(|v| v + offset);
        Ok(vec![sample])
    }
}

/// Panics on one case, as a buggy transform would.
#[derive(Debug)]
struct PanicsOn(&'static str);

impl Transform for PanicsOn {
    fn name(&self) -> &'static str {
        "panics_on"
    }

    fn is_random(&self) -> bool {
        false
    }

    fn apply(&self, sample: Sample, _: &mut Rng) -> Result<Vec<Sample>> {
        if sample.id == self.0 {
            panic!("index 9 out of bounds");
        }
        Ok(vec![sample])
    }
}

fn augmentation() -> Pipeline {
    Pipeline::new(vec![
        Box::new(RandomBoxes { num_samples: 2 }),
        Box::new(RandomShift),
    ])
}

fn config(batch_size: usize, drop_last: bool, num_workers: usize) -> LoaderConfig {
    LoaderConfig {
        batch_size,
        shuffle: true,
        drop_last,
        num_workers,
        prefetch_batches: 2,
    }
}

const SEED: u64 = 42;

/// What an epoch must deliver, computed sequentially: each case of `order` through
/// `pipeline` with the stream `(SEED, [epoch, index])`, samples cut into batches as they
/// come, a case that fails to load giving `Err` naming it where it occurs.
fn reference(
    cases: &Cases,
    pipeline: &Pipeline,
    order: &[usize],
    epoch: u64,
    batch_size: usize,
    drop_last: bool,
) -> Vec<std::result::Result<Batch, String>> {
    let mut out = Vec::new();
    let mut pending: Vec<Sample> = Vec::new();
    for &index in order {
        let mut rng = rng::stream(SEED, &[epoch, index as u64]);
        match cases
            .load(index)
            .and_then(|sample| pipeline.run(sample, &mut rng))
        {
            Ok(samples) => {
                for sample in samples {
                    pending.push(sample);
                    if pending.len() == batch_size {
                        out.push(Ok(stack_by_hand(&pending)));
                        pending.clear();
                    }
                }
            }
            Err(e) => out.push(Err(format!("case {}: {e}", cases.id(index)))),
        }
    }
    if !pending.is_empty() && !drop_last {
        out.push(Ok(stack_by_hand(&pending)));
    }
    out
}

/// `[B, C, I, J, K]` by indexing each sample.
fn stack_by_hand(samples: &[Sample]) -> Batch {
    let (c, i, j, k) = samples[0].image.data().dim();
    let image = Array5::from_shape_fn((samples.len(), c, i, j, k), |(b, c, i, j, k)| {
        samples[b].image.data()[[c, i, j, k]]
    });
    let label = Array5::from_shape_fn((samples.len(), 1, i, j, k), |(b, c, i, j, k)| {
        samples[b].label.as_ref().unwrap().data()[[c, i, j, k]]
    });
    Batch {
        image,
        label: Some(label),
        ids: samples.iter().map(|s| s.id.clone()).collect(),
    }
}

fn collect(
    loader: &Loader,
    epoch: u64,
    start_batch: usize,
) -> Vec<std::result::Result<Batch, String>> {
    loader
        .epoch(epoch, start_batch)
        .map(|item| item.map_err(|e| e.to_string()))
        .collect()
}

#[test]
fn batches_match_the_sequential_reference_for_any_worker_count() {
    let cases = Arc::new(Cases::new(11));
    let pipeline = augmentation();
    for drop_last in [false, true] {
        let first =
            Loader::new(cases.clone(), augmentation(), config(3, drop_last, 1), SEED).unwrap();
        let expected = reference(&cases, &pipeline, &first.order(5), 5, 3, drop_last);
        // 11 cases x 2 boxes = 22 samples: 7 batches of 3 and one of 1.
        assert_eq!(expected.len(), if drop_last { 7 } else { 8 });
        for workers in [1, 2, 4] {
            let loader = Loader::new(
                cases.clone(),
                augmentation(),
                config(3, drop_last, workers),
                SEED,
            )
            .unwrap();
            assert_eq!(collect(&loader, 5, 0), expected, "{workers} workers");
            assert_eq!(
                collect(&loader, 5, 0),
                expected,
                "second run, {workers} workers"
            );
        }
    }
}

#[test]
fn epochs_follow_their_seeded_permutation() {
    let cases = Arc::new(Cases::new(9));
    let loader = Loader::new(cases.clone(), augmentation(), config(4, false, 2), SEED).unwrap();
    let ids = |epoch| -> Vec<String> {
        loader
            .epoch(epoch, 0)
            .flat_map(|batch| batch.unwrap().ids)
            .collect()
    };
    for epoch in [0, 1] {
        let order = loader.order(epoch);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..9).collect::<Vec<_>>());
        // Each case contributes its two boxes in turn.
        let expected: Vec<String> = order
            .iter()
            .flat_map(|&i| [cases.id(i), cases.id(i)])
            .collect();
        assert_eq!(ids(epoch), expected);
    }
    assert_ne!(loader.order(0), loader.order(1));
    let other_seed =
        Loader::new(cases.clone(), augmentation(), config(4, false, 2), SEED + 1).unwrap();
    assert_ne!(other_seed.order(0), loader.order(0));

    let in_order = LoaderConfig {
        shuffle: false,
        ..config(4, false, 2)
    };
    let loader = Loader::new(cases.clone(), augmentation(), in_order, SEED).unwrap();
    assert_eq!(loader.order(3), (0..9).collect::<Vec<_>>());
}

#[test]
fn a_resumed_epoch_is_the_tail_of_the_whole_epoch() {
    let cases = Arc::new(Cases::new(7));
    for drop_last in [false, true] {
        // 7 cases x 2 boxes in batches of 3: batches start mid-case.
        let loader =
            Loader::new(cases.clone(), augmentation(), config(3, drop_last, 3), SEED).unwrap();
        let whole = collect(&loader, 2, 0);
        assert!(whole.iter().all(|b| b.is_ok()));
        for start in 0..=whole.len() + 1 {
            let tail = &whole[start.min(whole.len())..];
            assert_eq!(collect(&loader, 2, start), tail, "from batch {start}");
        }
    }
}

#[test]
fn errors_arrive_in_order_and_name_the_case() {
    let mut cases = Cases::new(10);
    cases.broken = vec![4];
    let cases = Arc::new(cases);
    let pipeline = || {
        Pipeline::new(vec![
            Box::new(PanicsOn("case007")),
            Box::new(RandomBoxes { num_samples: 2 }),
            Box::new(RandomShift),
        ])
    };
    let loader = Loader::new(cases.clone(), pipeline(), config(3, false, 3), SEED).unwrap();
    let delivered = collect(&loader, 0, 0);

    // The reference turns the panic into the loader's error by hand.
    let order = loader.order(0);
    let without_seven: Vec<usize> = order.iter().copied().filter(|&i| i != 7).collect();
    let mut expected = reference(&cases, &pipeline(), &without_seven, 0, 3, false);
    let seven_at = order.iter().position(|&i| i == 7).unwrap();
    let samples_before: usize = order[..seven_at].iter().filter(|&&i| i != 4).count() * 2;
    let errors_before = order[..seven_at].contains(&4) as usize;
    expected.insert(
        samples_before / 3 + errors_before,
        Err("case case007: panicked: index 9 out of bounds".into()),
    );
    assert_eq!(delivered, expected);
    let errors: Vec<&String> = delivered.iter().filter_map(|d| d.as_ref().err()).collect();
    assert_eq!(errors.len(), 2);
    assert!(
        errors.contains(&&"case case004: /data/case004.nii.gz: unexpected end of file".to_string()),
        "{errors:?}"
    );
}

#[test]
fn samples_of_different_shapes_in_one_batch_name_both_cases() {
    let mut cases = Cases::new(4);
    cases.shape = |i| if i == 2 { [5, 4, 4] } else { [4, 4, 4] };
    let in_order = LoaderConfig {
        shuffle: false,
        ..config(2, false, 2)
    };
    let loader = Loader::new(Arc::new(cases), Pipeline::default(), in_order, SEED).unwrap();
    let delivered = collect(&loader, 0, 0);
    assert_eq!(delivered.len(), 2);
    assert_eq!(delivered[0].as_ref().unwrap().ids, ["case000", "case001"]);
    assert_eq!(
        delivered[1].as_ref().unwrap_err(),
        "case case003: image shape [1, 4, 4, 4] differs from [1, 5, 4, 4] of case case002 in \
         the same batch; samples of one batch must share a shape (end the pipeline with a crop \
         or resize)"
    );
}

#[test]
fn labelled_and_unlabelled_samples_do_not_share_a_batch() {
    let cases = Cases::new(2);
    let labelled = cases.load(0).unwrap();
    let mut unlabelled = cases.load(1).unwrap();
    unlabelled.label = None;
    let err = Batch::stack(&[labelled, unlabelled]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "case case001: has no label while case case000 in the same batch has one"
    );
}

#[test]
fn dropping_an_epoch_stops_its_threads_promptly() {
    let mut cases = Cases::new(400);
    cases.delay = |_| Duration::from_millis(10);
    let cases = Arc::new(cases);
    let loader = Loader::new(cases.clone(), augmentation(), config(2, false, 4), SEED).unwrap();
    let handles_before = Arc::strong_count(&cases);

    let mut epoch = loader.epoch(0, 0);
    assert!(epoch.next().unwrap().is_ok());
    // A consumer that does not read: the workers stop after the window and the queue.
    sleep(Duration::from_millis(300));
    let loaded = cases.loads.load(Ordering::SeqCst);
    // A case gives one batch of 2: one consumed, two queued, one held by the collator
    // waiting for queue space, and workers at most 2 x 4 positions ahead of it.
    assert!(
        loaded <= 1 + 2 + 1 + 8,
        "{loaded} cases loaded while nobody consumed"
    );
    let started = Instant::now();
    drop(epoch);
    let stop_time = started.elapsed();
    // The whole epoch takes 400 x 10 ms / 4 workers = 1 s; stopping waits for at most
    // the case each worker is on.
    assert!(
        stop_time < Duration::from_millis(250),
        "drop took {stop_time:?}"
    );
    assert_eq!(
        Arc::strong_count(&cases),
        handles_before,
        "threads still hold the source"
    );
    let after = cases.loads.load(Ordering::SeqCst);
    sleep(Duration::from_millis(50));
    assert_eq!(
        cases.loads.load(Ordering::SeqCst),
        after,
        "a worker still runs"
    );
}

#[test]
fn bad_settings_are_refused_with_the_setting_named() {
    let cases: Arc<dyn SampleSource> = Arc::new(Cases::new(1));
    let zero_batch = Loader::new(
        cases.clone(),
        Pipeline::default(),
        config(0, false, 1),
        SEED,
    );
    assert_eq!(
        zero_batch.err().unwrap().to_string(),
        "data.loader.batch_size must be at least 1"
    );
    let no_workers = Loader::new(cases, Pipeline::default(), config(1, false, 0), SEED);
    assert!(
        no_workers
            .err()
            .unwrap()
            .to_string()
            .contains("num_workers must be at least 1")
    );

    let parsed: LoaderConfig = toml::from_str("batch_size = 4\nnum_workers = 8").unwrap();
    assert_eq!(
        parsed,
        LoaderConfig {
            batch_size: 4,
            num_workers: 8,
            ..LoaderConfig::default()
        }
    );
    let typo = toml::from_str::<LoaderConfig>("batch_sise = 4")
        .unwrap_err()
        .to_string();
    assert!(
        typo.contains("unknown field `batch_sise`") && typo.contains("batch_size"),
        "{typo}"
    );
}

/// A worker count beyond the machine's limit (4 per core, at least 64) is a
/// configuration error naming the setting and the limit, before any thread starts.
#[test]
fn too_many_workers_are_refused_naming_the_limit() {
    let cases: Arc<dyn SampleSource> = Arc::new(Cases::new(1));
    let max = LoaderConfig::max_workers();
    assert!(max >= 64);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(max >= 4 * cores);
    for ok in [1, 64, max] {
        config(1, false, ok).check().unwrap();
    }
    let too_many = Loader::new(cases, Pipeline::default(), config(1, false, max + 1), SEED);
    let message = too_many.err().unwrap().to_string();
    assert_eq!(
        message,
        format!(
            "data.loader.num_workers = {} is more than this machine's limit of {max} loader \
             threads (4 per core, at least 64)",
            max + 1
        )
    );
    let absurd = config(1, false, usize::MAX)
        .check()
        .unwrap_err()
        .to_string();
    assert!(absurd.contains("data.loader.num_workers") && absurd.contains(&max.to_string()));
}

/// Batches per second of a one-step pipeline (a random shift) on 2 x [1, 64, 64, 64]
/// batches, by number of workers. `cargo test --release -p medssl-data --test
/// loader_epochs -- --ignored --nocapture`.
#[test]
#[ignore = "throughput measurement"]
fn throughput_of_a_trivial_pipeline() {
    struct Ready(Sample);
    impl SampleSource for Ready {
        fn len(&self) -> usize {
            2000
        }
        fn id(&self, index: usize) -> String {
            format!("ready{index}")
        }
        fn fingerprint(&self, index: usize) -> Result<String> {
            Ok(self.id(index))
        }
        fn load(&self, _: usize) -> Result<Sample> {
            Ok(self.0.clone())
        }
    }
    let image = Volume::new(Array4::from_elem((1, 64, 64, 64), 1.0), Matrix4::identity());
    let source = Arc::new(Ready(Sample::unlabelled("ready", image)));
    for workers in [1, 2, 4] {
        let loader = Loader::new(
            source.clone(),
            Pipeline::new(vec![Box::new(RandomShift)]),
            config(2, true, workers),
            SEED,
        )
        .unwrap();
        let started = Instant::now();
        let batches = loader.epoch(0, 0).filter(|b| b.is_ok()).count();
        let seconds = started.elapsed().as_secs_f64();
        assert_eq!(batches, 1000);
        println!(
            "{workers} workers: {:.0} batches/s ({:.0} MB/s of batches)",
            batches as f64 / seconds,
            batches as f64 * 2.0 * 64f64.powi(3) * 4.0 / 1e6 / seconds
        );
    }
}
