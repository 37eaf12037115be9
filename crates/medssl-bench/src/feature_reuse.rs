//! The study's CKA jobs: feature reuse of one row's fine-tunes of a task and seed.
//!
//! Every comparison of a job uses one probe: [`PROBE_PATCHES`] patches of the validation
//! cases of the most-label fine-tune, prepared by its preprocessing (see
//! `medssl_eval::feature_reuse`). Two comparisons: the row's initial weights
//! (the pretrained encoder, or the imported file) against the fine-tuned network at each
//! budget, which shows how far fine-tuning moved each stage; and the fewest-label
//! fine-tune against the most-label one, which shows whether few labels reach the same
//! features.

use std::collections::BTreeMap;

use burn::tensor::Device;
use medssl_io::atomic::{create_dir_for_writes, write_atomically};
pub use medssl_train::finetune::trained_run::FeatureReuse;
use medssl_train::finetune::trained_run::compare_networks;
use serde::{Deserialize, Serialize};

use crate::definition::StudyDefinition;
use crate::error::{BenchError, JobError, Result};
use crate::plan::{Job, JobKind, Plan};

/// Probe patches of a CKA job.
pub const PROBE_PATCHES: usize = 32;

/// Patches per minibatch of the unbiased minibatch CKA.
pub const MINIBATCH: usize = 8;

/// A CKA job's `result.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CkaResult {
    /// Initial weights against the fine-tuned network, by budget label (empty for
    /// scratch).
    pub pretrained_vs_finetuned: BTreeMap<String, FeatureReuse>,
    /// Fewest-label against most-label fine-tune (with two budgets or more).
    pub few_vs_many: Option<FeatureReuse>,
}

/// Runs the CKA job `job` of `plan` and writes its `result.json` (atomically, last).
pub fn run_cka_job(study: &StudyDefinition, plan: &Plan, job: &Job, device: &Device) -> Result<()> {
    let JobKind::Cka { task, .. } = &job.kind else {
        unreachable!("called for CKA jobs")
    };
    // The needs are the row's fine-tunes, budgets from few to many labels.
    let runs: Vec<(String, std::path::PathBuf)> = job
        .needs
        .iter()
        .map(|&n| match &plan.jobs[n].kind {
            JobKind::Finetune { budget, .. } => (budget.label(), plan.jobs[n].dir(study)),
            _ => unreachable!("a CKA job needs fine-tunes only"),
        })
        .collect();
    let (Some(few), Some(many)) = (runs.first(), runs.last()) else {
        return Err(BenchError::job(&job.id, JobError::NothingToCompare));
    };
    let mut pairs = Vec::new();
    let init = plan.init_weights(study, job);
    if let Some(init) = &init {
        pairs.extend(runs.iter().map(|(_, run)| (init.clone(), run.clone())));
    }
    if runs.len() > 1 {
        pairs.push((few.1.clone(), many.1.clone()));
    }
    let task_dir = study.resolve(&study.tasks[*task].path);
    let mut reuse = compare_networks(
        &many.1,
        Some(&task_dir),
        &pairs,
        PROBE_PATCHES,
        MINIBATCH,
        device,
    )
    .map_err(|e| BenchError::job(&job.id, e))?
    .into_iter();
    let pretrained_vs_finetuned = match init {
        Some(_) => runs
            .iter()
            .map(|(label, _)| (label.clone(), reuse.next().expect("one per budget")))
            .collect(),
        None => BTreeMap::new(),
    };
    let result = CkaResult {
        pretrained_vs_finetuned,
        few_vs_many: reuse.next(),
    };
    let text = serde_json::to_string_pretty(&result).map_err(|e| BenchError::job(&job.id, e))?;
    let path = job.done_file(study);
    create_dir_for_writes(&job.dir(study)).map_err(|e| BenchError::io(job.dir(study), e))?;
    write_atomically(&path, text.as_bytes()).map_err(|e| BenchError::io(&path, e))
}
