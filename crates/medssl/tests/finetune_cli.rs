//! `medssl finetune`, `evaluate` and `predict` from the command line on a small synthetic
//! task: the run directory, the scores, masks on the input's grid, and the refusals that
//! come before any training.

mod common;

use std::path::{Path, PathBuf};

use common::{medssl, stdout_ok};
use medssl_io::{ReadOptions, read_volume};
use serde_json::Value;

/// One epoch on 32^3 crops: enough to exercise every file of a run in seconds.
const QUICK: [&str; 6] = [
    "--set",
    "train.epochs=1",
    "--set",
    "validation.every=1",
    "--set",
    "train.warmup_epochs=0",
];

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// `medssl synth` with 8 training cases (and 2 in imagesTs) of `kind` at 32^3.
fn synth(kind: &str, out: &Path) {
    stdout_ok(&[
        "synth",
        "--kind",
        kind,
        "--cases",
        "8",
        "--test-cases",
        "2",
        "--size",
        "32",
        "--seed",
        "5",
        "--out",
        arg(out),
    ]);
}

/// `medssl finetune` with the quick settings and `extra` arguments; the process output.
fn finetune(task: &Path, run: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "finetune",
        "--task",
        arg(task),
        "--out",
        arg(run),
        "--quiet",
    ];
    args.extend(QUICK);
    args.extend(extra);
    medssl(&args)
}

fn finetune_ok(task: &Path, run: &Path, extra: &[&str]) -> String {
    let out = finetune(task, run, extra);
    assert!(out.status.success(), "finetune failed: {}", stderr(&out));
    stderr(&out)
}

/// Dice of `class` between two label maps on the same grid (1 when both lack it, as
/// MONAI's `ignore_empty=False` gives).
fn dice(a: &Path, b: &Path, class: f32) -> f64 {
    let read = |p: &Path| read_volume(p, &ReadOptions::default()).unwrap();
    let (a, b) = (read(a), read(b));
    assert_eq!(a.spatial_shape(), b.spatial_shape());
    let (mut both, mut total) = (0usize, 0usize);
    for (x, y) in a.data().iter().zip(b.data().iter()) {
        let (x, y) = (*x == class, *y == class);
        both += usize::from(x && y);
        total += usize::from(x) + usize::from(y);
    }
    if total == 0 {
        1.0
    } else {
        2.0 * both as f64 / total as f64
    }
}

#[test]
fn finetune_evaluate_and_predict_write_consistent_results() {
    let tmp = tempfile::tempdir().unwrap();
    let task = tmp.path().join("task");
    let run = tmp.path().join("run");
    synth("abdomen-ct", &task);

    let log = finetune_ok(&task, &run, &[]);
    assert!(
        log.contains("epoch 1: loss") && log.contains("epoch 1: validation Dice"),
        "{log}"
    );
    for file in [
        "config.toml",
        "run.json",
        "split.json",
        "metrics.jsonl",
        "best.safetensors",
        "result.json",
        "checkpoint/state.json",
    ] {
        assert!(run.join(file).exists(), "{file} missing");
    }
    let result = json(&run.join("result.json"));
    assert_eq!(result["epochs"], 1);
    let split = json(&run.join("split.json"));
    let test_ids: Vec<String> = serde_json::from_value(split["test"].clone()).unwrap();
    assert!(!test_ids.is_empty());

    // evaluate --json: one object, every foreground class of dataset.json.
    let printed = stdout_ok(&["evaluate", "--run", arg(&run), "--split", "test", "--json"]);
    let summary: Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(summary["cases"], test_ids.len());
    let mean = summary["mean_dice"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&mean), "{mean}");
    let labels = json(&task.join("dataset.json"))["labels"].clone();
    let labels = labels.as_object().unwrap();
    let per_class = summary["per_class"].as_object().unwrap();
    assert_eq!(per_class.len(), labels.len() - 1, "{per_class:?}");
    for (index, name) in labels {
        let name = name.as_str().unwrap();
        if index != "0" {
            assert!(per_class[name]["dice"].is_number(), "{name}");
        }
    }
    assert!(
        json(&run.join("result.json"))["evaluation"]["test"].is_object(),
        "the summary goes into result.json"
    );

    // predict writes a label map on the input's grid whose Dice against the label file
    // is what evaluate scored for that case: the mask overlays the input.
    let case = &test_ids[0];
    let image = task.join("imagesTr").join(format!("{case}.nii.gz"));
    let label = task.join("labelsTr").join(format!("{case}.nii.gz"));
    let mask = tmp.path().join("mask.nii.gz");
    stdout_ok(&["predict", "--run", arg(&run), arg(&image), arg(&mask)]);
    let info = |p: &Path| -> Value {
        serde_json::from_str(&stdout_ok(&["info", "--json", arg(p)])).unwrap()
    };
    let (image_info, mask_info) = (info(&image), info(&mask));
    assert_eq!(mask_info["shape"], image_info["shape"]);
    assert_eq!(mask_info["affine"], image_info["affine"]);
    let top = (labels.len() - 1) as f64;
    assert!(mask_info["stats"]["min"].as_f64().unwrap() >= 0.0);
    assert!(mask_info["stats"]["max"].as_f64().unwrap() <= top);
    let csv = std::fs::read_to_string(run.join("evaluation-test.csv")).unwrap();
    let mut checked = 0;
    for row in csv
        .lines()
        .skip(1)
        .filter(|r| r.starts_with(&format!("{case},")))
    {
        let fields: Vec<&str> = row.split(',').collect();
        let class = labels
            .iter()
            .find(|(_, name)| name.as_str() == Some(fields[1]))
            .map(|(index, _)| index.parse::<f32>().unwrap())
            .unwrap();
        let scored: f64 = fields[2].parse().unwrap_or(f64::NAN);
        let ours = dice(&mask, &label, class);
        // A class absent from both is NaN in MONAI's convention; 1 here.
        if scored.is_finite() {
            assert!(
                (scored - ours).abs() < 1e-6,
                "{case} class {class}: {scored} vs {ours}"
            );
            checked += 1;
        }
    }
    assert!(checked > 0, "no finite Dice for {case} in {csv}");
}

#[test]
fn finetune_refuses_bad_input_before_writing_or_training() {
    let tmp = tempfile::tempdir().unwrap();
    let task = tmp.path().join("task");
    synth("abdomen-ct", &task);
    let refused = |extra: &[&str], expected: &[&str]| {
        let run = tmp.path().join("refused");
        let out = finetune(&task, &run, extra);
        let text = stderr(&out);
        assert!(!out.status.success(), "{extra:?} was accepted");
        for part in expected {
            assert!(text.contains(part), "{extra:?}: {part:?} not in {text}");
        }
        assert!(!text.contains("epoch 1"), "{extra:?} trained: {text}");
        assert!(!run.exists(), "{extra:?} wrote {}", run.display());
    };
    refused(&["--shots", "100"], &["100"]);
    refused(&["--set", "train.nonsense=1"], &["train.nonsense"]);
    refused(
        &[
            "--set",
            "data.augment=[{name = \"rand_flipp\", prob = 0.5}]",
        ],
        &["rand_flipp"],
    );
    refused(
        &["--init", arg(&tmp.path().join("absent.safetensors"))],
        &["absent.safetensors"],
    );

    let typo = tmp.path().join("no-such-run");
    for args in [
        vec!["evaluate", "--run", arg(&typo)],
        vec!["finetune", "--resume", arg(&typo)],
    ] {
        let out = medssl(&args);
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("not a run directory"),
            "{}",
            stderr(&out)
        );
        assert!(!typo.exists(), "{args:?} created {}", typo.display());
    }
}

/// Weights of another run: fitted where the architecture allows (a new head for another
/// label set), refused with the setting to change where it does not.
#[test]
fn finetune_checks_initial_weights_against_the_task() {
    let tmp = tempfile::tempdir().unwrap();
    let abdomen = tmp.path().join("abdomen");
    synth("abdomen-ct", &abdomen);
    let source = tmp.path().join("source");
    finetune_ok(&abdomen, &source, &[]);
    let weights: PathBuf = source.join("best.safetensors");

    let headneck = tmp.path().join("headneck");
    synth("headneck-ct", &headneck);
    let run = tmp.path().join("transfer");
    let log = finetune_ok(&headneck, &run, &["--init", arg(&weights)]);
    assert!(log.contains("output head not loaded"), "{log}");
    let report = json(&run.join("init_report.json"));
    assert!(
        report["missing"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k.as_str().unwrap().starts_with("out."))
    );
    assert!(report["loaded"].as_array().unwrap().len() > 100);

    let out = finetune(
        &abdomen,
        &tmp.path().join("wider"),
        &["--init", arg(&weights), "--set", "model.feature_size=24"],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--set model.feature_size=12"),
        "{}",
        stderr(&out)
    );

    // A task declaring two channels cannot start from one-channel weights.
    let dataset = abdomen.join("dataset.json");
    let mut declared = json(&dataset);
    declared["modality"] = serde_json::json!({"0": "CT", "1": "CT"});
    std::fs::write(&dataset, declared.to_string()).unwrap();
    let out = finetune(
        &abdomen,
        &tmp.path().join("two"),
        &["--init", arg(&weights)],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("1 input channel(s), the task has 2"),
        "{}",
        stderr(&out)
    );
}

/// A run killed after its first checkpoint continues with `--resume` and ends with
/// each epoch logged once.
#[test]
fn a_killed_finetune_resumes_from_its_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let task = tmp.path().join("task");
    let run = tmp.path().join("run");
    synth("abdomen-ct", &task);
    let mut child = std::process::Command::new(common::bin())
        .args([
            "finetune",
            "--task",
            arg(&task),
            "--out",
            arg(&run),
            "--quiet",
        ])
        .args(["--set", "train.epochs=3", "--set", "validation.every=1"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let state = run.join("checkpoint/state.json");
    let started = std::time::Instant::now();
    while !state.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "finetune ended before its first checkpoint"
        );
        assert!(
            started.elapsed().as_secs() < 600,
            "no checkpoint after 10 minutes"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!run.join("result.json").exists() || json(&run.join("result.json"))["epochs"] != 3);

    let log = stderr(&medssl(&["finetune", "--resume", arg(&run), "--quiet"]));
    assert!(
        !log.contains("epoch 1: loss"),
        "epoch 1 was trained again: {log}"
    );
    assert!(log.contains("epoch 3: loss"), "{log}");
    assert_eq!(json(&run.join("result.json"))["epochs"], 3);
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    for epoch in 1..=3 {
        let lines = metrics
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|v| v["event"] == "train" && v["epoch"] == epoch)
            .count();
        assert_eq!(lines, 1, "epoch {epoch} in {metrics}");
    }
}
