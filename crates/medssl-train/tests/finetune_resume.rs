//! A tiny fine-tuning run interrupted after its first epoch and resumed ends with
//! exactly the weights, optimiser state and metrics of the same run left alone.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::Device;
use medssl_io::Volume;
use medssl_io::nalgebra::{Matrix4, Vector4};
use medssl_io::ndarray::Array4;
use medssl_io::nifti::{OutputType, write_volume};
use medssl_train::finetune::config::KeepCheckpoints;
use medssl_train::finetune::{Event, Finetune, FinetuneConfig, Init, Preset};

mod common;
use common::{differing_tensors, metrics, read};

/// A 4-case MSD task: a bright sphere (label 1) at a case-dependent place in noise-free
/// soft tissue.
fn write_task(dir: &Path) {
    std::fs::create_dir_all(dir.join("imagesTr")).unwrap();
    std::fs::create_dir_all(dir.join("labelsTr")).unwrap();
    let affine = Matrix4::from_diagonal(&Vector4::new(1.5, 1.5, 2.0, 1.0));
    let mut training = Vec::new();
    for case in 0..5usize {
        let centre = [12.0 + case as f64 * 2.0, 16.0, 14.0 + case as f64];
        let inside = |i: usize, j: usize, k: usize| {
            let d = [
                i as f64 - centre[0],
                j as f64 - centre[1],
                k as f64 - centre[2],
            ];
            d.iter().map(|x| x * x).sum::<f64>() < 36.0
        };
        let image = Array4::from_shape_fn((1, 32, 32, 32), |(_, i, j, k)| {
            if inside(i, j, k) {
                150.0
            } else {
                40.0 + ((i * 7 + j * 3 + k) % 5) as f32
            }
        });
        let label = Array4::from_shape_fn((1, 32, 32, 32), |(_, i, j, k)| {
            f32::from(u8::from(inside(i, j, k)))
        });
        let name = format!("case_{case}.nii.gz");
        write_volume(
            &dir.join("imagesTr").join(&name),
            &Volume::new(image, affine),
            OutputType::Int16,
        )
        .unwrap();
        write_volume(
            &dir.join("labelsTr").join(&name),
            &Volume::new(label, affine),
            OutputType::UInt8,
        )
        .unwrap();
        training.push(serde_json::json!({
            "image": format!("./imagesTr/{name}"),
            "label": format!("./labelsTr/{name}"),
        }));
    }
    let dataset = serde_json::json!({
        "name": "spheres",
        "modality": {"0": "CT"},
        "labels": {"0": "background", "1": "sphere"},
        "numTraining": training.len(),
        "training": training,
        "test": [],
    });
    std::fs::write(dir.join("dataset.json"), dataset.to_string()).unwrap();
}

fn config() -> FinetuneConfig {
    let overrides: Vec<String> = [
        "train.epochs=2",
        // The 32³ phantoms whole: plumbing, not accuracy (tiny crops 64³).
        "model.roi=[32, 32, 32]",
        "train.warmup_epochs=1",
        "validation.every=1",
        "data.loader.num_workers=2",
        "seed=11",
        // The checkpoints are compared after the end, so the end keeps them.
        "train.keep_checkpoints=\"all\"",
    ]
    .map(String::from)
    .to_vec();
    FinetuneConfig::load(Preset::Tiny, None, &overrides).unwrap()
}

#[test]
fn interrupted_and_resumed_run_equals_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let task = tmp.path().join("task");
    write_task(&task);
    let device = Device::flex();

    let straight = tmp.path().join("straight");
    let mut run = Finetune::start(
        &task,
        &straight,
        config(),
        Init::Scratch,
        None,
        device.clone(),
    )
    .unwrap();
    let steps_per_epoch = run.steps_per_epoch() as usize;
    run.train(u64::MAX, &mut |_| {}).unwrap();
    drop(run);

    let resumed = tmp.path().join("resumed");
    let mut run = Finetune::start(
        &task,
        &resumed,
        config(),
        Init::Scratch,
        None,
        device.clone(),
    )
    .unwrap();
    run.train(1, &mut |_| {}).unwrap();
    assert_eq!(run.epochs_done(), 1);
    drop(run); // the interruption
    let mut run = Finetune::resume(&resumed, None, device).unwrap();
    assert_eq!(run.epochs_done(), 1, "resumes after the checkpointed epoch");
    run.train(u64::MAX, &mut |_| {}).unwrap();

    // Weights are compared tensor by tensor (the safetensors header may list them in
    // another order); the optimiser state is not compared directly (Burn writes its
    // entries in hash-map order): equal weights after a resumed epoch of Adam steps
    // show its moments were restored.
    for file in [
        "checkpoint/weights-2.safetensors",
        "best.safetensors",
        "last.safetensors",
    ] {
        let differences = differing_tensors(&straight.join(file), &resumed.join(file));
        assert!(differences.is_empty(), "{file} differs: {differences:?}");
    }
    assert_eq!(
        read(&straight.join("split.json")),
        read(&resumed.join("split.json"))
    );
    assert_eq!(metrics(&straight), metrics(&resumed));
    let events: Vec<String> = metrics(&straight)
        .iter()
        .map(|line| line["event"].as_str().unwrap().to_string())
        .collect();
    let epoch = [vec!["step"; steps_per_epoch], vec!["train", "validation"]].concat();
    assert_eq!(
        events,
        [epoch.clone(), epoch].concat(),
        "a step line per step, then a train and a validation line, per epoch"
    );
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(straight.join("result.json")).unwrap())
            .unwrap();
    assert_eq!(result["epochs"], 2);
    assert!(result["best_dice"].as_f64().unwrap().is_finite());
    // The latest generation and the one before it (the fallback) are kept, nothing else.
    let mut kept: Vec<String> = std::fs::read_dir(straight.join("checkpoint"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    kept.sort();
    assert_eq!(
        kept,
        [
            "optimizer-1.bin",
            "optimizer-2.bin",
            "previous.json",
            "state.json",
            "weights-1.safetensors",
            "weights-2.safetensors"
        ]
    );
}

/// A run stopped (as Ctrl-C stops it) after the first optimiser step of its second
/// epoch checkpoints that step, resumes inside the epoch, and ends exactly as the run
/// left alone, its per-epoch log lines included; with the default
/// `train.keep_checkpoints` the finished run keeps its weights, not its checkpoint.
#[test]
fn a_run_stopped_mid_epoch_resumes_there_and_equals_the_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let task = tmp.path().join("task");
    write_task(&task);
    let device = Device::flex();
    let mut config = config();
    config.train.keep_checkpoints = KeepCheckpoints::BestAndLast;
    let start = |dir: &Path| {
        Finetune::start(
            &task,
            dir,
            config.clone(),
            Init::Scratch,
            None,
            device.clone(),
        )
        .unwrap()
    };

    let straight = tmp.path().join("straight");
    start(&straight).train(u64::MAX, &mut |_| {}).unwrap();

    let stopped = tmp.path().join("stopped");
    let mut run = start(&stopped);
    let flag = Arc::new(AtomicBool::new(false));
    run.stop_when(Arc::clone(&flag));
    let mut batches = 0;
    let per_epoch = run.batches_per_epoch();
    assert!(per_epoch >= 2, "the epoch must go on after the stop");
    run.train(u64::MAX, &mut |event| {
        if let Event::Step { .. } = event {
            batches += 1;
            flag.store(batches == per_epoch + 1, Ordering::SeqCst);
        }
    })
    .unwrap();
    assert_eq!((run.epochs_done(), run.batches_done()), (1, 1));
    drop(run);
    assert!(!stopped.join("result.json").exists());

    let mut run = Finetune::resume(&stopped, None, device.clone()).unwrap();
    assert_eq!((run.epochs_done(), run.batches_done()), (1, 1));
    let mut starts = Vec::new();
    run.train(u64::MAX, &mut |event| {
        if let Event::EpochStart { epoch, done, .. } = event {
            starts.push((epoch, done));
        }
    })
    .unwrap();
    assert_eq!(starts, [(2, 1)], "the resumed run goes on inside epoch 2");

    for file in ["best.safetensors", "last.safetensors"] {
        let differences = differing_tensors(&straight.join(file), &stopped.join(file));
        assert!(differences.is_empty(), "{file} differs: {differences:?}");
    }
    assert_eq!(metrics(&straight), metrics(&stopped));
    assert_eq!(
        read(&straight.join("result.json")),
        read(&stopped.join("result.json"))
    );
    for run in [&straight, &stopped] {
        assert!(!run.join("checkpoint").exists(), "{}", run.display());
        assert_eq!(
            Finetune::finished(run).unwrap().map(|f| f.epochs),
            Some(2),
            "{}",
            run.display()
        );
    }
    let err = Finetune::resume(&stopped, None, device).err().unwrap();
    assert!(
        err.to_string()
            .contains("keep_checkpoints = \"best_and_last\""),
        "{err}"
    );
}

#[test]
fn a_second_start_in_the_same_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let task = tmp.path().join("task");
    write_task(&task);
    let out = tmp.path().join("run");
    let mut config = config();
    config.train.epochs = 1;
    let mut run = Finetune::start(
        &task,
        &out,
        config.clone(),
        Init::Scratch,
        None,
        Device::flex(),
    )
    .unwrap();
    run.train(u64::MAX, &mut |_| {}).unwrap();
    let err = Finetune::start(&task, &out, config, Init::Scratch, None, Device::flex())
        .err()
        .unwrap();
    assert!(err.to_string().contains("--resume"), "{err}");
}
