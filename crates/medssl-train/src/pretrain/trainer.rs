//! The one pretraining loop every method runs: batches of views from the collection,
//! the method's loss, AdamW with scheduled learning rate (optionally scaled by the batch,
//! `train.lr_batch_scaling`) and weight decay, gradient clipping (global or per
//! parameter, `train.clip_mode`) and accumulation, the EMA teacher update, a frozen last head layer in the
//! first epochs, a metrics line per step, and checkpoints that resume exactly.

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::Device;
use medssl_data::cache::PreprocessCache;
use medssl_data::loader::{Loader, SampleSource};
use medssl_data::manifest::{CollectionSource, Manifest};
use medssl_data::views::{ViewBatch, ViewPlan};
use medssl_model::seeding::build_seeded;
use medssl_model::weights::export_encoder_safetensors;
use medssl_ssl::{Method, Pretext, StepContext};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::config::PretrainConfig;
use super::decay;
use crate::checkpoint::{self, TrainState, read_native, write_native};
use crate::error::{Result, TrainError};
use crate::optimizer::{OptimizerConfig, SegmentationOptimizer, drop_grads};
use crate::run_dir::{ENCODER_FILE, RunDir};
use crate::schedule::CosineSchedule;

/// What the loop reports as it goes (for progress bars and logs).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// An epoch of `steps` optimiser steps (fewer when the run ends within it) begins,
    /// or goes on after `done` of them (a resumed run; 0 otherwise).
    EpochStart { epoch: u64, steps: u64, done: u64 },
    /// One optimiser step was taken.
    Step { iteration: u64, loss: f64 },
    /// An epoch ended.
    EpochEnd {
        epoch: u64,
        mean_loss: f64,
        seconds: f64,
    },
    /// Something the user should look at (a collapse monitor below its threshold, a
    /// damaged preprocessing cache entry).
    Warning(String),
}

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
}

/// A prepared pretraining run of method `M`.
pub struct Pretrain<M: Method> {
    run: RunDir,
    config: PretrainConfig,
    net: M::Net,
    optimizer: SegmentationOptimizer,
    state: TrainState,
    progress: Progress,
    /// Why the latest checkpoint was passed over on resume, if it was.
    fallback: Option<String>,
    loader: Loader<ViewPlan>,
    /// The cache the loader reads through, whose warnings the loop reports.
    cache: Arc<PreprocessCache>,
    volumes: usize,
    steps_per_epoch: u64,
    /// Set (by a signal handler) to stop training after the current optimiser step.
    stop: Option<Arc<AtomicBool>>,
    method: PhantomData<M>,
}

impl<M: Method> Pretrain<M> {
    /// Prepares a new run in `run_dir` (which must not hold one) on the collection
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
        let run = RunDir::create(run_dir)?;
        if checkpoint::exists(&run) || run.info().exists() {
            return Err(TrainError::Invalid(format!(
                "{} already holds a run; continue it with --resume, or choose another --out",
                run_dir.display()
            )));
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
        let mut pretrain = Pretrain::build(run, config, &manifest, &cache_dir, device, false)?;
        // The initial state is a checkpoint too: the run directory always holds an
        // encoder and a state to resume from.
        pretrain.save()?;
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
        Pretrain::build(run, config, &manifest, &cache_dir, device, true)
    }

    fn build(
        run: RunDir,
        config: PretrainConfig,
        manifest: &Manifest,
        cache_dir: &Path,
        device: Device,
        resume: bool,
    ) -> Result<Pretrain<M>> {
        let settings = config.pretext::<M>()?;
        let network = config.network();
        let train_device = device.autodiff();
        let Ok(net) = build_seeded(&train_device, config.seed, || {
            Ok::<_, std::convert::Infallible>(M::build(&settings, &network, &train_device))
        });
        let t = &config.train;
        let optimizer = SegmentationOptimizer::new(OptimizerConfig {
            weight_decay: 0.0,
            beta1: t.betas[0],
            beta2: t.betas[1],
            epsilon: t.epsilon,
            grad_clip_norm: t.grad_clip_norm,
            clip_mode: t.clip_mode,
            freeze_encoder: false,
            layer_decay: 1.0,
        });
        let (mut net, mut optimizer, mut state, mut progress) =
            (net, optimizer, TrainState::default(), Progress::default());
        let restored = if resume {
            checkpoint::load(&run, net.clone(), read_native, optimizer.clone())?
        } else {
            None
        };
        let mut fallback = None;
        if let Some(restored) = restored {
            (state, net, optimizer) = (restored.state, restored.model, restored.optimizer);
            fallback = restored.fallback;
            progress = serde_json::from_value(state.extra.clone())
                .map_err(|e| TrainError::file(run.checkpoint_state(), format!("progress: {e}")))?;
        }
        run.truncate_metrics(state.metrics_lines)?;

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
        let batches = config.data.loader.batches(volumes);
        let steps_per_epoch = (batches / config.train.accumulate) as u64;
        if steps_per_epoch == 0 {
            return Err(TrainError::Invalid(format!(
                "the collection has {volumes} volume(s): too few for one step of {} batch(es) \
                 of {} (data.loader.batch_size, train.accumulate)",
                config.train.accumulate, config.data.loader.batch_size
            )));
        }
        let loader = Loader::new(cache.clone(), plan, config.data.loader.clone(), config.seed)?;
        Ok(Pretrain {
            run,
            config,
            net,
            optimizer,
            state,
            progress,
            fallback,
            loader,
            cache,
            volumes,
            steps_per_epoch,
            stop: None,
            method: PhantomData,
        })
    }

    /// Why `--resume` used the checkpoint before the latest one (the latest was damaged),
    /// for the user to see.
    pub fn resume_warning(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// The run's settings.
    pub fn config(&self) -> &PretrainConfig {
        &self.config
    }

    /// The run directory.
    pub fn run_dir(&self) -> &RunDir {
        &self.run
    }

    /// Optimiser steps taken.
    pub fn steps_done(&self) -> u64 {
        self.state.iteration
    }

    /// Optimiser steps of the whole run.
    pub fn total_steps(&self) -> u64 {
        self.config.total_steps(self.volumes)
    }

    /// Volumes in the collection.
    pub fn volumes(&self) -> usize {
        self.volumes
    }

    /// Completed epochs.
    pub fn epochs_done(&self) -> u64 {
        self.state.epoch
    }

    /// Epochs of the whole run (the last one partial when `train.steps` ends it early).
    pub fn epochs(&self) -> u64 {
        self.total_steps().div_ceil(self.steps_per_epoch)
    }

    /// Stops [`Pretrain::train`] after the optimiser step during which `flag` becomes
    /// true (e.g. set by a Ctrl-C handler): a checkpoint of that step is written and
    /// `train` returns, for `--resume` to continue.
    pub fn stop_when(&mut self, flag: Arc<AtomicBool>) {
        self.stop = Some(flag);
    }

    /// The schedules of a step: learning rate (peaking at
    /// [`PretrainConfig::peak_lr`], which `train.lr_batch_scaling` scales by the batch),
    /// weight decay, teacher momentum.
    fn schedules(&self) -> [CosineSchedule; 3] {
        let t = &self.config.train;
        let total = self.total_steps();
        let warmup = (t.warmup_epochs * self.steps_per_epoch).min(total);
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

    /// Trains until `until_step` optimiser steps are done (at most the run's total),
    /// checkpointing on schedule; `observe` sees every event. Returns early, after
    /// writing a checkpoint, when the flag of [`Pretrain::stop_when`] is set.
    pub fn train(&mut self, until_step: u64, observe: &mut dyn FnMut(Event)) -> Result<()> {
        let total = self.total_steps();
        let until = until_step.min(total);
        let accumulate = self.config.train.accumulate;
        while self.state.iteration < until {
            let epoch = self.state.epoch;
            let done_in_epoch = self.state.iteration - epoch * self.steps_per_epoch;
            let steps_left =
                (self.steps_per_epoch - done_in_epoch).min(until - self.state.iteration);
            observe(Event::EpochStart {
                epoch: epoch + 1,
                steps: done_in_epoch + steps_left,
                done: done_in_epoch,
            });
            let started = Instant::now();
            let (mut loss_sum, mut steps) = (0.0, 0u64);
            let mut pending = Pending::new(accumulate);
            let start_batch = (done_in_epoch as usize) * accumulate;
            let (mut epoch_done, mut interrupted) = (false, false);
            for batch in self.loader.epoch(epoch, start_batch) {
                self.report_cache_warnings(observe)?;
                let batch = batch?;
                let batch_loss = self.batch_loss(&batch, epoch)?;
                pending.add(batch_loss, &self.net);
                if !pending.full() {
                    continue;
                }
                let full = std::mem::replace(&mut pending, Pending::new(accumulate));
                let loss = self.step(full, epoch, observe)?;
                loss_sum += loss;
                steps += 1;
                epoch_done = self.state.iteration == (epoch + 1) * self.steps_per_epoch;
                if epoch_done {
                    self.state.epoch += 1;
                }
                interrupted = self
                    .stop
                    .as_ref()
                    .is_some_and(|flag| flag.load(Ordering::SeqCst));
                let stop = epoch_done || self.state.iteration >= until;
                if stop
                    || interrupted
                    || self.state.iteration % self.config.train.checkpoint_every == 0
                {
                    self.save()?;
                }
                observe(Event::Step {
                    iteration: self.state.iteration,
                    loss,
                });
                if stop || interrupted {
                    break;
                }
            }
            if epoch_done {
                observe(Event::EpochEnd {
                    epoch: self.state.epoch,
                    mean_loss: loss_sum / steps as f64,
                    seconds: started.elapsed().as_secs_f64(),
                });
            } else if self.state.iteration < until && !interrupted {
                return Err(TrainError::Invalid(format!(
                    "epoch {} ended after {steps} of its {steps_left} steps: the loader \
                     delivered fewer batches than the collection holds",
                    epoch + 1
                )));
            }
            if interrupted {
                break;
            }
        }
        if self.state.iteration >= total {
            self.write_result()?;
        }
        Ok(())
    }

    /// Logs and reports the warnings of the preprocessing cache (damaged entries it
    /// recomputed on the loader's threads) as the loop's own warnings.
    fn report_cache_warnings(&self, observe: &mut dyn FnMut(Event)) -> Result<()> {
        for message in self.cache.take_warnings() {
            self.run
                .log_metrics(&serde_json::json!({ "event": "warning", "message": message }))?;
            observe(Event::Warning(message));
        }
        Ok(())
    }

    /// The loss of one batch and its gradients.
    fn batch_loss(&self, batch: &ViewBatch, epoch: u64) -> Result<BatchLoss<M::Net>> {
        let context = StepContext {
            epoch,
            epochs: self.total_steps().div_ceil(self.steps_per_epoch),
            iteration: self.state.iteration,
        };
        let out = self
            .net
            .loss(batch, &context)
            .map_err(|e| TrainError::context(format!("cases {}", batch.ids.join(", ")), e))?;
        let scalar = |t: burn::tensor::Tensor<1>| f64::from(t.into_scalar::<f32>());
        let loss = scalar(out.total.clone());
        if !loss.is_finite() {
            return Err(TrainError::NonFiniteLoss {
                loss,
                epoch: epoch + 1,
                iteration: self.state.iteration,
            });
        }
        let components = out
            .components
            .into_iter()
            .map(|(name, value)| (name, scalar(value.detach())))
            .collect();
        let grads = GradientsParams::from_grads(out.total.backward(), &self.net);
        Ok(BatchLoss {
            loss,
            components,
            monitors: out.monitors,
            grads,
            aux: out.aux,
        })
    }

    /// One optimiser step from the accumulated batches; returns their mean loss.
    fn step(
        &mut self,
        pending: Pending<M::Net>,
        epoch: u64,
        observe: &mut dyn FnMut(Event),
    ) -> Result<f64> {
        let [lr_schedule, wd_schedule, momentum_schedule] = self.schedules();
        let iteration = self.state.iteration;
        let (lr, weight_decay, momentum) = (
            lr_schedule.at(iteration),
            wd_schedule.at(iteration),
            momentum_schedule.at(iteration),
        );
        let Pending {
            grads: mut accumulated,
            losses,
            auxes,
            started,
            ..
        } = pending;
        let mut grads = accumulated.grads();
        if epoch < self.config.train.freeze_last_layer {
            drop_grads(&self.net, &mut grads, self.net.last_layer());
        }
        let net = decay::apply(self.net.clone(), &grads, lr, weight_decay);
        let (net, grad_norm) = self.optimizer.step(lr, net, grads);
        if !grad_norm.is_finite() {
            return Err(TrainError::NonFiniteGradient {
                norm: grad_norm,
                epoch: epoch + 1,
                iteration,
            });
        }
        self.net = net.after_step(auxes, momentum);
        self.state.iteration += 1;

        let n = losses.len() as f64;
        let loss = losses.iter().map(|l| l.loss).sum::<f64>() / n;
        let mut components = Map::new();
        for (name, _) in &losses[0].components {
            let mean = losses
                .iter()
                .filter_map(|l| l.components.iter().find(|(k, _)| k == name))
                .map(|(_, v)| v)
                .sum::<f64>()
                / n;
            components.insert((*name).to_string(), Value::from(mean));
        }
        let mut monitors = Map::new();
        for (name, value) in losses.iter().flat_map(|l| l.monitors.iter()) {
            monitors.insert((*name).to_string(), Value::from(*value));
        }
        if let Some(spread) = monitors.get("embedding_spread").and_then(Value::as_f64) {
            let first = *self.progress.first_spread.get_or_insert(spread);
            let warned = self.progress.collapse_warned_epoch == Some(epoch);
            if spread < COLLAPSE_FRACTION * first && !warned {
                let message = format!(
                    "epoch {}, step {}: the embedding spread fell to {spread:.4} from {first:.4} \
                     at the first step: the embeddings of different volumes are becoming \
                     equal (collapse); lower the learning rate or check the method's settings",
                    epoch + 1,
                    self.state.iteration
                );
                self.run
                    .log_metrics(&serde_json::json!({ "event": "warning", "message": message }))?;
                self.progress.collapse_warned_epoch = Some(epoch);
                observe(Event::Warning(message));
            }
        }
        // `clipped`: whether clipping scaled any gradient down in this step;
        // `clipped_params`: how many parameters' gradients it scaled (global clipping:
        // all of them or none).
        let mut line = serde_json::json!({
            "event": "step",
            "epoch": epoch + 1,
            "iteration": self.state.iteration,
            "loss": loss,
            "components": components,
            "lr": lr,
            "weight_decay": weight_decay,
            "grad_norm": grad_norm,
            "clipped": self.optimizer.clips(grad_norm),
            "clipped_params": self.optimizer.clipped_params(),
            "monitors": monitors,
            "seconds": started.elapsed().as_secs_f64(),
        });
        if self.net.has_teacher() {
            line["momentum"] = Value::from(momentum);
        }
        self.run.log_metrics(&line)?;
        self.progress.first_loss.get_or_insert(loss);
        self.progress.last_loss = Some(loss);
        Ok(loss)
    }

    /// Writes a checkpoint and the encoder.
    fn save(&mut self) -> Result<()> {
        self.state.metrics_lines = self.run.metrics_lines()?;
        let encoder = self.run.encoder();
        export_encoder_safetensors(self.net.encoder(), &self.config.network(), &encoder)
            .map_err(|e| TrainError::file(&encoder, e.to_string()))?;
        self.state.extra = serde_json::to_value(&self.progress)
            .map_err(|e| TrainError::Invalid(format!("progress: {e}")))?;
        checkpoint::save(
            &self.run,
            &mut self.state,
            &self.net,
            write_native,
            &self.optimizer,
        )
    }

    fn write_result(&self) -> Result<()> {
        self.run.write_json(
            &self.run.result(),
            &PretrainResult {
                method: M::INFO.name,
                volumes: self.volumes,
                epochs: self.state.epoch,
                steps: self.state.iteration,
                first_loss: self.progress.first_loss,
                last_loss: self.progress.last_loss,
                encoder: ENCODER_FILE,
            },
        )
    }
}

/// A step whose embedding spread (see `medssl_ssl::monitors::embedding_spread`) is
/// below this fraction of the first step's logs a collapse warning, once per epoch. The
/// threshold is relative: a randomly initialised encoder already maps different crops
/// to similar embeddings, so the absolute spread at the start says little; a spread
/// shrinking tenfold while training is collapse.
const COLLAPSE_FRACTION: f64 = 0.1;

/// What one batch contributed to a step.
struct BatchLoss<N: Pretext> {
    loss: f64,
    components: Vec<(&'static str, f64)>,
    monitors: Vec<(&'static str, f64)>,
    grads: GradientsParams,
    aux: N::Aux,
}

/// The batches of the step being accumulated.
struct Pending<N: Pretext> {
    grads: GradientsAccumulator<N>,
    losses: Vec<LossRecord>,
    auxes: Vec<N::Aux>,
    size: usize,
    /// When the step began (after the previous one): loading, forward and backward
    /// passes and the update are all in its time.
    started: Instant,
}

struct LossRecord {
    loss: f64,
    components: Vec<(&'static str, f64)>,
    monitors: Vec<(&'static str, f64)>,
}

impl<N: Pretext> Pending<N> {
    fn new(size: usize) -> Pending<N> {
        Pending {
            grads: GradientsAccumulator::new(),
            losses: Vec::with_capacity(size),
            auxes: Vec::with_capacity(size),
            size,
            started: Instant::now(),
        }
    }

    fn add(&mut self, batch: BatchLoss<N>, net: &N) {
        self.grads.accumulate(net, batch.grads);
        self.losses.push(LossRecord {
            loss: batch.loss,
            components: batch.components,
            monitors: batch.monitors,
        });
        self.auxes.push(batch.aux);
    }

    fn full(&self) -> bool {
        self.losses.len() == self.size
    }
}

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
