//! A cost estimate per job, for `medssl study plan`: the voxels that pass through the
//! encoder over the job, in billions ("Gvox"). Time grows with it for a given network
//! and device, so it orders jobs and compares studies; teachers, decoders and the
//! validation passes are not counted, and the forward-only passes of the CKA jobs count
//! a third.

use medssl_data::dataset::Task;
use medssl_data::manifest::Manifest;
use medssl_data::splits::Budget;
use medssl_ssl::Method;
use medssl_ssl::methods::{self, MethodVisitor};
use medssl_train::finetune::FinetuneConfig;
use medssl_train::pretrain::PretrainConfig;

use crate::definition::{MethodSpec, StudyDefinition};
use crate::error::{BenchError, Result};
use crate::feature_reuse::PROBE_PATCHES;
use crate::plan::{JobKind, Plan};

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
    let trainable = study
        .tasks
        .iter()
        .map(|t| {
            let path = study.resolve(&t.path);
            let task =
                Task::open(&path).map_err(|e| BenchError::definition(&path, e.to_string()))?;
            let held_out = finetune.split.validation + finetune.split.test;
            Ok(((task.training.len() as f64) * (1.0 - held_out))
                .round()
                .max(1.0) as usize)
        })
        .collect::<Result<Vec<usize>>>()?;
    let roi: usize = finetune.model.roi.iter().product();
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
                )
                .map_err(BenchError::Invalid)?
            }
            JobKind::Finetune { task, budget, .. } => {
                let available = trainable[*task];
                let cases = match budget.budget() {
                    Some(Budget::Shots(n)) => n.min(available),
                    Some(Budget::Fraction(f)) => ((available as f64) * f).ceil() as usize,
                    None => available,
                };
                let samples = cases * finetune.data.samples_per_volume;
                Ok((finetune.train.epochs as usize * samples * roi) as f64 * 1e-9)
            }
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
