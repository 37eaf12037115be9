//! The one training loop of both kinds of run, in the spirit of Burn's `Learner` and
//! Lightning's `Trainer`: [`Fit`] owns the epochs and where a resumed run goes on,
//! gradient accumulation, the optimiser step (clipping and weight decay included), the
//! non-finite checks, `metrics.jsonl`, the preprocessing caches' warnings, checkpoints
//! and the stop flag. An [`Objective`] supplies what differs: the loss of a batch, the
//! rates of a step, what follows a step (an EMA teacher) and an epoch (validation),
//! and what a checkpoint adds.
//!
//! The semantics, the same for pretraining and fine-tuning:
//!
//! - An epoch is the loader's batches. Every `accumulate` of them (their gradients
//!   summed) make one optimiser step; a shorter remainder at the epoch's end makes a
//!   last, smaller step. An epoch therefore has `ceil(batches / accumulate)` steps.
//! - `metrics.jsonl` gets a `step` line per optimiser step, a `train` line per
//!   completed epoch, and whatever the objective adds (`validation`, `warning`); the
//!   types are in [`metrics`].
//! - A checkpoint is written every [`Checkpoints::every_steps`] steps, after every
//!   [`Checkpoints::every_epochs`] epochs, after an epoch whose objective asks for one
//!   (a validation, so the best weights and the state agree), when `train` returns
//!   (the run's end, the requested step, a stop) and nowhere else. It holds the exact
//!   point, mid-epoch included, with the epoch's running totals: a resumed run goes
//!   on from the next batch and logs what an uninterrupted run would.
//! - A stop (the flag of [`Fit::stop_when`]) takes effect after the optimiser step
//!   during which it was set.

pub mod metrics;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::module::{Module, ParamId};
use burn::optim::{GradientsAccumulator, GradientsParams};
use medssl_data::cache::PreprocessCache;
use medssl_data::loader::{CaseWork, Loader};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::checkpoint::{self, Restored, TrainState};
use crate::error::{Result, TrainError};
use crate::optimizer::{SegmentationOptimizer, drop_grads};
use crate::run_dir::RunDir;
use metrics::{EpochLine, MetricsLine, StepLine};

/// What the loop reports as it goes (for progress bars and logs).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// An epoch of `steps` optimiser steps (fewer when the run ends within it) begins,
    /// or goes on after `done` of them (a resumed run; 0 otherwise).
    EpochStart { epoch: u64, steps: u64, done: u64 },
    /// One optimiser step was taken; `loss` is the mean of its batches'.
    Step { iteration: u64, loss: f64 },
    /// An epoch ended.
    EpochEnd {
        epoch: u64,
        mean_loss: f64,
        seconds: f64,
    },
    /// Gradient clipping scaled down `clipped` of the epoch's `steps` optimiser steps;
    /// the largest gradient norm before clipping was `largest_norm`.
    Clipped {
        epoch: u64,
        clipped: u64,
        steps: u64,
        largest_norm: f64,
    },
    /// A validation finished; the best so far was at `best_epoch`.
    Validation {
        epoch: u64,
        dice: f64,
        best: f64,
        best_epoch: u64,
    },
    /// Something the user should look at (a collapse monitor below its threshold, a
    /// damaged preprocessing cache entry).
    Warning(String),
    /// The frozen-feature probes scored the encoder after step `iteration`: the linear
    /// probe's balanced accuracy per stage (NaN: no score).
    Probe {
        iteration: u64,
        linear: Vec<(&'static str, f64)>,
    },
}

/// Where a batch falls: the epoch (from 0) and the optimiser step (from 0) it counts
/// towards.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Position {
    pub epoch: u64,
    pub iteration: u64,
}

/// What one batch contributed: its loss, the named terms and monitors the step line
/// logs, its gradients and what the objective's [`Objective::after_step`] needs.
pub struct BatchLoss<A> {
    pub loss: f64,
    pub components: Vec<(&'static str, f64)>,
    pub monitors: Vec<(&'static str, f64)>,
    pub grads: GradientsParams,
    pub aux: A,
}

/// The rates of one optimiser step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    pub lr: f64,
    /// The factor of the encoder's rate this step (fine-tuning strategies; 0 freezes
    /// it); 1 in pretraining.
    pub encoder: f64,
    pub weight_decay: f64,
    /// The EMA teacher's momentum (methods with a teacher).
    pub momentum: Option<f64>,
}

/// What a run trains and how; the loop does the rest (see the module doc).
pub trait Objective {
    /// The network on the autodiff device.
    type Net: Module + Clone;
    /// What the loader makes of each case.
    type Work: CaseWork;
    /// What a batch hands to [`Objective::after_step`].
    type Aux;

    /// The loss of one batch at `at`, with its gradients.
    fn batch_loss(
        &self,
        net: &Self::Net,
        batch: &<Self::Work as CaseWork>::Batch,
        at: Position,
    ) -> Result<BatchLoss<Self::Aux>>;

    /// The rates of optimiser step `iteration` (from 0).
    fn rates(&self, iteration: u64) -> Rates;

    /// Parameters whose gradients the steps of `epoch` drop (DINO's last layer early
    /// on); none by default.
    fn frozen(&self, _net: &Self::Net, _epoch: u64) -> Vec<ParamId> {
        Vec::new()
    }

    /// The network after an optimiser step, given the `aux` of each of its batches
    /// (the EMA teacher's update); unchanged by default.
    fn after_step(&mut self, net: Self::Net, _aux: Vec<Self::Aux>, _rates: Rates) -> Self::Net {
        net
    }

    /// Looks at a logged step (collapse monitors) and returns warnings to log.
    fn inspect(&mut self, _line: &StepLine) -> Vec<String> {
        Vec::new()
    }

    /// After optimiser step `state.iteration` (counted) is logged: a look at the
    /// network between steps (pretraining's probes), which may log lines of its own.
    /// Its lines follow the step's, so a resume from an earlier checkpoint drops and
    /// redoes them with the step. Nothing by default.
    fn step_end(
        &mut self,
        _net: &Self::Net,
        _state: &TrainState,
        _run: &RunDir,
        _observe: &mut dyn FnMut(Event),
    ) -> Result<()> {
        Ok(())
    }

    /// After each completed epoch (`state.epoch` counts it): a validation, which may
    /// add to the state. Returns whether a checkpoint must follow.
    fn epoch_end(
        &mut self,
        _net: &Self::Net,
        _state: &mut TrainState,
        _run: &RunDir,
        _observe: &mut dyn FnMut(Event),
    ) -> Result<bool> {
        Ok(false)
    }

    /// Writes the weights of a checkpoint to `path`.
    fn write_weights(net: &Self::Net, path: &Path) -> Result<()>;

    /// Writes what the objective keeps beside each checkpoint (the pretraining
    /// encoder) and returns its own state, restored by [`Objective::restore`].
    fn save(&self, _net: &Self::Net, _run: &RunDir) -> Result<Value> {
        Ok(Value::Null)
    }

    /// Takes back the state [`Objective::save`] returned.
    fn restore(&mut self, _saved: Value) -> Result<()> {
        Ok(())
    }

    /// When the run's last step is done (also when a run resumed after its end calls
    /// `train` again: then `trained` is false): the result file and what else stays.
    fn finish(
        &mut self,
        net: &Self::Net,
        state: &TrainState,
        run: &RunDir,
        trained: bool,
    ) -> Result<()>;
}

/// When checkpoints are written besides when `train` returns (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Checkpoints {
    /// After every this many optimiser steps.
    pub every_steps: Option<u64>,
    /// After every this many epochs.
    pub every_epochs: Option<u64>,
}

/// How long the run is: batches per epoch, batches per step, steps in all.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Length {
    pub batches_per_epoch: usize,
    pub accumulate: usize,
    pub total_steps: u64,
}

/// Optimiser steps in an epoch of `batches` batches summed `accumulate` at a time:
/// `ceil(batches / accumulate)`, the remainder making a smaller last step.
pub fn steps_per_epoch(batches: usize, accumulate: usize) -> u64 {
    batches.div_ceil(accumulate) as u64
}

impl Length {
    /// A run of `epochs` whole epochs.
    pub fn of_epochs(batches_per_epoch: usize, accumulate: usize, epochs: u64) -> Length {
        Length {
            batches_per_epoch,
            accumulate,
            total_steps: epochs * steps_per_epoch(batches_per_epoch, accumulate),
        }
    }

    /// Optimiser steps in an epoch ([`steps_per_epoch`]).
    pub fn steps_per_epoch(&self) -> u64 {
        steps_per_epoch(self.batches_per_epoch, self.accumulate)
    }

    /// Epochs of the whole run (the last one partial when the step count ends it early).
    pub fn epochs(&self) -> u64 {
        self.total_steps.div_ceil(self.steps_per_epoch())
    }
}

/// The running totals of the epoch in progress, for its `train` line. A checkpoint
/// written mid-epoch keeps them, so the resumed run logs the epoch as an uninterrupted
/// one would (the values survive the JSON round trip bit for bit).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct EpochTotals {
    /// Batches trained.
    batches: usize,
    /// Sum of their losses (`None` before the first).
    #[serde(default, with = "crate::exact_f64")]
    loss_sum: Option<f64>,
    /// Learning rate of the latest optimiser step.
    #[serde(default, with = "crate::exact_f64")]
    lr: Option<f64>,
    /// Optimiser steps taken.
    steps: u64,
    /// Steps whose gradient clipping scaled down.
    clipped: u64,
    /// The largest global gradient norm before clipping.
    #[serde(default, with = "crate::exact_f64")]
    largest_norm: Option<f64>,
}

/// What a checkpoint's `extra` holds: the loop's totals of a partial epoch and the
/// objective's own state.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Extra {
    #[serde(default)]
    epoch: Option<EpochTotals>,
    #[serde(default)]
    objective: Value,
}

/// The parts of a run the loop drives.
pub struct Parts<O: Objective> {
    pub run: RunDir,
    pub objective: O,
    pub net: O::Net,
    pub optimizer: SegmentationOptimizer,
    pub loader: Loader<O::Work>,
    /// The caches the loader (and the objective) read through, whose warnings the loop
    /// logs and reports.
    pub caches: Vec<Arc<PreprocessCache>>,
    pub length: Length,
    pub checkpoints: Checkpoints,
}

/// A run being trained: its parts, counters and the point it stands at.
pub struct Fit<O: Objective> {
    run: RunDir,
    objective: O,
    net: O::Net,
    optimizer: SegmentationOptimizer,
    state: TrainState,
    loader: Loader<O::Work>,
    caches: Vec<Arc<PreprocessCache>>,
    length: Length,
    checkpoints: Checkpoints,
    /// The totals of an epoch the run stands in the middle of.
    partial: Option<EpochTotals>,
    /// Why the latest checkpoint was passed over on resume, if it was.
    fallback: Option<String>,
    /// Set (by a signal handler) to stop training after the current optimiser step.
    stop: Option<Arc<AtomicBool>>,
}

/// The batches of the step being accumulated.
struct Pending<O: Objective> {
    grads: GradientsAccumulator<O::Net>,
    losses: Vec<f64>,
    components: Vec<Vec<(&'static str, f64)>>,
    monitors: Vec<(&'static str, f64)>,
    auxes: Vec<O::Aux>,
    /// When the step began (after the previous one): loading, forward and backward
    /// passes and the update are all in its time.
    started: Instant,
}

impl<O: Objective> Pending<O> {
    fn new() -> Pending<O> {
        Pending {
            grads: GradientsAccumulator::new(),
            losses: Vec::new(),
            components: Vec::new(),
            monitors: Vec::new(),
            auxes: Vec::new(),
            started: Instant::now(),
        }
    }

    fn add(&mut self, batch: BatchLoss<O::Aux>, net: &O::Net) {
        self.grads.accumulate(net, batch.grads);
        self.losses.push(batch.loss);
        self.components.push(batch.components);
        self.monitors.extend(batch.monitors);
        self.auxes.push(batch.aux);
    }

    fn len(&self) -> usize {
        self.losses.len()
    }
}

impl<O: Objective> Fit<O> {
    /// The loop over `parts`, at the start or at the checkpoint `restored`.
    pub fn new(parts: Parts<O>, restored: Option<Restored<O::Net>>) -> Result<Fit<O>> {
        let Parts {
            run,
            mut objective,
            mut net,
            mut optimizer,
            loader,
            caches,
            length,
            checkpoints,
        } = parts;
        let mut state = TrainState::default();
        let (mut partial, mut fallback) = (None, None);
        if let Some(restored) = restored {
            (state, net, optimizer) = (restored.state, restored.model, restored.optimizer);
            fallback = restored.fallback;
            let extra: Extra = match &state.extra {
                Value::Null => Extra::default(),
                extra => serde_json::from_value(extra.clone()).map_err(|e| {
                    TrainError::file(run.checkpoint_state(), format!("loop state: {e}"))
                })?,
            };
            partial = extra.epoch;
            objective.restore(extra.objective)?;
        }
        if length.steps_per_epoch() == 0 {
            return Err(TrainError::Invalid("an epoch has no batch".into()));
        }
        run.truncate_metrics(state.metrics_lines)?;
        Ok(Fit {
            run,
            objective,
            net,
            optimizer,
            state,
            loader,
            caches,
            length,
            checkpoints,
            partial,
            fallback,
            stop: None,
        })
    }

    /// The run directory.
    pub fn run_dir(&self) -> &RunDir {
        &self.run
    }

    /// The objective.
    pub fn objective(&self) -> &O {
        &self.objective
    }

    /// The objective, to change (a fine-tune run's extension).
    pub fn objective_mut(&mut self) -> &mut O {
        &mut self.objective
    }

    /// The network being trained.
    pub fn net(&self) -> &O::Net {
        &self.net
    }

    /// Counters and history.
    pub fn state(&self) -> &TrainState {
        &self.state
    }

    /// How long the run is.
    pub fn length(&self) -> Length {
        self.length
    }

    /// Changes the run's length (a fine-tune run extended to more epochs).
    pub fn set_total_steps(&mut self, total_steps: u64) {
        self.length.total_steps = total_steps;
    }

    /// Batches already trained of the epoch the run stands in (0 at an epoch's start).
    pub fn batches_done(&self) -> usize {
        self.partial.as_ref().map_or(0, |totals| totals.batches)
    }

    /// Why the latest checkpoint was passed over on resume, if it was.
    pub fn resume_warning(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// Stops [`Fit::train`] after the optimiser step during which `flag` becomes true
    /// (e.g. set by a Ctrl-C handler): a checkpoint of that exact point is written and
    /// `train` returns, for a resume to continue.
    pub fn stop_when(&mut self, flag: Arc<AtomicBool>) {
        self.stop = Some(flag);
    }

    fn stop_requested(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::SeqCst))
    }

    /// Trains until `until_step` optimiser steps are done (at most the run's total);
    /// `observe` sees every event. Returns early, after writing a checkpoint, when the
    /// flag of [`Fit::stop_when`] is set. Once the last step is done it calls the
    /// objective's [`Objective::finish`].
    pub fn train(&mut self, until_step: u64, observe: &mut dyn FnMut(Event)) -> Result<()> {
        let until = until_step.min(self.length.total_steps);
        let per_epoch = self.length.steps_per_epoch();
        let accumulate = self.length.accumulate;
        let mut trained = false;
        while self.state.iteration < until {
            let epoch = self.state.epoch;
            let epoch_end = (epoch + 1) * per_epoch;
            let done = self.state.iteration - epoch * per_epoch;
            observe(Event::EpochStart {
                epoch: epoch + 1,
                steps: done + (per_epoch - done).min(until - self.state.iteration),
                done,
            });
            let started = Instant::now();
            let mut totals = self.partial.take().unwrap_or_default();
            let mut pending = Pending::<O>::new();
            let mut halted = false;
            for batch in self.loader.epoch(epoch, done as usize * accumulate) {
                self.report_cache_warnings(observe)?;
                let batch = batch?;
                let at = Position {
                    epoch,
                    iteration: self.state.iteration,
                };
                let loss = self.objective.batch_loss(&self.net, &batch, at)?;
                if !loss.loss.is_finite() {
                    return Err(TrainError::NonFiniteLoss {
                        loss: loss.loss,
                        epoch: epoch + 1,
                        iteration: self.state.iteration,
                    });
                }
                pending.add(loss, &self.net);
                trained = true;
                if pending.len() < accumulate {
                    continue;
                }
                let full = std::mem::replace(&mut pending, Pending::new());
                self.step(full, &mut totals, observe)?;
                if self.state.iteration == epoch_end {
                    break;
                }
                let stop = self.stop_requested() || self.state.iteration >= until;
                let due = self
                    .checkpoints
                    .every_steps
                    .is_some_and(|n| self.state.iteration % n == 0);
                if stop || due {
                    self.save(Some(&totals))?;
                }
                if stop {
                    halted = true;
                    break;
                }
            }
            if halted {
                self.partial = Some(totals);
                break;
            }
            if pending.len() > 0 {
                self.step(pending, &mut totals, observe)?;
            }
            if self.state.iteration < epoch_end {
                return Err(TrainError::Invalid(format!(
                    "epoch {} ended after {} of its {per_epoch} steps: the loader delivered \
                     fewer batches than the training data holds",
                    epoch + 1,
                    self.state.iteration - epoch * per_epoch
                )));
            }
            if self.end_epoch(totals, started, until, observe)? {
                break;
            }
        }
        if self.state.iteration >= self.length.total_steps {
            self.objective
                .finish(&self.net, &self.state, &self.run, trained)?;
        }
        Ok(())
    }

    /// One optimiser step from the accumulated batches.
    fn step(
        &mut self,
        pending: Pending<O>,
        totals: &mut EpochTotals,
        observe: &mut dyn FnMut(Event),
    ) -> Result<()> {
        let (epoch, iteration) = (self.state.epoch, self.state.iteration);
        let rates = self.objective.rates(iteration);
        let Pending {
            mut grads,
            losses,
            components,
            monitors,
            auxes,
            started,
        } = pending;
        let mut grads = grads.grads();
        let frozen = self.objective.frozen(&self.net, epoch);
        if !frozen.is_empty() {
            drop_grads(&self.net, &mut grads, frozen);
        }
        let (net, grad_norm) = self.optimizer.step(
            rates.lr,
            rates.encoder,
            rates.weight_decay,
            self.net.clone(),
            grads,
        );
        if !grad_norm.is_finite() {
            return Err(TrainError::NonFiniteGradient {
                norm: grad_norm,
                epoch: epoch + 1,
                iteration,
            });
        }
        self.net = self.objective.after_step(net, auxes, rates);
        self.state.iteration += 1;

        let n = losses.len() as f64;
        let line = StepLine {
            epoch: epoch + 1,
            iteration: self.state.iteration,
            loss: losses.iter().sum::<f64>() / n,
            components: metrics::mean_components(&components),
            lr: rates.lr,
            weight_decay: rates.weight_decay,
            momentum: rates.momentum,
            grad_norm,
            clipped: self.optimizer.clips(grad_norm),
            clipped_params: self.optimizer.clipped_params(),
            monitors: monitors
                .into_iter()
                .map(|(name, value)| (name.to_string(), value))
                .collect(),
            seconds: started.elapsed().as_secs_f64(),
        };
        self.run.log_metrics(&MetricsLine::Step(line.clone()))?;
        for message in self.objective.inspect(&line) {
            self.warn(message, observe)?;
        }
        totals.batches += losses.len();
        totals.loss_sum = Some(totals.loss_sum.unwrap_or(0.0) + losses.iter().sum::<f64>());
        totals.lr = Some(rates.lr);
        totals.steps += 1;
        totals.largest_norm = Some(totals.largest_norm.map_or(grad_norm, |m| m.max(grad_norm)));
        if line.clipped {
            totals.clipped += 1;
        }
        observe(Event::Step {
            iteration: self.state.iteration,
            loss: line.loss,
        });
        self.objective
            .step_end(&self.net, &self.state, &self.run, observe)
    }

    /// Closes a completed epoch: its `train` line and events, the objective's
    /// epoch end, and a checkpoint when one is due. Returns whether a stop was
    /// requested.
    fn end_epoch(
        &mut self,
        totals: EpochTotals,
        started: Instant,
        until: u64,
        observe: &mut dyn FnMut(Event),
    ) -> Result<bool> {
        self.state.epoch += 1;
        let epoch = self.state.epoch;
        let mean_loss = totals.loss_sum.unwrap_or(f64::NAN) / totals.batches as f64;
        let seconds = started.elapsed().as_secs_f64();
        let largest_norm = totals.largest_norm.unwrap_or(0.0);
        self.run.log_metrics(&MetricsLine::Train(EpochLine {
            epoch,
            iteration: self.state.iteration,
            loss: mean_loss,
            lr: totals.lr.unwrap_or(f64::NAN),
            seconds,
            grad_norm_max: largest_norm,
            clipped_steps: totals.clipped,
            steps: totals.steps,
        }))?;
        observe(Event::EpochEnd {
            epoch,
            mean_loss,
            seconds,
        });
        if totals.clipped > 0 {
            observe(Event::Clipped {
                epoch,
                clipped: totals.clipped,
                steps: totals.steps,
                largest_norm,
            });
        }
        // Read once, before the epoch's end work: a stop requested after this point
        // is honoured after the next step, never skipped.
        let stop = self.stop_requested();
        let asked = self
            .objective
            .epoch_end(&self.net, &mut self.state, &self.run, observe);
        self.report_cache_warnings(observe)?;
        let due = self
            .checkpoints
            .every_epochs
            .is_some_and(|n| epoch % n == 0);
        if asked? || due || stop || self.state.iteration >= until {
            self.save(None)?;
        }
        Ok(stop)
    }

    /// Logs a warning and reports it.
    fn warn(&self, message: String, observe: &mut dyn FnMut(Event)) -> Result<()> {
        self.run.log_metrics(&MetricsLine::Warning {
            message: message.clone(),
        })?;
        observe(Event::Warning(message));
        Ok(())
    }

    /// Logs and reports the warnings of the preprocessing caches (damaged entries
    /// recomputed on the loader's threads or during validation) as the loop's own.
    fn report_cache_warnings(&self, observe: &mut dyn FnMut(Event)) -> Result<()> {
        for message in self.caches.iter().flat_map(|cache| cache.take_warnings()) {
            self.warn(message, observe)?;
        }
        Ok(())
    }

    /// Writes a checkpoint of the point the run stands at (a new run's initial state).
    pub fn checkpoint(&mut self) -> Result<()> {
        let partial = self.partial.clone();
        self.save(partial.as_ref())
    }

    /// Writes a checkpoint of the present state; `partial`: the totals of the epoch
    /// the run stands in the middle of.
    fn save(&mut self, partial: Option<&EpochTotals>) -> Result<()> {
        self.state.metrics_lines = self.run.metrics_lines()?;
        let extra = Extra {
            epoch: partial.cloned(),
            objective: self.objective.save(&self.net, &self.run)?,
        };
        self.state.extra = serde_json::to_value(&extra)
            .map_err(|e| TrainError::Invalid(format!("loop state: {e}")))?;
        checkpoint::save(
            &self.run,
            &mut self.state,
            &self.net,
            O::write_weights,
            &self.optimizer,
        )
    }
}
