//! `medssl finetune`, `evaluate` and `predict` from the command line on a small synthetic
//! task: the run directory, the scores, masks on the input's grid, and the refusals that
//! come before any training.

mod common;

use std::path::{Path, PathBuf};

use common::{medssl, stdout_ok};
use medssl_io::{ReadOptions, read_volume};
use serde_json::Value;

/// One epoch on 32^3 crops (the test phantoms whole; tiny's default crop is 64³): enough
/// to exercise every file of a run in seconds.
const QUICK: [&str; 8] = [
    "--set",
    "model.roi=[32, 32, 32]",
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
        log.contains("epoch 1/1: loss") && log.contains("validation epoch 1: mean Dice"),
        "{log}"
    );
    for file in [
        "config.toml",
        "run.json",
        "split.json",
        "metrics.jsonl",
        "best.safetensors",
        "last.safetensors",
        "result.json",
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
    // A random step would be cached once per case and never drawn again.
    refused(
        &[
            "--set",
            "data.preprocess=[{name = \"rand_flip\", prob = 0.5}]",
        ],
        &["data.preprocess", "rand_flip", "is random"],
    );
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

/// Starts `medssl args`, its stderr written to `log`.
fn spawn(args: &[&str], log: &Path) -> std::process::Child {
    std::process::Command::new(common::bin())
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// Waits until `path` exists; fails when `child` ends first, or after 10 minutes.
fn wait_for(child: &mut std::process::Child, path: &Path) {
    let started = std::time::Instant::now();
    while !path.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before {} existed",
            path.display()
        );
        assert!(
            started.elapsed().as_secs() < 600,
            "no {} after 10 minutes",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Presses Ctrl-C for `child` (SIGINT) and waits for it; its exit code.
fn press_ctrl_c(mut child: std::process::Child) -> Option<i32> {
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    child.wait().unwrap().code()
}

/// A run killed after its first epoch, before any validation (the tiny preset
/// validates every 5 epochs), continues from the checkpoint of that epoch with
/// `--resume`, says so, and ends with each epoch logged once.
#[test]
fn a_killed_finetune_resumes_from_its_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let task = tmp.path().join("task");
    let run = tmp.path().join("run");
    synth("abdomen-ct", &task);
    let args = [
        "finetune",
        "--task",
        arg(&task),
        "--out",
        arg(&run),
        "--quiet",
        "--set",
        "model.roi=[32, 32, 32]",
        "--set",
        "train.epochs=3",
    ];
    let mut child = spawn(&args, &tmp.path().join("log"));
    wait_for(&mut child, &run.join("checkpoint/state.json"));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!run.join("result.json").exists() || json(&run.join("result.json"))["epochs"] != 3);

    let log = stderr(&medssl(&["finetune", "--resume", arg(&run), "--quiet"]));
    assert!(
        log.contains("resuming at epoch 2/3 (checkpoint after epoch 1)"),
        "{log}"
    );
    assert!(
        !log.contains("epoch 1/3: loss"),
        "epoch 1 was trained again: {log}"
    );
    assert!(log.contains("epoch 3/3: loss"), "{log}");
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

/// A setting refused by validation (not by parsing) stops the run before its directory
/// exists.
#[test]
fn a_refused_setting_leaves_no_run_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let task = tmp.path().join("task");
    synth("abdomen-ct", &task);
    let run = tmp.path().join("run");
    let out = finetune(&task, &run, &["--set", "model.feature_size=13"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("feature_size must be a positive multiple of 12, got 13"),
        "{}",
        stderr(&out)
    );
    assert!(!run.exists(), "wrote {}", run.display());
    assert!(!tmp.path().join(".medssl-cache").exists());
}

/// The files below `dir`, relative to it, sorted.
fn relative_files(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                names.push(name);
            }
        }
    }
    names.sort();
    names
}

/// A run's `metrics.jsonl` without the wall-clock seconds.
fn metrics_without_timings(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|line| {
            let mut value: Value = serde_json::from_str(line).unwrap();
            value.as_object_mut().unwrap().remove("seconds");
            value
        })
        .collect()
}

/// What a run prints (run directory, split, `epoch K/N` with the run's time left,
/// validations, the next commands) and keeps when it finishes (best and last weights,
/// no optimiser state, still evaluable); Ctrl-C in the second epoch stops it at a
/// checkpoint with the command that resumes it, and the resumed run says where it goes
/// on and ends with exactly the uninterrupted run's weights and log.
#[test]
fn an_interrupted_finetune_resumes_where_it_stopped_and_ends_as_if_uninterrupted() {
    let tmp = tempfile::tempdir().unwrap();
    let task = tmp.path().join("task");
    synth("abdomen-ct", &task);
    let two_epochs = ["--set", "train.epochs=2"];

    let straight = tmp.path().join("straight");
    let log = finetune_ok(&task, &straight, &two_epochs);
    let split = json(&straight.join("split.json"));
    let count = |part: &str| split[part].as_array().unwrap().len();
    for line in [
        format!("run directory: {}", straight.display()),
        format!(
            "split: {} train / {} val / {} test ({})",
            count("train"),
            count("validation"),
            count("test"),
            straight.join("split.json").display()
        ),
        format!(
            "next: medssl evaluate --run {} --split test",
            straight.display()
        ),
        format!(
            "      medssl predict --run {} -i IMAGES -o OUT",
            straight.display()
        ),
    ] {
        assert!(log.lines().any(|l| l == line), "{line:?} not in {log}");
    }
    for epoch in 1..=2 {
        let line = log
            .lines()
            .find(|l| l.starts_with(&format!("epoch {epoch}/2: loss ")))
            .unwrap_or_else(|| panic!("no line for epoch {epoch}: {log}"));
        let rate = line.contains(" step/s ") || line.contains(" s/step ");
        assert!(
            rate && line.contains("  ETA ") && line.ends_with(" (run)"),
            "{line}"
        );
        assert!(
            log.contains(&format!("validation epoch {epoch}: mean Dice ")),
            "{log}"
        );
    }
    assert!(
        log.contains(
            "kept best.safetensors and last.safetensors; removed the resumable checkpoint ("
        ),
        "{log}"
    );
    let kept = relative_files(&straight);
    assert_eq!(
        kept,
        [
            "best.safetensors",
            "config.toml",
            "last.safetensors",
            "metrics.jsonl",
            "result.json",
            "run.json",
            "split.json"
        ],
        "a finished run keeps its weights, not its optimiser state"
    );
    let size = |run: &Path, file: &str| std::fs::metadata(run.join(file)).unwrap().len();
    assert_eq!(
        size(&straight, "best.safetensors"),
        size(&straight, "last.safetensors")
    );
    assert!(size(&straight, "last.safetensors") > 1_000_000);
    let summary: Value =
        serde_json::from_str(&stdout_ok(&["evaluate", "--run", arg(&straight), "--json"])).unwrap();
    assert_eq!(summary["cases"], count("test"));

    // A finished run: nothing to resume, and nothing to extend without its checkpoint.
    let again = medssl(&["finetune", "--resume", arg(&straight)]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("finished its 2 epochs already; nothing to resume"),
        "{}",
        stderr(&again)
    );
    let longer = medssl(&[
        "finetune",
        "--resume",
        arg(&straight),
        "--set",
        "train.epochs=3",
    ]);
    assert!(!longer.status.success());
    assert!(
        stderr(&longer).contains("train.keep_checkpoints = \"best_and_last\""),
        "{}",
        stderr(&longer)
    );

    let stopped = tmp.path().join("stopped");
    let mut args = vec![
        "finetune",
        "--task",
        arg(&task),
        "--out",
        arg(&stopped),
        "--quiet",
    ];
    args.extend(QUICK);
    args.extend(two_epochs);
    let log_file = tmp.path().join("stopped.log");
    let mut child = spawn(&args, &log_file);
    wait_for(&mut child, &stopped.join("checkpoint/state.json"));
    let code = press_ctrl_c(child);
    let log = std::fs::read_to_string(&log_file).unwrap();
    assert_eq!(code, Some(130), "{log}");
    assert!(
        log.lines().any(|l| l
            == format!(
                "interrupted; resume with: medssl finetune --resume {}",
                stopped.display()
            )),
        "{log}"
    );
    assert!(!stopped.join("result.json").exists());

    let out = medssl(&["finetune", "--resume", arg(&stopped), "--quiet"]);
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("resuming in epoch 2/2 after batch ")
            || log.contains("resuming at epoch 2/2 (checkpoint after epoch 1)"),
        "{log}"
    );
    assert!(
        !log.contains("epoch 1/2: loss"),
        "epoch 1 trained again: {log}"
    );
    assert!(log.contains("epoch 2/2: loss"), "{log}");
    for file in ["best.safetensors", "last.safetensors"] {
        assert!(
            std::fs::read(straight.join(file)).unwrap()
                == std::fs::read(stopped.join(file)).unwrap(),
            "{file} differs from the uninterrupted run's"
        );
    }
    assert_eq!(
        metrics_without_timings(&straight),
        metrics_without_timings(&stopped)
    );
    assert_eq!(json(&stopped.join("result.json"))["epochs"], 2);
    assert_eq!(relative_files(&stopped), kept);
}

/// `--resume --set train.epochs=N` trains a run that kept its checkpoint for more
/// epochs, says what its learning rate does (a run at the end of its schedule goes on
/// at `train.min_lr`), and stores the extension; other settings stay refused.
#[test]
fn resume_with_more_epochs_extends_a_run() {
    let tmp = tempfile::tempdir().unwrap();
    let task = tmp.path().join("task");
    let run = tmp.path().join("run");
    synth("abdomen-ct", &task);
    finetune_ok(&task, &run, &["--set", "train.keep_checkpoints=\"all\""]);
    assert!(run.join("checkpoint/state.json").is_file());

    for (set, expected) in [
        ("train.lr=0.1", "only train.epochs may be raised"),
        ("train.epochs=0", "it can be extended, not shortened"),
    ] {
        let out = medssl(&["finetune", "--resume", arg(&run), "--set", set]);
        assert!(!out.status.success(), "{set} was accepted");
        assert!(stderr(&out).contains(expected), "{set}: {}", stderr(&out));
    }

    let out = medssl(&[
        "finetune",
        "--resume",
        arg(&run),
        "--quiet",
        "--set",
        "train.epochs=2",
    ]);
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains(
            "extending the run from 1 to 2 epochs: the learning rate goes on from 1.000e-5 \
             along a cosine re-stretched to reach train.min_lr 1.000e-5 at epoch 2"
        ),
        "{log}"
    );
    assert!(log.contains("resuming at epoch 2/2"), "{log}");
    let train: Vec<Value> = metrics_without_timings(&run)
        .into_iter()
        .filter(|line| line["event"] == "train")
        .collect();
    let epochs: Vec<u64> = train.iter().map(|l| l["epoch"].as_u64().unwrap()).collect();
    assert_eq!(epochs, [1, 2]);
    assert_eq!(train[1]["lr"].as_f64(), Some(1e-5), "{}", train[1]);
    assert_eq!(json(&run.join("result.json"))["epochs"], 2);
    let config: toml::Table = std::fs::read_to_string(run.join("config.toml"))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(config["train"]["epochs"].as_integer(), Some(2));
    let extension = &config["train"]["extensions"][0];
    assert_eq!(extension["from_epochs"].as_integer(), Some(1));
    assert_eq!(
        extension["at_iteration"].as_integer(),
        train[0]["iteration"].as_i64()
    );
}
