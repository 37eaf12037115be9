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

use burn::module::Module;
use burn::store::{ModuleSnapshot, SafetensorsStore};
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

/// SwinUNETR weights under MONAI's key names (fine-tuning checkpoints), so MONAI can
/// load a checkpoint as it is.
pub fn write_monai(model: &SwinUnetr, path: &Path) -> Result<()> {
    export_monai_safetensors(model, path).map_err(|e| TrainError::file(path, e.to_string()))
}

/// Reads weights written by [`write_monai`] into `model`, which must match exactly.
pub fn read_monai(mut model: SwinUnetr, path: &Path) -> Result<SwinUnetr> {
    let report = load_monai_safetensors(&mut model, path)
        .map_err(|e| TrainError::file(path, e.to_string()))?;
    if !report.is_exact() {
        return Err(TrainError::file(
            path,
            format!(
                "checkpoint does not fit the configured network: {} missing, {} unexpected, \
                 {} mismatched tensors",
                report.missing.len(),
                report.unexpected.len(),
                report.mismatched.len()
            ),
        ));
    }
    Ok(model)
}

/// Any module's weights under Burn's own module paths (a pretraining method's encoder,
/// heads and teacher together).
pub fn write_native<M: Module>(model: &M, path: &Path) -> Result<()> {
    let mut store = SafetensorsStore::from_bytes(None);
    model
        .save_into(&mut store)
        .map_err(|e| TrainError::file(path, format!("cannot collect tensors: {e}")))?;
    let bytes = store
        .get_bytes()
        .map_err(|e| TrainError::file(path, format!("cannot serialise tensors: {e}")))?;
    medssl_io::atomic::write_atomically(path, &bytes).map_err(|e| TrainError::os(path, e))
}

/// Reads weights written by [`write_native`] into `model`, which must match exactly.
pub fn read_native<M: Module>(mut model: M, path: &Path) -> Result<M> {
    let mut store = SafetensorsStore::from_file(path);
    let result = model
        .load_from(&mut store)
        .map_err(|e| TrainError::file(path, format!("cannot read the checkpoint: {e}")))?;
    if !result.missing.is_empty() || !result.unused.is_empty() || !result.errors.is_empty() {
        return Err(TrainError::file(
            path,
            format!(
                "checkpoint does not fit the configured method: {} missing, {} unexpected, \
                 {} mismatched tensors",
                result.missing.len(),
                result.unused.len(),
                result.errors.len()
            ),
        ));
    }
    Ok(model)
}

/// Saves `state` (its generation is bumped) with the model, written by `write` (one of
/// [`write_monai`], [`write_native`]), and the optimiser.
pub fn save<M: Module>(
    run: &RunDir,
    state: &mut TrainState,
    model: &M,
    write: impl Fn(&M, &Path) -> Result<()>,
    optimizer: &SegmentationOptimizer,
) -> Result<()> {
    let previous = state.generation;
    state.generation += 1;
    let weights = run.path(&weights_name(state.generation));
    write(model, &weights)?;
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

/// Loads the last checkpoint into `model` (with `read`, the counterpart of the `write`
/// it was saved with) and `optimizer` (fresh ones of the run's
/// configuration). `None` when the run has no checkpoint yet.
pub fn load<M: Module>(
    run: &RunDir,
    model: M,
    read: impl Fn(M, &Path) -> Result<M>,
    optimizer: SegmentationOptimizer,
) -> Result<Option<(TrainState, M, SegmentationOptimizer)>> {
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
    let model = read(model, &weights)?;
    let model = with_param_ids(model, &state.param_ids)
        .map_err(|e| TrainError::file(run.path(STATE), e))?;
    let bytes = std::fs::read(&optimizer_path).map_err(|e| TrainError::os(&optimizer_path, e))?;
    let optimizer = optimizer
        .load_bytes(&bytes)
        .map_err(|e| TrainError::file(&optimizer_path, e))?;
    Ok(Some((state, model, optimizer)))
}
