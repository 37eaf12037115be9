//! A run whose loss becomes NaN stops, names the step and keeps its last good
//! checkpoint; clipped gradients are logged. (NaN or infinite voxels in an input are
//! refused when the case is loaded, naming the case, file and voxel: see medssl-data's
//! `nan_voxel_names_case_file_and_position`.)

use crate::common::medssl;
use crate::run_files::{Checkpointed, assert_failed_keeping_checkpoint, data};

#[test]
fn a_diverging_run_stops_at_the_step_and_keeps_the_last_good_checkpoint() {
    let Checkpointed {
        run,
        state,
        dir: _dir,
    } = Checkpointed::new(3);
    let best = std::fs::read(run.join("best.safetensors")).unwrap();
    // Divergence after the first checkpoint: the stored learning rate is raised so far
    // that the first update sends the weights to 1e30 and the next forward pass to inf.
    let config_path = run.join("config.toml");
    let config = std::fs::read_to_string(&config_path).unwrap();
    let mut table: toml::Table = toml::from_str(&config).unwrap();
    table["train"]["lr"] = toml::Value::Float(1e30);
    std::fs::write(&config_path, toml::to_string(&table).unwrap()).unwrap();

    let out = medssl(&["finetune", "--resume", run.to_str().unwrap(), "--quiet"]);
    assert_failed_keeping_checkpoint(
        &out,
        &run,
        &state,
        &["at epoch 2, iteration", "the last good checkpoint is kept"],
    );
    assert_eq!(std::fs::read(run.join("best.safetensors")).unwrap(), best);
}

#[test]
fn clipped_gradients_are_logged_per_epoch() {
    let dir = tempfile::tempdir().unwrap();
    data(dir.path());
    let run = dir.path().join("run");
    let out = medssl(&[
        "finetune",
        "--task",
        dir.path().join("abd").to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--shots",
        "2",
        "--set",
        "train.epochs=1",
        "--set",
        "model.roi=[32, 32, 32]",
        "--set",
        "train.optimizer.grad_clip_norm=1e-9",
        "--quiet",
    ]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let train: serde_json::Value = metrics
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|l| l["event"] == "train")
        .unwrap();
    let steps = train["steps"].as_u64().unwrap();
    assert!(steps > 0, "{train}");
    assert_eq!(train["clipped_steps"].as_u64(), Some(steps), "{train}");
    assert!(train["grad_norm_max"].as_f64().unwrap() > 1e-9, "{train}");
    assert!(
        log.contains(&format!(
            "epoch 1: gradient clipped in {steps} of {steps} steps"
        )),
        "{log}"
    );
}
