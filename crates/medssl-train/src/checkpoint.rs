//! The last training state of a run, for `--resume`: weights, Adam moments, counters
//! and the validation curve. Randomness needs no state: every random draw comes from a
//! stream derived from the seed and the epoch/iteration counters.
//!
//! Files of one generation (`weights-G.safetensors`, `optimizer-G.bin`) are written
//! first, then `state.json`, which names the generation, replaces the previous one
//! atomically; only then are older generations removed. A run killed at any moment
//! therefore resumes from a complete checkpoint.

use std::collections::BTreeMap;
use std::path::Path;

use medssl_model::SwinUnetr;
use medssl_model::weights::{export_monai_safetensors, load_monai_safetensors};
use serde::{Deserialize, Serialize};

use crate::convergence::ValidationPoint;
use crate::error::{Result, TrainError};
use crate::optimizer::SegmentationOptimizer;
use crate::param_ids::{param_ids, with_param_ids};
use crate::run_dir::RunDir;

/// Counters and history of a run at a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TrainState {
    /// Completed epochs.
    pub epoch: u64,
    /// Optimiser steps taken.
    pub iteration: u64,
    /// Lines of `metrics.jsonl` written up to this state.
    pub metrics_lines: usize,
    /// Every validation so far.
    pub curve: Vec<ValidationPoint>,
    /// The best validation so far (its weights are `best.safetensors`).
    pub best: Option<ValidationPoint>,
    /// Generation of the checkpoint files; bumped at every save.
    pub generation: u64,
    /// Sizes of the generation's files, checked on load to catch truncation.
    pub weights_bytes: u64,
    /// See `weights_bytes`.
    pub optimizer_bytes: u64,
    /// The network's parameter ids by module path, which the optimiser state is keyed
    /// on (see `param_ids`).
    pub param_ids: BTreeMap<String, u64>,
}

const STATE: &str = "checkpoint/state.json";

fn weights_name(generation: u64) -> String {
    format!("checkpoint/weights-{generation}.safetensors")
}

fn optimizer_name(generation: u64) -> String {
    format!("checkpoint/optimizer-{generation}.bin")
}

fn file_size(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .map_err(|e| TrainError::os(path, e))?
        .len())
}

/// Saves `state` (its generation is bumped) with the model and optimiser.
pub fn save(
    run: &RunDir,
    state: &mut TrainState,
    model: &SwinUnetr,
    optimizer: &SegmentationOptimizer,
) -> Result<()> {
    let previous = state.generation;
    state.generation += 1;
    let weights = run.path(&weights_name(state.generation));
    export_monai_safetensors(model, &weights)
        .map_err(|e| TrainError::file(&weights, e.to_string()))?;
    let bytes = optimizer
        .to_bytes()
        .map_err(|e| TrainError::file(run.path(&optimizer_name(state.generation)), e))?;
    run.write(&optimizer_name(state.generation), &bytes)?;
    state.weights_bytes = file_size(&weights)?;
    state.param_ids = param_ids(model);
    state.optimizer_bytes = bytes.len() as u64;
    run.write_json(STATE, state)?;
    if previous > 0 {
        for old in [weights_name(previous), optimizer_name(previous)] {
            let _ = std::fs::remove_file(run.path(&old));
        }
    }
    Ok(())
}

/// Loads the last checkpoint into `model` and `optimizer` (fresh ones of the run's
/// configuration). `None` when the run has no checkpoint yet.
pub fn load(
    run: &RunDir,
    mut model: SwinUnetr,
    optimizer: SegmentationOptimizer,
) -> Result<Option<(TrainState, SwinUnetr, SegmentationOptimizer)>> {
    if !run.path(STATE).exists() {
        return Ok(None);
    }
    let state: TrainState = run.read_json(STATE)?;
    let weights = run.path(&weights_name(state.generation));
    let optimizer_path = run.path(&optimizer_name(state.generation));
    for (path, expected) in [
        (&weights, state.weights_bytes),
        (&optimizer_path, state.optimizer_bytes),
    ] {
        let size = file_size(path)?;
        if size != expected {
            return Err(TrainError::file(
                path,
                format!("checkpoint file has {size} bytes, state.json recorded {expected}"),
            ));
        }
    }
    let report = load_monai_safetensors(&mut model, &weights)
        .map_err(|e| TrainError::file(&weights, e.to_string()))?;
    if !report.is_exact() {
        return Err(TrainError::file(
            &weights,
            format!(
                "checkpoint does not fit the configured network: {} missing, {} unexpected, \
                 {} mismatched tensors",
                report.missing.len(),
                report.unexpected.len(),
                report.mismatched.len()
            ),
        ));
    }
    let model = with_param_ids(model, &state.param_ids)
        .map_err(|e| TrainError::file(run.path(STATE), e))?;
    let bytes = std::fs::read(&optimizer_path).map_err(|e| TrainError::os(&optimizer_path, e))?;
    let optimizer = optimizer
        .load_bytes(&bytes)
        .map_err(|e| TrainError::file(&optimizer_path, e))?;
    Ok(Some((state, model, optimizer)))
}
