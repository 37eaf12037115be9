//! A finished (or validated) fine-tune run, reopened from its directory to be applied:
//! its network, preprocessing and sliding-window settings as a
//! [`medssl_eval::Predictor`], its task and split, and the files evaluation writes back
//! into the run. The inference, the metrics and the feature comparison themselves are
//! `medssl-eval`'s.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use medssl_data::dataset::Task;
use medssl_data::splits::Split;
use medssl_eval::Predictor;
use medssl_eval::evaluate::{Evaluation, Part, evaluate};
use medssl_eval::feature_reuse::{Probe, StageSimilarity, stage_similarity};
use medssl_eval::predictor::{TrainingSpacing, median_spacing, world_spacing};
use medssl_model::SwinUnetr;
use medssl_model::weights::{export_encoder_safetensors, load_monai_safetensors};
use serde::{Deserialize, Serialize};

use super::config::FinetuneConfig;
use super::init_weights::load_weights;
use super::run_info::RunInfo;
use crate::error::{Result, TrainError};
use crate::run_dir::RunDir;

/// A trained network with the configuration it was trained with.
pub struct TrainedRun {
    pub config: FinetuneConfig,
    /// The best validated network with the run's preprocessing and sliding window.
    pub predictor: Predictor,
}

impl TrainedRun {
    /// Loads `RUN/best.safetensors` (the best validation) onto `device` (no autodiff).
    pub fn open(run_dir: &Path, device: Device) -> Result<TrainedRun> {
        let run = RunDir::open(run_dir)?;
        let config = FinetuneConfig::read(&run)?;
        let info: RunInfo = run.read_json(&run.info())?;
        let network_config = config.network(info.channels, info.classes);
        let mut network = SwinUnetr::new(&network_config, &device)
            .map_err(|e| TrainError::file(run.config(), e.to_string()))?;
        let weights = run.best_weights();
        if !weights.exists() {
            return Err(TrainError::file(
                &weights,
                "missing: the run has not validated yet (train until the first validation)",
            ));
        }
        let report = load_monai_safetensors(&mut network, &weights)
            .map_err(|e| TrainError::file(&weights, e.to_string()))?;
        if !report.is_exact() {
            return Err(TrainError::file(
                &weights,
                "weights do not fit the run's network",
            ));
        }
        let preprocess = config.data.preprocess.build();
        let predictor = Predictor::new(network, preprocess, config.sliding_window(), device);
        Ok(TrainedRun { config, predictor })
    }
}

/// Writes the Swin encoder of the best network of the run in `run_dir` to `path`, as a
/// pretraining writes its encoder (MONAI names, atomically): a supervised fine-tune
/// made into an initial encoder for other fine-tunes.
pub fn export_encoder(run_dir: &Path, path: &Path, device: Device) -> Result<()> {
    let trained = TrainedRun::open(run_dir, device)?;
    let network = trained.predictor.network();
    export_encoder_safetensors(&network.swin_vit, network.config(), path)
        .map_err(|e| TrainError::file(path, e.to_string()))
}

/// The fine-tune run in `run_dir`, its task (at `task_dir`, or where the run recorded
/// it) and its split.
fn open_task_split(run_dir: &Path, task_dir: Option<&Path>) -> Result<(RunDir, Task, Split)> {
    let run = RunDir::open(run_dir)?;
    let info: RunInfo = run.read_json(&run.info())?;
    let task = Task::open(task_dir.unwrap_or(&info.task))?;
    let split = Split::load(&run.split())?;
    Ok((run, task, split))
}

/// The spacing the network of the run in `run_dir` was trained at: `data.spacing` of its
/// configuration when set (every image was resampled to it), else the per-axis median
/// over its training cases, from the headers of the task's NIfTI files. An error when
/// neither is known (the task moved, or its images are not NIfTI).
pub fn training_spacing(run_dir: &Path, config: &FinetuneConfig) -> Result<TrainingSpacing> {
    if let Some(mm) = config.data.spacing {
        return Ok(TrainingSpacing {
            mm,
            source: "data.spacing of the run".into(),
        });
    }
    let (_, task, split) = open_task_split(run_dir, None)?;
    let spacings: Vec<[f64; 3]> = split
        .train
        .iter()
        .filter_map(|id| {
            let path = task.case(id)?.images.first()?;
            let header = medssl_io::nifti::read_header(path).ok()?;
            let (affine, _) = header.best_affine().ok()?;
            world_spacing(&affine)
        })
        .collect();
    let mm = median_spacing(&spacings).ok_or_else(|| {
        TrainError::Invalid(format!(
            "no NIfTI header among the {} training cases of the task at {}",
            split.train.len(),
            task.dir.display()
        ))
    })?;
    Ok(TrainingSpacing {
        mm,
        source: format!("median of {} training cases", spacings.len()),
    })
}

/// Scores the run's best network on `part` of its split (of the task at `task_dir`, or
/// where the run recorded it), with an NSD tolerance of `nsd_tolerance_mm` for every
/// class; writes `evaluation-PART.csv` and adds the summary to `result.json` under
/// `evaluation.PART`.
pub fn evaluate_run(
    run_dir: &Path,
    task_dir: Option<&Path>,
    part: Part,
    nsd_tolerance_mm: f64,
    device: Device,
) -> Result<Evaluation> {
    let (run, task, split) = open_task_split(run_dir, task_dir)?;
    let ids = match part {
        Part::Val => &split.validation,
        Part::Test => &split.test,
    };
    if ids.is_empty() {
        return Err(TrainError::Invalid(format!(
            "the run's split has no {} cases",
            part.name()
        )));
    }
    let trained = TrainedRun::open(run_dir, device)?;
    let evaluation = evaluate(&trained.predictor, &task, ids, part, nsd_tolerance_mm)?;
    run.write(&run.evaluation(part), evaluation.to_csv().as_bytes())?;
    let mut result: serde_json::Value = if run.result().exists() {
        run.read_json(&run.result())?
    } else {
        serde_json::json!({})
    };
    let summary = serde_json::to_value(evaluation.to_json(nsd_tolerance_mm))
        .map_err(|e| TrainError::Invalid(e.to_string()))?;
    result["evaluation"][part.name()] = summary;
    run.write_json(&run.result(), &result)?;
    Ok(evaluation)
}

/// A network to compare: the best network of the fine-tune run in `source` (a
/// directory), or weights from a file (e.g. a pretrained `encoder.safetensors`) loaded
/// into the architecture of `reference`. A file must provide the whole encoder.
pub fn open_network(source: &Path, reference: &TrainedRun, device: &Device) -> Result<SwinUnetr> {
    if source.is_dir() {
        let network = TrainedRun::open(source, device.clone())?
            .predictor
            .into_network();
        return Ok(network);
    }
    let config = reference.predictor.network().config().clone();
    let mut network =
        SwinUnetr::new(&config, device).map_err(|e| TrainError::file(source, e.to_string()))?;
    let channels: Vec<String> = (0..config.in_channels).map(|c| c.to_string()).collect();
    // The import rule refuses a file whose encoder is incomplete.
    load_weights(&mut network, source, &config, &channels, false)?;
    Ok(network)
}

/// Two networks compared on a probe: what `medssl cka --json` prints and a study's CKA
/// job stores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureReuse {
    /// The first network (run directory or weights file).
    pub a: PathBuf,
    /// The second network.
    pub b: PathBuf,
    /// The fine-tune run whose validation cases and preprocessing made the probe.
    pub probe_run: PathBuf,
    /// The cases the patches come from.
    pub cases: Vec<String>,
    /// Probe patches.
    pub patches: usize,
    /// Patch size.
    pub roi: [usize; 3],
    /// Per encoder stage, shallow to deep.
    pub stages: Vec<StageSimilarity>,
}

/// Compares each pair of networks (see [`open_network`]) on up to `patches` patches of
/// the validation cases of `probe_run` (then its test and training cases, see
/// [`medssl_eval::feature_reuse`]), in minibatches of about `batch`. `task_dir`
/// overrides the task path the run recorded.
pub fn compare_networks(
    probe_run: &Path,
    task_dir: Option<&Path>,
    pairs: &[(PathBuf, PathBuf)],
    patches: usize,
    batch: usize,
    device: &Device,
) -> Result<Vec<FeatureReuse>> {
    let reference = TrainedRun::open(probe_run, device.clone())?;
    let (run, task, split) = open_task_split(probe_run, task_dir)?;
    let parts = [&split.validation[..], &split.test, &split.train];
    let probe = Probe::cut(&reference.predictor, &task, &parts, patches)?;
    if probe.cases.is_empty() {
        return Err(TrainError::file(
            run.split(),
            "no cases to cut probe patches from",
        ));
    }
    // Each distinct network is opened and run once.
    let mut sources: Vec<&PathBuf> = pairs.iter().flat_map(|(a, b)| [a, b]).collect();
    sources.sort();
    sources.dedup();
    let networks = sources
        .iter()
        .map(|source| open_network(source, &reference, device))
        .collect::<Result<Vec<_>>>()?;
    let index = |path: &PathBuf| {
        sources
            .binary_search(&path)
            .expect("every source is listed")
    };
    let indices: Vec<(usize, usize)> = pairs.iter().map(|(a, b)| (index(a), index(b))).collect();
    let similarities = stage_similarity(
        &networks.iter().collect::<Vec<_>>(),
        &indices,
        &probe,
        batch,
        device,
    )?;
    Ok(pairs
        .iter()
        .zip(similarities)
        .map(|((a, b), stages)| FeatureReuse {
            a: a.clone(),
            b: b.clone(),
            probe_run: probe_run.to_path_buf(),
            cases: probe.cases.clone(),
            patches: probe.patches.len(),
            roi: reference.config.model.roi,
            stages,
        })
        .collect())
}
