//! The GPU code path against the CPU: one fine-tuning step and one pretraining step of
//! every registered method, run on wgpu (Burn's operations in place of our CPU kernels)
//! and on flex from the same seed, data and settings, give the same loss and the same
//! updated weights, within the tolerances below.
//!
//! Built with the `wgpu` feature only, and ignored: Mesa's lavapipe, the wgpu device CI
//! has, fails `medssl_model::device_check` (Burn 0.22 drops terms from long reductions
//! there, and its Swin encoder gradients go wrong when every stage output is in the
//! loss). On it SimMIM's and SMIT's updates agree to 5e-4 of their size, fine-tuning's
//! differ by 0.32 of it, SimCLR's, RotNet's, CPC's, DINO's and iBOT's by 1.7 to 955
//! times it, and MoCo v3's loss is already 3.6e-4 off. Run it with `--ignored` on a wgpu device that passes the check; on one
//! that fails, it stops with the check's findings. Where no wgpu adapter initialises it
//! is skipped, unless `MEDSSL_REQUIRE_WGPU` is set.
#![cfg(feature = "wgpu")]

use std::path::Path;
use std::sync::OnceLock;

use burn::tensor::Device;
use medssl_data::splits::Budget;
use medssl_model::device_check::DeviceCheck;
use medssl_model::kernel_path::{KernelPath, taken};
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

/// Adam's first step moves a weight by `lr · g / (|g| + ε)`: with the usual ε of 1e-8
/// that is `±lr` whatever the gradient's size, so a gradient that is zero up to rounding
/// takes either sign and the comparison would measure rounding, not the step. The runs
/// here take ε = `EPSILON` and a rate of `RATE_OVER_EPSILON · ε`, without weight decay:
/// each weight then moves by `RATE_OVER_EPSILON · g` (to 1e-4 for gradients below 1),
/// and the update compares the gradients themselves.
const EPSILON: f64 = 1e4;
const RATE_OVER_EPSILON: f64 = 100.0;

/// Largest relative L2 difference between the devices' updates over all weights: the
/// gradients of one step summed in another order (SimMIM 1.3e-4 and SMIT 5.2e-4 on
/// lavapipe, where the other methods are off by 1.7 to 955).
const UPDATE_TOLERANCE: f64 = 1e-3;

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

/// The wgpu device, `None` where no adapter initialises; checked once per process.
///
/// # Panics
/// When the device fails the device check.
fn checked_wgpu() -> Option<Device> {
    static FAILURE: OnceLock<Option<String>> = OnceLock::new();
    let wgpu = wgpu_device()?;
    if let Some(failure) = FAILURE.get_or_init(|| DeviceCheck::run(&wgpu).failure()) {
        panic!("this wgpu device fails the device check: {failure}");
    }
    Some(wgpu)
}

/// Runs one step, `train(run, device, lr)`, on flex at the rate `lr` and twice that,
/// and on wgpu at `lr` (each run in its own directory under `dir`), checking that each
/// device took its own kernel path. Compares the step's loss and the update of every
/// weight in the file `weights` the runs wrote: the flex runs differ by exactly one
/// update, so `flex(lr) - flex(2 lr)` is flex's update and `flex(lr) - wgpu(lr)` the
/// difference of the two devices' updates.
fn compare(dir: &Path, what: &str, weights: &str, train: impl Fn(&Path, Device, f64)) {
    let Some(wgpu) = checked_wgpu() else { return };
    let lr = RATE_OVER_EPSILON * EPSILON;
    for (name, device, rate, path) in [
        ("flex", Device::flex(), lr, KernelPath::Ours),
        ("flex-2lr", Device::flex(), 2.0 * lr, KernelPath::Ours),
        ("wgpu", wgpu, lr, KernelPath::Burn),
    ] {
        let ((), ops) = taken(path, || train(&dir.join(name), device, rate));
        assert!(ops > 0, "{what} on {name}: no {path:?} operation");
    }
    let (flex, wgpu) = (dir.join("flex"), dir.join("wgpu"));
    let (a, b) = (step_loss(&flex), step_loss(&wgpu));
    let relative = (a - b).abs() / a.abs().max(1e-12);
    eprintln!("{what}: loss flex {a:.7} wgpu {b:.7} (relative difference {relative:.2e})");
    assert!(relative <= LOSS_TOLERANCE, "{what}: loss flex {a} wgpu {b}");

    let [once, twice, other] =
        ["flex", "flex-2lr", "wgpu"].map(|name| tensors(&dir.join(name).join(weights)));
    let names = |t: &[(String, Vec<f32>)]| t.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
    for run in [&twice, &other] {
        assert_eq!(
            names(&once),
            names(run),
            "{what}: the files hold other tensors"
        );
    }
    // Squared L2 norms of flex's update and of the devices' difference, per tensor.
    let norms: Vec<(&str, f64, f64)> = once
        .iter()
        .zip(&twice)
        .zip(&other)
        .map(|(((name, x), (_, y)), (_, z))| {
            max_abs_diff(name, x, z); // fails on NaN or infinity first
            max_abs_diff(name, x, y);
            let squared =
                |b: &[f32]| -> f64 { x.iter().zip(b).map(|(p, q)| f64::from(p - q).powi(2)).sum() };
            (name.as_str(), squared(y), squared(z))
        })
        .collect();
    let update: f64 = norms.iter().map(|n| n.1).sum();
    let ratio = (norms.iter().map(|n| n.2).sum::<f64>() / update).sqrt();
    // The tensor that differs most, for the message (tensors whose gradient is zero up to
    // rounding differ by their whole size without any error).
    let worst = norms
        .iter()
        .max_by(|a, b| a.2.total_cmp(&b.2))
        .map(|n| n.0)
        .unwrap_or_default();
    eprintln!(
        "{what}: updates differ by {ratio:.2e} of their L2 norm ({:.2e}), the most in {worst}",
        update.sqrt()
    );
    assert!(update > 0.0, "{what}: the step moved no weight");
    assert!(
        ratio <= UPDATE_TOLERANCE,
        "{what}: updates differ by {ratio:e} of their norm, the most in {worst}"
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
#[ignore = "lavapipe, CI's wgpu device, fails the device check (issue 25): run with --ignored \
            on a wgpu device that passes it"]
fn a_finetuning_step_on_wgpu_equals_the_step_on_flex() {
    let tmp = tempfile::tempdir().unwrap();
    let task = tmp.path().join("task");
    write_data(&task, false);
    let overrides: Vec<String> = [
        "train.epochs=1",
        "train.warmup_epochs=0",
        "model.roi=[32, 32, 32]",
        "data.loader.num_workers=1",
        "train.optimizer.weight_decay=0",
        &format!("train.optimizer.epsilon={EPSILON}"),
        "seed=3",
    ]
    .map(String::from)
    .to_vec();
    let config = FinetuneConfig::load(Preset::Tiny, None, &overrides).unwrap();
    compare(
        tmp.path(),
        "fine-tuning",
        "last.safetensors",
        |run, device, lr| {
            let mut config = config.clone();
            config.train.lr = lr;
            let mut run = Finetune::start(
                &task,
                run,
                config,
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
            // Lavapipe binds at most 128 MiB to a shader: the tiny preset's attention
            // scores (batch 4 of 64³ crops, 7³ windows: 706 MB) would not fit.
            "data.loader.batch_size=2",
            // SwinUNETR-SSL's heads read two tokens of the deepest stage: 64³ at least.
            if M::INFO.name == "swinunetr-ssl" {
                "encoder.crop=[64, 64, 64]"
            } else {
                "encoder.crop=[32, 32, 32]"
            },
            "encoder.window_size=4",
            "train.weight_decay=0",
            "train.weight_decay_end=0",
            "train.lr_batch_scaling=false",
            &format!("train.epsilon={EPSILON}"),
            "seed=5",
        ]
        .map(String::from)
        .to_vec();
        let config = PretrainConfig::load::<M>(Preset::Tiny, None, &overrides).unwrap();
        compare(tmp.path(), M::INFO.name, ENCODER_FILE, |run, device, lr| {
            let mut config = config.clone();
            config.train.lr = lr;
            let mut run = Pretrain::<M>::start(self.0, run, config, device).unwrap();
            run.train(u64::MAX, &mut |_| {}).unwrap();
        });
    }
}

#[test]
#[ignore = "lavapipe, CI's wgpu device, fails the device check (issue 25): run with --ignored \
            on a wgpu device that passes it"]
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
