//! The GPU code path against the CPU: one fine-tuning step and one pretraining step of
//! every registered method, run on wgpu (Burn's operations in place of our CPU kernels)
//! and on flex from the same seed, data and settings, give the same loss and the same
//! updated weights, within the tolerances below.
//!
//! Built with the `wgpu` feature only. Where no wgpu adapter initialises the comparison
//! is skipped, unless `MEDSSL_REQUIRE_WGPU` is set (CI installs Mesa's software Vulkan
//! and sets it), which makes it a failure.
#![cfg(feature = "wgpu")]

use std::path::Path;

use burn::tensor::Device;
use medssl_data::splits::Budget;
use medssl_model::kernel_path::{KernelPath, calls};
use medssl_ssl::methods::{METHODS, MethodVisitor, visit};
use medssl_ssl::{Method, Preset};
use medssl_synth::{Grid, Kind, Task, write_task};
use medssl_test_support::{le_f32, max_abs_diff, wgpu_device};
use medssl_train::finetune::{Finetune, FinetuneConfig, Init};
use medssl_train::pretrain::{ENCODER_FILE, Pretrain, PretrainConfig};

mod common;
use common::metrics;

/// Largest relative difference of the step's loss between the devices.
const LOSS_TOLERANCE: f64 = 1e-4;

/// Adam's first step moves every weight by about the learning rate, whatever the size
/// of its gradient: a weight whose gradient is zero up to rounding (below Adam's eps of
/// 1e-8) moves by a fraction of the rate set by that rounding, which differs between the
/// devices. So the weights are compared element by element against `ROUNDING` times the
/// rate, and at most `FLIPPED` of them may differ by more (none by more than twice the
/// rate, a step in the other direction).
const ROUNDING: f32 = 0.05;
const FLIPPED: f64 = 0.01;

/// A labelled abdomen CT task (4 training cases of 32³) or, `unlabelled`, a collection.
fn write_data(dir: &Path, unlabelled: bool) {
    let kind = Kind::AbdomenCt;
    let task = Task {
        kind,
        grid: Grid::fitted(kind, [32, 32, 32]).unwrap(),
        seed: 4,
        training: 4,
        test: 0,
        unlabelled,
    };
    write_task(&task, dir).unwrap();
}

/// The loss of the run's only step, from its `metrics.jsonl`.
fn step_loss(run: &Path) -> f64 {
    let lines = metrics(run);
    let steps: Vec<f64> = lines
        .iter()
        .filter(|l| l["event"] == "step")
        .map(|l| l["loss"].as_f64().unwrap())
        .collect();
    assert_eq!(steps.len(), 1, "{}: {lines:?}", run.display());
    assert!(steps[0].is_finite(), "{}: loss {}", run.display(), steps[0]);
    steps[0]
}

/// Runs `train` on flex and on wgpu (each in its own directory under `dir`), checking
/// that each device took its own kernel path, and compares the step's loss and the
/// weights file `weights` the runs wrote.
fn compare(dir: &Path, what: &str, weights: &str, lr: f64, train: impl Fn(&Path, Device)) {
    let Some(wgpu) = wgpu_device() else { return };
    for (name, device, path) in [
        ("flex", Device::flex(), KernelPath::Ours),
        ("wgpu", wgpu, KernelPath::Burn),
    ] {
        let before = calls(path);
        train(&dir.join(name), device);
        assert!(
            calls(path) > before,
            "{what} on {name}: no {path:?} operation"
        );
    }
    let (flex, wgpu) = (dir.join("flex"), dir.join("wgpu"));
    let (a, b) = (step_loss(&flex), step_loss(&wgpu));
    let relative = (a - b).abs() / a.abs().max(1e-12);
    eprintln!("{what}: loss flex {a:.7} wgpu {b:.7} (relative difference {relative:.2e})");
    assert!(relative <= LOSS_TOLERANCE, "{what}: loss flex {a} wgpu {b}");
    let (a, b) = (tensors(&flex.join(weights)), tensors(&wgpu.join(weights)));
    let names = |t: &[(String, Vec<f32>)]| t.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&a),
        names(&b),
        "{what}: the weights files hold other tensors"
    );
    let bound = ROUNDING * lr as f32;
    let (mut count, mut beyond, mut largest) = (0usize, 0usize, 0.0f32);
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        let diff = max_abs_diff(name, x, y); // fails on NaN or infinity first
        largest = largest.max(diff);
        count += x.len();
        beyond += x
            .iter()
            .zip(y)
            .filter(|(p, q)| (*p - *q).abs() > bound)
            .count();
    }
    let share = beyond as f64 / count as f64;
    eprintln!(
        "{what}: {beyond} of {count} weights ({:.3}%) differ by more than {bound:.1e}, the \
         largest by {largest:.2e} (lr {lr:.1e})",
        100.0 * share
    );
    assert!(
        share <= FLIPPED && largest <= 2.0 * lr as f32 * (1.0 + ROUNDING),
        "{what}: {beyond} of {count} weights differ by more than {bound:e}, the largest by \
         {largest:e}"
    );
}

/// Every f32 tensor of a safetensors file, by name.
fn tensors(path: &Path) -> Vec<(String, Vec<f32>)> {
    common::tensors(path)
        .into_iter()
        .filter(|t| t.1 == safetensors::Dtype::F32)
        .map(|(name, _, _, bytes)| (name, le_f32(&bytes)))
        .collect()
}

#[test]
#[ignore = "open: on wgpu the step's loss equals flex's to 1e-7, but 8% (fine-tuning) to 42% \
            (pretraining) of the weights move differently, and in three methods a kernel \
            fails on lavapipe (the bytes were never written) (issue 25)"]
fn a_finetuning_step_on_wgpu_equals_the_step_on_flex() {
    let tmp = tempfile::tempdir().unwrap();
    let task = tmp.path().join("task");
    write_data(&task, false);
    let overrides: Vec<String> = [
        "train.epochs=1",
        "train.warmup_epochs=0",
        "model.roi=[32, 32, 32]",
        "data.loader.num_workers=1",
        "seed=3",
    ]
    .map(String::from)
    .to_vec();
    let config = FinetuneConfig::load(Preset::Tiny, None, &overrides).unwrap();
    let lr = config.train.lr;
    compare(
        tmp.path(),
        "fine-tuning",
        "last.safetensors",
        lr,
        |run, device| {
            let mut run = Finetune::start(
                &task,
                run,
                config.clone(),
                Init::Scratch,
                Some(Budget::Shots(1)),
                device,
            )
            .unwrap();
            run.train(u64::MAX, &mut |_| {}).unwrap();
        },
    );
}

/// One step of method `M` on both devices.
struct OneStep<'a>(&'a Path);

impl MethodVisitor for OneStep<'_> {
    type Output = ();
    fn visit<M: Method>(self) {
        let tmp = tempfile::tempdir().unwrap();
        let overrides: Vec<String> = [
            "train.steps=1",
            "train.warmup_epochs=0",
            "data.loader.num_workers=1",
            "seed=5",
        ]
        .map(String::from)
        .to_vec();
        let config = PretrainConfig::load::<M>(Preset::Tiny, None, &overrides).unwrap();
        let lr = config.peak_lr();
        compare(tmp.path(), M::INFO.name, ENCODER_FILE, lr, |run, device| {
            let mut run = Pretrain::<M>::start(self.0, run, config.clone(), device).unwrap();
            run.train(u64::MAX, &mut |_| {}).unwrap();
        });
    }
}

#[test]
#[ignore = "open: on wgpu the step's loss equals flex's to 1e-7, but 8% (fine-tuning) to 42% \
            (pretraining) of the weights move differently, and in three methods a kernel \
            fails on lavapipe (the bytes were never written) (issue 25)"]
fn a_pretraining_step_of_every_method_on_wgpu_equals_the_step_on_flex() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("ct");
    write_data(&data, true);
    let failed: Vec<&str> = METHODS
        .iter()
        .map(|info| info.name)
        .filter(|&name| std::panic::catch_unwind(|| visit(name, OneStep(&data)).unwrap()).is_err())
        .collect();
    assert!(failed.is_empty(), "differs on wgpu: {}", failed.join(", "));
}
