//! `medssl probe`: the frozen-feature probes (`medssl_eval::probe`) of an encoder on a
//! task, set up as a fine-tune of the same settings would be: the same split (by
//! `seed` and `split.*`), the task's resolved preprocessing, the network of `model.*`
//! built from the seed, and the initial weights loaded as `finetune --init` loads them.
//! Nothing is trained, so `scratch` gives the random-initialisation baseline of the
//! seed.

use std::path::Path;
use std::sync::Arc;

use burn::tensor::Device;
use medssl_data::cache::PreprocessCache;
use medssl_data::dataset::{Task, TaskSource};
use medssl_data::loader::SampleSource;
use medssl_data::splits::{Split, SplitScheme};
use medssl_eval::evaluate::Part;
use medssl_eval::probe::{ProbeSettings, StageScores, probe_network};
use medssl_model::SwinUnetr;
use medssl_model::seeding::build_seeded;

use super::config::FinetuneConfig;
use super::init_weights::{InitReport, load_weights};
use super::pipelines::resolve_pipelines;
use super::trainer::Init;
use crate::error::{Result, TrainError};

/// What `medssl probe` found.
#[derive(Debug, Clone)]
pub struct ProbeReport {
    /// How the weights were loaded (`None` from scratch).
    pub init: Option<InitReport>,
    /// Cases whose tokens fit the probes, and the held-out ones scored.
    pub train_cases: usize,
    pub held_out_cases: usize,
    pub stages: Vec<StageScores>,
}

/// Probes the encoder `init` gives on the task in `task_dir`, scoring on `part` of the
/// split that `config` draws; preprocessed cases are cached in `cache_dir`.
pub fn probe_encoder(
    task_dir: &Path,
    init: &Init,
    mut config: FinetuneConfig,
    part: Part,
    cache_dir: &Path,
    device: &Device,
) -> Result<ProbeReport> {
    config.validate()?;
    let task = Arc::new(Task::open(task_dir)?);
    let classes = task.labels.len();
    resolve_pipelines(&mut config, &task)?;
    let scheme = SplitScheme::Holdout {
        validation: config.split.validation,
        test: config.split.test,
    };
    let split = Split::new(&task.training_ids(), config.seed, scheme)?;
    let held_out = match part {
        Part::Val => &split.validation,
        Part::Test => &split.test,
    };
    if held_out.is_empty() || split.train.is_empty() {
        return Err(TrainError::Invalid(format!(
            "the split has {} training and {} {} case(s); the probe needs both",
            split.train.len(),
            held_out.len(),
            part.name()
        )));
    }
    let network = config.network(task.channels.len(), classes);
    let mut model = build_seeded(device, config.seed, || SwinUnetr::new(&network, device))
        .map_err(|e| TrainError::context("model", e))?;
    let report = match init {
        Init::Scratch => None,
        Init::Weights { path, allow_unused } => Some(load_weights(
            &mut model,
            path,
            &network,
            &task.channels,
            *allow_unused,
        )?),
    };
    let preprocess = config.data.preprocess.build();
    let fingerprint = config.data.preprocess.cache_key();
    let cached = |ids: &[String]| -> Result<PreprocessCache> {
        let source: Arc<dyn SampleSource> = Arc::new(TaskSource::new(task.clone(), ids)?);
        Ok(PreprocessCache::new(
            cache_dir,
            source,
            preprocess.clone(),
            fingerprint.clone(),
        )?)
    };
    let stages = probe_network(
        &model,
        &cached(&split.train)?,
        &cached(held_out)?,
        classes,
        &ProbeSettings::new(config.model.roi),
        device,
    )?;
    Ok(ProbeReport {
        init: report,
        train_cases: split.train.len(),
        held_out_cases: held_out.len(),
        stages,
    })
}
