//! The jobs of a study, their directories and their dependencies.
//!
//! Every job has a stable id that is also its directory under the study's output (see
//! [`StudyLayout`]):
//!
//! ```text
//! OUT/pretrain/<method>                              one per SSL method
//! OUT/supervised/<task>                              one per `supervised:` row
//! OUT/probe/<task>/<method>                          one per method × task
//! OUT/finetune/<task>/<method>.<budget>.seed-<s>     one per method × task × budget × seed
//! OUT/cka/<task>/<method>.seed-<s>                   one per method × task × seed
//! ```
//!
//! The runs of one task (and the pretraining runs) are siblings, so they share one
//! preprocessing cache. A fine-tune from an SSL method depends on that method's
//! pretraining, one from a `supervised:` row on that row's supervised fine-tune (a
//! `supervised:` row is not fine-tuned on its own source task: its encoder has seen
//! every training label there); a probe job (the frozen-feature probes of the row's
//! initial encoder, scratch's included, on the task) on the same encoder job; a CKA job
//! on the fine-tunes of its method, task and seed at every budget. Jobs are listed
//! pretraining first, then the supervised encoders, the probes, the fine-tunes task by
//! task, then the CKA jobs; that order defines the ids' indices, shards and `--job`
//! lookups.

use std::path::PathBuf;

use medssl_train::run_dir::RunDir;
use serde::{Deserialize, Serialize};

use crate::definition::{AllCases, BudgetSpec, MethodSpec, StudyDefinition};
use crate::error::{BenchError, Result};
use crate::layout::StudyLayout;

/// What a job does.
#[derive(Debug, Clone, PartialEq)]
pub enum JobKind {
    /// Pretrain the encoder with an SSL method.
    Pretrain {
        /// The method's name.
        method: String,
    },
    /// Train the encoder of a `supervised:` row: a fine-tune from scratch on every
    /// training case of a task or source (the first seed), evaluated on its test part.
    Supervised {
        /// The task's or source's name.
        task: String,
    },
    /// Fine-tune from a row's weights, then evaluate on the task's test part.
    Finetune {
        /// The row.
        method: MethodSpec,
        /// Index into the study's tasks.
        task: usize,
        /// The label budget.
        budget: BudgetSpec,
        /// The fine-tune's seed.
        seed: u64,
    },
    /// The frozen-feature probes (`medssl probe`) of a row's initial encoder on a
    /// task's test cases, fitted on its training cases (the first seed's split).
    Probe {
        /// The row.
        method: MethodSpec,
        /// Index into the study's tasks.
        task: usize,
    },
    /// Feature reuse of one row's fine-tunes of a task and seed: its initial weights
    /// against each fine-tune (rows with initial weights), and the fewest-label
    /// fine-tune against the most-label one (two budgets or more).
    Cka {
        /// The row.
        method: MethodSpec,
        /// Index into the study's tasks.
        task: usize,
        /// The fine-tunes' seed.
        seed: u64,
    },
}

/// The kind of a job, as one word (`pretrain`, `finetune`, `cka`): the Slurm script
/// that runs it, the field `kind` of `study plan --json` and `study status --json`, and
/// the unit of the measured rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// An SSL pretraining.
    Pretrain,
    /// A fine-tune and its test evaluation.
    Finetune,
    /// A frozen-feature probe job.
    Probe,
    /// A CKA feature-reuse job.
    Cka,
}

impl Stage {
    /// Every stage, in plan order.
    pub const ALL: [Stage; 4] = [Stage::Pretrain, Stage::Finetune, Stage::Probe, Stage::Cka];

    /// Its word: `pretrain`, `finetune`, `cka`.
    pub fn word(self) -> &'static str {
        match self {
            Stage::Pretrain => "pretrain",
            Stage::Finetune => "finetune",
            Stage::Probe => "probe",
            Stage::Cka => "cka",
        }
    }
}

impl JobKind {
    /// The stage a job of this kind belongs to.
    pub fn stage(&self) -> Stage {
        match self {
            JobKind::Pretrain { .. } => Stage::Pretrain,
            JobKind::Supervised { .. } | JobKind::Finetune { .. } => Stage::Finetune,
            JobKind::Probe { .. } => Stage::Probe,
            JobKind::Cka { .. } => Stage::Cka,
        }
    }
}

/// What a job is, in plain fields: the part every job entry of `study plan --json` and
/// `study status --json` shares. The fields are stable; ones that do not apply to a
/// kind are `null`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSummary {
    /// Its position in the plan (`#N` in the tables, `needs` refer to it).
    pub index: usize,
    /// Its id, also its directory under the study's `out`.
    pub id: String,
    /// `pretrain`, `finetune`, `probe` or `cka`.
    pub kind: Stage,
    /// The row: the SSL method, `scratch` or `import-NAME`.
    pub method: String,
    /// The task's name (fine-tunes and CKA jobs).
    pub task: Option<String>,
    /// The label budget as in directory names, `2-shots`, `all` (fine-tunes).
    pub budget: Option<String>,
    /// The fine-tune seed (fine-tunes and CKA jobs).
    pub seed: Option<u64>,
    /// The indices of the jobs it needs done first.
    pub needs: Vec<usize>,
}

/// One job of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Its id, which is also its directory relative to the study's output.
    pub id: String,
    /// What it does.
    pub kind: JobKind,
    /// Indices of the jobs it needs finished first.
    pub needs: Vec<usize>,
}

impl Job {
    /// The job's plain description; `index` is its position in the plan.
    pub fn summary(&self, study: &StudyDefinition, index: usize) -> JobSummary {
        let task_name = |t: &usize| study.tasks.get(*t).map(|task| task.name.clone());
        let (method, task, budget, seed) = match &self.kind {
            JobKind::Pretrain { method } => (method.clone(), None, None, None),
            JobKind::Supervised { task } => (
                MethodSpec::Supervised(task.clone()).label(),
                Some(task.clone()),
                Some(BudgetSpec::Named(AllCases::All).label()),
                study.finetune.seeds.first().copied(),
            ),
            JobKind::Finetune {
                method,
                task,
                budget,
                seed,
            } => (
                method.label(),
                task_name(task),
                Some(budget.label()),
                Some(*seed),
            ),
            JobKind::Probe { method, task } => (
                method.label(),
                task_name(task),
                None,
                study.finetune.seeds.first().copied(),
            ),
            JobKind::Cka { method, task, seed } => {
                (method.label(), task_name(task), None, Some(*seed))
            }
        };
        JobSummary {
            index,
            id: self.id.clone(),
            kind: self.kind.stage(),
            method,
            task,
            budget,
            seed,
            needs: self.needs.clone(),
        }
    }

    /// The job's directory.
    pub fn dir(&self, study: &StudyDefinition) -> PathBuf {
        study.layout().job_dir(&self.id)
    }

    /// The job's directory as a run, to name the files of a pretraining or fine-tune.
    pub fn run(&self, study: &StudyDefinition) -> RunDir {
        study.layout().run(&self.id)
    }

    /// The fields of a fine-tune job; `None` for other kinds.
    pub fn finetune(&self) -> Option<FinetuneJob<'_>> {
        match &self.kind {
            JobKind::Finetune {
                method,
                task,
                budget,
                seed,
            } => Some(FinetuneJob {
                method,
                task: *task,
                budget: *budget,
                seed: *seed,
            }),
            _ => None,
        }
    }

    /// The file whose presence means the job is done; it is the last one the job
    /// writes, atomically: the pretraining's and the CKA's `result.json`, the
    /// fine-tune's test evaluation `test.json`, the supervised fine-tune's encoder, the
    /// probe's `result.json`.
    pub fn done_file(&self, study: &StudyDefinition) -> PathBuf {
        let layout = study.layout();
        match self.kind {
            JobKind::Pretrain { .. } => layout.run(&self.id).result(),
            JobKind::Supervised { .. } => layout.run(&self.id).encoder(),
            JobKind::Probe { .. } => layout.probe_result(&self.id),
            JobKind::Finetune { .. } => layout.run(&self.id).test_summary(),
            JobKind::Cka { .. } => layout.cka_result(&self.id),
        }
    }
}

/// What a fine-tune job is ([`Job::finetune`]): the fields of [`JobKind::Finetune`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FinetuneJob<'a> {
    /// The row.
    pub method: &'a MethodSpec,
    /// Index into the study's tasks.
    pub task: usize,
    /// The label budget.
    pub budget: BudgetSpec,
    /// The fine-tune's seed.
    pub seed: u64,
}

/// A study's jobs in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Pretraining jobs, then supervised encoders, probes, fine-tunes, CKA jobs.
    pub jobs: Vec<Job>,
}

impl Plan {
    /// The jobs of `study`.
    pub fn new(study: &StudyDefinition) -> Plan {
        let mut jobs: Vec<Job> = study
            .ssl_methods()
            .into_iter()
            .map(|method| Job {
                id: StudyLayout::pretrain_job(&method),
                kind: JobKind::Pretrain { method },
                needs: Vec::new(),
            })
            .collect();
        for method in study.methods() {
            if let MethodSpec::Supervised(task) = method {
                jobs.push(Job {
                    id: StudyLayout::supervised_job(&task),
                    kind: JobKind::Supervised { task },
                    needs: Vec::new(),
                });
            }
        }
        for (t, task) in study.tasks.iter().enumerate() {
            for method in study.methods() {
                if fine_tuned_on(&method, &task.name) {
                    jobs.push(Job {
                        id: StudyLayout::probe_job(&task.name, &method.label()),
                        needs: encoder_job(&jobs, &method).into_iter().collect(),
                        kind: JobKind::Probe { method, task: t },
                    });
                }
            }
        }
        for (t, task) in study.tasks.iter().enumerate() {
            for method in study.methods() {
                if !fine_tuned_on(&method, &task.name) {
                    continue;
                }
                let needs: Vec<usize> = encoder_job(&jobs, &method).into_iter().collect();
                for &budget in &study.finetune.budgets {
                    for &seed in study.finetune.seeds_for(budget) {
                        jobs.push(Job {
                            id: StudyLayout::finetune_job(
                                &task.name,
                                &method.label(),
                                &budget.label(),
                                seed,
                            ),
                            kind: JobKind::Finetune {
                                method: method.clone(),
                                task: t,
                                budget,
                                seed,
                            },
                            needs: needs.clone(),
                        });
                    }
                }
            }
        }
        for (t, task) in study.tasks.iter().enumerate() {
            for method in study.methods() {
                if !fine_tuned_on(&method, &task.name) {
                    continue;
                }
                for &seed in &study.finetune.seeds {
                    // Initial against fine-tuned weights, and few against many labels
                    // where this seed fine-tunes more than one budget.
                    let budgets = (study.finetune.budgets.iter())
                        .filter(|&&b| study.finetune.seeds_for(b).contains(&seed))
                        .count();
                    if method == MethodSpec::Scratch && budgets < 2 {
                        continue;
                    }
                    let needs = (0..jobs.len())
                        .filter(|&k| {
                            matches!(&jobs[k].kind, JobKind::Finetune { method: m, task: jt, seed: s, .. }
                                if *m == method && *jt == t && *s == seed)
                        })
                        .collect();
                    jobs.push(Job {
                        id: StudyLayout::cka_job(&task.name, &method.label(), seed),
                        kind: JobKind::Cka {
                            method: method.clone(),
                            task: t,
                            seed,
                        },
                        needs,
                    });
                }
            }
        }
        Plan { jobs }
    }

    /// The index of the job called `id`, or an error listing how ids look.
    pub fn find(&self, id: &str) -> Result<usize> {
        self.jobs.iter().position(|j| j.id == id).ok_or_else(|| {
            BenchError::Invalid(format!(
                "no job `{id}` in this study; ids look like `{}` (`medssl study plan` lists them)",
                self.jobs.first().map(|j| j.id.as_str()).unwrap_or("")
            ))
        })
    }

    /// The jobs of shard `index` of `count` (both from the `--shard i/n` syntax, `index`
    /// from 0): job `k` belongs to shard `k mod count`, so every shard gets a share of
    /// the pretraining jobs and of every task.
    pub fn shard(&self, index: usize, count: usize) -> Result<Vec<usize>> {
        if count == 0 || index >= count {
            return Err(BenchError::Invalid(format!(
                "shard {index}/{count}: need 0 <= index < count"
            )));
        }
        Ok((0..self.jobs.len())
            .filter(|k| k % count == index)
            .collect())
    }

    /// Where the fine-tunes of `job`'s row take their initial weights from: `None` for
    /// scratch (and for the jobs that make encoders), the encoder of the pretraining or
    /// supervised job, or the imported file.
    pub fn init_weights(&self, study: &StudyDefinition, job: &Job) -> Option<PathBuf> {
        let method = match &job.kind {
            JobKind::Finetune { method, .. }
            | JobKind::Probe { method, .. }
            | JobKind::Cka { method, .. } => method,
            JobKind::Pretrain { .. } | JobKind::Supervised { .. } => return None,
        };
        match method {
            MethodSpec::Scratch => None,
            MethodSpec::Ssl(_) | MethodSpec::Supervised(_) => {
                encoder_job(&self.jobs, method).map(|k| self.jobs[k].run(study).encoder())
            }
            MethodSpec::Import(path) => Some(study.resolve(path)),
        }
    }
}

/// The job among `jobs` that makes the encoder of row `method`: its pretraining or its
/// supervised fine-tune (`None` for scratch and imported rows).
pub fn encoder_job(jobs: &[Job], method: &MethodSpec) -> Option<usize> {
    jobs.iter().position(|j| match (&j.kind, method) {
        (JobKind::Pretrain { method }, MethodSpec::Ssl(name)) => method == name,
        (JobKind::Supervised { task }, MethodSpec::Supervised(source)) => task == source,
        _ => false,
    })
}

/// Whether row `method` is fine-tuned on the task called `task`: every row is, but a
/// `supervised:` row on its own source task.
fn fine_tuned_on(method: &MethodSpec, task: &str) -> bool {
    !matches!(method, MethodSpec::Supervised(source) if source == task)
}

/// Parses `--shard i/n` (`i` from 0).
pub fn parse_shard(text: &str) -> Result<(usize, usize)> {
    let parsed = text
        .split_once('/')
        .and_then(|(i, n)| Some((i.trim().parse().ok()?, n.trim().parse().ok()?)));
    match parsed {
        Some((i, n)) if n > 0 && i < n => Ok((i, n)),
        _ => Err(BenchError::Invalid(format!(
            "--shard {text}: expected INDEX/COUNT with 0 <= INDEX < COUNT, e.g. 0/4"
        ))),
    }
}
