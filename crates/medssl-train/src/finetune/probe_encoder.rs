//! `medssl probe` and the probes during pretraining: the frozen-feature probes
//! (`medssl_eval::probe`) of an encoder on a task, set up as a fine-tune of the same
//! settings would be: the same split (by `seed` and `split.*`), the task's resolved
//! preprocessing, the network of `model.*` built from the seed, and the initial weights
//! loaded as `finetune --init` loads them. Nothing is trained, so `scratch` gives the
//! random-initialisation baseline of the seed.

use std::path::Path;
use std::sync::Arc;

use burn::tensor::Device;
use medssl_data::cache::PreprocessCache;
use medssl_data::dataset::{Task, TaskSource};
use medssl_data::loader::SampleSource;
use medssl_data::splits::{Split, SplitScheme};
use medssl_eval::evaluate::Part;
use medssl_eval::probe::{ProbeSettings, StageScores, probe_stages};
use medssl_model::SwinUnetr;
use medssl_model::seeding::build_seeded;
use medssl_model::swin::SwinTransformer;

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

/// A task made ready to probe encoders on: its split, and its training and held-out
/// cases preprocessed once (cached on disk), so that a pretraining probing every few
/// hundred steps pays only for the encoder's forward passes and the fits.
pub struct ProbeTask {
    config: FinetuneConfig,
    task: Arc<Task>,
    train: PreprocessCache,
    held_out: PreprocessCache,
    /// Cases whose tokens fit the probes, and the held-out ones scored.
    pub train_cases: usize,
    pub held_out_cases: usize,
}

impl ProbeTask {
    /// The task in `task_dir`, split as `config` splits it, scored on `part`;
    /// preprocessed cases are cached in `cache_dir`.
    pub fn open(
        task_dir: &Path,
        mut config: FinetuneConfig,
        part: Part,
        cache_dir: &Path,
    ) -> Result<ProbeTask> {
        config.validate()?;
        let task = Arc::new(Task::open(task_dir)?);
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
                "the split of {} has {} training and {} {} case(s); the probe needs both",
                task_dir.display(),
                split.train.len(),
                held_out.len(),
                part.name()
            )));
        }
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
        Ok(ProbeTask {
            train: cached(&split.train)?,
            held_out: cached(held_out)?,
            train_cases: split.train.len(),
            held_out_cases: held_out.len(),
            config,
            task,
        })
    }

    /// The task's input channels, which the encoder must take.
    pub fn channels(&self) -> &[String] {
        &self.task.channels
    }

    /// Both probes' scores, stage by stage, of `encoder` on `device` (no autodiff).
    pub fn probe(&self, encoder: &SwinTransformer, device: &Device) -> Result<Vec<StageScores>> {
        Ok(probe_stages(
            encoder,
            &self.train,
            &self.held_out,
            self.task.labels.len(),
            &ProbeSettings::new(self.config.model.roi),
            device,
        )?)
    }
}

/// Probes the encoder `init` gives on the task in `task_dir`, scoring on `part` of the
/// split that `config` draws; preprocessed cases are cached in `cache_dir`.
pub fn probe_encoder(
    task_dir: &Path,
    init: &Init,
    config: FinetuneConfig,
    part: Part,
    cache_dir: &Path,
    device: &Device,
) -> Result<ProbeReport> {
    let probe = ProbeTask::open(task_dir, config, part, cache_dir)?;
    let config = &probe.config;
    let network = config.network(probe.channels().len(), probe.task.labels.len());
    let mut model = build_seeded(device, config.seed, |device| {
        SwinUnetr::new(&network, device)
    })
    .map_err(|e| TrainError::context("model", e))?;
    let report = match init {
        Init::Scratch => None,
        Init::Weights { path, allow_unused } => Some(load_weights(
            &mut model,
            path,
            &network,
            probe.channels(),
            *allow_unused,
        )?),
    };
    Ok(ProbeReport {
        init: report,
        train_cases: probe.train_cases,
        held_out_cases: probe.held_out_cases,
        stages: probe.probe(&model.swin_vit, device)?,
    })
}
