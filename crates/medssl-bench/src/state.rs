//! Where each job stands, read from its directory, so that any number of processes
//! (shards, Slurm array tasks, a rerun after a crash) agree without a database.
//!
//! - done: the job's final file exists ([`Job::done_file`]);
//! - running: `running.json` names a live process (on another host it is taken at its
//!   word);
//! - failed: `failed.json` holds the error of the last attempt;
//! - interrupted: `running.json` names a process that no longer exists (killed): the
//!   next run resumes it;
//! - waiting: a job it needs is not done;
//! - ready: none of the above.
//!
//! A finished job also gets `timing.json` ([`Timing`]: how long it took, on which
//! device), from which `study plan` measures the rates of its time estimate; and
//! [`status`] adds what the study occupies on disk.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use medssl_io::atomic::{create_dir_for_writes, host_label, this_host, write_atomically};
use medssl_train::run_dir::RunDir;
use serde::{Deserialize, Serialize};

use crate::definition::StudyDefinition;
use crate::error::{BenchError, Result};
use crate::plan::{Job, JobSummary, Plan};

/// The marker of a job in progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Running {
    /// The process running it.
    pub pid: u32,
    /// Its host ([`medssl_io::atomic::this_host`]).
    pub host: String,
    /// Seconds since the Unix epoch when it started.
    pub started: u64,
}

/// The record of a failed attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// The error, as the job reported it.
    pub error: String,
}

/// The state of one job.
#[derive(Debug, Clone, PartialEq)]
pub enum JobState {
    /// Finished; its results are final.
    Done,
    /// A live process is working on it.
    Running(Running),
    /// Its last attempt failed.
    Failed(Failure),
    /// Its process died (killed); a run resumes it.
    Interrupted,
    /// A job it needs is not done.
    Waiting,
    /// Can start.
    Ready,
}

impl JobState {
    /// One word for tables: `done`, `running`, `failed`, `interrupted`, `waiting`, `ready`.
    pub fn word(&self) -> &'static str {
        match self {
            JobState::Done => "done",
            JobState::Running(_) => "running",
            JobState::Failed(_) => "failed",
            JobState::Interrupted => "interrupted",
            JobState::Waiting => "waiting",
            JobState::Ready => "ready",
        }
    }
}

/// The words of [`JobState::word`], in the order of `study status`'s counts.
pub const STATE_WORDS: [&str; 6] = [
    "done",
    "running",
    "failed",
    "interrupted",
    "waiting",
    "ready",
];

/// Whether the process of a running marker is alive. A process id is checked only on
/// its own host: the marker of another host is taken at its word.
fn alive(running: &Running) -> bool {
    if host_label(&running.host) != this_host() {
        return true;
    }
    Path::new(&format!("/proc/{}", running.pid)).exists()
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| BenchError::Invalid(format!("cannot write {}: {e}", path.display())))?;
    if let Some(dir) = path.parent() {
        create_dir_for_writes(dir).map_err(|e| BenchError::io(dir, e))?;
    }
    write_atomically(path, text.as_bytes()).map_err(|e| BenchError::io(path, e))
}

/// The state of job `k` of `plan`.
pub fn state(study: &StudyDefinition, plan: &Plan, k: usize) -> JobState {
    let job = &plan.jobs[k];
    let layout = study.layout();
    if job.done_file(study).is_file() {
        return JobState::Done;
    }
    if let Some(running) = read_json::<Running>(&layout.running(&job.id)) {
        if alive(&running) {
            return JobState::Running(running);
        }
        return JobState::Interrupted;
    }
    if let Some(failure) = read_json::<Failure>(&layout.failed(&job.id)) {
        return JobState::Failed(failure);
    }
    let needs_done = job
        .needs
        .iter()
        .all(|&n| plan.jobs[n].done_file(study).is_file());
    if needs_done {
        JobState::Ready
    } else {
        JobState::Waiting
    }
}

/// Marks `job` as being run by this process (clearing an earlier failure).
pub fn mark_running(study: &StudyDefinition, job: &Job) -> Result<()> {
    let layout = study.layout();
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    remove(&layout.failed(&job.id))?;
    write_json(
        &layout.running(&job.id),
        &Running {
            pid: std::process::id(),
            host: this_host().to_string(),
            started,
        },
    )
}

/// Records how `job` ended: nothing more when it succeeded, the error when it failed.
pub fn mark_ended(study: &StudyDefinition, job: &Job, error: Option<&str>) -> Result<()> {
    let layout = study.layout();
    if let Some(error) = error {
        write_json(
            &layout.failed(&job.id),
            &Failure {
                error: error.to_string(),
            },
        )?;
    }
    remove(&layout.running(&job.id))
}

fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(BenchError::io(path, e)),
        _ => Ok(()),
    }
}

/// How long a finished job took, and where: `JOB/timing.json`, written by the process
/// that finished it. `study plan` turns these into seconds per Gvox on a device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// The `--device` it ran on (`cpu`, `cuda`, `cuda:1`).
    pub device: String,
    /// The processor or GPU behind that device (`Intel(R) Xeon(R) ...`, `NVIDIA H100
    /// PCIe`), for the report.
    pub model: String,
    /// The host it ran on.
    pub host: String,
    /// Wall seconds of the run that finished it. A job resumed after an interruption
    /// counts only its last run.
    pub seconds: f64,
}

/// Records that `job` finished after `seconds` on `device` (a `model` of processor or
/// GPU).
pub fn record_timing(
    study: &StudyDefinition,
    job: &Job,
    device: &str,
    model: &str,
    seconds: f64,
) -> Result<()> {
    write_json(
        &study.layout().timing(&job.id),
        &Timing {
            device: device.to_string(),
            model: model.to_string(),
            host: this_host().to_string(),
            seconds,
        },
    )
}

/// The timing of `job`, if it finished and recorded one.
pub fn timing(study: &StudyDefinition, job: &Job) -> Option<Timing> {
    read_json(&study.layout().timing(&job.id))
}

/// What a study's output occupies on disk: the sizes of its files (links are not
/// followed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskUsage {
    /// Every file under the output directory: runs, caches, results, report, logs.
    pub total_bytes: u64,
    /// The part in the runs' `checkpoint/` directories: the weights and optimiser state
    /// kept for resuming training.
    pub checkpoint_bytes: u64,
}

/// One job in `study status --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    /// What the job is.
    #[serde(flatten)]
    pub job: JobSummary,
    /// One of [`STATE_WORDS`].
    pub state: String,
    /// The error of the last attempt (`failed`).
    pub error: Option<String>,
    /// The process working on it (`running`).
    pub running: Option<Running>,
    /// The bytes of its directory.
    pub bytes: u64,
}

/// Where a whole study stands: `study status`, and with `--json` as it is printed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyStatus {
    /// The study's name.
    pub study: String,
    /// Its output directory (absolute).
    pub out: PathBuf,
    /// Every job, in plan order.
    pub jobs: Vec<JobStatus>,
    /// How many jobs are in each state; every word of [`STATE_WORDS`] is present.
    pub counts: BTreeMap<String, usize>,
    /// What the output directory occupies.
    pub disk: DiskUsage,
}

/// The state of every job of `plan` and what the study occupies on disk.
pub fn status(study: &StudyDefinition, plan: &Plan) -> Result<StudyStatus> {
    let mut counts: BTreeMap<String, usize> =
        STATE_WORDS.iter().map(|w| (w.to_string(), 0)).collect();
    let mut jobs: Vec<JobStatus> = plan
        .jobs
        .iter()
        .enumerate()
        .map(|(k, job)| {
            let state = state(study, plan, k);
            let word = state.word().to_string();
            *counts.entry(word.clone()).or_default() += 1;
            let (error, running) = match state {
                JobState::Failed(failure) => (Some(failure.error), None),
                JobState::Running(running) => (None, Some(running)),
                _ => (None, None),
            };
            JobStatus {
                job: job.summary(study, k),
                state: word,
                error,
                running,
                bytes: 0,
            }
        })
        .collect();
    let out = study.out_dir();
    let index: HashMap<&Path, usize> = plan
        .jobs
        .iter()
        .enumerate()
        .map(|(k, job)| (Path::new(&job.id), k))
        .collect();
    let mut disk = DiskUsage::default();
    for entry in walkdir::WalkDir::new(&out) {
        let entry = match entry {
            Ok(entry) => entry,
            // Nothing run yet, or a file removed while we looked (an old checkpoint).
            Err(e)
                if e.io_error().map(std::io::Error::kind) == Some(std::io::ErrorKind::NotFound) =>
            {
                continue;
            }
            Err(e) => {
                let path = e.path().unwrap_or(&out).to_path_buf();
                return Err(BenchError::io(path, e.into()));
            }
        };
        if !entry.file_type().is_file() {
            continue;
        }
        let bytes = match entry.metadata() {
            Ok(metadata) => metadata.len(),
            Err(e)
                if e.io_error().map(std::io::Error::kind) == Some(std::io::ErrorKind::NotFound) =>
            {
                continue;
            }
            Err(e) => return Err(BenchError::io(entry.path(), e.into())),
        };
        disk.total_bytes += bytes;
        let relative = entry.path().strip_prefix(&out).unwrap_or(entry.path());
        let owner = relative
            .ancestors()
            .find_map(|dir| index.get(dir).map(|&k| (dir, k)));
        if let Some((dir, k)) = owner {
            jobs[k].bytes += bytes;
            let checkpoints = RunDir::at(out.join(dir)).checkpoint_dir();
            if entry.path().starts_with(&checkpoints) && entry.path() != checkpoints {
                disk.checkpoint_bytes += bytes;
            }
        }
    }
    Ok(StudyStatus {
        study: study.name.clone(),
        out: std::path::absolute(&out).unwrap_or(out),
        jobs,
        counts,
        disk,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STUDY: &str = r#"name = "disk"
methods = ["scratch", "simmim"]
[pretraining]
data = "ct"
[finetune]
budgets = [2]
[[tasks]]
name = "checkpoint"
path = "a"
modality = "CT"
"#;

    fn write(path: &Path, bytes: usize) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, vec![7u8; bytes]).unwrap();
    }

    /// Every file counts once in the total, and in its job; only a run's own
    /// `checkpoint/` counts as checkpoints (not a task that happens to be called so).
    #[test]
    fn status_counts_the_bytes_of_the_study_and_its_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("study.toml");
        std::fs::write(&file, STUDY).unwrap();
        let study = StudyDefinition::load(&file).unwrap();
        let plan = Plan::new(&study);
        let empty = status(&study, &plan).unwrap();
        assert_eq!(empty.disk, DiskUsage::default(), "nothing run yet");
        assert_eq!(empty.counts["ready"], 3);
        assert_eq!(empty.counts["waiting"], 3);
        assert_eq!(empty.counts["done"], 0);

        let out = study.out_dir();
        let pretrain = plan.jobs[0].run(&study);
        write(&pretrain.checkpoint_weights(3), 1000);
        write(&pretrain.checkpoint_optimizer(3), 2000);
        write(&pretrain.encoder(), 300);
        let finetune = plan.jobs[3].run(&study);
        write(&finetune.checkpoint_state(), 40);
        write(&finetune.best_weights(), 5);
        // The task's shared cache, beside the runs, with a folder called `checkpoint`.
        write(
            &out.join("finetune/checkpoint/.medssl-cache/checkpoint/a.bin"),
            600,
        );
        write(&study.layout().results(), 7);
        let status = status(&study, &plan).unwrap();
        assert_eq!(
            status.disk,
            DiskUsage {
                total_bytes: 1000 + 2000 + 300 + 40 + 5 + 600 + 7,
                checkpoint_bytes: 1000 + 2000 + 40,
            }
        );
        let bytes: Vec<(&str, u64)> = status
            .jobs
            .iter()
            .map(|j| (j.job.id.as_str(), j.bytes))
            .collect();
        assert_eq!(
            bytes,
            [
                ("pretrain/simmim", 3300),
                ("probe/checkpoint/scratch", 0),
                ("probe/checkpoint/simmim", 0),
                ("finetune/checkpoint/scratch.2-shots.seed-0", 45),
                ("finetune/checkpoint/simmim.2-shots.seed-0", 0),
                ("cka/checkpoint/simmim.seed-0", 0),
            ]
        );
    }
}
