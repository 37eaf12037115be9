//! The study's probe jobs: the frozen-feature probes (`medssl probe`) of each row's
//! initial encoder on each task, fitted on the training cases of the first seed's split
//! and scored on its test cases, with the row's fine-tune settings. No training, so they
//! show each encoder's quality before (and without) any fine-tune.

use std::collections::BTreeMap;

use burn::tensor::Device;
use medssl_eval::evaluate::Part;
use medssl_eval::probe::stages_json;
use medssl_io::atomic::{create_dir_for_writes, write_atomically};
use medssl_train::finetune::probe_encoder::probe_encoder;
use medssl_train::finetune::{FinetuneConfig, Init};
use serde::{Deserialize, Serialize};

use crate::definition::StudyDefinition;
use crate::error::{BenchError, Result};
use crate::plan::{Job, JobKind, Plan};

/// `result.json` of a probe job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeResult {
    pub train_cases: usize,
    pub held_out_cases: usize,
    /// Per stage (`patch_embed`, `stage1` ..), as `medssl probe --json` writes them.
    pub stages: BTreeMap<String, StageProbe>,
}

/// One stage's scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageProbe {
    pub train_tokens: usize,
    pub held_out_tokens: usize,
    pub linear: ProbeScores,
    pub knn: ProbeScores,
}

/// One classifier's scores; `None` (null) when the stage has no score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeScores {
    pub balanced_accuracy: Option<f64>,
    pub dice: Vec<Option<f64>>,
}

/// Runs probe job `job` of `plan` and writes its `result.json` (atomically, last).
pub fn run_probe_job(
    study: &StudyDefinition,
    plan: &Plan,
    job: &Job,
    device: &Device,
) -> Result<()> {
    let JobKind::Probe { method, task } = &job.kind else {
        unreachable!("called for probe jobs")
    };
    let failed = |e: medssl_train::error::TrainError| BenchError::job(&job.id, e);
    let mut set = study.finetune_overrides(&method.label());
    set.push(format!("seed={}", study.finetune.seeds[0]));
    let config = FinetuneConfig::load(study.finetune.preset, None, &set).map_err(failed)?;
    let init = match plan.init_weights(study, job) {
        Some(path) => Init::Weights {
            path,
            allow_unused: false,
        },
        None => Init::Scratch,
    };
    let spec = &study.tasks[*task];
    let dir = job.dir(study);
    create_dir_for_writes(&dir).map_err(|e| BenchError::io(&dir, e))?;
    let cache = job.run(study).task_cache(&spec.name);
    let report = probe_encoder(
        &study.resolve(&spec.path),
        &init,
        config,
        Part::Test,
        &cache,
        device,
    )
    .map_err(failed)?;
    let stages = serde_json::to_value(stages_json(&report.stages))
        .and_then(serde_json::from_value)
        .map_err(|e| BenchError::job(&job.id, e))?;
    let result = ProbeResult {
        train_cases: report.train_cases,
        held_out_cases: report.held_out_cases,
        stages,
    };
    let text = serde_json::to_string_pretty(&result).map_err(|e| BenchError::job(&job.id, e))?;
    let path = job.done_file(study);
    write_atomically(&path, text.as_bytes()).map_err(|e| BenchError::io(&path, e))
}
