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

use std::path::Path;

use medssl_io::atomic::{create_dir_for_writes, host_label, this_host, write_atomically};
use serde::{Deserialize, Serialize};

use crate::definition::StudyDefinition;
use crate::error::{BenchError, Result};
use crate::plan::{Job, Plan};

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

const RUNNING: &str = "running.json";
const FAILED: &str = "failed.json";

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
    let dir = job.dir(study);
    if job.done_file(study).is_file() {
        return JobState::Done;
    }
    if let Some(running) = read_json::<Running>(&dir.join(RUNNING)) {
        if alive(&running) {
            return JobState::Running(running);
        }
        return JobState::Interrupted;
    }
    if let Some(failure) = read_json::<Failure>(&dir.join(FAILED)) {
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
    let dir = job.dir(study);
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    remove(&dir.join(FAILED))?;
    write_json(
        &dir.join(RUNNING),
        &Running {
            pid: std::process::id(),
            host: this_host().to_string(),
            started,
        },
    )
}

/// Records how `job` ended: nothing more when it succeeded, the error when it failed.
pub fn mark_ended(study: &StudyDefinition, job: &Job, error: Option<&str>) -> Result<()> {
    let dir = job.dir(study);
    if let Some(error) = error {
        write_json(
            &dir.join(FAILED),
            &Failure {
                error: error.to_string(),
            },
        )?;
    }
    remove(&dir.join(RUNNING))
}

fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(BenchError::io(path, e)),
        _ => Ok(()),
    }
}
