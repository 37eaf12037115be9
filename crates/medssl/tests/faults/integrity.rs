//! Damaged files are detected, never loaded as garbage: a corrupt or truncated
//! checkpoint file or state makes `--resume` fall back to the previous checkpoint with a
//! warning naming the file (or fail naming both when neither is intact), and exported
//! weights whose data no longer match their recorded SHA-256 are refused by every
//! command that reads them; damaged preprocessing cache entries are recomputed with a
//! warning naming each.

use std::path::{Path, PathBuf};

use medssl_train::run_dir::RunDir;
use serde_json::Value;

use crate::common::medssl;
use crate::run_files::{assert_intact, data, finetune_to_generation};

fn flip_byte(path: &Path, from_end: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = bytes.len() - from_end as usize;
    bytes[at] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

fn truncate(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..bytes.len() / 2]).unwrap();
}

/// Flips a byte in the middle of every preprocessing cache entry of the runs in `dir`;
/// returns the entries.
fn damage_cache_entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries = Vec::new();
    for cache in std::fs::read_dir(dir.join(".medssl-cache")).unwrap() {
        for entry in std::fs::read_dir(cache.unwrap().path()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "bin") {
                let len = std::fs::metadata(&path).unwrap().len();
                flip_byte(&path, len / 2);
                entries.push(path);
            }
        }
    }
    entries
}

fn generation(run: &Path, state: &str) -> u64 {
    let state: Value =
        serde_json::from_slice(&std::fs::read(run.join("checkpoint").join(state)).unwrap())
            .unwrap();
    state["generation"].as_u64().unwrap()
}

fn checkpoint_file(run: &Path, kind: &str, generation: u64) -> PathBuf {
    let run = RunDir::at(run);
    match kind {
        "weights" => run.checkpoint_weights(generation),
        _ => run.checkpoint_optimizer(generation),
    }
}

#[test]
fn damaged_checkpoints_fall_back_to_the_previous_one_or_fail_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    data(dir.path());
    type Damage = fn(&Path) -> Vec<PathBuf>;
    let cases: [(&str, Damage); 4] = [
        ("a flipped bit in the weights", |run| {
            let file = checkpoint_file(run, "weights", generation(run, "state.json"));
            flip_byte(&file, 100);
            vec![file]
        }),
        ("a truncated optimiser state", |run| {
            let file = checkpoint_file(run, "optimizer", generation(run, "state.json"));
            truncate(&file);
            vec![file]
        }),
        ("a state file cut short", |run| {
            let file = run.join("checkpoint/state.json");
            truncate(&file);
            vec![file]
        }),
        ("both generations' weights damaged", |run| {
            let latest = checkpoint_file(run, "weights", generation(run, "state.json"));
            let previous = checkpoint_file(run, "weights", generation(run, "previous.json"));
            flip_byte(&latest, 100);
            flip_byte(&previous, 100);
            vec![latest, previous]
        }),
    ];
    let mut detected = 0;
    for (k, (what, damage)) in cases.iter().enumerate() {
        let run = finetune_to_generation(dir.path(), &format!("run{k}"), 2, 2);
        let previous = generation(&run, "previous.json");
        let damaged = damage(&run);
        // The first resume also finds every cache entry damaged: it must recompute
        // them, warning through the run's output (past `--quiet`), and end as usual.
        let entries = if k == 0 {
            damage_cache_entries(dir.path())
        } else {
            Vec::new()
        };
        let out = medssl(&["finetune", "--resume", run.to_str().unwrap(), "--quiet"]);
        let log = String::from_utf8_lossy(&out.stderr);
        for file in &damaged {
            assert!(log.contains(file.to_str().unwrap()), "{what}: {log}");
        }
        assert_eq!(entries.is_empty(), k != 0, "{what}: cache entries");
        for entry in &entries {
            let warning = format!("warning: preprocessing cache entry {}: ", entry.display());
            let line = log.lines().find(|l| l.starts_with(&warning));
            assert!(
                line.is_some_and(|l| l.ends_with("; recomputing it")),
                "{what}: no warning for {}: {log}",
                entry.display()
            );
        }
        let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
        let logged = metrics
            .lines()
            .filter(|l| serde_json::from_str::<Value>(l).unwrap()["event"] == "warning")
            .count();
        assert_eq!(logged, entries.len(), "{what}: warnings in metrics.jsonl");
        if damaged.len() == 1 {
            assert!(out.status.success(), "{what}: {log}");
            assert!(
                log.contains("warning:")
                    && log.contains(&format!(
                        "resuming from the previous checkpoint (epoch {previous}"
                    )),
                "{what}: {log}"
            );
            assert!(run.join("result.json").is_file(), "{what}");
            assert_intact(&run);
        } else {
            assert!(!out.status.success(), "{what}: {log}");
            assert!(log.contains("no intact checkpoint"), "{what}: {log}");
        }
        detected += 1;
    }
    assert_eq!(detected, cases.len());
}

#[test]
fn exported_weights_with_damaged_data_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    data(dir.path());
    let run = finetune_to_generation(dir.path(), "run", 1, 1);
    let out = medssl(&["finetune", "--resume", run.to_str().unwrap(), "--quiet"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let best = run.join("best.safetensors");
    let inspected = medssl(&["weights", "inspect", best.to_str().unwrap()]);
    assert!(inspected.status.success());
    flip_byte(&best, 4);
    for args in [
        vec!["weights", "inspect", best.to_str().unwrap()],
        vec!["evaluate", "--run", run.to_str().unwrap()],
        vec![
            "finetune",
            "--task",
            dir.path().join("abd").to_str().unwrap(),
            "--out",
            dir.path().join("again").to_str().unwrap(),
            "--init",
            best.to_str().unwrap(),
        ],
    ] {
        let out = medssl(&args);
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {log}");
        assert!(
            log.contains(best.to_str().unwrap()) && log.contains("corrupt"),
            "{args:?}: {log}"
        );
    }
}
