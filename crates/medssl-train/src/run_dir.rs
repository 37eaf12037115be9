//! The run directory: every file a run writes, in one place, written so that a killed
//! process never leaves a half-written file (temporary file + rename).
//!
//! ```text
//! RUN/config.toml        the full configuration, every default written out
//! RUN/split.json         the case ids of each part (train / validation / test)
//! RUN/metrics.jsonl      one JSON object per logged event (training epoch, validation)
//! RUN/result.json        best Dice and the convergence figures
//! RUN/best.safetensors   weights of the best validation, MONAI key names
//! RUN/last.safetensors   weights after the last epoch (a finished fine-tune)
//! RUN/checkpoint/        the last training state (see `checkpoint`); a finished
//!                        fine-tune removes it unless `train.keep_checkpoints = "all"`
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use medssl_io::atomic::{remove_stale_temporaries, write_atomically};

use crate::error::{Result, TrainError};

/// The preprocessing cache `name` shared by the runs beside `run_dir` (the runs of one
/// study): `RUN/../.medssl-cache/NAME`.
pub fn shared_cache_dir(run_dir: &Path, name: &str) -> PathBuf {
    run_dir
        .parent()
        .unwrap_or(Path::new("."))
        .join(".medssl-cache")
        .join(name)
}

/// A run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// Opens (creating when needed) the directory `root`, removing the temporary files
    /// of an earlier process killed mid-write.
    pub fn create(root: impl Into<PathBuf>) -> Result<RunDir> {
        let root = root.into();
        std::fs::create_dir_all(root.join("checkpoint")).map_err(|e| TrainError::os(&root, e))?;
        let run = RunDir { root };
        run.remove_stale_temporaries()?;
        Ok(run)
    }

    /// Opens the existing run in `root` to read it (evaluate, predict, CKA, inspect);
    /// the error says when `root` holds no run. Nothing is deleted: another process,
    /// possibly on another machine, may be writing into the run.
    pub fn open(root: impl Into<PathBuf>) -> Result<RunDir> {
        let root = root.into();
        if !root.join("run.json").is_file() {
            return Err(TrainError::file(
                &root,
                "not a run directory (no run.json); runs are made by `medssl finetune`",
            ));
        }
        Ok(RunDir { root })
    }

    /// Opens the existing run in `root` to continue it (resume), removing the temporary
    /// files of an earlier writer killed mid-write (see
    /// [`medssl_io::atomic::remove_stale_temporaries`]).
    pub fn open_for_writes(root: impl Into<PathBuf>) -> Result<RunDir> {
        let run = RunDir::open(root)?;
        run.remove_stale_temporaries()?;
        Ok(run)
    }

    fn remove_stale_temporaries(&self) -> Result<()> {
        for dir in [self.root.clone(), self.root.join("checkpoint")] {
            if dir.is_dir() {
                remove_stale_temporaries(&dir).map_err(|e| TrainError::os(&dir, e))?;
            }
        }
        Ok(())
    }

    /// The run's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of a file of the run.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Writes `bytes` to `name` atomically.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.path(name);
        write_atomically(&path, bytes).map_err(|e| TrainError::os(path, e))
    }

    /// Writes `value` as pretty JSON to `name` atomically.
    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<()> {
        let mut text = serde_json::to_string_pretty(value)
            .map_err(|e| TrainError::file(self.path(name), e.to_string()))?;
        text.push('\n');
        self.write(name, text.as_bytes())
    }

    /// Reads the JSON file `name`.
    pub fn read_json<T: DeserializeOwned>(&self, name: &str) -> Result<T> {
        let path = self.path(name);
        let text = std::fs::read_to_string(&path).map_err(|e| TrainError::os(&path, e))?;
        serde_json::from_str(&text).map_err(|e| TrainError::file(path, e.to_string()))
    }

    /// Appends one JSON line to `metrics.jsonl` and flushes it to disk.
    pub fn log_metrics<T: Serialize>(&self, record: &T) -> Result<()> {
        let path = self.path("metrics.jsonl");
        let mut line =
            serde_json::to_string(record).map_err(|e| TrainError::file(&path, e.to_string()))?;
        line.push('\n');
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| TrainError::os(&path, e))?;
        file.write_all(line.as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(|e| TrainError::os(&path, e))
    }

    /// Keeps only the first `lines` complete lines of `metrics.jsonl`: on resume, the
    /// events logged after the checkpoint are dropped because they will be logged again.
    pub fn truncate_metrics(&self, lines: usize) -> Result<()> {
        let path = self.path("metrics.jsonl");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(TrainError::os(path, e)),
        };
        let kept: String = text
            .split_inclusive('\n')
            .filter(|l| l.ends_with('\n'))
            .take(lines)
            .collect();
        self.write("metrics.jsonl", kept.as_bytes())
    }

    /// The number of complete lines in `metrics.jsonl`.
    pub fn metrics_lines(&self) -> Result<usize> {
        let path = self.path("metrics.jsonl");
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(text.matches('\n').count()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(TrainError::os(path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_survive_truncation_to_a_checkpoint() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::create(tmp.path().join("run")).unwrap();
        for epoch in 0..5 {
            run.log_metrics(&serde_json::json!({ "epoch": epoch }))
                .unwrap();
        }
        assert_eq!(run.metrics_lines().unwrap(), 5);
        run.truncate_metrics(3).unwrap();
        let text = std::fs::read_to_string(run.path("metrics.jsonl")).unwrap();
        assert_eq!(text, "{\"epoch\":0}\n{\"epoch\":1}\n{\"epoch\":2}\n");
        run.write_json("result.json", &serde_json::json!({ "best": 0.5 }))
            .unwrap();
        let back: serde_json::Value = run.read_json("result.json").unwrap();
        assert_eq!(back["best"], 0.5);
        let names: Vec<_> = std::fs::read_dir(run.root())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
        let err = run
            .read_json::<serde_json::Value>("missing.json")
            .unwrap_err();
        assert!(err.to_string().contains("missing.json"), "{err}");
    }

    #[test]
    fn only_writers_remove_stale_temporaries() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::create(tmp.path().join("run")).unwrap();
        run.write_json("run.json", &serde_json::json!({})).unwrap();
        // A child that has exited stands for a writer killed mid-write on this host.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let host = medssl_io::atomic::this_host();
        let stale = run.path(&format!(".result.json.{dead}@{host}.0.tmp"));
        std::fs::write(&stale, b"half").unwrap();
        RunDir::open(run.root()).unwrap();
        assert!(stale.exists(), "a reader deletes nothing");
        RunDir::open_for_writes(run.root()).unwrap();
        assert!(!stale.exists(), "a writer clears what a dead writer left");
    }
}
