//! Every pretraining method learns: a run on a small synthetic collection must bring
//! the method's loss well below its chance level and keep its collapse monitor above a
//! floor.
//!
//! The chance level of each loss is the loss of a network that has learnt nothing about
//! its input, computed from the run's own settings (read back from its configuration):
//!
//! - NT-Xent (SimCLR, SwinUNETR-SSL's contrastive term): `ln(2B − 1)`, the loss when
//!   every one of the `2B − 1` other views of the batch is as similar as the positive
//!   (exactly the loss of collapsed embeddings);
//! - MoCo v3: `2 · 2T · ln B`, two `ctr` terms of `B` keys each, scaled by `2T`;
//! - CPC: `ln(B · P)`, each prediction against the `B · P` predicted cells of the batch;
//! - rotation (RotNet, SwinUNETR-SSL): `ln(classes)`;
//! - distillation (DINO, iBOT, SMIT's distillation terms): `ln(out_dim)`, the
//!   cross-entropy against a uniform target, which is what a teacher collapsed to
//!   uniform gives;
//! - reconstruction (SimMIM, SMIT, SwinUNETR-SSL): the L1 of the best constant
//!   prediction, computed from the very batches the run judged: the loader draws them
//!   again with the run's seed and settings, and the baseline is the L1 of the
//!   reconstructed voxels (SimMIM and SMIT: the masked ones; SwinUNETR-SSL: the whole
//!   clean copies) to their batch mean and to their batch median, whichever is lower.
//!
//! A method's loss (the mean over the last steps of the run) must be below half
//! ([`FACTOR`]) the sum of its terms' chance levels, each weighted as the method weights
//! the term. The collapse monitor, `embedding_spread`, must stay above a tenth of its
//! value at the first step (the trainer's own collapse warning, `COLLAPSE_FRACTION`): a
//! random encoder already maps different crops to similar embeddings, so its absolute
//! value says little, while a spread falling tenfold is collapse. The rotation methods
//! also need their accuracy at twice chance.
//!
//! A distillation loss cannot go below its teacher's entropy, and a teacher collapsed to
//! uniform brings both to `ln(out_dim)`, so its chance level cannot tell learning from
//! that collapse; [`Verdict::distillation`] asks instead for a teacher entropy between
//! `ln 2` and `ln(out_dim) − ln 4` (neither one prototype nor near uniform) and for the
//! student's excess over it (loss less teacher entropy) to halve from the first step.
//!
//! The run ([`learning`]): 8 volumes, batches of 8, 200 steps judged over the last 20,
//! on the tiny preset's encoder with 4³ attention windows (8 times cheaper a step than
//! 7³ windows on 32³ views). Views, masks, temperatures and schedules are the tiny
//! preset's, learning rates the recipe's, except where a test says otherwise. The
//! rotation methods learn on anatomy phantoms, the masked-modelling methods on texture
//! volumes at per-volume intensity levels, the others on plain texture volumes
//! ([`Collection`]): a run on phantoms, alike from case to case, left DINO and SimCLR
//! far slower.
//!
//! Why so long: at the tiny preset's batch of 2, neither this implementation nor a
//! PyTorch + MONAI 1.6.1 reference (the same Swin encoder, views and optimiser) learns
//! anything in 40 steps: SimCLR's NT-Xent falls to exactly `ln 3` with collapsed
//! embeddings in both, and RotNet stays at chance in both, also at batch 8 over 60
//! steps. A run that shows learning costs 3 to 15 minutes on 2 cores, so only RotNet's
//! runs in CI (about 2 minutes there); the others run with `--ignored`.
//!
//! State (this commit), measured on a 2-core Intel Xeon, the test's own runs unless
//! said:
//!
//! - RotNet learns (loss 1.12 against ln 10 = 2.30, accuracy 0.66, spread 0.16 → 0.87).
//! - DINO learns with the tiny preset's batch norm in the head (teacher entropy 4.28
//!   against ln 1024 = 6.93, student excess 3.69 → 1.08, spread 0.24 → 0.09). Without
//!   it the teacher went uniform within 20 steps (entropy 6.89), and so did a PyTorch +
//!   MONAI reference of the same setting.
//! - SimMIM learns on the levels (L1 0.044 against the best constant's 0.153, spread
//!   0.19 → 0.17). On plain textures it predicted the constant (0.199 against 0.197)
//!   with its embedding collapsing: a masked 16³ block there is unpredictable from
//!   the visible ones.
//! - SMIT learns on the levels with the tiny preset's teacher temperature of 0.04
//!   (teacher entropy 2.08, excess 3.37 → 0.55, patch term 5.33 under its 5.55
//!   ceiling, L1 0.041 against 0.152, spread 0.09 → 0.31). With the teacher warmed to
//!   0.07 its entropy stayed at 5.68 (near uniform) while the reconstruction learnt.
//!   The levels are shared by any two views of a volume, so this run cannot tell
//!   whether SMIT's views share content; that its two views lie inside one crop is
//!   checked in `views_crops.rs` (`smit_views_lie_inside_the_first_crop`).
//! - iBOT learns with the tiny preset's global crops at DINO's 40-100% of the region
//!   (teacher entropy 5.22 under the 5.55 ceiling, student excess 3.54 → 1.22, patch
//!   term 3.07, spread 0.08 → 0.10). At `main_ibot.py`'s 14-100% the teacher drifted
//!   towards uniform (entropy 5.67 at step 200, 5.3 by step 130 of a longer run), also
//!   with masking off (3.3 → 4.9): the small global crops shared too little.
//! - SimCLR learns with the tiny preset's views at 40-100% of the region (NT-Xent 0.55
//!   against ln 15 = 2.71, first step 2.73, spread 0.16 → 0.90). With torchvision's
//!   8-100% (now the `paper` preset's) it fell only to 1.95 in 300 steps: two small
//!   views of a 48³ region share too little.
//! - MoCo v3 learns at the same views with lr 5e-4 and momentum 0.9 (1.82 → 0.60
//!   against 1.66, pooled spread 0.16 → 0.05, above the tenth). At the recipe's 1.5e-4
//!   it stayed at chance for 150 steps (as a PyTorch reference did for 90); at momentum
//!   0.99 it reached 0.96.
//! - CPC learns over a 300-step schedule (3.59 → 1.62 against ln 32 = 3.47, the half
//!   at 1.73; spread 0.17 → 0.50); its loss starts falling late (2.10 at step 187 of a
//!   `medssl pretrain` run of the same settings).
//! - SwinUNETR-SSL (64³ crops, about 20 s a step here) was not run to 200 steps; in its
//!   first 40 the contrastive term fell 2.71 → 2.12, rotation 1.38 → 1.19 (ln 4 = 1.39,
//!   accuracy 0.44 → 0.56), reconstruction 0.23 → 0.06, spread 0.12 → 0.75.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::tensor::Device;
use medssl_data::Pipeline;
use medssl_data::cache::PreprocessCache;
use medssl_data::loader::{Loader, SampleSource};
use medssl_data::manifest::{CollectionSource, Manifest};
use medssl_data::views::ViewBatch;
use medssl_io::nifti::{OutputType, write_volume};
use medssl_ssl::methods::{
    CpcMethod, DinoMethod, IbotMethod, MocoV3Method, RotNetMethod, SimClrMethod, SimMimMethod,
    SmitMethod, SwinUnetrSslMethod,
};
use medssl_ssl::{Method, Preset};
use medssl_synth::{Grid, Kind, generate, texture};
use medssl_train::pretrain::{Pretrain, PretrainConfig};
use serde_json::Value;

mod common;
use common::metrics;

/// The trainer's collapse warning: a spread below this fraction of the first step's.
const COLLAPSE_FRACTION: f64 = 0.1;

/// What a learning run trains on.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Collection {
    /// CT phantoms of 40³ voxels, half abdomen and half head and neck: anatomy has an up
    /// and a down, which the rotation methods must learn to see.
    Anatomy,
    /// Texture volumes of 48³ voxels (smooth random fields, features about 8 voxels
    /// across, `medssl_synth::texture`): each differs from the others everywhere, and
    /// two crops of one share content only where they overlap, so a method whose
    /// positive views share no content cannot learn here. The phantoms, alike from case
    /// to case, made the instance-discrimination and distillation methods learn too
    /// slowly for a test.
    Texture,
    /// Texture volumes each at its own intensity level: the levels spread over the
    /// middle 60% of the run's intensity window (`scale_intensity_range`), the texture a
    /// twentieth of the window in amplitude. The masked-modelling methods have something
    /// to predict from the visible voxels here (the volume's level), which the best
    /// constant cannot know; in the plain textures a masked 16³ block is two texture
    /// features away from most visible voxels, and the best constant was all SimMIM and
    /// SMIT could find there (L1 0.199 against 0.197).
    Levels,
}

/// The run's intensity window, `(a_min, a_max)` of its `scale_intensity_range`.
fn intensity_window(config: &PretrainConfig) -> (f64, f64) {
    let table = config
        .data
        .preprocess
        .steps()
        .iter()
        .find(|step| step.name() == "scale_intensity_range")
        .expect("the preprocessing scales intensities")
        .table();
    let bound = |key: &str| table[key].as_float().expect(key);
    (bound("a_min"), bound("a_max"))
}

/// `volumes` unlabelled volumes of `collection`, for a run of `config`.
fn write_collection(dir: &Path, collection: Collection, volumes: u64, config: &PretrainConfig) {
    std::fs::create_dir_all(dir).unwrap();
    let write = |sample: medssl_data::Sample| {
        let path = dir.join(format!("{}.nii.gz", sample.id));
        write_volume(&path, &sample.image, OutputType::Int16).unwrap();
    };
    match collection {
        Collection::Anatomy => {
            for (kind, cases) in [
                (Kind::AbdomenCt, volumes.div_ceil(2)),
                (Kind::HeadNeckCt, volumes / 2),
            ] {
                let grid = Grid::fitted(kind, [40, 40, 40]).unwrap();
                for case in 0..cases {
                    write(generate(kind, &grid, 3, case));
                }
            }
        }
        Collection::Texture => {
            for case in 0..volumes {
                write(texture([48; 3], 8.0, 3, case).unwrap());
            }
        }
        Collection::Levels => {
            let (low, high) = intensity_window(config);
            let width = high - low;
            for case in 0..volumes {
                // Levels spread evenly over the middle of the window (golden-ratio
                // steps), texture of ±500 scaled to ±width/20.
                let level = low + width * (0.2 + 0.6 * (case as f64 * 0.618_034).fract());
                let mut sample = texture([48; 3], 8.0, 3, case).unwrap();
                sample
                    .image
                    .data_mut()
                    .mapv_inplace(|v| (level + f64::from(v) * width / 10_000.0).round() as f32);
                write(sample);
            }
        }
    }
}

/// How long a run is and what it may change from the tiny preset.
#[derive(Debug, Clone)]
struct Setup {
    /// What it trains on.
    collection: Collection,
    /// Volumes in the collection.
    volumes: u64,
    /// Optimiser steps.
    steps: u64,
    /// The last steps whose mean loss and monitors are judged.
    tail: usize,
    /// Further `key=value` overrides, each with its reason where the test sets it.
    overrides: Vec<String>,
}

/// A finished run: its settings, its step lines and how long it took.
struct Run {
    config: PretrainConfig,
    lines: Vec<Value>,
    seconds: f64,
    data: PathBuf,
    tmp: tempfile::TempDir,
}

impl Run {
    fn batch_size(&self) -> usize {
        self.config.data.loader.batch_size
    }

    fn tail(&self, setup: &Setup) -> &[Value] {
        &self.lines[self.lines.len() - setup.tail..]
    }

    /// The mean of `value` over `lines`.
    fn mean(lines: &[Value], value: impl Fn(&Value) -> Option<f64>) -> f64 {
        let values: Vec<f64> = lines.iter().map(|l| value(l).unwrap()).collect();
        values.iter().sum::<f64>() / values.len() as f64
    }

    fn tail_loss(&self, setup: &Setup) -> f64 {
        Run::mean(self.tail(setup), |l| l["loss"].as_f64())
    }

    fn tail_component(&self, setup: &Setup, name: &str) -> f64 {
        Run::mean(self.tail(setup), |l| l["components"][name].as_f64())
    }

    fn tail_monitor(&self, setup: &Setup, name: &str) -> f64 {
        Run::mean(self.tail(setup), |l| l["monitors"][name].as_f64())
    }

    fn first_monitor(&self, name: &str) -> f64 {
        self.lines[0]["monitors"][name].as_f64().unwrap()
    }

    /// The batches of the judged steps, drawn again by the run's loader (same seed,
    /// preprocessing, views and order; the loader is deterministic, as resuming relies
    /// on).
    fn tail_batches<M: Method>(&self, setup: &Setup) -> Vec<ViewBatch> {
        let config = &self.config;
        assert_eq!(config.train.accumulate, 1, "one batch per step");
        let (manifest, _) = Manifest::index(&self.data, None).unwrap();
        let volumes = manifest.entries.len();
        let source: Arc<dyn SampleSource> = Arc::new(CollectionSource::new(&manifest));
        let preprocess = config.data.preprocess.build();
        let fingerprint = config.data.preprocess.cache_key();
        let cache = self.tmp.path().join("baseline-cache");
        let cached: Arc<dyn SampleSource> =
            Arc::new(PreprocessCache::new(cache, source, preprocess, fingerprint).unwrap());
        let (augment, local_augment) = config.data.view_augmentations();
        let plan = M::view_plan(
            &config.pretext::<M>().unwrap(),
            &config.network(),
            config.encoder.crop,
            augment,
            local_augment,
        )
        .unwrap();
        let loader = Loader::new(cached, plan, config.data.loader.clone(), config.seed).unwrap();
        let per_epoch = config.data.loader.batches(volumes) as u64;
        let steps = self.lines.len() as u64;
        let first = steps - setup.tail as u64;
        let mut batches = Vec::new();
        for epoch in first / per_epoch..steps.div_ceil(per_epoch) {
            for (i, batch) in loader.epoch(epoch, 0).enumerate() {
                let step = epoch * per_epoch + i as u64;
                if (first..steps).contains(&step) {
                    batches.push(batch.unwrap());
                }
            }
        }
        assert_eq!(batches.len(), setup.tail);
        batches
    }
}

/// A run that was never trained: `config` the defaults of `M` at the tiny preset, one
/// step line per entry of `steps` (loss, component `component` equal to it, monitors).
fn fake<M: Method>(component: &str, steps: &[(f64, Value)]) -> Run {
    let lines = steps
        .iter()
        .map(|(loss, monitors)| {
            serde_json::json!({
                "event": "step",
                "loss": loss,
                "components": { component: loss },
                "monitors": monitors,
            })
        })
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    Run {
        config: PretrainConfig::preset::<M>(Preset::Tiny).unwrap(),
        lines,
        seconds: 0.0,
        data: tmp.path().join("ct"),
        tmp,
    }
}

/// Trains method `M` as `setup` says, on a fresh collection.
fn train<M: Method>(setup: &Setup) -> Run {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("ct");
    let out = tmp.path().join("run");
    let mut overrides = vec![
        format!("train.steps={}", setup.steps),
        // One loader worker: the CI machine has 2 cores and the step needs them.
        "data.loader.num_workers=1".into(),
        "seed=5".into(),
    ];
    overrides.extend(setup.overrides.iter().cloned());
    let config = PretrainConfig::load::<M>(Preset::Tiny, None, &overrides).unwrap();
    write_collection(&data, setup.collection, setup.volumes, &config);
    let started = Instant::now();
    let mut run = Pretrain::<M>::start(&data, &out, config, Device::flex()).unwrap();
    run.train(u64::MAX, &mut |_| {}).unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let config = run.config().clone();
    drop(run);
    let lines: Vec<Value> = metrics(&out)
        .into_iter()
        .filter(|l| l["event"] == "step")
        .collect();
    assert_eq!(lines.len() as u64, setup.steps);
    assert!(setup.tail >= 1 && setup.tail <= lines.len());
    Run {
        config,
        lines,
        seconds,
        data,
        tmp,
    }
}

/// The L1 of the best constant prediction of the selected voxels of each batch (to
/// their mean or their median, whichever is lower), averaged over the batches.
/// `select(batch)` lists the voxel values the method's loss reconstructs.
fn constant_l1(batches: &[ViewBatch], select: impl Fn(&ViewBatch) -> Vec<f32>) -> f64 {
    let per_batch: Vec<f64> = batches
        .iter()
        .map(|batch| {
            let mut values: Vec<f64> = select(batch).into_iter().map(f64::from).collect();
            assert!(!values.is_empty());
            let n = values.len() as f64;
            let mean = values.iter().sum::<f64>() / n;
            values.sort_by(f64::total_cmp);
            let median = values[values.len() / 2];
            let l1 = |c: f64| values.iter().map(|v| (v - c).abs()).sum::<f64>() / n;
            l1(mean).min(l1(median))
        })
        .collect();
    per_batch.iter().sum::<f64>() / per_batch.len() as f64
}

/// The voxels of view `v` under its mask (patch-level, `patch` voxels a side).
fn masked_voxels(batch: &ViewBatch, v: usize, patch: usize) -> Vec<f32> {
    let mask = &batch.masks[v];
    batch.views[v]
        .indexed_iter()
        .filter(|((b, _, z, y, x), _)| mask[[*b, z / patch, y / patch, x / patch]])
        .map(|(_, &value)| value)
        .collect()
}

/// One term of a loss: its component name, weight and chance level.
struct Term {
    component: &'static str,
    weight: f64,
    chance: f64,
    why: String,
}

/// What a run must show, and the numbers behind each verdict.
struct Verdict {
    method: &'static str,
    lines: Vec<String>,
    failed: Vec<String>,
}

impl Verdict {
    fn new(method: &'static str, run: &Run, setup: &Setup) -> Verdict {
        Verdict {
            method,
            lines: vec![format!(
                "{method}: {} steps (batch {}, lr {}, {} volumes, judged over the last {}) \
                 in {:.1} s",
                setup.steps,
                run.batch_size(),
                run.config.train.lr,
                setup.volumes,
                setup.tail,
                run.seconds
            )],
            failed: Vec::new(),
        }
    }

    fn check(&mut self, what: String, ok: bool) {
        let line = format!("  [{}] {what}", if ok { "ok" } else { "FAIL" });
        if !ok {
            self.failed.push(line.clone());
        }
        self.lines.push(line);
    }

    /// The loss (tail mean) below `factor ×` the weighted chance levels of `terms`;
    /// each term's own value is shown next to its chance level.
    fn loss(&mut self, run: &Run, setup: &Setup, terms: &[Term], factor: f64) {
        let mut chance = 0.0;
        for term in terms {
            let value = run.tail_component(setup, term.component);
            let level = term.weight * term.chance;
            chance += level;
            self.lines.push(format!(
                "  {}: {value:.4} (chance {level:.4} = {} × {:.4}, {})",
                term.component, term.weight, term.chance, term.why
            ));
        }
        let loss = run.tail_loss(setup);
        let first = run.lines[0]["loss"].as_f64().unwrap();
        self.check(
            format!(
                "loss {loss:.4} < {factor} × chance {chance:.4} = {:.4} (first step {first:.4})",
                factor * chance
            ),
            loss < factor * chance,
        );
    }

    /// One term (tail mean) below `factor ×` its weighted chance level.
    fn component(&mut self, run: &Run, setup: &Setup, term: &Term, factor: f64) {
        let value = run.tail_component(setup, term.component);
        let level = term.weight * term.chance;
        self.check(
            format!(
                "{}: {value:.4} < {factor} × chance {level:.4} (= {} × {:.4}, {})",
                term.component, term.weight, term.chance, term.why
            ),
            value < factor * level,
        );
    }

    /// The tail mean of monitor `name` at least `floor`.
    fn at_least(&mut self, run: &Run, setup: &Setup, name: &str, floor: f64, why: &str) {
        let value = run.tail_monitor(setup, name);
        self.check(
            format!("{name} {value:.4} >= {floor:.4} ({why})"),
            value >= floor,
        );
    }

    /// A self-distillation term (component `component`, weight `weight`, `out_dim`
    /// prototypes, teacher entropy monitored) learning: its cross-entropy cannot go below
    /// the teacher's entropy, and a teacher collapsed to uniform brings both to
    /// `ln(out_dim)`, so the chance level alone cannot tell learning from that collapse.
    /// Two checks instead: the teacher's entropy stays between `ln 2` and
    /// `ln(out_dim) − ln 4` (perplexity between 2 prototypes, a collapse to one, and a
    /// quarter of them, towards uniform), and the student's excess over it (the term
    /// less the teacher's entropy: how far the student is from predicting the teacher's
    /// targets on the other views) falls to at most [`FACTOR`] of its first step's.
    fn distillation(
        &mut self,
        run: &Run,
        setup: &Setup,
        (component, weight): (&str, f64),
        out_dim: usize,
    ) {
        let entropy = run.tail_monitor(setup, "teacher_entropy");
        let (floor, ceiling) = (2f64.ln(), ln(out_dim) - 4f64.ln());
        self.check(
            format!(
                "teacher_entropy {entropy:.4} in [{floor:.4}, {ceiling:.4}] (ln 2 to \
                 ln(out_dim) − ln 4; a uniform teacher has {:.4})",
                ln(out_dim)
            ),
            (floor..=ceiling).contains(&entropy),
        );
        let excess = run.tail_component(setup, component) / weight - entropy;
        let first = run.lines[0]["components"][component].as_f64().unwrap() / weight
            - run.first_monitor("teacher_entropy");
        self.check(
            format!(
                "{component}: excess over the teacher's entropy {excess:.4} <= {FACTOR} × \
                 {first:.4} at the first step"
            ),
            excess <= FACTOR * first,
        );
    }

    /// A self-distillation term without its own entropy monitor (iBOT's and SMIT's patch
    /// terms): its cross-entropy (unweighted) below `ln(out_dim) − ln 4`, where a
    /// uniform teacher would hold it at `ln(out_dim)`.
    fn not_uniform(
        &mut self,
        run: &Run,
        setup: &Setup,
        (component, weight): (&str, f64),
        out_dim: usize,
    ) {
        let value = run.tail_component(setup, component) / weight;
        let ceiling = ln(out_dim) - 4f64.ln();
        self.check(
            format!(
                "{component}: cross-entropy {value:.4} < ln(out_dim) − ln 4 = {ceiling:.4} (a \
                 uniform teacher gives {:.4})",
                ln(out_dim)
            ),
            value < ceiling,
        );
    }

    /// The embedding spread above a tenth of its first value (no collapse warning).
    fn spread(&mut self, run: &Run, setup: &Setup) {
        let first = run.first_monitor("embedding_spread");
        self.at_least(
            run,
            setup,
            "embedding_spread",
            COLLAPSE_FRACTION * first,
            &format!("{COLLAPSE_FRACTION} × {first:.4} at the first step"),
        );
    }

    fn finish(self) {
        let report = self.lines.join("\n");
        eprintln!("{report}");
        assert!(
            self.failed.is_empty(),
            "{} does not learn:\n{report}",
            self.method
        );
    }
}

/// The learning run: 8 phantoms, batches of 8 (one step an epoch, so the methods'
/// epoch-based schedules — warm-ups, the frozen last layer, iBOT's start of masked
/// prediction — run their course), 200 steps judged over the last 20, on the preset's
/// encoder with 4³ attention windows (`encoder.window_size=4`): 7³ windows pad the 16³
/// patch grid of a 32³ view to 21³ and its 8³ grid to 14³, so a step costs 8 times as
/// much for the same views.
fn learning(collection: Collection) -> Setup {
    Setup {
        collection,
        volumes: 8,
        steps: 200,
        tail: 20,
        overrides: vec![
            "encoder.window_size=4".into(),
            "data.loader.batch_size=8".into(),
        ],
    }
}

/// `setup` with the teacher of DINO and iBOT following faster and learning at 5e-4: the
/// tiny preset's momentum of 0.996 (whose horizon of about 250 steps is longer than
/// this run) and rate of 1e-4 (chosen for batches of 2) left DINO's loss at 7.0 of
/// ln 1024 = 6.93 after 100 steps of this run, where 0.99 and 5e-4 brought it to 5.8
/// (and a PyTorch reference to 5.4).
fn fast_teacher(mut setup: Setup) -> Setup {
    setup.overrides.extend([
        "train.teacher_momentum=0.99".to_string(),
        "train.lr=5e-4".to_string(),
    ]);
    setup
}

/// The loss margin: the judged steps' loss at most half of chance.
const FACTOR: f64 = 0.5;

/// `setup` training at `boost ×` its learning rate (the tiny recipe's of `M` unless
/// `setup` sets one), on the preset's
/// schedule (warm-up of one epoch, cosine decay over the run).
fn with_lr<M: Method>(mut setup: Setup, boost: f64) -> Setup {
    let base = setup
        .overrides
        .iter()
        .rev()
        .find_map(|o| o.strip_prefix("train.lr="))
        .map_or(M::recipe(Preset::Tiny).lr, |lr| lr.parse().unwrap());
    setup.overrides.push(format!("train.lr={}", base * boost));
    setup
}

/// Every run here trains at its recipe's rate; `MEDSSL_LEARNING_LR_BOOST` multiplies it,
/// to tell a method that does not learn from one the rate upsets. (At 3 × the rate,
/// SimCLR and DINO collapse within 200 steps of this run: SimCLR sits at exactly
/// `ln(2B − 1)` from step 60 on, DINO's teacher goes uniform.)
fn lr_boost() -> f64 {
    std::env::var("MEDSSL_LEARNING_LR_BOOST").map_or(1.0, |v| {
        v.parse()
            .expect("MEDSSL_LEARNING_LR_BOOST must be a number")
    })
}

fn ln(x: usize) -> f64 {
    (x as f64).ln()
}

/// The NT-Xent chance level of batch `b`.
fn ntxent_chance(b: usize) -> (f64, String) {
    (ln(2 * b - 1), format!("ln(2B − 1), B = {b}"))
}

/// The rotation classes of method `M` as the run's settings cut its views.
fn rotation_classes<M: Method>(run: &Run) -> usize {
    let config = &run.config;
    let plan = M::view_plan(
        &config.pretext::<M>().unwrap(),
        &config.network(),
        config.encoder.crop,
        Pipeline::default(),
        Pipeline::default(),
    )
    .unwrap();
    plan.rotations.expect("rotation labels").targets().len()
}

fn simclr(setup: Setup) {
    let setup = with_lr::<SimClrMethod>(setup, lr_boost());
    let run = train::<SimClrMethod>(&setup);
    judge_simclr(&run, &setup).finish();
}

fn judge_simclr(run: &Run, setup: &Setup) -> Verdict {
    let (chance, why) = ntxent_chance(run.batch_size());
    let mut verdict = Verdict::new("simclr", run, setup);
    let terms = [Term {
        component: "contrastive",
        weight: 1.0,
        chance,
        why,
    }];
    verdict.loss(run, setup, &terms, FACTOR);
    verdict.spread(run, setup);
    verdict
}

fn mocov3(setup: Setup) {
    let setup = with_lr::<MocoV3Method>(setup, lr_boost());
    let run = train::<MocoV3Method>(&setup);
    let t = run.config.pretext::<MocoV3Method>().unwrap().temperature;
    let b = run.batch_size();
    let mut verdict = Verdict::new("mocov3", &run, &setup);
    let terms = [Term {
        component: "contrastive",
        weight: 1.0,
        chance: 4.0 * t * ln(b),
        why: format!("2 · 2T · ln B, T = {t}, B = {b}"),
    }];
    verdict.loss(&run, &setup, &terms, FACTOR);
    verdict.spread(&run, &setup);
    verdict.finish();
}

fn cpc(setup: Setup) {
    let setup = with_lr::<CpcMethod>(setup, lr_boost());
    let run = train::<CpcMethod>(&setup);
    let settings = run.config.pretext::<CpcMethod>().unwrap();
    let b = run.batch_size();
    let predicted = settings.grid.pow(3) - settings.context_rows * settings.grid.pow(2);
    let mut verdict = Verdict::new("cpc", &run, &setup);
    let terms = [Term {
        component: "contrastive",
        weight: 1.0,
        chance: ln(b * predicted),
        why: format!("ln(B · P), B = {b}, P = {predicted} predicted cells"),
    }];
    verdict.loss(&run, &setup, &terms, FACTOR);
    verdict.spread(&run, &setup);
    verdict.finish();
}

fn rotnet(setup: Setup) {
    let setup = with_lr::<RotNetMethod>(setup, lr_boost());
    let run = train::<RotNetMethod>(&setup);
    judge_rotnet(&run, &setup).finish();
}

fn judge_rotnet(run: &Run, setup: &Setup) -> Verdict {
    let classes = rotation_classes::<RotNetMethod>(run);
    let mut verdict = Verdict::new("rotnet", run, setup);
    let terms = [Term {
        component: "rotation",
        weight: 1.0,
        chance: ln(classes),
        why: format!("ln(classes), {classes} classes"),
    }];
    verdict.loss(run, setup, &terms, FACTOR);
    verdict.at_least(
        run,
        setup,
        "accuracy",
        2.0 / classes as f64,
        "twice chance, 1/classes",
    );
    verdict.spread(run, setup);
    verdict
}

fn swinunetr_ssl(setup: Setup) {
    let setup = with_lr::<SwinUnetrSslMethod>(setup, lr_boost());
    let run = train::<SwinUnetrSslMethod>(&setup);
    let settings = run.config.pretext::<SwinUnetrSslMethod>().unwrap();
    let classes = rotation_classes::<SwinUnetrSslMethod>(&run);
    let (contrastive, why) = ntxent_chance(run.batch_size());
    // The reconstruction targets: the clean rotated copies, views 2 and 3, every voxel.
    let batches = run.tail_batches::<SwinUnetrSslMethod>(&setup);
    let reconstruction = constant_l1(&batches, |batch| {
        batch.views[2]
            .iter()
            .chain(batch.views[3].iter())
            .copied()
            .collect()
    });
    let mut verdict = Verdict::new("swinunetr-ssl", &run, &setup);
    let terms = [
        Term {
            component: "rotation",
            weight: settings.rotation_weight,
            chance: ln(classes),
            why: format!("ln(classes), {classes} classes"),
        },
        Term {
            component: "contrastive",
            weight: settings.contrastive_weight,
            chance: contrastive,
            why,
        },
        Term {
            component: "reconstruction",
            weight: settings.reconstruction_weight,
            chance: reconstruction,
            why: "L1 of the best constant, clean copies".into(),
        },
    ];
    verdict.loss(&run, &setup, &terms, FACTOR);
    verdict.at_least(
        &run,
        &setup,
        "rotation_accuracy",
        2.0 / classes as f64,
        "twice chance, 1/classes",
    );
    verdict.spread(&run, &setup);
    verdict.finish();
}

fn simmim(setup: Setup) {
    let setup = with_lr::<SimMimMethod>(setup, lr_boost());
    let run = train::<SimMimMethod>(&setup);
    let patch = run.config.network().patch_size;
    let batches = run.tail_batches::<SimMimMethod>(&setup);
    let reconstruction = constant_l1(&batches, |batch| masked_voxels(batch, 0, patch));
    let mut verdict = Verdict::new("simmim", &run, &setup);
    let terms = [Term {
        component: "reconstruction",
        weight: 1.0,
        chance: reconstruction,
        why: "L1 of the best constant, masked voxels".into(),
    }];
    verdict.loss(&run, &setup, &terms, FACTOR);
    verdict.spread(&run, &setup);
    verdict.finish();
}

fn smit(setup: Setup) {
    let setup = with_lr::<SmitMethod>(setup, lr_boost());
    let run = train::<SmitMethod>(&setup);
    let settings = run.config.pretext::<SmitMethod>().unwrap();
    let k = settings.head.out_dim;
    let patch = run.config.network().patch_size;
    let batches = run.tail_batches::<SmitMethod>(&setup);
    let reconstruction = constant_l1(&batches, |batch| {
        let mut voxels = masked_voxels(batch, 0, patch);
        voxels.extend(masked_voxels(batch, 1, patch));
        voxels
    });
    let mut verdict = Verdict::new("smit", &run, &setup);
    verdict.distillation(&run, &setup, ("global", settings.global_weight), k);
    verdict.not_uniform(&run, &setup, ("patch", settings.patch_weight), k);
    let terms = [Term {
        component: "reconstruction",
        weight: settings.reconstruction_weight,
        chance: reconstruction,
        why: "L1 of the best constant, masked voxels".into(),
    }];
    verdict.component(&run, &setup, &terms[0], FACTOR);
    verdict.spread(&run, &setup);
    verdict.finish();
}

fn dino(setup: Setup) {
    let setup = with_lr::<DinoMethod>(setup, lr_boost());
    let run = train::<DinoMethod>(&setup);
    judge_dino(&run, &setup).finish();
}

fn judge_dino(run: &Run, setup: &Setup) -> Verdict {
    let k = run.config.pretext::<DinoMethod>().unwrap().head.out_dim;
    let mut verdict = Verdict::new("dino", run, setup);
    verdict.distillation(run, setup, ("distillation", 1.0), k);
    verdict.spread(run, setup);
    verdict
}

fn ibot(setup: Setup) {
    let setup = with_lr::<IbotMethod>(setup, lr_boost());
    let run = train::<IbotMethod>(&setup);
    let settings = run.config.pretext::<IbotMethod>().unwrap();
    let k = settings.head.out_dim;
    // The patch term counts once masked prediction has started (`pred_start_epoch`,
    // in epochs of `volumes / batch` steps): the judged steps must lie after it.
    let per_epoch = setup.volumes / run.batch_size() as u64;
    let start = settings.pred_start_epoch * per_epoch;
    assert!(
        start < setup.steps - setup.tail as u64,
        "masked prediction starts at step {start}, inside the judged steps"
    );
    let mut verdict = Verdict::new("ibot", &run, &setup);
    verdict.distillation(&run, &setup, ("global", settings.global_weight), k);
    verdict.not_uniform(&run, &setup, ("patch", settings.patch_weight), k);
    verdict.spread(&run, &setup);
    verdict.finish();
}

#[test]
#[ignore = "about 4 minutes on 2 cores: run with --ignored"]
fn simclr_learns() {
    simclr(learning(Collection::Texture));
}

#[test]
#[ignore = "about 7 minutes on 2 cores: run with --ignored"]
fn mocov3_learns() {
    let mut setup = learning(Collection::Texture);
    // The momentum encoder following fast and a higher rate: at the recipe's 1.5e-4
    // MoCo v3 stayed at chance for 150 steps (as a PyTorch reference did for 90), and
    // with its momentum of 0.99 at 5e-4 it reached 0.96 (chance 1.66) by step 200,
    // where 0.9 brought it to 0.57.
    setup.overrides.extend([
        "train.teacher_momentum=0.9".to_string(),
        "train.lr=5e-4".to_string(),
    ]);
    mocov3(setup);
}

#[test]
#[ignore = "15-40 minutes on 2 cores: run with --ignored"]
fn cpc_learns() {
    let mut setup = learning(Collection::Texture);
    // CPC's loss starts falling late: at step 187 of a 300-step schedule it stood at
    // 2.10 (chance ln 32 = 3.47), and 0.78 over the last 20 steps.
    setup.steps = 300;
    cpc(setup);
}

/// The one learning run in CI (about 3.5 minutes on 2 cores).
#[test]
fn rotnet_learns() {
    rotnet(learning(Collection::Anatomy));
}

#[test]
#[ignore = "over an hour on 2 cores (64³ crops), not yet run to its end: run with --ignored"]
fn swinunetr_ssl_learns() {
    swinunetr_ssl(learning(Collection::Anatomy));
}

#[test]
#[ignore = "about 7 minutes on 2 cores (passes): run with --ignored"]
fn simmim_learns() {
    simmim(learning(Collection::Levels));
}

#[test]
#[ignore = "about 11 minutes on 2 cores (passes): run with --ignored"]
fn smit_learns() {
    let mut setup = learning(Collection::Levels);
    // The teacher following faster, as DINO's and iBOT's here (the rate stays SMIT's
    // 1e-4 per volume).
    setup
        .overrides
        .push("train.teacher_momentum=0.99".to_string());
    smit(setup);
}

#[test]
#[ignore = "about 7 minutes on 2 cores (passes): run with --ignored"]
fn dino_learns() {
    dino(fast_teacher(learning(Collection::Texture)));
}

#[test]
#[ignore = "about 6 minutes on 2 cores (passes): run with --ignored"]
fn ibot_learns() {
    ibot(fast_teacher(learning(Collection::Texture)));
}

/// The thresholds tell learning from collapse: collapsed SimCLR embeddings give exactly
/// `ln(2B − 1)` and no spread, and fail; a loss a third of chance with a kept spread
/// passes.
#[test]
fn thresholds_fail_collapsed_simclr_and_pass_a_learning_one() {
    let setup = learning(Collection::Anatomy);
    let chance = 3f64.ln();
    let collapsed: Vec<_> = (0..setup.steps)
        .map(|i| {
            let spread = if i == 0 { 0.15 } else { 0.0 };
            (chance, serde_json::json!({ "embedding_spread": spread }))
        })
        .collect();
    let verdict = judge_simclr(&fake::<SimClrMethod>("contrastive", &collapsed), &setup);
    assert_eq!(verdict.failed.len(), 2, "{}", verdict.lines.join("\n"));
    let learnt: Vec<_> = (0..setup.steps)
        .map(|_| (chance / 3.0, serde_json::json!({ "embedding_spread": 0.1 })))
        .collect();
    let verdict = judge_simclr(&fake::<SimClrMethod>("contrastive", &learnt), &setup);
    assert!(verdict.failed.is_empty(), "{}", verdict.lines.join("\n"));
}

/// The distillation checks tell learning from both collapses: a teacher collapsed to
/// uniform (loss and entropy `ln(out_dim)`) or to one prototype (entropy near 0) fails
/// the entropy band, a student that never gets closer to its teacher's targets fails the
/// excess, and a run like the measured one (entropy about 4, loss from 7.4 to 5.4)
/// passes; a rotation classifier at chance fails loss and accuracy.
#[test]
fn thresholds_fail_a_collapsed_teacher_and_a_guessing_classifier() {
    let setup = learning(Collection::Anatomy);
    let uniform = 1024f64.ln();
    // (loss at the first step, its teacher entropy, loss afterwards, entropy afterwards)
    let run = |first: (f64, f64), later: (f64, f64)| {
        let steps: Vec<_> = (0..setup.steps)
            .map(|i| {
                let (loss, entropy) = if i == 0 { first } else { later };
                let monitors =
                    serde_json::json!({ "embedding_spread": 0.1, "teacher_entropy": entropy });
                (loss, monitors)
            })
            .collect();
        judge_dino(&fake::<DinoMethod>("distillation", &steps), &setup)
    };
    let failed = |verdict: &Verdict, what: &str| {
        verdict.failed.len() == 1 && verdict.failed[0].contains(what)
    };
    for (case, verdict, what) in [
        (
            "uniform",
            run((7.4, 3.3), (uniform, uniform)),
            "teacher_entropy",
        ),
        (
            "one prototype",
            run((7.4, 3.3), (0.05, 0.05)),
            "teacher_entropy",
        ),
        ("not learning", run((7.4, 3.3), (7.4, 4.0)), "excess"),
    ] {
        assert!(
            failed(&verdict, what),
            "{case}: {}",
            verdict.lines.join("\n")
        );
    }
    let learning = run((7.4, 3.3), (5.4, 4.0));
    assert!(learning.failed.is_empty(), "{}", learning.lines.join("\n"));

    let guessing: Vec<_> = (0..setup.steps)
        .map(|_| {
            let monitors = serde_json::json!({ "embedding_spread": 0.1, "accuracy": 0.1 });
            (10f64.ln(), monitors)
        })
        .collect();
    let verdict = judge_rotnet(&fake::<RotNetMethod>("rotation", &guessing), &setup);
    assert_eq!(verdict.failed.len(), 2, "{}", verdict.lines.join("\n"));
}
