//! `medssl probe` on a synthetic task: from scratch and from a pretraining run's
//! encoder it prints one JSON object with every encoder stage's linear and k-NN scores
//! (balanced accuracy within [0, 1] where the stage has tokens of two classes, null
//! where it has one), fitted on the training cases of the split a fine-tune of the
//! same settings draws; the patch embedding of a random encoder already tells the
//! phantom's organs from background better than chance. A missing weights file is an
//! error naming it. `pretrain --probe` logs the same probes every few steps and after
//! the last, whose scores equal `medssl probe` of the finished encoder.

mod common;

use std::path::Path;

use common::{medssl, stdout_ok};
use serde_json::Value;

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn synth(out: &Path, unlabelled: bool) {
    let mut args = vec!["synth", "--kind", "abdomen-ct", "--cases", "6"];
    if unlabelled {
        args.push("--unlabelled");
    }
    args.extend(["--size", "32", "--seed", "3", "--out", arg(out)]);
    stdout_ok(&args);
}

const STAGES: [&str; 5] = ["patch_embed", "stage1", "stage2", "stage3", "stage4"];

/// The JSON of `medssl probe ENCODER --task TASK --json` at a 32³ window.
fn probe(encoder: &str, task: &Path) -> Value {
    let out = stdout_ok(&[
        "probe",
        encoder,
        "--task",
        arg(task),
        "--json",
        "--set",
        "model.roi=[32, 32, 32]",
    ]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// Every stage present; a balanced accuracy is a number in [0, 1] or null (one class
/// of training tokens), Dice one entry per class.
fn check_stages(report: &Value, classes: usize) {
    for stage in STAGES {
        let scores = &report["stages"][stage];
        assert!(scores["train_tokens"].as_u64().unwrap() > 0, "{report}");
        for probe in ["linear", "knn"] {
            let accuracy = &scores[probe]["balanced_accuracy"];
            assert!(
                accuracy.is_null() || (0.0..=1.0).contains(&accuracy.as_f64().unwrap()),
                "{stage} {probe}: {report}"
            );
            assert_eq!(
                scores[probe]["dice"].as_array().unwrap().len(),
                classes,
                "{report}"
            );
        }
    }
}

#[test]
fn probe_scores_every_stage_of_scratch_and_of_a_pretrained_encoder() {
    let tmp = tempfile::tempdir().unwrap();
    let task = tmp.path().join("abd");
    synth(&task, false);
    let dataset: Value =
        serde_json::from_str(&std::fs::read_to_string(task.join("dataset.json")).unwrap()).unwrap();
    let classes = dataset["labels"].as_object().unwrap().len();

    let scratch = probe("scratch", &task);
    assert!(scratch["weights"].is_null());
    assert!(scratch["train_cases"].as_u64().unwrap() >= 2, "{scratch}");
    assert!(
        scratch["held_out_cases"].as_u64().unwrap() >= 1,
        "{scratch}"
    );
    assert_eq!(scratch["split"], "val");
    check_stages(&scratch, classes);
    let patch = scratch["stages"]["patch_embed"]["linear"]["balanced_accuracy"]
        .as_f64()
        .unwrap();
    assert!(
        patch > 1.5 / classes as f64,
        "patch embedding {patch}: {scratch}"
    );

    let data = tmp.path().join("ct");
    synth(&data, true);
    let run = tmp.path().join("pre");
    stdout_ok(&[
        "pretrain",
        "--method",
        "simmim",
        "--data",
        arg(&data),
        "--out",
        arg(&run),
        "--steps",
        "1",
        "--quiet",
    ]);
    let pretrained = probe(arg(&run), &task);
    let weights = pretrained["weights"].as_str().unwrap();
    assert!(weights.ends_with("encoder.safetensors"), "{pretrained}");
    check_stages(&pretrained, classes);

    let missing = tmp.path().join("no-such.safetensors");
    let out = medssl(&["probe", arg(&missing), "--task", arg(&task)]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no-such.safetensors"), "{stderr}");
}

/// `pretrain --probe TASK --probe-every 2` over 3 steps probes after steps 2 and 3; the
/// last probe, kept in result.json, is what `medssl probe` gives the finished run's
/// encoder with the same (default) settings.
#[test]
fn pretraining_probes_its_encoder_as_it_goes() {
    let tmp = tempfile::tempdir().unwrap();
    let task = tmp.path().join("abd");
    synth(&task, false);
    let data = tmp.path().join("ct");
    synth(&data, true);
    let run = tmp.path().join("pre");
    stdout_ok(&[
        "pretrain",
        "--method",
        "rotnet",
        "--data",
        arg(&data),
        "--out",
        arg(&run),
        "--steps",
        "3",
        "--probe",
        arg(&task),
        "--probe-every",
        "2",
        "--quiet",
    ]);
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let probes: Vec<Value> = metrics
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["event"] == "probe")
        .collect();
    let iterations: Vec<u64> = probes
        .iter()
        .map(|p| p["iteration"].as_u64().unwrap())
        .collect();
    assert_eq!(iterations, [2, 3], "{metrics}");
    let result: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("result.json")).unwrap()).unwrap();
    assert_eq!(result["probe"]["iteration"], 3, "{result}");
    assert_eq!(result["probe"]["stages"], probes[1]["stages"]);

    // `finetune --init RUN` takes the run's encoder, as `probe RUN` does (a directory
    // given as a weights file would be an error).
    let check = medssl(&[
        "finetune",
        "--task",
        arg(&task),
        "--out",
        arg(&tmp.path().join("ft")),
        "--init",
        arg(&run),
        "--check",
    ]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(check.status.success(), "{said}");

    let out = stdout_ok(&["probe", arg(&run), "--task", arg(&task), "--json"]);
    let cli: Value = serde_json::from_str(&out).unwrap();
    for stage in STAGES {
        for probe in ["linear", "knn"] {
            let pretraining = &result["probe"]["stages"][stage][probe]["balanced_accuracy"];
            let after = &cli["stages"][stage][probe]["balanced_accuracy"];
            match (pretraining.as_f64(), after.as_f64()) {
                (Some(a), Some(b)) => assert!((a - b).abs() < 1e-6, "{stage} {probe}: {a} {b}"),
                _ => assert!(pretraining.is_null() && after.is_null(), "{stage} {probe}"),
            }
        }
    }
}
