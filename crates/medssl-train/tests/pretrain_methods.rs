//! Every registered pretraining method on a tiny synthetic CT collection: one step changes the
//! weights and logs a finite loss; the exported encoder loads into SwinUNETR with no
//! encoder key missing; a run interrupted and resumed ends exactly where the same run
//! left alone ends.

use std::path::Path;

use burn::tensor::Device;
use medssl_io::nifti::{OutputType, write_volume};
use medssl_model::weights::load_monai_safetensors;
use medssl_model::{SwinUnetr, SwinUnetrConfig};
use medssl_ssl::methods::{METHODS, MethodVisitor, visit};
use medssl_ssl::{Method, Preset};
use medssl_synth::{Grid, Kind, case_name, generate};
use medssl_train::pretrain::{ENCODER_FILE, Pretrain, PretrainConfig};

mod common;
use common::{differing_tensors, metrics, read};

/// Four unlabelled abdomen CT phantoms of 40³ voxels.
fn write_collection(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let kind = Kind::AbdomenCt;
    let grid = Grid::fitted(kind, [40, 40, 40]).unwrap();
    for case in 0..4 {
        let sample = generate(kind, &grid, 3, case);
        let path = dir.join(format!("{}.nii.gz", case_name(kind, case)));
        write_volume(&path, &sample.image, OutputType::Int16).unwrap();
    }
}

fn config<M: Method>(steps: u64) -> PretrainConfig {
    let overrides: Vec<String> = [
        format!("train.steps={steps}"),
        "train.warmup_epochs=1".into(),
        "train.checkpoint_every=1".into(),
        "data.loader.num_workers=2".into(),
        "seed=5".into(),
    ]
    .to_vec();
    PretrainConfig::load::<M>(Preset::Tiny, None, &overrides).unwrap()
}

/// One step: finite loss with its components, changed encoder weights, and an encoder
/// file that fills every `swinViT.*` tensor of a SwinUNETR of the same size.
fn one_step_trains_and_exports<M: Method>() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("ct");
    write_collection(&data);
    let out = tmp.path().join("run");
    // No warm-up: its first step has learning rate 0 (DINO's linspace from 0).
    let mut config = config::<M>(1);
    config.train.warmup_epochs = 0;
    let mut run = Pretrain::<M>::start(&data, &out, config, Device::flex()).unwrap();
    let network = run.config().network();
    let before = out.join("before.safetensors");
    std::fs::copy(out.join(ENCODER_FILE), &before).unwrap();
    run.train(u64::MAX, &mut |_| {}).unwrap();
    assert_eq!(run.steps_done(), 1);

    let lines = metrics(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let step = &lines[0];
    assert_eq!(step["event"], "step");
    let loss = step["loss"].as_f64().unwrap();
    assert!(loss.is_finite() && loss > 0.0, "{step}");
    let components: f64 = step["components"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_f64().unwrap())
        .sum();
    assert!((components - loss).abs() <= 1e-5 * loss, "{step}");
    assert!(step["grad_norm"].as_f64().unwrap() > 0.0, "{step}");

    let changed = differing_tensors(&before, &out.join(ENCODER_FILE));
    assert!(
        changed.iter().any(|(name, _)| name.contains("layers4")),
        "deepest stage unchanged: {changed:?}"
    );
    assert!(
        changed.iter().any(|(name, _)| name.contains("patch_embed")),
        "patch embedding unchanged: {changed:?}"
    );

    let mut unetr = SwinUnetr::new(&network, &Device::flex()).unwrap();
    let report = load_monai_safetensors(&mut unetr, &out.join(ENCODER_FILE)).unwrap();
    let missing_encoder: Vec<_> = report
        .missing
        .iter()
        .filter(|k| k.starts_with("swinViT."))
        .collect();
    assert!(missing_encoder.is_empty(), "{missing_encoder:?}");
    assert!(report.unexpected.is_empty(), "{:?}", report.unexpected);
    assert!(report.mismatched.is_empty(), "{:?}", report.mismatched);
    assert!(report.loaded.len() > 50, "{}", report.loaded.len());
    assert_eq!(
        network,
        SwinUnetrConfig::new(1, 2).with_feature_size(12),
        "tiny encoder"
    );
}

/// Three steps straight, against one step, an interruption (mid-epoch: two steps make
/// an epoch), and two more across the epoch boundary.
fn resumed_run_equals_uninterrupted_run<M: Method>() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("ct");
    write_collection(&data);
    let straight = tmp.path().join("straight");
    let mut run = Pretrain::<M>::start(&data, &straight, config::<M>(3), Device::flex()).unwrap();
    run.train(u64::MAX, &mut |_| {}).unwrap();
    drop(run);

    let resumed = tmp.path().join("resumed");
    let mut run = Pretrain::<M>::start(&data, &resumed, config::<M>(3), Device::flex()).unwrap();
    run.train(1, &mut |_| {}).unwrap();
    drop(run);
    let mut run = Pretrain::<M>::resume(&resumed, None, Device::flex()).unwrap();
    assert_eq!(run.steps_done(), 1);
    run.train(u64::MAX, &mut |_| {}).unwrap();

    for file in [ENCODER_FILE, "checkpoint/weights-4.safetensors"] {
        let differences = differing_tensors(&straight.join(file), &resumed.join(file));
        assert!(differences.is_empty(), "{file} differs: {differences:?}");
    }
    assert_eq!(metrics(&straight), metrics(&resumed));
    // A collapse warning (a line of its own) may come with a noisy batch-2 step.
    let steps = metrics(&straight)
        .iter()
        .filter(|line| line["event"] == "step")
        .count();
    assert_eq!(steps, 3);
    assert_eq!(
        read(&straight.join("result.json")),
        read(&resumed.join("result.json"))
    );
}

/// Runs `check::<M>()` for every registered method, each to the end even when an earlier
/// one fails, then fails naming every method that did.
fn for_every_method(check: fn(&str)) {
    let failed: Vec<&str> = METHODS
        .iter()
        .map(|info| info.name)
        .filter(|&name| std::panic::catch_unwind(|| check(name)).is_err())
        .collect();
    assert!(failed.is_empty(), "failed for: {}", failed.join(", "));
}

/// [`one_step_trains_and_exports`] as a visit by name.
struct OneStep;

impl MethodVisitor for OneStep {
    type Output = ();
    fn visit<M: Method>(self) {
        one_step_trains_and_exports::<M>();
    }
}

/// [`resumed_run_equals_uninterrupted_run`] as a visit by name.
struct Resume;

impl MethodVisitor for Resume {
    type Output = ();
    fn visit<M: Method>(self) {
        resumed_run_equals_uninterrupted_run::<M>();
    }
}

#[test]
fn every_method_one_step_trains_and_exports_the_encoder() {
    for_every_method(|name| visit(name, OneStep).unwrap());
}

#[test]
fn every_method_resumed_run_equals_uninterrupted_run() {
    for_every_method(|name| visit(name, Resume).unwrap());
}
