//! Fine-tuning: the [`crate::fit`] loop over augmented crops of the training cases with
//! the Dice-CE loss and AdamW at the warm-up-cosine rate (re-stretched when a run is
//! extended), validation on whole volumes with sliding-window inference, the best
//! weights, and what stays of the checkpoints at the end.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use medssl_data::Pipeline;
use medssl_data::cache::PreprocessCache;
use medssl_data::dataset::{CheckReport, Task, TaskSource};
use medssl_data::loader::{Batch, Loader, SampleSource};
use medssl_data::splits::{Budget, Split, SplitScheme};
use medssl_eval::validate::validate;
use medssl_model::SwinUnetr;
use medssl_model::arrays::{read_scalar, to_tensor};
use medssl_model::seeding::build_seeded;
use medssl_model::weights::export_monai_safetensors;
use serde::{Deserialize, Serialize};

use super::config::{Extension, FinetuneConfig, KeepCheckpoints, Strategy, TrainSettings};
use super::init_weights::{InitReport, check_import, load_weights};
use super::pipelines::resolve_pipelines;
use super::run_info::RunInfo;
use crate::checkpoint::{self, TrainState};
use crate::convergence::{Convergence, ValidationPoint};
use crate::error::{Result, TrainError};
pub use crate::fit::Event;
use crate::fit::metrics::MetricsLine;
use crate::fit::{BatchLoss, Checkpoints, Fit, Length, Objective, Parts, Position, Rates};
use crate::launch::{Holds, already_holds_a_run};
use crate::optimizer::SegmentationOptimizer;
use crate::run_dir::RunDir;
use crate::schedule::WarmupCosine;

/// Where the network's weights start.
#[derive(Debug, Clone, PartialEq)]
pub enum Init {
    /// Random initialisation from the run seed.
    Scratch,
    /// A checkpoint file (any import layout): an SSL encoder or a whole SwinUNETR.
    /// Leftover tensors that are not known pretext heads are refused unless
    /// `allow_unused`.
    Weights { path: PathBuf, allow_unused: bool },
}

/// `result.json`.
#[derive(Debug, Serialize)]
struct RunResult<'a> {
    task: &'a str,
    init: String,
    train_cases: usize,
    validation_cases: usize,
    epochs: u64,
    iterations: u64,
    #[serde(flatten)]
    convergence: Option<Convergence>,
    curve: &'a [ValidationPoint],
}

/// A prepared fine-tuning run: data, network and optimiser ready, state restored when
/// resuming.
pub struct Finetune {
    fit: Fit<FinetuneObjective>,
}

/// What fine-tuning adds to the loop: the segmentation loss, the learning-rate
/// schedule, validation with the best weights, `result.json` and the checkpoints kept.
struct FinetuneObjective {
    config: FinetuneConfig,
    task: Arc<Task>,
    split: Split,
    init: Init,
    device: Device,
    validation: Arc<dyn SampleSource>,
    steps_per_epoch: u64,
    init_report: Option<InitReport>,
    /// Bytes of checkpoint removed when the run finished.
    removed_bytes: Option<u64>,
}

/// A new run that passed [`Finetune::check`]: the task read and checked in full, the
/// split drawn and the settings resolved, nothing written yet.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The task directory, absolute.
    pub task_dir: PathBuf,
    pub task: Task,
    /// What the task check found besides problems (counts, spacing, warnings).
    pub report: CheckReport,
    pub split: Split,
    /// The settings with the default transform lists filled in.
    pub config: FinetuneConfig,
    pub init: Init,
}

/// The number of classes of `task`, background included; an error when it declares
/// no class besides background, which leaves nothing to segment.
fn segmentation_classes(task: &Task) -> Result<usize> {
    let classes = task.labels.len();
    if classes < 2 {
        return Err(TrainError::Invalid(format!(
            "task {} declares {classes} label(s); segmentation needs background and at least one class",
            task.name
        )));
    }
    Ok(classes)
}

/// How a run ended: `result.json` was written and the resumable checkpoint removed
/// (`train.keep_checkpoints`).
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    /// Epochs the run trained.
    pub epochs: u64,
    /// What the run kept of its checkpoints.
    pub kept: KeepCheckpoints,
}

/// A run extended by [`Finetune::extend`], and what its learning rate does.
#[derive(Debug, Clone, PartialEq)]
pub struct Extended {
    /// `train.epochs` before and after.
    pub from_epochs: u64,
    pub to_epochs: u64,
    /// The learning rate at the resume point.
    pub lr: f64,
    /// `train.min_lr`, reached at the new last epoch.
    pub min_lr: f64,
    /// Whether the run is still warming up (the warm-up then goes on as configured).
    pub in_warmup: bool,
}

/// `result.json` as far as [`Finetune::finished`] reads it.
#[derive(Debug, Deserialize)]
struct Ended {
    epochs: u64,
}

impl Finetune {
    /// Prepares a new run in `run_dir` (which must not hold one already), checking the
    /// settings, the task, the label budget and the initial weights before anything is
    /// written or trained.
    pub fn start(
        task_dir: &Path,
        run_dir: &Path,
        config: FinetuneConfig,
        init: Init,
        budget: Option<Budget>,
        device: Device,
    ) -> Result<Finetune> {
        let checked = Finetune::check(task_dir, config, init, budget)?;
        Finetune::start_checked(checked, run_dir, device)
    }

    /// Everything [`Finetune::start`] checks before it writes: the settings, the
    /// initial weights against the task's channels, the label budget, the transform
    /// lists (the defaults filled in) and, last because it reads every file, every case
    /// of the task ([`Task::open_checked`]: all problems listed at once). `medssl
    /// finetune --check` stops here.
    pub fn check(
        task_dir: &Path,
        config: FinetuneConfig,
        init: Init,
        budget: Option<Budget>,
    ) -> Result<Checked> {
        config.validate()?;
        let unchecked = Task::open_unchecked(task_dir)?;
        let task = &unchecked.task;
        segmentation_classes(task)?;
        if let Init::Weights { path, allow_unused } = &init {
            let network = config.network(task.channels.len(), task.labels.len());
            check_import(path, &network, &task.channels, *allow_unused)?;
        }
        let method = SplitScheme::Holdout {
            validation: config.split.validation,
            test: config.split.test,
        };
        let mut split = Split::new(&task.training_ids(), config.seed, method)?;
        if let Some(budget) = budget {
            split = split.few_shot(budget)?;
        }
        let mut config = config;
        resolve_pipelines(&mut config, task)?;
        let (task, report) = unchecked.check()?;
        let task_dir = std::fs::canonicalize(task_dir).map_err(|e| TrainError::os(task_dir, e))?;
        Ok(Checked {
            task_dir,
            task,
            report,
            split,
            config,
            init,
        })
    }

    /// Starts the run that [`Finetune::check`] accepted in `run_dir`.
    pub fn start_checked(checked: Checked, run_dir: &Path, device: Device) -> Result<Finetune> {
        let Checked {
            task_dir,
            task,
            split,
            config,
            init,
            ..
        } = checked;
        // Nothing is written before the checks pass.
        let run = RunDir::create(run_dir)?;
        if Holds::of(&run) != Holds::Nothing {
            return Err(already_holds_a_run(run_dir));
        }
        split.save(&run.split())?;
        run.write(&run.config(), config.to_toml()?.as_bytes())?;
        run.write_json(
            &run.info(),
            &RunInfo {
                task: task_dir,
                init: match &init {
                    Init::Scratch => None,
                    Init::Weights { path, .. } => Some(path.clone()),
                },
                init_allow_unused: matches!(
                    init,
                    Init::Weights {
                        allow_unused: true,
                        ..
                    }
                ),
                channels: task.channels.len(),
                classes: task.labels.len(),
            },
        )?;
        run.truncate_metrics(0)?;
        Finetune::build(run, config, task, split, init, device, false)
    }

    /// Re-opens the run in `run_dir` with its stored configuration, split and task
    /// (`task_dir` overrides the stored task path, e.g. after moving the data),
    /// restoring the last checkpoint (or starting over when none was written yet). A
    /// run that finished and removed its checkpoint (see [`Finetune::finished`]) is
    /// refused: nothing of it could be resumed.
    pub fn resume(run_dir: &Path, task_dir: Option<&Path>, device: Device) -> Result<Finetune> {
        if let Some(finished) = Finetune::finished(run_dir)? {
            return Err(TrainError::Invalid(format!(
                "{} finished its {} epochs and removed its resumable checkpoint \
                 (train.keep_checkpoints = \"{}\"), so it cannot be continued; to train \
                 longer, start a new run (with --set train.keep_checkpoints=\"all\", a \
                 finished run can be extended)",
                run_dir.display(),
                finished.epochs,
                finished.kept.name()
            )));
        }
        let run = RunDir::open_for_writes(run_dir)?;
        let config = FinetuneConfig::read(&run)?;
        let split = Split::load(&run.split())?;
        let info: RunInfo = run.read_json(&run.info())?;
        let init = match info.init {
            Some(path) => Init::Weights {
                path,
                allow_unused: info.init_allow_unused,
            },
            None => Init::Scratch,
        };
        let task = Task::open(task_dir.unwrap_or(&info.task))?;
        Finetune::build(run, config, task, split, init, device, true)
    }

    fn build(
        run: RunDir,
        config: FinetuneConfig,
        task: Task,
        split: Split,
        init: Init,
        device: Device,
        resume: bool,
    ) -> Result<Finetune> {
        let task = Arc::new(task);
        let classes = segmentation_classes(&task)?;
        let train_device = device.clone().autodiff();
        let network = config.network(task.channels.len(), classes);
        let mut model = build_seeded(&train_device, config.seed, |device| {
            SwinUnetr::new(&network, device)
        })
        .map_err(|e| TrainError::context("model", e))?;
        let optimizer = SegmentationOptimizer::new(config.train.optimizer);
        // Loads into a copy so that, with no checkpoint yet, the initial weights stay.
        let restored = if resume {
            checkpoint::load(
                &run,
                model.clone(),
                checkpoint::read_monai,
                optimizer.clone(),
            )?
        } else {
            None
        };
        let init_report = match (&init, &restored) {
            (Init::Scratch, _) => None,
            (Init::Weights { .. }, Some(_)) => Some(run.read_json(&run.init_report())?),
            (Init::Weights { path, allow_unused }, None) => {
                let report =
                    load_weights(&mut model, path, &network, &task.channels, *allow_unused)?;
                run.write_json(&run.init_report(), &report)?;
                Some(report)
            }
        };

        // One preprocessing for training and validation, sharing its steps and cache.
        let preprocess = config.data.preprocess.build();
        let fingerprint = config.data.preprocess.cache_key();
        let cache_dir = run.task_cache(&task.name);
        let cached = |ids: &[String]| -> Result<Arc<PreprocessCache>> {
            let source: Arc<dyn SampleSource> = Arc::new(TaskSource::new(task.clone(), ids)?);
            Ok(Arc::new(PreprocessCache::new(
                &cache_dir,
                source,
                preprocess.clone(),
                fingerprint.clone(),
            )?))
        };
        let train_source = cached(&split.train)?;
        let validation = cached(&split.validation)?;
        let augment = config.data.augment.build();
        let samples = split.train.len() * config.data.augment.samples_per_case();
        let batches_per_epoch = config.data.loader.batches(samples);
        if batches_per_epoch == 0 {
            return Err(TrainError::Invalid(format!(
                "an epoch would have no batch: the training split has {} case(s)",
                split.train.len()
            )));
        }
        let length = Length::of_epochs(
            batches_per_epoch,
            config.train.accumulate,
            config.train.epochs,
        );
        let checkpoints = Checkpoints {
            every_steps: None,
            every_epochs: Some(config.train.checkpoint_every),
        };
        let loader = Loader::new(
            train_source.clone(),
            augment,
            config.data.loader.clone(),
            config.seed,
        )?;
        let objective = FinetuneObjective {
            config,
            task,
            split,
            init,
            device,
            validation: validation.clone(),
            steps_per_epoch: length.steps_per_epoch(),
            init_report,
            removed_bytes: None,
        };
        let parts = Parts {
            run,
            objective,
            net: model,
            optimizer,
            loader,
            caches: vec![train_source, validation],
            length,
            checkpoints,
        };
        Ok(Finetune {
            fit: Fit::new(parts, restored)?,
        })
    }

    /// The run in `run_dir` if its training has finished and its resumable checkpoint
    /// was removed (`train.keep_checkpoints`); `None` while it has a checkpoint or no
    /// result yet. Checkpoint files that an interruption of that removal left behind
    /// are removed now, so the study and `--resume` can treat the run as finished.
    pub fn finished(run_dir: &Path) -> Result<Option<Finished>> {
        // Looked at before opening: a run that has not ended is left as it is.
        let view = RunDir::at(run_dir);
        if !view.result().is_file() || checkpoint::exists(&view) {
            return Ok(None);
        }
        let run = RunDir::open_for_writes(run_dir)?;
        checkpoint::remove(&run)?;
        let ended: Ended = run.read_json(&run.result())?;
        let kept = FinetuneConfig::read(&run)?.train.keep_checkpoints;
        Ok(Some(Finished {
            epochs: ended.epochs,
            kept,
        }))
    }

    /// Stops [`Finetune::train`] after the optimiser step during which `flag` becomes
    /// true (e.g. set by a Ctrl-C handler): a checkpoint of that exact point (mid-epoch
    /// included) is written and `train` returns, for `--resume` to continue.
    pub fn stop_when(&mut self, flag: Arc<AtomicBool>) {
        self.fit.stop_when(flag);
    }

    /// Raises `train.epochs` to `epochs` (more than the run's) from where the run
    /// stands, and stores that in `config.toml`. The learning rate does not jump: from
    /// its present value it follows a cosine down to `train.min_lr` at the new last
    /// epoch (a run still warming up finishes its warm-up first). A run that had
    /// reached the end of its schedule therefore trains on at `train.min_lr`.
    pub fn extend(&mut self, epochs: u64) -> Result<Extended> {
        let from = self.config().train.epochs;
        if epochs <= from {
            return Err(TrainError::Invalid(format!(
                "train.epochs = {epochs}: the run has {from} epochs; it can only be extended"
            )));
        }
        let at = self.fit.state().iteration;
        let steps_per_epoch = self.fit.length().steps_per_epoch();
        let extended = Extended {
            from_epochs: from,
            to_epochs: epochs,
            lr: learning_rate(&self.config().train, steps_per_epoch, at),
            min_lr: self.config().train.min_lr,
            in_warmup: at < self.config().train.warmup_epochs * steps_per_epoch,
        };
        let mut config = self.config().clone();
        config.train.extensions.push(Extension {
            from_epochs: from,
            at_iteration: at,
        });
        config.train.epochs = epochs;
        config.validate()?;
        let run = self.fit.run_dir();
        run.write(&run.config(), config.to_toml()?.as_bytes())?;
        self.fit.objective_mut().config = config;
        self.fit.set_total_steps(epochs * steps_per_epoch);
        Ok(extended)
    }

    /// Why `--resume` used the checkpoint before the latest one (the latest was damaged),
    /// for the user to see.
    pub fn resume_warning(&self) -> Option<&str> {
        self.fit.resume_warning()
    }

    /// The run's settings.
    pub fn config(&self) -> &FinetuneConfig {
        &self.fit.objective().config
    }

    /// What loading the initial weights did (`None` from scratch).
    pub fn init_report(&self) -> Option<&InitReport> {
        self.fit.objective().init_report.as_ref()
    }

    /// The run directory.
    pub fn run_dir(&self) -> &RunDir {
        self.fit.run_dir()
    }

    /// Completed epochs.
    pub fn epochs_done(&self) -> u64 {
        self.fit.state().epoch
    }

    /// Batches already trained of the epoch after [`Finetune::epochs_done`] (a run
    /// stopped mid-epoch; 0 at an epoch's start).
    pub fn batches_done(&self) -> usize {
        self.fit.batches_done()
    }

    /// Batches in an epoch.
    pub fn batches_per_epoch(&self) -> usize {
        self.fit.length().batches_per_epoch
    }

    /// Optimiser steps in an epoch.
    pub fn steps_per_epoch(&self) -> u64 {
        self.fit.length().steps_per_epoch()
    }

    /// Optimiser steps taken.
    pub fn steps_done(&self) -> u64 {
        self.fit.state().iteration
    }

    /// Bytes of resumable checkpoint (weights and optimiser state) that the end of the
    /// run removed (`train.keep_checkpoints`); `None` before the end, or when kept.
    pub fn removed_checkpoint_bytes(&self) -> Option<u64> {
        self.fit.objective().removed_bytes
    }

    /// The run's cases: training, validation and test ids.
    pub fn split(&self) -> &Split {
        &self.fit.objective().split
    }

    /// The network being trained.
    pub fn model(&self) -> &SwinUnetr {
        self.fit.net()
    }

    /// Trains until `until_epoch` epochs are complete (at most the configured number),
    /// validating and checkpointing on schedule; `observe` sees every event. Returns
    /// early, after writing a checkpoint, when the flag of [`Finetune::stop_when`] is
    /// set. At the end of the last epoch it writes `result.json` and keeps what
    /// `train.keep_checkpoints` says.
    pub fn train(&mut self, until_epoch: u64, observe: &mut dyn FnMut(Event)) -> Result<()> {
        let until = until_epoch.saturating_mul(self.fit.length().steps_per_epoch());
        self.fit.train(until, observe)
    }
}

impl FinetuneObjective {
    fn validate_and_keep_best(
        &mut self,
        network: &SwinUnetr,
        state: &mut TrainState,
        run: &RunDir,
        observe: &mut dyn FnMut(Event),
    ) -> Result<()> {
        let network = network.valid();
        let outcome = validate(
            &network,
            self.validation.as_ref(),
            &self.config.sliding_window(),
            &self.device.clone().inner(),
            self.task.labels.len(),
        )?;
        let point = ValidationPoint {
            epoch: state.epoch,
            dice: outcome.mean_dice,
        };
        state.curve.push(point);
        let improved =
            point.dice.is_finite() && state.best.is_none_or(|best| point.dice > best.dice);
        if improved {
            let best = run.best_weights();
            export_monai_safetensors(&network, &best)
                .map_err(|e| TrainError::file(&best, e.to_string()))?;
            state.best = Some(point);
        }
        run.log_metrics(&MetricsLine::Validation {
            epoch: state.epoch,
            dice: outcome.mean_dice,
            per_case: outcome.per_case,
        })?;
        observe(Event::Validation {
            epoch: state.epoch,
            dice: point.dice,
            best: state.best.map_or(f64::NAN, |b| b.dice),
            best_epoch: state.best.map_or(0, |b| b.epoch),
        });
        Ok(())
    }

    fn write_result(&self, state: &TrainState, run: &RunDir) -> Result<()> {
        run.write_json(
            &run.result(),
            &RunResult {
                task: &self.task.name,
                init: match &self.init {
                    Init::Scratch => "scratch".into(),
                    Init::Weights { path, .. } => path.display().to_string(),
                },
                train_cases: self.split.train.len(),
                validation_cases: self.split.validation.len(),
                epochs: state.epoch,
                iterations: state.iteration,
                convergence: Convergence::of(&state.curve),
                curve: &state.curve,
            },
        )
    }
}

impl Objective for FinetuneObjective {
    type Net = SwinUnetr;
    type Work = Pipeline;
    type Aux = ();

    fn batch_loss(&self, model: &SwinUnetr, batch: &Batch, _at: Position) -> Result<BatchLoss<()>> {
        let device = model
            .devices()
            .into_iter()
            .next()
            .unwrap_or_else(|| self.device.clone().autodiff());
        let label = batch.label.as_ref().ok_or_else(|| {
            TrainError::Invalid(format!("case {} has no label map", batch.ids.join(", ")))
        })?;
        let image = to_tensor(batch.image.clone(), &device);
        let classes: Vec<i64> = label.iter().map(|&v| v as i64).collect();
        let labels =
            Tensor::<5, Int>::from_data(TensorData::new(classes, label.shape().to_vec()), &device);
        let logits = model
            .forward(image)
            .map_err(|e| TrainError::context(format!("cases {}", batch.ids.join(", ")), e))?;
        let loss = self.config.train.loss.forward(logits, labels);
        let value = read_scalar(loss.clone())?;
        let grads = GradientsParams::from_grads(loss.backward(), model);
        Ok(BatchLoss {
            loss: value,
            components: Vec::new(),
            monitors: Vec::new(),
            grads,
            aux: (),
        })
    }

    /// The warm-up cosine of [`learning_rate`] at the configured, constant weight decay;
    /// the encoder's factor of [`encoder_factor`].
    fn rates(&self, iteration: u64) -> Rates {
        Rates {
            lr: learning_rate(&self.config.train, self.steps_per_epoch, iteration),
            encoder: encoder_factor(&self.config.train, self.steps_per_epoch, iteration),
            weight_decay: self.config.train.optimizer.weight_decay,
            momentum: None,
        }
    }

    /// Validates every `validation.every` epochs and after the last; a validation
    /// asks for a checkpoint, so the best weights and the state agree.
    fn epoch_end(
        &mut self,
        net: &SwinUnetr,
        state: &mut TrainState,
        run: &RunDir,
        observe: &mut dyn FnMut(Event),
    ) -> Result<bool> {
        let last = state.epoch == self.config.train.epochs;
        let validate = state.epoch % self.config.validation.every == 0 || last;
        if validate {
            self.validate_and_keep_best(net, state, run, observe)?;
        }
        Ok(validate)
    }

    fn write_weights(net: &SwinUnetr, path: &Path) -> Result<()> {
        checkpoint::write_monai(net, path)
    }

    /// Writes `result.json` (a run resumed after its end, killed while finishing, only
    /// completes what was left undone: its result, maybe with evaluations added,
    /// stays) and applies `train.keep_checkpoints`: `last.safetensors` (unless only
    /// the best weights are kept), then the resumable checkpoint goes (unless all is
    /// kept).
    fn finish(
        &mut self,
        net: &SwinUnetr,
        state: &TrainState,
        run: &RunDir,
        trained: bool,
    ) -> Result<()> {
        if trained || !run.result().exists() {
            self.write_result(state, run)?;
        }
        let keep = self.config.train.keep_checkpoints;
        if keep != KeepCheckpoints::Best {
            checkpoint::write_monai(net, &run.last_weights())?;
        }
        if keep != KeepCheckpoints::All {
            self.removed_bytes = Some(checkpoint::remove(run)?);
        }
        Ok(())
    }
}

/// The learning rate of optimiser step `iteration` with `steps_per_epoch` steps per
/// epoch: linear warm-up, then cosine decay to `min_lr` at the end of the first
/// `train.epochs` (a [`WarmupCosine`]). From each point where the run was extended
/// (`train.extensions`), the cosine is re-stretched: from the rate reached there down
/// to `min_lr` at the new last epoch, with no jump; a point still in warm-up keeps the
/// warm-up and only moves the cosine's end.
fn learning_rate(t: &TrainSettings, steps_per_epoch: u64, iteration: u64) -> f64 {
    let first_end = t.extensions.first().map_or(t.epochs, |e| e.from_epochs);
    let mut schedule = WarmupCosine {
        lr: t.lr,
        warmup_start_lr: t.warmup_start_lr,
        min_lr: t.min_lr,
        warmup_iters: t.warmup_epochs * steps_per_epoch,
        total_iters: first_end * steps_per_epoch,
    };
    // The step the present schedule counts from.
    let mut origin = 0;
    let ends = t.extensions.iter().skip(1).map(|e| e.from_epochs);
    for (extension, end) in t.extensions.iter().zip(ends.chain([t.epochs])) {
        let at = extension.at_iteration;
        if iteration < at {
            break;
        }
        let total = end * steps_per_epoch;
        if origin == 0 && at < schedule.warmup_iters {
            schedule.total_iters = total;
        } else {
            let lr = schedule.at(at - origin);
            schedule = WarmupCosine {
                lr,
                warmup_start_lr: lr,
                min_lr: t.min_lr,
                warmup_iters: 0,
                total_iters: total - at,
            };
            origin = at;
        }
    }
    schedule.at(iteration - origin)
}

/// The factor of the encoder's learning rate at optimiser step `iteration`, by
/// `train.strategy`: 1 (`full`), 0 (`frozen_encoder`), or for `warmup_decoder` 0 during
/// the decoder's epochs, then a linear rise to 1 over `train.warmup_epochs` epochs (the
/// first step of the encoder already moves it).
fn encoder_factor(t: &TrainSettings, steps_per_epoch: u64, iteration: u64) -> f64 {
    match t.strategy {
        Strategy::Full => 1.0,
        Strategy::FrozenEncoder => 0.0,
        Strategy::WarmupDecoder => {
            let joins = t.decoder_epochs * steps_per_epoch;
            let ramp = t.warmup_epochs * steps_per_epoch;
            if iteration < joins {
                0.0
            } else if ramp == 0 {
                1.0
            } else {
                ((iteration - joins + 1) as f64 / ramp as f64).min(1.0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finetune::Preset;

    /// The decoder warm-up over 2 epochs of 4 steps keeps the encoder at 0 for steps
    /// 0-7, then raises it over the 3 warm-up epochs (12 steps): 1/12 at step 8, 1 from
    /// step 19 on; the other strategies are constant.
    #[test]
    fn the_encoder_joins_after_the_decoder_epochs_and_warms_up() {
        let mut t = settings(20, &[]);
        assert_eq!(encoder_factor(&t, 4, 0), 1.0);
        t.strategy = Strategy::FrozenEncoder;
        assert_eq!(encoder_factor(&t, 4, 50), 0.0);
        t.strategy = Strategy::WarmupDecoder;
        t.decoder_epochs = 2;
        let factors: Vec<f64> = [0, 7, 8, 13, 18, 19, 70]
            .iter()
            .map(|&i| encoder_factor(&t, 4, i))
            .collect();
        assert_eq!(factors, [0.0, 0.0, 1.0 / 12.0, 0.5, 11.0 / 12.0, 1.0, 1.0]);
    }

    /// Tiny-preset training settings: lr 1e-3 after 3 warm-up epochs, min_lr 1e-5.
    fn settings(epochs: u64, extensions: &[(u64, u64)]) -> TrainSettings {
        let mut t = FinetuneConfig::preset(Preset::Tiny).train;
        t.epochs = epochs;
        t.extensions = extensions
            .iter()
            .map(|&(from_epochs, at_iteration)| Extension {
                from_epochs,
                at_iteration,
            })
            .collect();
        t
    }

    const STEPS: u64 = 4;

    #[test]
    fn without_extensions_the_rate_is_the_warmup_cosine() {
        let t = settings(10, &[]);
        let schedule = WarmupCosine {
            lr: 1e-3,
            warmup_start_lr: 0.0,
            min_lr: 1e-5,
            warmup_iters: 12,
            total_iters: 40,
        };
        for i in [0, 5, 12, 20, 39, 40, 50] {
            assert_eq!(learning_rate(&t, STEPS, i), schedule.at(i), "step {i}");
        }
    }

    /// Extended at step 24 of 40 (epoch 6 of 10) to 20 epochs: the rate before is the
    /// old schedule's, the rate at step 24 is unchanged, it decreases from there and
    /// reaches `min_lr` at step 80.
    #[test]
    fn an_extension_restretches_the_cosine_from_its_step_without_a_jump() {
        let before = settings(10, &[]);
        let after = settings(20, &[(10, 24)]);
        for i in 0..=24 {
            assert_eq!(
                learning_rate(&after, STEPS, i),
                learning_rate(&before, STEPS, i),
                "step {i}"
            );
        }
        let rates: Vec<f64> = (24..=80).map(|i| learning_rate(&after, STEPS, i)).collect();
        assert!(rates.windows(2).all(|w| w[1] < w[0]), "{rates:?}");
        assert!(rates[1] > learning_rate(&before, STEPS, 25), "slower decay");
        assert_eq!(learning_rate(&after, STEPS, 80), 1e-5);
        // A second extension at step 60 of 80 continues from the first one's curve.
        let twice = settings(30, &[(10, 24), (20, 60)]);
        assert_eq!(
            learning_rate(&twice, STEPS, 60),
            learning_rate(&after, STEPS, 60)
        );
        assert_eq!(learning_rate(&twice, STEPS, 120), 1e-5);
    }

    #[test]
    fn an_extension_during_warmup_keeps_the_warmup_and_moves_the_end() {
        let t = settings(20, &[(10, 5)]);
        let stretched = settings(20, &[]);
        for i in [0, 5, 11, 12, 30, 79, 80] {
            assert_eq!(
                learning_rate(&t, STEPS, i),
                learning_rate(&stretched, STEPS, i),
                "step {i}"
            );
        }
    }

    #[test]
    fn a_finished_schedule_extended_goes_on_at_min_lr() {
        let t = settings(15, &[(10, 40)]);
        for i in [40, 41, 50, 59, 60, 70] {
            assert_eq!(learning_rate(&t, STEPS, i), 1e-5, "step {i}");
        }
    }
}
