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
    // DESIGN.md's roster: nine methods in four families.
    let roster = [
        ("simclr", "contrastive"),
        ("mocov3", "contrastive"),
        ("cpc", "contrastive"),
        ("rotnet", "rotation"),
        ("swinunetr-ssl", "rotation"),
        ("simmim", "masked image modelling"),
        ("smit", "masked image modelling"),
        ("dino", "self-distillation"),
        ("ibot", "self-distillation"),
    ];
    let listed: Vec<(String, String)> = medssl_ssl::methods::METHODS
        .iter()
        .map(|m| (m.name.to_string(), m.family.to_string()))
        .collect();
    let mut expected: Vec<(String, String)> = roster
        .iter()
        .map(|(n, f)| (n.to_string(), f.to_string()))
        .collect();
    let mut sorted = listed.clone();
    sorted.sort();
    expected.sort();
    assert_eq!(sorted, expected);
    for (name, family) in &listed {
        let line = listing
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name.as_str()))
            .unwrap_or_else(|| panic!("{name} not listed: {listing}"));
        assert!(line.contains(family.as_str()), "{line}");
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
    assert!(
        stderr(&out).contains("known methods: simclr, mocov3, cpc, rotnet, swinunetr-ssl, simmim"),
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
    assert_eq!(lines.lines().count(), 2, "{lines}");

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
