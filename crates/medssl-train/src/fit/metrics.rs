//! The lines of `metrics.jsonl`, one JSON object each, told apart by `event`: `step`
//! (every optimiser step), `train` (every completed epoch), `validation` (fine-tuning),
//! `probe` (pretraining with `--probe`) and `warning`. Both kinds of run write the same
//! types.

use std::collections::BTreeMap;

use serde::Serialize;

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum MetricsLine {
    Step(StepLine),
    Train(EpochLine),
    Validation {
        epoch: u64,
        dice: f64,
        per_case: Vec<(String, f64)>,
    },
    Warning {
        message: String,
    },
    /// The frozen-feature probes after step `iteration`, stage by stage as `medssl
    /// probe --json` gives them.
    Probe {
        iteration: u64,
        stages: serde_json::Value,
    },
}

/// One optimiser step.
#[derive(Debug, Clone, Serialize)]
pub struct StepLine {
    /// The epoch it belongs to, from 1.
    pub epoch: u64,
    /// Optimiser steps done, this one included.
    pub iteration: u64,
    /// The mean loss of its batches.
    pub loss: f64,
    /// The loss's named terms, each the mean of its batches' (pretraining methods).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub components: BTreeMap<String, f64>,
    pub lr: f64,
    pub weight_decay: f64,
    /// The EMA teacher's momentum (methods with a teacher).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub momentum: Option<f64>,
    /// The global gradient norm before clipping.
    pub grad_norm: f64,
    /// Whether clipping scaled any gradient down.
    pub clipped: bool,
    /// How many parameters' gradients it scaled (global clipping: all or none).
    pub clipped_params: usize,
    /// Collapse monitors (pretraining methods); a later batch's value of a name
    /// replaces an earlier one's.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub monitors: BTreeMap<String, f64>,
    /// Loading, forward and backward passes and the update.
    pub seconds: f64,
}

/// One completed epoch.
#[derive(Debug, Clone, Serialize)]
pub struct EpochLine {
    /// From 1.
    pub epoch: u64,
    /// Optimiser steps done at its end.
    pub iteration: u64,
    /// The mean loss of its batches.
    pub loss: f64,
    /// The learning rate of its last step.
    pub lr: f64,
    /// Seconds of this process (a resumed epoch: since the resume).
    pub seconds: f64,
    /// The largest global gradient norm of its steps, before clipping.
    pub grad_norm_max: f64,
    /// Steps whose gradient clipping scaled down.
    pub clipped_steps: u64,
    /// Optimiser steps in it.
    pub steps: u64,
}

/// The mean of each named term over the batches of a step (each batch names the same
/// terms; a name a batch lacks counts from the batches that have it).
pub fn mean_components(batches: &[Vec<(&'static str, f64)>]) -> BTreeMap<String, f64> {
    let mut sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    for (name, value) in batches.iter().flatten() {
        let entry = sums.entry((*name).to_string()).or_default();
        entry.0 += value;
        entry.1 += 1;
    }
    sums.into_iter()
        .map(|(name, (sum, n))| (name, sum / n as f64))
        .collect()
}
