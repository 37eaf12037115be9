//! The run directory: every file a run writes is named here and nowhere else (the
//! layout users and scripts rely on), and written so that a killed process never leaves
//! a half-written file (temporary file + rename).
//!
//! ```text
//! RUN/config.toml              config()          the full configuration, every default written out
//! RUN/run.json                 info()            what the run was started on; marks a run
//! RUN/split.json               split()           fine-tune: the case ids of each part
//! RUN/init_report.json         init_report()     fine-tune from weights: what loading them did
//! RUN/metrics.jsonl            metrics()         one JSON object per logged event
//! RUN/result.json              result()          the run's outcome, written when training ends
//! RUN/encoder.safetensors      encoder()         pretraining: the encoder, MONAI key names
//! RUN/best.safetensors         best_weights()    fine-tune: weights of the best validation
//! RUN/last.safetensors         last_weights()    fine-tune: weights after the last epoch
//! RUN/evaluation-PART.csv      evaluation(part)  fine-tune: per-case metrics of a part
//! RUN/test.json                test_summary()    study fine-tune: its test evaluation, last
//! RUN/tensorboard/             tensorboard()     `medssl export tensorboard`'s default output
//! RUN/checkpoint/              checkpoint_dir()  the last training state (see `checkpoint`);
//!     state.json               checkpoint_state()       a finished fine-tune removes it
//!     previous.json            checkpoint_previous()    unless `train.keep_checkpoints
//!     weights-G.safetensors    checkpoint_weights(G)    = "all"`
//!     optimizer-G.bin          checkpoint_optimizer(G)
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use medssl_eval::evaluate::Part;
use serde::Serialize;
use serde::de::DeserializeOwned;

use medssl_io::atomic::{remove_stale_temporaries, write_atomically};

use crate::error::{Result, TrainError};

const CONFIG: &str = "config.toml";
const INFO: &str = "run.json";
const SPLIT: &str = "split.json";
const INIT_REPORT: &str = "init_report.json";
const METRICS: &str = "metrics.jsonl";
const RESULT: &str = "result.json";
/// The encoder file of a pretraining run; public because the run's `result.json` names
/// it.
pub const ENCODER_FILE: &str = "encoder.safetensors";
const BEST_WEIGHTS: &str = "best.safetensors";
const LAST_WEIGHTS: &str = "last.safetensors";
/// `evaluation-PART.csv`: prefix and suffix around the part's name.
const EVALUATION: (&str, &str) = ("evaluation-", ".csv");
const TEST_SUMMARY: &str = "test.json";
const TENSORBOARD_DIR: &str = "tensorboard";
const CHECKPOINT_DIR: &str = "checkpoint";
const CHECKPOINT_STATE: &str = "checkpoint/state.json";
const CHECKPOINT_PREVIOUS: &str = "checkpoint/previous.json";
/// `weights-G.safetensors` and `optimizer-G.bin` in `checkpoint/`: prefix and suffix
/// around the generation.
const CHECKPOINT_WEIGHTS: (&str, &str) = ("weights-", ".safetensors");
const CHECKPOINT_OPTIMIZER: (&str, &str) = ("optimizer-", ".bin");
/// The files a start writes before its first checkpoint: left by a start killed that
/// early, they would make the next start refuse the directory.
const START_FILES: [&str; 4] = [INFO, CONFIG, METRICS, SPLIT];
/// The preprocessing caches shared by sibling runs (the runs of one study), beside them:
/// `RUN/../.medssl-cache/NAME`.
const SHARED_CACHE_DIR: &str = ".medssl-cache";
/// The shared cache of a pretraining collection is `pretrain-COLLECTION`.
const COLLECTION_CACHE_PREFIX: &str = "pretrain-";

/// A run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// Opens (creating when needed) the directory `root`, removing the temporary files
    /// of an earlier process killed mid-write.
    pub fn create(root: impl Into<PathBuf>) -> Result<RunDir> {
        let run = RunDir::at(root);
        let checkpoints = run.checkpoint_dir();
        std::fs::create_dir_all(&checkpoints).map_err(|e| TrainError::os(&run.root, e))?;
        run.remove_stale_temporaries()?;
        Ok(run)
    }

    /// Opens the existing run in `root` to read it (evaluate, predict, CKA, inspect);
    /// the error says when `root` holds no run. Nothing is deleted: another process,
    /// possibly on another machine, may be writing into the run.
    pub fn open(root: impl Into<PathBuf>) -> Result<RunDir> {
        let run = RunDir::at(root);
        if !run.info().is_file() {
            return Err(TrainError::file(
                &run.root,
                format!("not a run directory (no {INFO}); runs are made by `medssl finetune`"),
            ));
        }
        Ok(run)
    }

    /// Opens the existing run in `root` to continue it (resume), removing the temporary
    /// files of an earlier writer killed mid-write (see
    /// [`medssl_io::atomic::remove_stale_temporaries`]).
    pub fn open_for_writes(root: impl Into<PathBuf>) -> Result<RunDir> {
        let run = RunDir::open(root)?;
        run.remove_stale_temporaries()?;
        Ok(run)
    }

    /// The directory `root` as a run, to name its files only: nothing is checked,
    /// created or deleted. For code that names a run's files without opening it: the
    /// study, which looks at its jobs' files before they exist (done markers, restart)
    /// and while another process writes them; commands that print where a file is or
    /// read one file of a run.
    pub fn at(root: impl Into<PathBuf>) -> RunDir {
        RunDir { root: root.into() }
    }

    fn remove_stale_temporaries(&self) -> Result<()> {
        for dir in [self.root.clone(), self.checkpoint_dir()] {
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

    fn file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// `config.toml`: the full configuration, every default written out.
    pub fn config(&self) -> PathBuf {
        self.file(CONFIG)
    }

    /// `run.json`: what the run was started on (pretraining: the collection; fine-tune:
    /// the task, initial weights, channels and classes). Its presence marks a run.
    pub fn info(&self) -> PathBuf {
        self.file(INFO)
    }

    /// `split.json` of a fine-tune: the case ids of each part.
    pub fn split(&self) -> PathBuf {
        self.file(SPLIT)
    }

    /// `init_report.json` of a fine-tune from weights: what loading them did, kept for
    /// resumes.
    pub fn init_report(&self) -> PathBuf {
        self.file(INIT_REPORT)
    }

    /// `metrics.jsonl`: one JSON object per logged event.
    pub fn metrics(&self) -> PathBuf {
        self.file(METRICS)
    }

    /// `result.json`: the run's outcome, written when its training ends (a fine-tune's
    /// evaluations are added to it later).
    pub fn result(&self) -> PathBuf {
        self.file(RESULT)
    }

    /// `encoder.safetensors` of a pretraining run: the encoder under MONAI names.
    pub fn encoder(&self) -> PathBuf {
        self.file(ENCODER_FILE)
    }

    /// `best.safetensors` of a fine-tune: the weights of the best validation.
    pub fn best_weights(&self) -> PathBuf {
        self.file(BEST_WEIGHTS)
    }

    /// `last.safetensors` of a finished fine-tune: the weights after the last epoch.
    pub fn last_weights(&self) -> PathBuf {
        self.file(LAST_WEIGHTS)
    }

    /// `evaluation-PART.csv` of a fine-tune: the metrics of each case and class of `part`.
    pub fn evaluation(&self, part: Part) -> PathBuf {
        let (prefix, suffix) = EVALUATION;
        self.file(&format!("{prefix}{}{suffix}", part.name()))
    }

    /// `test.json` of a study's fine-tune: its test evaluation, the last file the job
    /// writes (so its presence means the job is done).
    pub fn test_summary(&self) -> PathBuf {
        self.file(TEST_SUMMARY)
    }

    /// `tensorboard/`: where `medssl export tensorboard` writes the metrics unless told
    /// otherwise.
    pub fn tensorboard(&self) -> PathBuf {
        self.file(TENSORBOARD_DIR)
    }

    /// `checkpoint/`: the last training state, for resuming.
    pub fn checkpoint_dir(&self) -> PathBuf {
        self.file(CHECKPOINT_DIR)
    }

    /// `checkpoint/state.json`: the state of the current generation; its presence makes
    /// the run resumable.
    pub fn checkpoint_state(&self) -> PathBuf {
        self.file(CHECKPOINT_STATE)
    }

    /// `checkpoint/previous.json`: the state of the generation before, the fallback.
    pub fn checkpoint_previous(&self) -> PathBuf {
        self.file(CHECKPOINT_PREVIOUS)
    }

    /// `checkpoint/weights-G.safetensors`: the weights of checkpoint generation G.
    pub fn checkpoint_weights(&self, generation: u64) -> PathBuf {
        self.generation_file(CHECKPOINT_WEIGHTS, generation)
    }

    /// `checkpoint/optimizer-G.bin`: the optimiser state of checkpoint generation G.
    pub fn checkpoint_optimizer(&self, generation: u64) -> PathBuf {
        self.generation_file(CHECKPOINT_OPTIMIZER, generation)
    }

    fn generation_file(&self, (prefix, suffix): (&str, &str), generation: u64) -> PathBuf {
        self.checkpoint_dir()
            .join(format!("{prefix}{generation}{suffix}"))
    }

    /// The preprocessing cache of the pretraining collection `data`, shared by the runs
    /// beside this one: `RUN/../.medssl-cache/pretrain-COLLECTION`.
    pub(crate) fn collection_cache(&self, data: &Path) -> PathBuf {
        let name = data
            .file_name()
            .map_or_else(|| "collection".into(), |n| n.to_string_lossy().into_owned());
        self.shared_cache(&format!("{COLLECTION_CACHE_PREFIX}{name}"))
    }

    /// The preprocessing cache of the task `name`, shared by the runs beside this one:
    /// `RUN/../.medssl-cache/TASK`.
    pub fn task_cache(&self, name: &str) -> PathBuf {
        self.shared_cache(name)
    }

    fn shared_cache(&self, name: &str) -> PathBuf {
        self.root
            .parent()
            .unwrap_or(Path::new("."))
            .join(SHARED_CACHE_DIR)
            .join(name)
    }

    /// The weights and optimiser files in `checkpoint/`, each with its generation.
    pub(crate) fn checkpoint_generations(&self) -> Vec<(PathBuf, u64)> {
        let Ok(entries) = std::fs::read_dir(self.checkpoint_dir()) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name();
                let name = name.to_str()?;
                let generation = [CHECKPOINT_WEIGHTS, CHECKPOINT_OPTIMIZER]
                    .into_iter()
                    .find_map(|(prefix, suffix)| {
                        name.strip_prefix(prefix)?
                            .strip_suffix(suffix)?
                            .parse()
                            .ok()
                    })?;
                Some((entry.path(), generation))
            })
            .collect()
    }

    /// Prepares the directory of a run that a study starts or resumes: `true` when it
    /// holds a checkpoint to resume from (nothing is touched); otherwise the files a
    /// start writes before its first checkpoint (`run.json`, `config.toml`,
    /// `metrics.jsonl`, `split.json`), which a start killed that early leaves behind and
    /// which would make the next start refuse the directory, are removed, and `false`.
    pub fn clear_for_restart(&self) -> Result<bool> {
        if self.checkpoint_state().is_file() {
            return Ok(true);
        }
        for name in START_FILES {
            let path = self.file(name);
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(TrainError::os(path, e));
                }
                _ => {}
            }
        }
        Ok(false)
    }

    /// Writes `bytes` atomically to `path`, a file of this run (from its accessors).
    pub fn write(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        debug_assert!(
            path.starts_with(&self.root),
            "{} is not in the run",
            path.display()
        );
        write_atomically(path, bytes).map_err(|e| TrainError::os(path, e))
    }

    /// Writes `value` as pretty JSON atomically to `path`, a file of this run.
    pub fn write_json<T: Serialize>(&self, path: &Path, value: &T) -> Result<()> {
        let mut text = serde_json::to_string_pretty(value)
            .map_err(|e| TrainError::file(path, e.to_string()))?;
        text.push('\n');
        self.write(path, text.as_bytes())
    }

    /// Reads the JSON file `path` of this run.
    pub fn read_json<T: DeserializeOwned>(&self, path: &Path) -> Result<T> {
        debug_assert!(
            path.starts_with(&self.root),
            "{} is not in the run",
            path.display()
        );
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::os(path, e))?;
        serde_json::from_str(&text).map_err(|e| TrainError::file(path, e.to_string()))
    }

    /// Appends one JSON line to `metrics.jsonl` and flushes it to disk.
    pub fn log_metrics<T: Serialize>(&self, record: &T) -> Result<()> {
        let path = self.metrics();
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
        let path = self.metrics();
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
        self.write(&path, kept.as_bytes())
    }

    /// The number of complete lines in `metrics.jsonl`.
    pub fn metrics_lines(&self) -> Result<usize> {
        let path = self.metrics();
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

    /// The names users, scripts and the study rely on (ARCHITECTURE.md, "Run
    /// directories"), written out here so that renaming a file fails.
    #[test]
    fn files_have_the_documented_names() {
        let run = RunDir::at("RUN");
        let named = [
            (run.config(), "config.toml"),
            (run.info(), "run.json"),
            (run.split(), "split.json"),
            (run.init_report(), "init_report.json"),
            (run.metrics(), "metrics.jsonl"),
            (run.result(), "result.json"),
            (run.encoder(), "encoder.safetensors"),
            (run.best_weights(), "best.safetensors"),
            (run.last_weights(), "last.safetensors"),
            (run.evaluation(Part::Val), "evaluation-val.csv"),
            (run.evaluation(Part::Test), "evaluation-test.csv"),
            (run.test_summary(), "test.json"),
            (run.tensorboard(), "tensorboard"),
            (run.checkpoint_dir(), "checkpoint"),
            (run.checkpoint_state(), "checkpoint/state.json"),
            (run.checkpoint_previous(), "checkpoint/previous.json"),
            (
                run.checkpoint_weights(7),
                "checkpoint/weights-7.safetensors",
            ),
            (run.checkpoint_optimizer(7), "checkpoint/optimizer-7.bin"),
        ];
        for (path, name) in named {
            assert_eq!(path, Path::new("RUN").join(name));
        }
        // The shared caches lie beside the run.
        let run = RunDir::at("OUT/finetune/abd/run");
        assert_eq!(
            run.task_cache("abd"),
            Path::new("OUT/finetune/abd/.medssl-cache/abd")
        );
        assert_eq!(
            run.collection_cache(Path::new("/data/ct")),
            Path::new("OUT/finetune/abd/.medssl-cache/pretrain-ct")
        );
    }

    /// A restart clears exactly the files a start writes before its first checkpoint,
    /// and a run with a checkpoint is left whole.
    #[test]
    fn a_restart_clears_only_an_unresumable_start() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::create(tmp.path().join("run")).unwrap();
        let start = [run.info(), run.config(), run.metrics(), run.split()];
        let kept = [run.encoder(), run.init_report()];
        for path in start.iter().chain(&kept) {
            std::fs::write(path, b"x").unwrap();
        }
        std::fs::write(run.checkpoint_state(), b"{}").unwrap();
        assert!(run.clear_for_restart().unwrap(), "a checkpoint to resume");
        assert!(start.iter().chain(&kept).all(|p| p.exists()));
        std::fs::remove_file(run.checkpoint_state()).unwrap();
        assert!(!run.clear_for_restart().unwrap());
        for path in &start {
            assert!(!path.exists(), "{}", path.display());
        }
        assert!(kept.iter().all(|p| p.exists()));
        // Nothing left to remove is no error.
        assert!(!run.clear_for_restart().unwrap());
    }

    #[test]
    fn checkpoint_generations_are_read_from_file_names() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::create(tmp.path().join("run")).unwrap();
        for path in [
            run.checkpoint_weights(3),
            run.checkpoint_optimizer(12),
            run.checkpoint_state(),
            run.checkpoint_dir().join("weights-x.safetensors"),
        ] {
            std::fs::write(path, b"x").unwrap();
        }
        let mut found = run.checkpoint_generations();
        found.sort();
        assert_eq!(
            found,
            [
                (run.checkpoint_optimizer(12), 12),
                (run.checkpoint_weights(3), 3)
            ]
        );
    }

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
        let text = std::fs::read_to_string(run.metrics()).unwrap();
        assert_eq!(text, "{\"epoch\":0}\n{\"epoch\":1}\n{\"epoch\":2}\n");
        run.write_json(&run.result(), &serde_json::json!({ "best": 0.5 }))
            .unwrap();
        let back: serde_json::Value = run.read_json(&run.result()).unwrap();
        assert_eq!(back["best"], 0.5);
        let names: Vec<_> = std::fs::read_dir(run.root())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
        let err = run.read_json::<serde_json::Value>(&run.info()).unwrap_err();
        assert!(err.to_string().contains("run.json"), "{err}");
    }

    #[test]
    fn only_writers_remove_stale_temporaries() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::create(tmp.path().join("run")).unwrap();
        run.write_json(&run.info(), &serde_json::json!({})).unwrap();
        // A child that has exited stands for a writer killed mid-write on this host.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let host = medssl_io::atomic::this_host();
        let stale = run.root().join(format!(".result.json.{dead}@{host}.0.tmp"));
        std::fs::write(&stale, b"half").unwrap();
        RunDir::open(run.root()).unwrap();
        assert!(stale.exists(), "a reader deletes nothing");
        RunDir::open_for_writes(run.root()).unwrap();
        assert!(!stale.exists(), "a writer clears what a dead writer left");
    }
}
