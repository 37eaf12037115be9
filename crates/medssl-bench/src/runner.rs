//! Runs a study's jobs that are not finished yet, resuming interrupted ones.
//!
//! A selection (all jobs, a shard, or one `--job`) is worked through in plan order by
//! `workers` threads. A job starts when every job it needs is done; one that needs a
//! job outside the selection that another process is running (another shard) waits for
//! it, polling the disk. A job whose prerequisite failed (or waits for a failed job) is
//! skipped and reported.
//! Failures are recorded in the job's directory and do not stop the other jobs; a later
//! run retries them.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use burn::tensor::Device;
use medssl_eval::evaluate::Part;
use medssl_io::atomic::write_atomically;
use medssl_ssl::Method;
use medssl_ssl::methods::{self, MethodVisitor};
use medssl_train::error::TrainError;
use medssl_train::finetune::trained_run::{evaluate_run, export_encoder};
use medssl_train::finetune::{Finetune, FinetuneConfig, Init};
use medssl_train::fit::Event;
use medssl_train::launch::{Launch, start_or_resume};
use medssl_train::pretrain::{Pretrain, PretrainConfig};
use medssl_train::run_dir::RunDir;
use medssl_train::settings::differing_keys;

use crate::definition::{AllCases, BudgetSpec, MethodSpec, StudyDefinition, TaskSpec};
use crate::error::{BenchError, JobError, Result};
use crate::feature_reuse::run_cka_job;
use crate::plan::{Job, JobKind, Plan};
use crate::probes::run_probe_job;
use crate::state::{self, JobState};

/// Tolerance of the normalised surface Dice in the test evaluation, in mm.
pub const NSD_TOLERANCE_MM: f64 = 1.0;

/// How often a job waiting on another process's job looks again.
const POLL: Duration = Duration::from_secs(10);

/// What the runner reports as it goes.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEvent {
    /// Job `index` of the plan started (or resumed).
    Started { index: usize },
    /// Job `index` finished after `seconds`.
    Finished { index: usize, seconds: f64 },
    /// Job `index` failed.
    Failed { index: usize, error: String },
    /// Job `index` cannot run: job `needs` failed.
    Blocked { index: usize, needs: usize },
    /// Job `index` waits for job `needs`, which this process does not run (another
    /// shard or array task does).
    Waiting { index: usize, needs: usize },
    /// Job `index` reports something the user should look at (a damaged checkpoint
    /// passed over on resume, a collapse monitor below its threshold).
    Warning { index: usize, message: String },
}

/// How a run over a selection ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSummary {
    /// Jobs this run finished.
    pub finished: Vec<usize>,
    /// Jobs that were already done.
    pub already_done: Vec<usize>,
    /// Jobs that failed, with their errors.
    pub failed: Vec<(usize, String)>,
    /// Jobs skipped because a job they need failed.
    pub blocked: Vec<usize>,
}

/// Runs the jobs of one study.
pub struct Runner<'a> {
    study: &'a StudyDefinition,
    plan: &'a Plan,
    device: Device,
}

/// The scheduler's view of the selection, shared by the workers.
struct Queue {
    /// Selected jobs not yet taken, in plan order.
    pending: Vec<usize>,
    /// Jobs being run by a worker of this process.
    active: Vec<usize>,
    /// Jobs reported as waiting for a job outside the selection.
    waiting: Vec<usize>,
    summary: RunSummary,
}

/// What a worker should do next.
enum Next {
    Run(usize),
    Wait,
    Stop,
}

impl<'a> Runner<'a> {
    /// A runner for `plan` of `study`, training on `device`.
    pub fn new(study: &'a StudyDefinition, plan: &'a Plan, device: Device) -> Runner<'a> {
        Runner {
            study,
            plan,
            device,
        }
    }

    /// Runs the selected jobs (indices into the plan) that are not done, with `workers`
    /// jobs at a time.
    pub fn run(
        &self,
        selection: &[usize],
        workers: usize,
        observe: &(dyn Fn(RunEvent) + Sync),
    ) -> Result<RunSummary> {
        let mut summary = RunSummary::default();
        let mut pending = Vec::new();
        for &k in selection {
            if k >= self.plan.jobs.len() {
                return Err(BenchError::Invalid(format!("no job with index {k}")));
            }
            match state::state(self.study, self.plan, k) {
                JobState::Done => summary.already_done.push(k),
                _ => pending.push(k),
            }
        }
        let queue = Mutex::new(Queue {
            pending,
            active: Vec::new(),
            waiting: Vec::new(),
            summary,
        });
        std::thread::scope(|scope| {
            for _ in 0..workers.max(1) {
                scope.spawn(|| self.work(&queue, observe));
            }
        });
        Ok(queue
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .summary)
    }

    /// One worker: takes the next job that can start, runs it, until none is left.
    fn work(&self, queue: &Mutex<Queue>, observe: &(dyn Fn(RunEvent) + Sync)) {
        loop {
            let next = {
                let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
                self.next(&mut q, observe)
            };
            match next {
                Next::Stop => return,
                Next::Wait => std::thread::sleep(POLL),
                Next::Run(k) => {
                    observe(RunEvent::Started { index: k });
                    let started = Instant::now();
                    let outcome = self.run_job(k, observe);
                    let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
                    q.active.retain(|&a| a != k);
                    match outcome {
                        Ok(()) => {
                            q.summary.finished.push(k);
                            observe(RunEvent::Finished {
                                index: k,
                                seconds: started.elapsed().as_secs_f64(),
                            });
                        }
                        Err(e) => {
                            let error = e.to_string();
                            q.summary.failed.push((k, error.clone()));
                            observe(RunEvent::Failed { index: k, error });
                        }
                    }
                }
            }
        }
    }

    /// Picks the first pending job whose prerequisites are done; drops the ones whose
    /// prerequisites failed; waits while prerequisites are still to be run elsewhere.
    fn next(&self, q: &mut Queue, observe: &(dyn Fn(RunEvent) + Sync)) -> Next {
        let mut i = 0;
        while i < q.pending.len() {
            let k = q.pending[i];
            let job = &self.plan.jobs[k];
            let ours = |n: usize| q.pending.contains(&n) || q.active.contains(&n);
            let failed_need = job.needs.iter().copied().find(|&n| {
                q.summary.failed.iter().any(|(f, _)| *f == n)
                    || q.summary.blocked.contains(&n)
                    || self.cannot_finish(n, &ours)
            });
            if let Some(n) = failed_need {
                q.pending.remove(i);
                q.summary.blocked.push(k);
                observe(RunEvent::Blocked { index: k, needs: n });
                continue;
            }
            let missing = job
                .needs
                .iter()
                .copied()
                .find(|&n| !self.plan.jobs[n].done_file(self.study).is_file());
            match missing {
                None => {
                    q.pending.remove(i);
                    q.active.push(k);
                    return Next::Run(k);
                }
                Some(n) => {
                    let elsewhere = !q.pending.contains(&n) && !q.active.contains(&n);
                    if elsewhere && !q.waiting.contains(&k) {
                        q.waiting.push(k);
                        observe(RunEvent::Waiting { index: k, needs: n });
                    }
                }
            }
            i += 1;
        }
        if q.pending.is_empty() {
            Next::Stop
        } else {
            Next::Wait
        }
    }

    /// Whether job `n` cannot finish as things stand on disk: it is not one this process
    /// is still to run (`ours`), and it failed, or it waits for a job that cannot finish
    /// (a fine-tune never run because its pretraining failed, which a CKA job needs).
    fn cannot_finish(&self, n: usize, ours: &dyn Fn(usize) -> bool) -> bool {
        if ours(n) {
            return false;
        }
        match state::state(self.study, self.plan, n) {
            JobState::Failed(_) => true,
            JobState::Waiting => self.plan.jobs[n]
                .needs
                .iter()
                .any(|&m| self.cannot_finish(m, ours)),
            _ => false,
        }
    }

    /// Runs (or resumes) job `k` to its end, recording a failure in its directory.
    pub fn run_job(&self, k: usize, observe: &(dyn Fn(RunEvent) + Sync)) -> Result<()> {
        let job = &self.plan.jobs[k];
        let warn = |message: String| observe(RunEvent::Warning { index: k, message });
        state::mark_running(self.study, job)?;
        let outcome = match &job.kind {
            JobKind::Pretrain { method } => self.pretrain(job, method, &warn),
            JobKind::Finetune { .. } | JobKind::Supervised { .. } => self.finetune(job, &warn),
            JobKind::Probe { .. } => run_probe_job(self.study, self.plan, job, &self.device),
            JobKind::Cka { .. } => run_cka_job(self.study, self.plan, job, &self.device),
        };
        let error = outcome.as_ref().err().map(|e| e.to_string());
        state::mark_ended(self.study, job, error.as_deref())?;
        outcome
    }

    fn pretrain(&self, job: &Job, method: &str, warn: &dyn Fn(String)) -> Result<()> {
        let run = job.run(self.study);
        methods::visit(
            method,
            PretrainJob {
                study: self.study,
                dir: run.root(),
                method,
                device: self.device.clone(),
                warn,
            },
        )?
        .map_err(|e| BenchError::job(&job.id, e))
    }

    /// A fine-tune and its test evaluation; a supervised one then writes its encoder.
    fn finetune(&self, job: &Job, warn: &dyn Fn(String)) -> Result<()> {
        let run = job.run(self.study);
        let what = self.what_to_finetune(job);
        let task_dir = self.study.resolve(&what.task.path);
        // A run whose training ended (its checkpoint removed) only lacks its evaluation.
        let trained = Finetune::finished(run.root()).map_err(|e| job_error(job, e))?;
        if trained.is_none() {
            self.train_finetune(job, &what, &run, &task_dir, warn)?;
        }
        let evaluation = evaluate_run(
            run.root(),
            Some(&task_dir),
            Part::Test,
            NSD_TOLERANCE_MM,
            self.device.clone(),
        )
        .map_err(|e| job_error(job, e))?;
        let summary = serde_json::to_string_pretty(&evaluation.to_json(NSD_TOLERANCE_MM))
            .map_err(|e| job_error(job, e))?;
        let path = run.test_summary();
        write_atomically(&path, summary.as_bytes()).map_err(|e| BenchError::io(&path, e))?;
        if let JobKind::Supervised { .. } = job.kind {
            export_encoder(run.root(), &run.encoder(), self.device.clone())
                .map_err(|e| job_error(job, e))?;
        }
        Ok(())
    }

    /// The task, budget, seed and row of fine-tune or supervised `job`.
    fn what_to_finetune<'j>(&'j self, job: &'j Job) -> FinetuneWork<'j> {
        match &job.kind {
            JobKind::Finetune {
                method,
                task,
                budget,
                seed,
            } => FinetuneWork {
                task: &self.study.tasks[*task],
                budget: *budget,
                seed: *seed,
                row: method.label(),
            },
            JobKind::Supervised { task } => FinetuneWork {
                task: self.study.labelled(task).expect("checked when loaded"),
                budget: BudgetSpec::Named(AllCases::All),
                seed: self.study.finetune.seeds[0],
                row: MethodSpec::Supervised(task.clone()).label(),
            },
            _ => unreachable!("called for fine-tune jobs"),
        }
    }

    /// Starts or resumes the training of fine-tune `job` in `files` and trains it to its
    /// end.
    fn train_finetune(
        &self,
        job: &Job,
        what: &FinetuneWork,
        files: &RunDir,
        task_dir: &Path,
        warn: &dyn Fn(String),
    ) -> Result<()> {
        let mut set = self.study.finetune_overrides(&what.row);
        set.push(format!("seed={}", what.seed));
        let init = match self.plan.init_weights(self.study, job) {
            Some(path) => Init::Weights {
                path,
                allow_unused: false,
            },
            None => Init::Scratch,
        };
        let mut run = FinetuneConfig::load(self.study.finetune.preset, None, &set)
            .and_then(|config| config.resolved_for(task_dir))
            .and_then(|config| {
                start_or_resume(
                    files.root(),
                    Launch::Either(config),
                    |config, run| differing_keys(config, &FinetuneConfig::read(run)?),
                    |config| {
                        Finetune::start(
                            task_dir,
                            files.root(),
                            config,
                            init,
                            what.budget.budget(),
                            self.device.clone(),
                        )
                    },
                    || Finetune::resume(files.root(), Some(task_dir), self.device.clone()),
                )
            })
            .map_err(|e| job_error(job, e))?;
        if let Some(warning) = run.resume_warning() {
            warn(warning.to_string());
        }
        run.train(u64::MAX, &mut |event| {
            if let Event::Warning(message) = event {
                warn(message);
            }
        })
        .map_err(|e| job_error(job, e))?;
        Ok(())
    }
}

/// What a fine-tune or supervised job trains: on which task, with how many labels,
/// from which seed, with which row's settings.
struct FinetuneWork<'a> {
    task: &'a TaskSpec,
    budget: BudgetSpec,
    seed: u64,
    /// The row's label, which picks its `finetune.method_set` settings.
    row: String,
}

/// The failure of `job`, caused by `error`.
fn job_error(job: &Job, error: impl Into<JobError>) -> BenchError {
    BenchError::job(&job.id, error)
}

/// Starts or resumes the pretraining of method `M`.
struct PretrainJob<'a> {
    study: &'a StudyDefinition,
    dir: &'a Path,
    method: &'a str,
    device: Device,
    warn: &'a dyn Fn(String),
}

impl MethodVisitor for PretrainJob<'_> {
    type Output = std::result::Result<(), TrainError>;

    fn visit<M: Method>(self) -> std::result::Result<(), TrainError> {
        let data = self.study.resolve(&self.study.pretraining.data);
        let overrides = self.study.pretrain_overrides(self.method);
        let config = PretrainConfig::load::<M>(self.study.pretraining.preset, None, &overrides)?;
        let mut run = start_or_resume(
            self.dir,
            Launch::Either(config),
            |config, run| differing_keys(config, &PretrainConfig::read(run)?),
            |config| Pretrain::<M>::start(&data, self.dir, config, self.device.clone()),
            || Pretrain::<M>::resume(self.dir, Some(&data), self.device.clone()),
        )?;
        if let Some(warning) = run.resume_warning() {
            (self.warn)(warning.to_string());
        }
        run.train(u64::MAX, &mut |event| {
            if let Event::Warning(message) = event {
                (self.warn)(message);
            }
        })
    }
}
