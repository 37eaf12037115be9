//! A cost estimate per job, for `medssl study plan`: the voxels that pass through the
//! encoder over the job, in billions ("Gvox"). Time grows with it for a given network
//! and device, so it orders jobs and compares studies; teachers, decoders and the
//! validation passes are not counted, and the forward-only passes of the CKA jobs count
//! a third.
//!
//! [`Rates`] turn Gvox into time: the seconds per Gvox of each kind of job on a device,
//! measured on the study's own finished jobs (`timing.json`, written when a job
//! finishes). [`plan_estimate`] uses them for `study plan`'s hours, and `study run` for
//! its time left.

use std::collections::BTreeMap;

use medssl_data::dataset::Task;
use medssl_data::manifest::Manifest;
use medssl_data::splits::Budget;
use medssl_ssl::Method;
use medssl_ssl::methods::{self, MethodVisitor};
use medssl_train::finetune::FinetuneConfig;
use medssl_train::pretrain::PretrainConfig;

use serde::{Deserialize, Serialize};

use crate::definition::{MethodSpec, StudyDefinition};
use crate::error::{BenchError, Result};
use crate::feature_reuse::PROBE_PATCHES;
use crate::plan::{JobKind, JobSummary, Plan, Stage};
use crate::state::{JobState, state, timing};

/// The estimate of each job of `plan`, in billions of voxels.
pub fn estimate(study: &StudyDefinition, plan: &Plan) -> Result<Vec<f64>> {
    let volumes = if study.ssl_methods().is_empty() || study.pretraining.steps.is_some() {
        0
    } else {
        let data = study.resolve(&study.pretraining.data);
        Manifest::index(&data, None)
            .map_err(|e| BenchError::definition(&data, e.to_string()))?
            .0
            .entries
            .len()
    };
    let finetune = FinetuneConfig::load(study.finetune.preset, None, &study.finetune.set)
        .map_err(|e| BenchError::Invalid(format!("finetune.set: {e}")))?;
    // Training cases of a task after its held-out parts.
    let trainable = |t: &crate::definition::TaskSpec| -> Result<usize> {
        let path = study.resolve(&t.path);
        let task = Task::open(&path).map_err(|e| BenchError::definition(&path, e.to_string()))?;
        let held_out = finetune.split.validation + finetune.split.test;
        Ok(((task.training.len() as f64) * (1.0 - held_out))
            .round()
            .max(1.0) as usize)
    };
    let task_cases = study
        .tasks
        .iter()
        .map(trainable)
        .collect::<Result<Vec<usize>>>()?;
    let roi: usize = finetune.model.roi.iter().product();
    let finetune_gvox = |cases: usize| {
        let samples = cases * finetune.data.samples_per_volume;
        (finetune.train.epochs as usize * samples * roi) as f64 * 1e-9
    };
    plan.jobs
        .iter()
        .map(|job| match &job.kind {
            JobKind::Pretrain { method } => {
                let overrides = study.pretrain_overrides(method);
                methods::visit(
                    method,
                    PretrainVoxels {
                        study,
                        overrides: &overrides,
                        volumes,
                    },
                )?
            }
            JobKind::Finetune { task, budget, .. } => {
                let available = task_cases[*task];
                let cases = match budget.budget() {
                    Some(Budget::Shots(n)) => n.min(available),
                    Some(Budget::Fraction(f)) => ((available as f64) * f).ceil() as usize,
                    None => available,
                };
                Ok(finetune_gvox(cases))
            }
            JobKind::Supervised { task } => {
                let spec = study.labelled(task).expect("checked when loaded");
                Ok(finetune_gvox(trainable(spec)?))
            }
            // Every case through the encoder once (no decoder, no backward), and small
            // fits: far below a training voxel; counted as a tenth of one per case.
            JobKind::Probe { task, .. } => Ok(task_cases[*task] as f64 * roi as f64 * 1e-10),
            JobKind::Cka { method, .. } => {
                // Each network (the initial weights, one fine-tune per budget) runs once
                // over the probe, forward only: about a third of a training voxel.
                let networks =
                    usize::from(*method != MethodSpec::Scratch) + study.finetune.budgets.len();
                Ok((networks * PROBE_PATCHES * roi) as f64 * 1e-9 / 3.0)
            }
        })
        .collect()
}

/// Steps × batch × the voxels of one volume's views, for method `M`.
struct PretrainVoxels<'a> {
    study: &'a StudyDefinition,
    overrides: &'a [String],
    volumes: usize,
}

impl MethodVisitor for PretrainVoxels<'_> {
    type Output = Result<f64>;

    fn visit<M: Method>(self) -> Result<f64> {
        let invalid = |e: medssl_train::error::TrainError| BenchError::Invalid(e.to_string());
        let config = PretrainConfig::load::<M>(self.study.pretraining.preset, None, self.overrides)
            .map_err(invalid)?;
        let per_step = config.data.loader.batch_size * config.train.accumulate;
        let voxels = config.view_voxels::<M>().map_err(invalid)?;
        Ok(config.total_steps(self.volumes) as f64 * (per_step * voxels) as f64 * 1e-9)
    }
}

/// The finished jobs of one stage measured on a device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// How many jobs.
    pub jobs: usize,
    /// Their wall seconds, summed.
    pub seconds: f64,
    /// Their estimates, summed, in Gvox.
    pub gvox: f64,
}

/// Seconds per Gvox of each stage on one device. The estimate ranks jobs of one kind
/// well but weighs kinds against each other roughly (it leaves out validation and
/// evaluation), so each stage has its own rate; a stage not measured yet takes the rate
/// of all measured jobs together.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Rates(pub BTreeMap<Stage, Measured>);

/// The kind of a `--device` value: `cuda:1` runs at the rate of `cuda`.
fn device_kind(device: &str) -> &str {
    device.split(':').next().unwrap_or(device)
}

impl Rates {
    /// The rates measured on the done jobs of `plan` (whose estimates are `cost`) that
    /// ran on `device` (any index of its kind, any host).
    pub fn measured(study: &StudyDefinition, plan: &Plan, cost: &[f64], device: &str) -> Rates {
        let mut rates = Rates::default();
        for (k, job) in plan.jobs.iter().enumerate() {
            if !job.done_file(study).is_file() {
                continue;
            }
            if let Some(timing) = timing(study, job)
                && device_kind(&timing.device) == device_kind(device)
            {
                rates.add(job.kind.stage(), timing.seconds, cost[k]);
            }
        }
        rates
    }

    /// Adds a job of `stage` that took `seconds` for `gvox`.
    pub fn add(&mut self, stage: Stage, seconds: f64, gvox: f64) {
        let measured = self.0.entry(stage).or_default();
        measured.jobs += 1;
        measured.seconds += seconds;
        measured.gvox += gvox;
    }

    /// Seconds per Gvox of `stage`: its own rate, else that of every measured job;
    /// `None` when nothing is measured.
    pub fn seconds_per_gvox(&self, stage: Stage) -> Option<f64> {
        let rate = |m: Measured| (m.gvox > 0.0).then(|| m.seconds / m.gvox);
        self.0.get(&stage).copied().and_then(rate).or_else(|| {
            rate(
                self.0
                    .values()
                    .fold(Measured::default(), |all, m| Measured {
                        jobs: all.jobs + m.jobs,
                        seconds: all.seconds + m.seconds,
                        gvox: all.gvox + m.gvox,
                    }),
            )
        })
    }

    /// The seconds `gvox` of `stage` take, if a rate is measured.
    pub fn seconds(&self, stage: Stage, gvox: f64) -> Option<f64> {
        self.seconds_per_gvox(stage).map(|rate| rate * gvox)
    }
}

/// One job in `study plan`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedJob {
    /// What the job is.
    #[serde(flatten)]
    pub job: JobSummary,
    /// One of [`crate::state::STATE_WORDS`].
    pub state: String,
    /// Its cost estimate, in Gvox.
    pub gvox: f64,
    /// Its estimated hours on the device, at the measured rates (`None`: not measured).
    pub hours: Option<f64>,
}

/// `study plan`: every job with its state, cost and time on a device, and what is left;
/// with `--json` it is printed as it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanEstimate {
    /// The study's name.
    pub study: String,
    /// The device of the hours.
    pub device: String,
    /// Every job, in plan order.
    pub jobs: Vec<PlannedJob>,
    /// The cost of every job, in Gvox.
    pub total_gvox: f64,
    /// The jobs not done yet.
    pub left_jobs: usize,
    /// Their cost, in Gvox.
    pub left_gvox: f64,
    /// Their hours on the device, one job at a time (`None`: no rate measured there).
    pub left_hours: Option<f64>,
    /// The rates the hours come from: per stage, the study's finished jobs that ran on
    /// the device.
    pub rates: Rates,
}

/// The plan of `study` with its cost and hours on `device`.
pub fn plan_estimate(study: &StudyDefinition, plan: &Plan, device: &str) -> Result<PlanEstimate> {
    let cost = estimate(study, plan)?;
    let rates = Rates::measured(study, plan, &cost, device);
    let hours = |stage: Stage, gvox: f64| rates.seconds(stage, gvox).map(|s| s / 3600.0);
    let mut left = (0, 0.0, Some(0.0));
    let jobs = plan
        .jobs
        .iter()
        .enumerate()
        .map(|(k, job)| {
            let state = state(study, plan, k);
            let stage = job.kind.stage();
            if state != JobState::Done {
                left.0 += 1;
                left.1 += cost[k];
                left.2 = left.2.zip(hours(stage, cost[k])).map(|(a, b)| a + b);
            }
            PlannedJob {
                job: job.summary(study, k),
                state: state.word().to_string(),
                gvox: cost[k],
                hours: hours(stage, cost[k]),
            }
        })
        .collect();
    Ok(PlanEstimate {
        study: study.name.clone(),
        device: device.to_string(),
        jobs,
        total_gvox: cost.iter().sum(),
        left_jobs: left.0,
        left_gvox: left.1,
        left_hours: left.2.filter(|_| !rates.0.is_empty()),
        rates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_not_measured_takes_the_rate_of_all_measured_jobs() {
        let mut rates = Rates::default();
        assert_eq!(rates.seconds(Stage::Pretrain, 1.0), None);
        rates.add(Stage::Pretrain, 100.0, 2.0);
        rates.add(Stage::Pretrain, 60.0, 2.0);
        rates.add(Stage::Finetune, 30.0, 1.0);
        assert_eq!(rates.seconds_per_gvox(Stage::Pretrain), Some(40.0));
        assert_eq!(rates.seconds_per_gvox(Stage::Finetune), Some(30.0));
        assert_eq!(rates.seconds_per_gvox(Stage::Cka), Some(190.0 / 5.0));
        assert_eq!(rates.seconds(Stage::Finetune, 0.5), Some(15.0));
        assert_eq!(rates.0[&Stage::Pretrain].jobs, 2);
        assert_eq!(device_kind("cuda:1"), "cuda");
        assert_eq!(device_kind("cpu"), "cpu");
    }
}
