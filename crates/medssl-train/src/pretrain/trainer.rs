//! Pretraining with every method: the [`crate::fit`] loop over batches of views from
//! the collection, with the method's loss, AdamW at a scheduled learning rate
//! (optionally scaled by the batch, `train.lr_batch_scaling`) and a scheduled weight
//! decay that spares vectors and position tables, the EMA teacher's update, a frozen
//! last head layer in the first epochs, collapse warnings, and the encoder exported
//! with every checkpoint.

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use burn::module::{Module, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::Device;
use medssl_data::cache::PreprocessCache;
use medssl_data::dataset::Task;
use medssl_data::loader::{Loader, SampleSource};
use medssl_data::manifest::{CollectionSource, Manifest};
use medssl_data::views::{ViewBatch, ViewPlan};
use medssl_eval::evaluate::Part;
use medssl_eval::probe::stages_json;
use medssl_model::arrays::read_scalar;
use medssl_model::seeding::build_seeded;
use medssl_model::weights::export_encoder_safetensors;
use medssl_ssl::{Method, Pretext, StepContext};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config::PretrainConfig;
use crate::checkpoint::{self, TrainState, read_native, write_native};
use crate::error::{Result, TrainError};
use crate::finetune::probe_encoder::ProbeTask;
pub use crate::fit::Event;
use crate::fit::metrics::{MetricsLine, StepLine};
use crate::fit::{BatchLoss, Checkpoints, Fit, Length, Objective, Parts, Position, Rates};
use crate::launch::{Holds, already_holds_a_run};
use crate::optimizer::{DecayExempt, OptimizerConfig, SegmentationOptimizer};
use crate::run_dir::{ENCODER_FILE, RunDir};
use crate::schedule::CosineSchedule;

/// `run.json` of a pretraining run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PretrainInfo {
    /// The collection (a directory or list file), absolute.
    pub data: PathBuf,
    /// Readable volumes in it when the run started.
    pub volumes: usize,
}

/// `result.json` of a finished run.
#[derive(Debug, Serialize)]
struct PretrainResult<'a> {
    method: &'a str,
    volumes: usize,
    epochs: u64,
    steps: u64,
    first_loss: Option<f64>,
    last_loss: Option<f64>,
    encoder: &'a str,
    /// The last probes (`probe.task`): `{"iteration", "stages"}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    probe: Option<&'a Value>,
}

/// The pretraining state a checkpoint adds to [`TrainState`]: the first and the latest
/// step's loss (for `result.json`) and the collapse monitor's reference.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Progress {
    #[serde(default, with = "crate::exact_f64")]
    first_loss: Option<f64>,
    #[serde(default, with = "crate::exact_f64")]
    last_loss: Option<f64>,
    /// The embedding spread at the first step (collapse warnings compare with it).
    #[serde(default, with = "crate::exact_f64")]
    first_spread: Option<f64>,
    /// The last epoch that logged a collapse warning.
    collapse_warned_epoch: Option<u64>,
    /// The last probes: `{"iteration", "stages"}`.
    #[serde(default)]
    last_probe: Option<Value>,
}

/// A prepared pretraining run of method `M`.
pub struct Pretrain<M: Method> {
    fit: Fit<PretrainObjective<M>>,
}

/// What pretraining adds to the loop: the method's loss and teacher, the schedules,
/// the collapse monitor, the encoder and `result.json`.
struct PretrainObjective<M: Method> {
    config: PretrainConfig,
    volumes: usize,
    length: Length,
    has_teacher: bool,
    progress: Progress,
    /// The task the encoder is probed on (`probe.task`), and the device the probes run
    /// on.
    probe: Option<ProbeTask>,
    device: Device,
    method: PhantomData<M>,
}

impl<M: Method> Pretrain<M> {
    /// Prepares a new run in `run_dir` (which must hold nothing of a run: [`Holds`]) on
    /// the collection
    /// `data`, checking the settings and the collection before anything is written,
    /// and writes the initial encoder and checkpoint.
    pub fn start(
        data: &Path,
        run_dir: &Path,
        config: PretrainConfig,
        device: Device,
    ) -> Result<Pretrain<M>> {
        config.check::<M>()?;
        let cache_dir = RunDir::at(run_dir).collection_cache(data);
        let (manifest, _) = Manifest::index(data, Some(&cache_dir))?;
        let probe = open_probe(&config, run_dir)?;
        let run = RunDir::create(run_dir)?;
        if Holds::of(&run) != Holds::Nothing {
            return Err(already_holds_a_run(run_dir));
        }
        run.write(&run.config(), config.to_toml()?.as_bytes())?;
        run.write_json(
            &run.info(),
            &PretrainInfo {
                data: manifest.source.clone(),
                volumes: manifest.entries.len(),
            },
        )?;
        run.truncate_metrics(0)?;
        let mut pretrain =
            Pretrain::build(run, config, &manifest, &cache_dir, device, probe, false)?;
        // The initial state is a checkpoint too: the run directory always holds an
        // encoder and a state to resume from.
        pretrain.fit.checkpoint()?;
        Ok(pretrain)
    }

    /// Re-opens the run in `run_dir` with its stored settings and collection (`data`
    /// overrides the stored path), restoring the last checkpoint.
    pub fn resume(run_dir: &Path, data: Option<&Path>, device: Device) -> Result<Pretrain<M>> {
        let run = RunDir::open_for_writes(run_dir)?;
        let config = PretrainConfig::read(&run)?;
        if config.method != M::INFO.name {
            return Err(TrainError::file(
                run.config(),
                format!("this run pretrains {}, not {}", config.method, M::INFO.name),
            ));
        }
        let info: PretrainInfo = run.read_json(&run.info())?;
        let data = data.unwrap_or(&info.data);
        let cache_dir = run.collection_cache(data);
        let (manifest, _) = Manifest::index(data, Some(&cache_dir))?;
        let probe = open_probe(&config, run.root())?;
        Pretrain::build(run, config, &manifest, &cache_dir, device, probe, true)
    }

    fn build(
        run: RunDir,
        config: PretrainConfig,
        manifest: &Manifest,
        cache_dir: &Path,
        device: Device,
        probe: Option<ProbeTask>,
        resume: bool,
    ) -> Result<Pretrain<M>> {
        let settings = config.pretext::<M>()?;
        let network = config.network();
        let train_device = device.clone().autodiff();
        let Ok(net) = build_seeded(&train_device, config.seed, |device| {
            Ok::<_, std::convert::Infallible>(M::build(&settings, &network, device))
        });
        let t = &config.train;
        let optimizer = SegmentationOptimizer::new(OptimizerConfig {
            weight_decay: t.weight_decay,
            decay_exempt: DecayExempt::Vectors,
            beta1: t.betas[0],
            beta2: t.betas[1],
            epsilon: t.epsilon,
            grad_clip_norm: t.grad_clip_norm,
            clip_mode: t.clip_mode,
            encoder_lr_scale: 1.0,
            layer_decay: 1.0,
        });
        let restored = if resume {
            checkpoint::load(&run, net.clone(), read_native, optimizer.clone())?
        } else {
            None
        };

        let source: Arc<dyn SampleSource> = Arc::new(CollectionSource::new(manifest));
        let cache = Arc::new(PreprocessCache::new(
            cache_dir,
            source,
            config.data.preprocess.build(),
            config.data.preprocess.cache_key(),
        )?);
        let (augment, local_augment) = config.data.view_augmentations();
        let plan = M::view_plan(
            &settings,
            &network,
            config.encoder.crop,
            augment,
            local_augment,
        )
        .map_err(|e| TrainError::context("views", e))?;
        let volumes = manifest.entries.len();
        let batches_per_epoch = config.data.loader.batches(volumes);
        if batches_per_epoch == 0 {
            return Err(TrainError::Invalid(format!(
                "the collection has {volumes} volume(s): too few for one batch of {} \
                 (data.loader.batch_size)",
                config.data.loader.batch_size
            )));
        }
        let length = Length {
            batches_per_epoch,
            accumulate: config.train.accumulate,
            total_steps: config.total_steps(volumes),
        };
        let checkpoints = Checkpoints {
            every_steps: Some(config.train.checkpoint_every),
            every_epochs: Some(1),
        };
        let loader = Loader::new(cache.clone(), plan, config.data.loader.clone(), config.seed)?;
        let objective = PretrainObjective {
            config,
            volumes,
            length,
            has_teacher: net.has_teacher(),
            progress: Progress::default(),
            probe,
            device,
            method: PhantomData,
        };
        let parts = Parts {
            run,
            objective,
            net,
            optimizer,
            loader,
            caches: vec![cache],
            length,
            checkpoints,
        };
        Ok(Pretrain {
            fit: Fit::new(parts, restored)?,
        })
    }

    /// Why `--resume` used the checkpoint before the latest one (the latest was damaged),
    /// for the user to see.
    pub fn resume_warning(&self) -> Option<&str> {
        self.fit.resume_warning()
    }

    /// The run's settings.
    pub fn config(&self) -> &PretrainConfig {
        &self.fit.objective().config
    }

    /// The run directory.
    pub fn run_dir(&self) -> &RunDir {
        self.fit.run_dir()
    }

    /// Optimiser steps taken.
    pub fn steps_done(&self) -> u64 {
        self.fit.state().iteration
    }

    /// Optimiser steps of the whole run.
    pub fn total_steps(&self) -> u64 {
        self.fit.length().total_steps
    }

    /// Volumes in the collection.
    pub fn volumes(&self) -> usize {
        self.fit.objective().volumes
    }

    /// Completed epochs.
    pub fn epochs_done(&self) -> u64 {
        self.fit.state().epoch
    }

    /// Epochs of the whole run (the last one partial when `train.steps` ends it early).
    pub fn epochs(&self) -> u64 {
        self.fit.length().epochs()
    }

    /// Stops [`Pretrain::train`] after the optimiser step during which `flag` becomes
    /// true (e.g. set by a Ctrl-C handler): a checkpoint of that step is written and
    /// `train` returns, for `--resume` to continue.
    pub fn stop_when(&mut self, flag: Arc<AtomicBool>) {
        self.fit.stop_when(flag);
    }

    /// Trains until `until_step` optimiser steps are done (at most the run's total),
    /// checkpointing on schedule; `observe` sees every event. Returns early, after
    /// writing a checkpoint, when the flag of [`Pretrain::stop_when`] is set.
    pub fn train(&mut self, until_step: u64, observe: &mut dyn FnMut(Event)) -> Result<()> {
        self.fit.train(until_step, observe)
    }
}

impl<M: Method> PretrainObjective<M> {
    /// The schedules of a step: learning rate (peaking at
    /// [`PretrainConfig::peak_lr`], which `train.lr_batch_scaling` scales by the batch),
    /// weight decay, teacher momentum.
    fn schedules(&self) -> [CosineSchedule; 3] {
        let t = &self.config.train;
        let total = self.length.total_steps;
        let warmup = (t.warmup_epochs * self.length.steps_per_epoch()).min(total);
        let cosine = |base, final_value, warmup_iters| CosineSchedule {
            base,
            final_value,
            warmup_start: 0.0,
            warmup_iters,
            total_iters: total,
        };
        [
            cosine(self.config.peak_lr(), t.min_lr, warmup),
            cosine(t.weight_decay, t.weight_decay_end, 0),
            cosine(t.teacher_momentum, t.teacher_momentum_end, 0),
        ]
    }
}

impl<M: Method> Objective for PretrainObjective<M> {
    type Net = M::Net;
    type Work = ViewPlan;
    type Aux = <M::Net as Pretext>::Aux;

    fn batch_loss(
        &self,
        net: &M::Net,
        batch: &ViewBatch,
        at: Position,
    ) -> Result<BatchLoss<Self::Aux>> {
        let context = StepContext {
            epoch: at.epoch,
            epochs: self.length.epochs(),
            iteration: at.iteration,
        };
        let out = net
            .loss(batch, &context)
            .map_err(|e| TrainError::context(format!("cases {}", batch.ids.join(", ")), e))?;
        let loss = read_scalar(out.total.clone())?;
        let components = out
            .components
            .into_iter()
            .map(|(name, value)| Ok((name, read_scalar(value.detach())?)))
            .collect::<Result<_>>()?;
        let grads = GradientsParams::from_grads(out.total.backward(), net);
        Ok(BatchLoss {
            loss,
            components,
            monitors: out.monitors,
            grads,
            aux: out.aux,
        })
    }

    fn rates(&self, iteration: u64) -> Rates {
        let [lr, weight_decay, momentum] = self.schedules();
        Rates {
            lr: lr.at(iteration),
            encoder: 1.0,
            weight_decay: weight_decay.at(iteration),
            momentum: self.has_teacher.then(|| momentum.at(iteration)),
        }
    }

    fn frozen(&self, net: &M::Net, epoch: u64) -> Vec<ParamId> {
        if epoch < self.config.train.freeze_last_layer {
            net.last_layer()
        } else {
            Vec::new()
        }
    }

    fn after_step(&mut self, net: M::Net, aux: Vec<Self::Aux>, rates: Rates) -> M::Net {
        // A method without a teacher has no use for the momentum.
        net.after_step(aux, rates.momentum.unwrap_or(1.0))
    }

    /// Keeps the first and latest loss for `result.json`, and warns once an epoch when
    /// the embedding spread fell below [`COLLAPSE_FRACTION`] of its first value.
    fn inspect(&mut self, line: &StepLine) -> Vec<String> {
        self.progress.first_loss.get_or_insert(line.loss);
        self.progress.last_loss = Some(line.loss);
        let Some(&spread) = line.monitors.get("embedding_spread") else {
            return Vec::new();
        };
        let epoch = line.epoch - 1;
        let first = *self.progress.first_spread.get_or_insert(spread);
        if spread >= COLLAPSE_FRACTION * first || self.progress.collapse_warned_epoch == Some(epoch)
        {
            return Vec::new();
        }
        self.progress.collapse_warned_epoch = Some(epoch);
        vec![format!(
            "epoch {}, step {}: the embedding spread fell to {spread:.4} from {first:.4} at \
             the first step: the embeddings of different volumes are becoming equal \
             (collapse); lower the learning rate or check the method's settings",
            line.epoch, line.iteration
        )]
    }

    fn write_weights(net: &M::Net, path: &Path) -> Result<()> {
        write_native(net, path)
    }

    /// Exports the encoder and hands over the loss and monitor references.
    /// Probes the encoder after every `probe.every` steps and after the last, when a
    /// probe task is set.
    fn step_end(
        &mut self,
        net: &M::Net,
        state: &TrainState,
        run: &RunDir,
        observe: &mut dyn FnMut(Event),
    ) -> Result<()> {
        let Some(probe) = &self.probe else {
            return Ok(());
        };
        let iteration = state.iteration;
        if iteration % self.config.probe.every != 0 && iteration != self.length.total_steps {
            return Ok(());
        }
        let stages = probe
            .probe(&net.encoder().valid(), &self.device)
            .map_err(|e| TrainError::context(format!("probe after step {iteration}"), e))?;
        let json = serde_json::to_value(stages_json(&stages))
            .map_err(|e| TrainError::Invalid(format!("probe scores: {e}")))?;
        run.log_metrics(&MetricsLine::Probe {
            iteration,
            stages: json.clone(),
        })?;
        self.progress.last_probe = Some(serde_json::json!({
            "iteration": iteration,
            "stages": json,
        }));
        observe(Event::Probe {
            iteration,
            linear: stages
                .iter()
                .map(|s| (s.stage, s.linear.balanced_accuracy))
                .collect(),
        });
        Ok(())
    }

    fn save(&self, net: &M::Net, run: &RunDir) -> Result<Value> {
        let encoder = run.encoder();
        export_encoder_safetensors(net.encoder(), &self.config.network(), &encoder)
            .map_err(|e| TrainError::file(&encoder, e.to_string()))?;
        serde_json::to_value(&self.progress)
            .map_err(|e| TrainError::Invalid(format!("progress: {e}")))
    }

    fn restore(&mut self, saved: Value) -> Result<()> {
        if !saved.is_null() {
            self.progress = serde_json::from_value(saved)
                .map_err(|e| TrainError::Invalid(format!("checkpoint progress: {e}")))?;
        }
        Ok(())
    }

    fn finish(
        &mut self,
        _net: &M::Net,
        state: &TrainState,
        run: &RunDir,
        _trained: bool,
    ) -> Result<()> {
        run.write_json(
            &run.result(),
            &PretrainResult {
                method: M::INFO.name,
                volumes: self.volumes,
                epochs: state.epoch,
                steps: state.iteration,
                first_loss: self.progress.first_loss,
                last_loss: self.progress.last_loss,
                encoder: ENCODER_FILE,
                probe: self.progress.last_probe.as_ref(),
            },
        )
    }
}

/// The task `probe.task` of `config` made ready for probing, its preprocessed cases
/// cached beside the run in `run_dir` as a fine-tune's are; `None` without one. Its
/// channels must be the encoder's.
fn open_probe(config: &PretrainConfig, run_dir: &Path) -> Result<Option<ProbeTask>> {
    let Some(task_dir) = &config.probe.task else {
        return Ok(None);
    };
    let name = Task::open(task_dir)?.name;
    let cache = RunDir::at(run_dir).task_cache(&name);
    let probe = ProbeTask::open(task_dir, config.probe_config(), Part::Val, &cache)
        .map_err(|e| TrainError::context(format!("probe.task {}", task_dir.display()), e))?;
    if probe.channels().len() != config.encoder.in_channels {
        return Err(TrainError::Invalid(format!(
            "probe.task {} has {} channel(s); the encoder takes {} (encoder.in_channels)",
            task_dir.display(),
            probe.channels().len(),
            config.encoder.in_channels
        )));
    }
    Ok(Some(probe))
}

/// A step whose embedding spread (see `medssl_ssl::monitors::embedding_spread`) is
/// below this fraction of the first step's logs a collapse warning, once per epoch. The
/// threshold is relative: a randomly initialised encoder already maps different crops
/// to similar embeddings, so the absolute spread at the start says little; a spread
/// shrinking tenfold while training is collapse.
const COLLAPSE_FRACTION: f64 = 0.1;

#[cfg(test)]
mod tests {
    use super::*;
    use medssl_io::nifti::{OutputType, write_volume};
    use medssl_ssl::ClipMode;
    use medssl_ssl::Preset;
    use medssl_ssl::methods::SimMimMethod;
    use medssl_synth::{Grid, Kind, case_name, generate};

    /// One SimMIM step with `lr_batch_scaling` and per-parameter clipping at a limit
    /// every gradient exceeds: the logged rate is `lr · batch / 256` (no warm-up, so
    /// the first step is at the peak) and every parameter is counted as clipped.
    #[test]
    fn a_step_uses_the_scaled_rate_and_logs_per_parameter_clipping() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("ct");
        std::fs::create_dir_all(&data).unwrap();
        let grid = Grid::fitted(Kind::AbdomenCt, [40, 40, 40]).unwrap();
        for case in 0..2 {
            let sample = generate(Kind::AbdomenCt, &grid, 3, case);
            let path = data.join(format!("{}.nii.gz", case_name(Kind::AbdomenCt, case)));
            write_volume(&path, &sample.image, OutputType::Int16).unwrap();
        }
        let mut config = PretrainConfig::load::<SimMimMethod>(
            Preset::Tiny,
            None,
            &[
                "train.steps=1".into(),
                "train.warmup_epochs=0".into(),
                "train.lr=0.0128".into(),
                "train.lr_batch_scaling=true".into(),
                "train.clip_mode=\"per_parameter\"".into(),
                "train.grad_clip_norm=1e-12".into(),
            ],
        )
        .unwrap();
        config.train.min_lr = 0.0;
        assert_eq!(config.data.loader.batch_size, 2);
        assert_eq!(config.train.clip_mode, ClipMode::PerParameter);
        let out = tmp.path().join("run");
        let mut run = Pretrain::<SimMimMethod>::start(&data, &out, config, Device::flex()).unwrap();
        run.train(u64::MAX, &mut |_| {}).unwrap();
        let text = std::fs::read_to_string(run.run_dir().metrics()).unwrap();
        let line: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(line["lr"].as_f64(), Some(0.0128 * 2.0 / 256.0), "{line}");
        assert_eq!(line["clipped"], Value::Bool(true), "{line}");
        let clipped = line["clipped_params"].as_u64().unwrap();
        assert!(clipped > 50, "{line}");
    }
}
