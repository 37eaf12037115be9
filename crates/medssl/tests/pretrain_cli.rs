//! `medssl pretrain`, `methods` and `config show` from the command line: a short
//! pretraining whose encoder `medssl finetune --init` loads, and the refusals that come
//! before any training.

mod common;

use std::path::Path;

use common::{medssl, stdout_ok};
use serde_json::Value;

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

/// An unlabelled CT collection of four 40³ phantoms.
fn collection(out: &Path) {
    stdout_ok(&[
        "synth",
        "--kind",
        "abdomen-ct",
        "--unlabelled",
        "--cases",
        "4",
        "--size",
        "40",
        "--seed",
        "9",
        "--out",
        arg(out),
    ]);
}

#[test]
fn methods_and_config_show_list_every_method_and_setting() {
    let listing = stdout_ok(&["methods"]);
    let registered = medssl_ssl::methods::METHODS;
    assert_eq!(listing.lines().count(), registered.len() + 1, "{listing}");
    for info in registered {
        let line = listing
            .lines()
            .find(|l| l.split_whitespace().next() == Some(info.name))
            .unwrap_or_else(|| panic!("{} not listed: {listing}", info.name));
        assert!(line.contains(&info.family.to_string()), "{line}");
        assert!(line.ends_with(info.description), "{line}");
        let shown: toml::Table = stdout_ok(&["config", "show", "--method", info.name])
            .parse()
            .unwrap();
        assert_eq!(shown["method"].as_str(), Some(info.name));
    }
    let text = stdout_ok(&["config", "show", "--method", "simmim", "--preset", "paper"]);
    let config: toml::Table = text.parse().unwrap();
    assert_eq!(config["method"].as_str(), Some("simmim"));
    assert_eq!(config["encoder"]["feature_size"].as_integer(), Some(48));
    assert_eq!(config["pretext"]["mask_ratio"].as_float(), Some(0.6));
    let finetune: toml::Table = stdout_ok(&["config", "show"]).parse().unwrap();
    assert_eq!(finetune["model"]["feature_size"].as_integer(), Some(12));
    let out = medssl(&["config", "show", "--method", "simclrr"]);
    assert!(!out.status.success());
    let names: Vec<&str> = registered.iter().map(|m| m.name).collect();
    assert!(
        stderr(&out).contains(&format!("known methods: {}", names.join(", "))),
        "{}",
        stderr(&out)
    );
}

#[test]
fn pretrained_encoder_initialises_finetuning() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("ct");
    collection(&data);
    let run = tmp.path().join("pre");
    let out = medssl(&[
        "pretrain",
        "--method",
        "simmim",
        "--data",
        arg(&data),
        "--out",
        arg(&run),
        "--steps",
        "2",
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let result = json(&run.join("result.json"));
    assert_eq!(result["steps"], 2);
    assert_eq!(result["volumes"], 4);
    let lines = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let events: Vec<String> = lines
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["event"].to_string())
        .collect();
    assert_eq!(events, [r#""step""#, r#""step""#, r#""train""#], "{lines}");

    let again = medssl(&[
        "pretrain",
        "--method",
        "simmim",
        "--data",
        arg(&data),
        "--out",
        arg(&run),
        "--steps",
        "2",
    ]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already holds a run"),
        "{}",
        stderr(&again)
    );
    let changed = medssl(&["pretrain", "--resume", arg(&run), "--set", "train.lr=1"]);
    assert!(!changed.status.success());
    assert!(
        stderr(&changed).contains("stored settings"),
        "{}",
        stderr(&changed)
    );

    let task = tmp.path().join("task");
    stdout_ok(&[
        "synth",
        "--kind",
        "abdomen-ct",
        "--cases",
        "6",
        "--size",
        "32",
        "--seed",
        "5",
        "--out",
        arg(&task),
    ]);
    let tuned = tmp.path().join("tuned");
    let encoder = run.join("encoder.safetensors");
    let out = medssl(&[
        "finetune",
        "--task",
        arg(&task),
        "--out",
        arg(&tuned),
        "--init",
        arg(&encoder),
        "--quiet",
        "--set",
        "train.epochs=1",
        "--set",
        "model.roi=[32, 32, 32]",
        "--set",
        "validation.every=1",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = json(&tuned.join("init_report.json"));
    let listed = |key: &str| -> Vec<String> {
        report[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    let loaded = listed("loaded");
    assert!(
        loaded.iter().all(|k| k.starts_with("swinViT.")),
        "{loaded:?}"
    );
    assert!(loaded.len() > 50, "{}", loaded.len());
    let missing = listed("missing");
    assert!(
        missing.iter().all(|k| !k.starts_with("swinViT.")),
        "{missing:?}"
    );
    assert!(listed("unexpected").is_empty());
}

#[test]
fn bad_methods_and_collections_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let out = medssl(&[
        "pretrain",
        "--method",
        "dinov9",
        "--data",
        arg(tmp.path()),
        "--out",
        arg(&tmp.path().join("r")),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("unknown method `dinov9`"),
        "{}",
        stderr(&out)
    );
    let missing = tmp.path().join("no-such-dir");
    let out = medssl(&[
        "pretrain",
        "--method",
        "simmim",
        "--data",
        arg(&missing),
        "--out",
        arg(&tmp.path().join("r")),
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no-such-dir"), "{}", stderr(&out));
    assert!(
        !tmp.path().join("r").exists(),
        "nothing written before the checks"
    );
    let out = medssl(&[
        "pretrain",
        "--method",
        "simmim",
        "--data",
        arg(tmp.path()),
        "--out",
        arg(&tmp.path().join("r")),
        "--set",
        "pretext.mask_ratio=1.5",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("mask_ratio"), "{}", stderr(&out));
}

/// A reader that goes away (`medssl methods | head -0`) ends the program quietly, as it
/// does a Unix tool, instead of a panic about a broken pipe.
#[test]
fn a_closed_pipe_ends_output_without_a_panic() {
    let mut child = std::process::Command::new(common::bin())
        .arg("methods")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}

/// A missing file is named once with the system's reason, said once.
#[test]
fn a_missing_file_is_said_once() {
    let out = medssl(&["info", "no-such-image.nii.gz"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no-such-image.nii.gz"), "{stderr}");
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "{stderr}"
    );
}

/// Ctrl-C during a pretraining stops it after the current step with a checkpoint of
/// exactly that step (here no scheduled checkpoint would come before the end), prints
/// the command that resumes it and exits with 130; the resumed run says at which step
/// it goes on and logs every step once.
#[test]
fn an_interrupted_pretraining_prints_its_resume_command_and_goes_on_at_the_next_step() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("ct");
    collection(&data);
    let run = tmp.path().join("pre");
    let log_file = tmp.path().join("log");
    let mut child = std::process::Command::new(common::bin())
        .args(["pretrain", "--method", "simmim", "--data", arg(&data)])
        .args(["--out", arg(&run), "--steps", "6", "--quiet"])
        .args(["--set", "train.checkpoint_every=100"])
        .stderr(std::fs::File::create(&log_file).unwrap())
        .spawn()
        .unwrap();
    let metrics = run.join("metrics.jsonl");
    // The step lines of the log (one being written while polled does not parse yet).
    let step_lines = |text: String| -> Vec<Value> {
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["event"] == "step")
            .collect()
    };
    let steps = || {
        std::fs::read_to_string(&metrics)
            .map(|text| step_lines(text).len())
            .unwrap_or(0)
    };
    let started = std::time::Instant::now();
    while steps() == 0 {
        assert!(child.try_wait().unwrap().is_none(), "ended before step 1");
        assert!(
            started.elapsed().as_secs() < 600,
            "no step after 10 minutes"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let code = child.wait().unwrap().code();
    let log = std::fs::read_to_string(&log_file).unwrap();
    assert_eq!(code, Some(130), "{log}");
    assert!(
        log.lines().any(|l| l
            == format!(
                "interrupted; resume with: medssl pretrain --resume {}",
                run.display()
            )),
        "{log}"
    );
    let done = steps();
    assert!(
        (1..6).contains(&done),
        "{done} steps before the stop: {log}"
    );
    let state = json(&run.join("checkpoint/state.json"));
    assert_eq!(
        state["iteration"], done,
        "the checkpoint is of the last step"
    );
    assert!(!run.join("result.json").exists());

    let out = medssl(&["pretrain", "--resume", arg(&run), "--quiet"]);
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains(&format!("resuming at step {}/6", done + 1)),
        "{log}"
    );
    assert_eq!(json(&run.join("result.json"))["steps"], 6);
    let iterations: Vec<u64> = step_lines(std::fs::read_to_string(&metrics).unwrap())
        .iter()
        .map(|l| l["iteration"].as_u64().unwrap())
        .collect();
    assert_eq!(iterations, (1..=6).collect::<Vec<_>>());
}
