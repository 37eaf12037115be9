//! The fine-tuning loop: epochs of Dice-CE steps on augmented crops, validation on
//! whole volumes with sliding-window inference, checkpoints that resume exactly.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use medssl_data::Pipeline;
use medssl_data::cache::PreprocessCache;
use medssl_data::dataset::{Task, TaskSource};
use medssl_data::loader::{Batch, Loader, SampleSource};
use medssl_data::splits::{Budget, Method, Split};
use medssl_model::SwinUnetr;
use medssl_model::arrays::to_tensor;
use medssl_model::seeding::build_seeded;
use medssl_model::weights::export_monai_safetensors;
use serde::{Deserialize, Serialize};

use super::config::FinetuneConfig;
use super::init_weights::{InitReport, check_import, load_weights};
use super::pipelines::{default_augment, default_preprocess};
use super::validate::validate;
use crate::checkpoint::{self, TrainState};
use crate::convergence::{Convergence, ValidationPoint};
use crate::error::{Result, TrainError};
use crate::optimizer::SegmentationOptimizer;
use crate::run_dir::{RunDir, shared_cache_dir};
use crate::schedule::WarmupCosine;
use crate::transforms::preprocess_fingerprint;

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

/// What the loop reports as it goes (for progress bars and logs).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// An epoch begins with this many batches.
    EpochStart { epoch: u64, batches: usize },
    /// One batch was trained on.
    Batch { loss: f64 },
    /// An epoch ended.
    EpochEnd {
        epoch: u64,
        mean_loss: f64,
        seconds: f64,
    },
    /// A validation finished.
    Validation { epoch: u64, dice: f64, best: f64 },
    /// Gradient clipping scaled down `clipped` of the epoch's `steps` optimiser steps;
    /// the largest gradient norm before clipping was `largest_norm`.
    Clipped {
        epoch: u64,
        clipped: u64,
        steps: u64,
        largest_norm: f64,
    },
}

/// Gradient norms of one epoch's optimiser steps, for the log.
#[derive(Debug, Default)]
struct Clipping {
    steps: u64,
    clipped: u64,
    largest_norm: f64,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum MetricsLine {
    Train {
        epoch: u64,
        iteration: u64,
        loss: f64,
        lr: f64,
        seconds: f64,
        /// The largest global gradient norm of the epoch's steps, before clipping.
        grad_norm_max: f64,
        /// Steps whose gradient clipping scaled down.
        clipped_steps: u64,
        /// Optimiser steps in the epoch.
        steps: u64,
    },
    Validation {
        epoch: u64,
        dice: f64,
        per_case: Vec<(String, f64)>,
    },
}

/// `run.json`: what a run was made from, so `--resume`, `evaluate` and `predict` need
/// only the run directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The task directory, absolute.
    pub task: PathBuf,
    /// The initial weights (`None`: from scratch).
    pub init: Option<PathBuf>,
    /// Whether the initial weights were imported with `--allow-unused`.
    #[serde(default)]
    pub init_allow_unused: bool,
    /// Image channels of the task.
    pub channels: usize,
    /// Classes including background.
    pub classes: usize,
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
    run: RunDir,
    config: FinetuneConfig,
    task: Arc<Task>,
    split: Split,
    init: Init,
    device: Device,
    model: SwinUnetr,
    optimizer: SegmentationOptimizer,
    state: TrainState,
    loader: Loader,
    validation: Arc<dyn SampleSource>,
    batches_per_epoch: usize,
    init_report: Option<InitReport>,
    /// Why the latest checkpoint was passed over on resume, if it was.
    fallback: Option<String>,
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
        config.validate()?;
        let task = Task::open(task_dir)?;
        if let Init::Weights { path, allow_unused } = &init {
            let network = config.network(task.channels.len(), task.labels.len());
            check_import(path, &network, &task.channels, *allow_unused)?;
        }
        let method = Method::Holdout {
            validation: config.split.validation,
            test: config.split.test,
        };
        let mut split = Split::new(&task.training_ids(), config.seed, method)?;
        if let Some(budget) = budget {
            split = split.few_shot(budget)?;
        }
        let mut config = config;
        if config.data.preprocess.is_empty() {
            config.data.preprocess = default_preprocess(&config, &task);
        }
        if config.data.augment.is_empty() {
            config.data.augment = default_augment(&config);
        }
        // The transform lists are built once here, so that a misspelt step or parameter
        // stops the run before its directory exists.
        Pipeline::from_config(&config.data.preprocess)?;
        Pipeline::from_config(&config.data.augment)?;
        // Nothing is written before the checks above pass.
        let run = RunDir::create(run_dir)?;
        if run.path("checkpoint/state.json").exists() {
            return Err(TrainError::Invalid(format!(
                "{} already holds a run; continue it with --resume, or choose another --out",
                run_dir.display()
            )));
        }
        split.save(&run.path("split.json"))?;
        run.write("config.toml", config.to_toml()?.as_bytes())?;
        let task_dir = std::fs::canonicalize(task_dir).map_err(|e| TrainError::os(task_dir, e))?;
        run.write_json(
            "run.json",
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
    /// restoring the last checkpoint (or starting over when none was written yet).
    pub fn resume(run_dir: &Path, task_dir: Option<&Path>, device: Device) -> Result<Finetune> {
        let run = RunDir::open_for_writes(run_dir)?;
        let config = FinetuneConfig::read(&run)?;
        let split = Split::load(&run.path("split.json"))?;
        let info: RunInfo = run.read_json("run.json")?;
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
        let classes = task.labels.len();
        if classes < 2 {
            return Err(TrainError::Invalid(format!(
                "task {} declares {classes} label(s); segmentation needs background and at least one class",
                task.name
            )));
        }
        let train_device = device.clone().autodiff();
        let network = config.network(task.channels.len(), classes);
        let mut model = build_seeded(&train_device, config.seed, || {
            SwinUnetr::new(&network, &train_device)
        })
        .map_err(|e| TrainError::Invalid(format!("model: {e}")))?;
        let mut optimizer = SegmentationOptimizer::new(config.train.optimizer);
        let mut state = TrainState::default();
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
            (Init::Weights { .. }, Some(_)) => Some(run.read_json("init_report.json")?),
            (Init::Weights { path, allow_unused }, None) => {
                let report =
                    load_weights(&mut model, path, &network, &task.channels, *allow_unused)?;
                run.write_json("init_report.json", &report)?;
                Some(report)
            }
        };
        let mut fallback = None;
        if let Some(restored) = restored {
            (state, model, optimizer) = (restored.state, restored.model, restored.optimizer);
            fallback = restored.fallback;
        }
        run.truncate_metrics(state.metrics_lines)?;

        let preprocess_tables = &config.data.preprocess;
        let augment_tables = &config.data.augment;
        let fingerprint = preprocess_fingerprint(preprocess_tables)?;
        let cache_dir = shared_cache_dir(run.root(), &task.name);
        let cached = |ids: &[String]| -> Result<Arc<dyn SampleSource>> {
            let source: Arc<dyn SampleSource> = Arc::new(TaskSource::new(task.clone(), ids)?);
            let preprocess = Pipeline::from_config(preprocess_tables)?;
            Ok(Arc::new(PreprocessCache::new(
                &cache_dir,
                source,
                preprocess,
                fingerprint.clone(),
            )?))
        };
        let train_source = cached(&split.train)?;
        let validation = cached(&split.validation)?;
        let augment = Pipeline::from_config(augment_tables)?;
        let samples = split.train.len() * fan_out(augment_tables);
        let batches_per_epoch = config.data.loader.batches(samples);
        let loader = Loader::new(
            train_source,
            augment,
            config.data.loader.clone(),
            config.seed,
        )?;
        Ok(Finetune {
            run,
            config,
            task,
            split,
            init,
            device,
            model,
            optimizer,
            state,
            loader,
            validation,
            batches_per_epoch,
            init_report,
            fallback,
        })
    }

    /// Why `--resume` used the checkpoint before the latest one (the latest was damaged),
    /// for the user to see.
    pub fn resume_warning(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// The run's settings.
    pub fn config(&self) -> &FinetuneConfig {
        &self.config
    }

    /// What loading the initial weights did (`None` from scratch).
    pub fn init_report(&self) -> Option<&InitReport> {
        self.init_report.as_ref()
    }

    /// The run directory.
    pub fn run_dir(&self) -> &RunDir {
        &self.run
    }

    /// Completed epochs.
    pub fn epochs_done(&self) -> u64 {
        self.state.epoch
    }

    /// The network being trained.
    pub fn model(&self) -> &SwinUnetr {
        &self.model
    }

    fn schedule(&self) -> WarmupCosine {
        let steps_per_epoch = self
            .batches_per_epoch
            .div_ceil(self.config.train.accumulate) as u64;
        let t = &self.config.train;
        WarmupCosine {
            lr: t.lr,
            warmup_start_lr: t.warmup_start_lr,
            min_lr: t.min_lr,
            warmup_iters: t.warmup_epochs * steps_per_epoch,
            total_iters: t.epochs * steps_per_epoch,
        }
    }

    /// Trains until `until_epoch` epochs are complete (at most the configured number),
    /// validating and checkpointing on schedule; `observe` sees every event.
    pub fn train(&mut self, until_epoch: u64, observe: &mut dyn FnMut(Event)) -> Result<()> {
        let until = until_epoch.min(self.config.train.epochs);
        let schedule = self.schedule();
        let accumulate = self.config.train.accumulate;
        while self.state.epoch < until {
            let epoch = self.state.epoch;
            let started = Instant::now();
            observe(Event::EpochStart {
                epoch: epoch + 1,
                batches: self.batches_per_epoch,
            });
            let (mut loss_sum, mut batches) = (0.0, 0usize);
            let mut pending = GradientsAccumulator::<SwinUnetr>::new();
            let mut in_step = 0;
            let mut lr = schedule.at(self.state.iteration);
            let mut clipping = Clipping::default();
            for batch in self.loader.epoch(epoch, 0) {
                let batch = batch?;
                let (loss, grads) = self.loss_and_grads(&batch)?;
                if !loss.is_finite() {
                    return Err(TrainError::NonFiniteLoss {
                        loss,
                        epoch: epoch + 1,
                        iteration: self.state.iteration,
                    });
                }
                pending.accumulate(&self.model, grads);
                in_step += 1;
                loss_sum += loss;
                batches += 1;
                observe(Event::Batch { loss });
                if in_step == accumulate {
                    lr = schedule.at(self.state.iteration);
                    self.apply(pending.grads(), lr, &mut clipping)?;
                    in_step = 0;
                }
            }
            if in_step > 0 {
                lr = schedule.at(self.state.iteration);
                self.apply(pending.grads(), lr, &mut clipping)?;
            }
            if batches == 0 {
                return Err(TrainError::Invalid(format!(
                    "epoch {} produced no batch: the training split has {} case(s)",
                    epoch + 1,
                    self.split.train.len()
                )));
            }
            let mean_loss = loss_sum / batches as f64;
            let seconds = started.elapsed().as_secs_f64();
            self.state.epoch += 1;
            self.run.log_metrics(&MetricsLine::Train {
                epoch: self.state.epoch,
                iteration: self.state.iteration,
                loss: mean_loss,
                lr,
                seconds,
                grad_norm_max: clipping.largest_norm,
                clipped_steps: clipping.clipped,
                steps: clipping.steps,
            })?;
            observe(Event::EpochEnd {
                epoch: self.state.epoch,
                mean_loss,
                seconds,
            });
            if clipping.clipped > 0 {
                observe(Event::Clipped {
                    epoch: self.state.epoch,
                    clipped: clipping.clipped,
                    steps: clipping.steps,
                    largest_norm: clipping.largest_norm,
                });
            }
            let last = self.state.epoch == self.config.train.epochs;
            if self.state.epoch % self.config.validation.every == 0 || last {
                self.validate_and_keep_best(observe)?;
                self.state.metrics_lines = self.run.metrics_lines()?;
                checkpoint::save(
                    &self.run,
                    &mut self.state,
                    &self.model,
                    checkpoint::write_monai,
                    &self.optimizer,
                )?;
            }
        }
        if self.state.epoch == self.config.train.epochs {
            self.write_result()?;
        }
        Ok(())
    }

    fn loss_and_grads(&self, batch: &Batch) -> Result<(f64, GradientsParams)> {
        let device = self
            .model
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
        let logits = self
            .model
            .forward(image)
            .map_err(|e| TrainError::Invalid(format!("cases {}: {e}", batch.ids.join(", "))))?;
        let loss = self.config.train.loss.forward(logits, labels);
        let value = f64::from(loss.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);
        Ok((value, grads))
    }

    /// One optimiser step; counts it in `clipping`, and stops the run on a non-finite
    /// gradient (which the optimiser did not apply).
    fn apply(&mut self, grads: GradientsParams, lr: f64, clipping: &mut Clipping) -> Result<()> {
        let model = self.model.clone();
        let (model, norm) = self.optimizer.step(lr, model, grads);
        if !norm.is_finite() {
            return Err(TrainError::NonFiniteGradient {
                norm,
                epoch: self.state.epoch + 1,
                iteration: self.state.iteration,
            });
        }
        self.model = model;
        self.state.iteration += 1;
        clipping.steps += 1;
        clipping.largest_norm = clipping.largest_norm.max(norm);
        if self.optimizer.clips(norm) {
            clipping.clipped += 1;
        }
        Ok(())
    }

    fn validate_and_keep_best(&mut self, observe: &mut dyn FnMut(Event)) -> Result<()> {
        let network = self.model.valid();
        let outcome = validate(
            &network,
            self.validation.as_ref(),
            &self.config,
            &self.device.clone().inner(),
            self.task.labels.len(),
        )?;
        let point = ValidationPoint {
            epoch: self.state.epoch,
            dice: outcome.mean_dice,
        };
        self.state.curve.push(point);
        let improved =
            point.dice.is_finite() && self.state.best.is_none_or(|best| point.dice > best.dice);
        if improved {
            export_monai_safetensors(&network, &self.run.path("best.safetensors"))
                .map_err(|e| TrainError::file(self.run.path("best.safetensors"), e.to_string()))?;
            self.state.best = Some(point);
        }
        self.run.log_metrics(&MetricsLine::Validation {
            epoch: self.state.epoch,
            dice: outcome.mean_dice,
            per_case: outcome.per_case,
        })?;
        observe(Event::Validation {
            epoch: self.state.epoch,
            dice: point.dice,
            best: self.state.best.map_or(f64::NAN, |b| b.dice),
        });
        Ok(())
    }

    fn write_result(&self) -> Result<()> {
        self.run.write_json(
            "result.json",
            &RunResult {
                task: &self.task.name,
                init: match &self.init {
                    Init::Scratch => "scratch".into(),
                    Init::Weights { path, .. } => path.display().to_string(),
                },
                train_cases: self.split.train.len(),
                validation_cases: self.split.validation.len(),
                epochs: self.state.epoch,
                iterations: self.state.iteration,
                convergence: Convergence::of(&self.state.curve),
                curve: &self.state.curve,
            },
        )
    }
}

/// Samples a training case yields per epoch: the product of the `num_samples` of the
/// augmentation's fan-out steps.
fn fan_out(tables: &[toml::Table]) -> usize {
    tables
        .iter()
        .filter_map(|t| t.get("num_samples").and_then(|v| v.as_integer()))
        .map(|n| n.max(1) as usize)
        .product()
}
