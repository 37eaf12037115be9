//! Looking at what a run left on disk: its files, the temporaries of writes in
//! progress, and whether every file is whole.

use std::path::{Path, PathBuf};
use std::process::Output;

use medssl_io::checksum::sha256_file;
use serde_json::Value;

use crate::common::stdout_ok;

/// Every file below `dir` (hidden temporaries included).
pub(crate) fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

pub(crate) fn is_temporary(path: &Path) -> bool {
    let name = path.file_name().unwrap().to_string_lossy();
    name.starts_with('.') && name.ends_with(".tmp")
}

pub(crate) fn in_checkpoint_dir(path: &Path) -> bool {
    path.parent().is_some_and(|d| d.ends_with("checkpoint"))
}

/// The temporary files below `dir` right now.
pub(crate) fn temporaries(dir: &Path) -> Vec<PathBuf> {
    files(dir).into_iter().filter(|p| is_temporary(p)).collect()
}

/// Checks that no file below `dir` is half-written: temporaries aside, every file of a
/// known format parses, and a checkpoint's files match its state.
pub(crate) fn assert_intact(dir: &Path) {
    for path in files(dir) {
        if is_temporary(&path) {
            continue;
        }
        let name = path.display();
        let bytes = std::fs::read(&path).unwrap();
        match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
            "json" => {
                serde_json::from_slice::<Value>(&bytes)
                    .unwrap_or_else(|e| panic!("{name} is not whole JSON: {e}"));
            }
            "jsonl" => {
                let text = String::from_utf8(bytes).unwrap();
                assert!(
                    text.is_empty() || text.ends_with('\n'),
                    "{name} ends mid-line"
                );
                for line in text.lines() {
                    serde_json::from_str::<Value>(line)
                        .unwrap_or_else(|e| panic!("{name}: a broken line: {e}"));
                }
            }
            "toml" => {
                toml::from_str::<toml::Table>(std::str::from_utf8(&bytes).unwrap())
                    .unwrap_or_else(|e| panic!("{name} is not whole TOML: {e}"));
            }
            "safetensors" => {
                medssl_model::sealed::verify(&bytes)
                    .unwrap_or_else(|e| panic!("{name} is damaged: {e}"));
            }
            "csv" => assert!(bytes.ends_with(b"\n"), "{name} ends mid-line"),
            _ => {}
        }
        if path.ends_with("checkpoint/state.json") || path.ends_with("checkpoint/previous.json") {
            assert_checkpoint_matches(&path);
        }
    }
}

/// The weights and optimiser files a state file names have its recorded size and hash.
fn assert_checkpoint_matches(state_path: &Path) {
    let state: Value = serde_json::from_slice(&std::fs::read(state_path).unwrap()).unwrap();
    let generation = state["generation"].as_u64().unwrap();
    let dir = state_path.parent().unwrap();
    for (file, prefix) in [
        (format!("weights-{generation}.safetensors"), "weights"),
        (format!("optimizer-{generation}.bin"), "optimizer"),
    ] {
        let path = dir.join(&file);
        let size = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .len();
        assert_eq!(
            size,
            state[format!("{prefix}_bytes")].as_u64().unwrap(),
            "{}",
            path.display()
        );
        assert_eq!(
            sha256_file(&path).unwrap(),
            state[format!("{prefix}_sha256")].as_str().unwrap(),
            "{}",
            path.display()
        );
    }
}

/// A collection of 4 unlabelled volumes and a task of 6 labelled cases, 32³.
pub(crate) fn data(dir: &Path) {
    let d = dir.to_str().unwrap();
    for (extra, cases, out) in [(Some("--unlabelled"), "4", "ct"), (None, "6", "abd")] {
        let mut args = vec![
            "synth",
            "--kind",
            "abdomen-ct",
            "--cases",
            cases,
            "--size",
            "32",
        ];
        args.extend(extra);
        let out = format!("{d}/{out}");
        args.extend(["--out", &out]);
        stdout_ok(&args);
    }
}

pub(crate) fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// A fine-tune of `epochs` epochs on fresh [`data`] in a temporary directory, killed as
/// soon as its first checkpoint was complete: the starting point of every fault test
/// on a resumed run.
pub(crate) struct Checkpointed {
    /// Holds the data and the run; removed on drop.
    pub dir: tempfile::TempDir,
    pub run: PathBuf,
    /// The bytes of the run's `checkpoint/state.json` after the kill.
    pub state: Vec<u8>,
}

impl Checkpointed {
    pub fn new(epochs: usize) -> Checkpointed {
        let dir = tempfile::tempdir().unwrap();
        data(dir.path());
        let run = finetune_to_generation(dir.path(), "run", epochs, 1);
        let state = std::fs::read(run.join("checkpoint/state.json")).unwrap();
        Checkpointed { dir, run, state }
    }
}

/// Starts `medssl finetune` on the task `dir/abd` (see [`data`]) into `dir/name` for
/// `epochs` epochs, validating and checkpointing after each, and kills it as soon as
/// checkpoint `generation` is complete (or at its end, when that comes first, keeping
/// its checkpoint: `train.keep_checkpoints = "all"`); returns the run directory.
pub(crate) fn finetune_to_generation(
    dir: &Path,
    name: &str,
    epochs: usize,
    generation: u64,
) -> PathBuf {
    let run = dir.join(name);
    let mut child = std::process::Command::new(crate::common::bin())
        .args(["finetune", "--task"])
        .arg(dir.join("abd"))
        .arg("--out")
        .arg(&run)
        .args([
            "--shots",
            "2",
            "--quiet",
            "--set",
            "validation.every=1",
            "--set",
            "train.keep_checkpoints=\"all\"",
            "--set",
            "model.roi=[32, 32, 32]",
            "--set",
        ])
        .arg(format!("train.epochs={epochs}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let state = run.join("checkpoint/state.json");
    let reached = || {
        std::fs::read(&state)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v["generation"].as_u64())
            .is_some_and(|g| g >= generation)
    };
    while !reached() {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success() && reached(), "the fine-tune ended early");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let _ = child.kill();
    child.wait().unwrap();
    run
}

/// Asserts that `out` failed with a message holding each of `needles`, and left the
/// run's last checkpoint as it was (`state`: its state file before), every file whole
/// and no temporary file behind; returns the message.
pub(crate) fn assert_failed_keeping_checkpoint(
    out: &Output,
    run: &Path,
    state: &[u8],
    needles: &[&str],
) -> String {
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{log}");
    for needle in needles {
        assert!(log.contains(needle), "the error lacks {needle:?}: {log}");
    }
    assert_eq!(
        std::fs::read(run.join("checkpoint/state.json")).unwrap(),
        state,
        "the last checkpoint changed"
    );
    assert!(temporaries(run).is_empty(), "{:?}", temporaries(run));
    assert_intact(run);
    log
}
