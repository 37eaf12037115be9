//! The last training state of a run, for `--resume`: weights, Adam moments, counters
//! and the validation curve. Randomness needs no state: every random draw comes from a
//! stream derived from the seed and the epoch/iteration counters.
//!
//! Files of one generation (`weights-G.safetensors`, `optimizer-G.bin`) are written
//! first; then the current `state.json` becomes `previous.json`, and the new
//! `state.json`, which names generation G with the size and SHA-256 of each of its
//! files, replaces it atomically; only then are generations older than G-1 removed. A
//! run killed at any moment therefore resumes from a complete checkpoint, and a
//! checkpoint damaged later (a flipped bit, a truncated copy) is detected on load: the
//! run resumes from the generation before it, with a warning naming the bad file.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::Module;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use medssl_io::checksum::{sha256_file, sha256_hex};
use medssl_model::SwinUnetr;
use medssl_model::weights::{export_monai_safetensors, load_monai_safetensors_bytes};
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
    /// SHA-256 of the generation's files, checked on load to catch corruption.
    pub weights_sha256: String,
    /// See `weights_sha256`.
    pub optimizer_sha256: String,
    /// What the loop adds to the generation (`crate::fit`: the totals of a partial
    /// epoch and the objective's own state), saved and restored with it.
    pub extra: serde_json::Value,
    /// The network's parameter ids by module path, which the optimiser state is keyed
    /// on (see `param_ids`).
    pub param_ids: BTreeMap<String, u64>,
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

/// Reads weights written by [`write_monai`] (the `bytes` of the file at `path`) into
/// `model`, which must match exactly.
pub fn read_monai(mut model: SwinUnetr, path: &Path, bytes: Vec<u8>) -> Result<SwinUnetr> {
    let report = load_monai_safetensors_bytes(&mut model, bytes, path)
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
/// heads and teacher together). Burn's default metadata is left out: it is a map
/// serialised in random order, which would make equal weights give different files.
pub fn write_native<M: Module>(model: &M, path: &Path) -> Result<()> {
    let mut store = SafetensorsStore::from_bytes(None).clear_metadata();
    model
        .save_into(&mut store)
        .map_err(|e| TrainError::file(path, format!("cannot collect tensors: {e}")))?;
    let bytes = store
        .get_bytes()
        .map_err(|e| TrainError::file(path, format!("cannot serialise tensors: {e}")))?;
    medssl_io::atomic::write_atomically(path, &bytes).map_err(|e| TrainError::os(path, e))
}

/// Reads weights written by [`write_native`] (the `bytes` of the file at `path`) into
/// `model`, which must match exactly.
pub fn read_native<M: Module>(mut model: M, path: &Path, bytes: Vec<u8>) -> Result<M> {
    let mut store = SafetensorsStore::from_bytes(Some(bytes));
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
    state.generation += 1;
    let weights = run.checkpoint_weights(state.generation);
    write(model, &weights)?;
    let optimizer_path = run.checkpoint_optimizer(state.generation);
    let bytes = optimizer.to_bytes().map_err(|source| TrainError::State {
        path: optimizer_path.clone(),
        source,
    })?;
    run.write(&optimizer_path, &bytes)?;
    state.weights_bytes = file_size(&weights)?;
    state.weights_sha256 = sha256_file(&weights).map_err(|e| TrainError::os(&weights, e))?;
    state.param_ids = param_ids(model);
    state.optimizer_bytes = bytes.len() as u64;
    state.optimizer_sha256 = sha256_hex(&bytes);
    let current = run.checkpoint_state();
    if current.exists() {
        let bytes = std::fs::read(&current).map_err(|e| TrainError::os(&current, e))?;
        run.write(&run.checkpoint_previous(), &bytes)?;
    }
    run.write_json(&current, state)?;
    remove_generations_before(run, state.generation.saturating_sub(1));
    Ok(())
}

/// Removes the checkpoint files of generations older than `oldest_kept` (best effort:
/// a file left behind is only disk space, never read).
fn remove_generations_before(run: &RunDir, oldest_kept: u64) {
    for (path, generation) in run.checkpoint_generations() {
        if generation < oldest_kept {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Whether `run` holds a checkpoint to resume from.
pub fn exists(run: &RunDir) -> bool {
    run.checkpoint_state().is_file()
}

/// Removes the checkpoint of `run` (a finished run that keeps only exported weights);
/// returns the bytes freed. The state file goes first, so an interruption leaves no
/// state naming missing files; calling this again removes what it left.
pub fn remove(run: &RunDir) -> Result<u64> {
    let dir = run.checkpoint_dir();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(0);
    };
    let freed = entries
        .flatten()
        .filter_map(|entry| entry.metadata().ok())
        .map(|metadata| metadata.len())
        .sum();
    for path in [run.checkpoint_state(), run.checkpoint_previous()] {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(TrainError::os(path, e));
            }
            _ => {}
        }
    }
    std::fs::remove_dir_all(&dir).map_err(|e| TrainError::os(&dir, e))?;
    Ok(freed)
}

/// A checkpoint loaded for `--resume`.
pub struct Restored<M> {
    pub state: TrainState,
    pub model: M,
    pub optimizer: SegmentationOptimizer,
    /// Why the latest checkpoint could not be used, when the run resumes from the one
    /// before it.
    pub fallback: Option<String>,
}

/// Loads the last checkpoint into `model` (with `read`, the counterpart of the `write`
/// it was saved with) and `optimizer` (fresh ones of the run's configuration); when the
/// latest generation is damaged, the one before it. `None` when the run has no
/// checkpoint yet; an error naming the bad file when no generation is intact.
pub fn load<M: Module + Clone>(
    run: &RunDir,
    model: M,
    read: impl Fn(M, &Path, Vec<u8>) -> Result<M>,
    optimizer: SegmentationOptimizer,
) -> Result<Option<Restored<M>>> {
    let (current, previous) = (run.checkpoint_state(), run.checkpoint_previous());
    if !current.exists() {
        return Ok(None);
    }
    let latest = match load_generation(run, &current, model.clone(), &read, optimizer.clone()) {
        Ok((state, model, optimizer)) => {
            return Ok(Some(Restored {
                state,
                model,
                optimizer,
                fallback: None,
            }));
        }
        Err(e) => e,
    };
    if !previous.exists() {
        return Err(latest);
    }
    let (state, model, optimizer) = load_generation(run, &previous, model, &read, optimizer)
        .map_err(|previous| {
            TrainError::Invalid(format!(
                "no intact checkpoint to resume from: {latest}; and the previous one: {previous}"
            ))
        })?;
    // The previous generation becomes the current one, so the next save (which reuses
    // the damaged generation's number) keeps it as the fallback.
    let bytes = std::fs::read(&previous).map_err(|e| TrainError::os(&previous, e))?;
    run.write(&current, &bytes)?;
    Ok(Some(Restored {
        fallback: Some(format!(
            "{latest}; resuming from the previous checkpoint (epoch {}, iteration {})",
            state.epoch, state.iteration
        )),
        state,
        model,
        optimizer,
    }))
}

/// Loads the generation that the state file `state_file` describes, checking the size
/// and checksum of each of its files before parsing it.
fn load_generation<M: Module>(
    run: &RunDir,
    state_file: &Path,
    model: M,
    read: impl Fn(M, &Path, Vec<u8>) -> Result<M>,
    optimizer: SegmentationOptimizer,
) -> Result<(TrainState, M, SegmentationOptimizer)> {
    let state: TrainState = run.read_json(state_file)?;
    // Messages name the state file as it lies in the run: `checkpoint/state.json`.
    let state_name = state_file.strip_prefix(run.root()).unwrap_or(state_file);
    let state_name = &state_name.display().to_string();
    let weights = run.checkpoint_weights(state.generation);
    let weights_bytes = read_intact(
        &weights,
        state.weights_bytes,
        &state.weights_sha256,
        state_name,
    )?;
    let optimizer_path = run.checkpoint_optimizer(state.generation);
    let optimizer_bytes = read_intact(
        &optimizer_path,
        state.optimizer_bytes,
        &state.optimizer_sha256,
        state_name,
    )?;
    let model = read(model, &weights, weights_bytes)?;
    let model = with_param_ids(model, &state.param_ids).map_err(|source| TrainError::State {
        path: state_file.to_path_buf(),
        source,
    })?;
    let optimizer = optimizer
        .load_bytes(&optimizer_bytes)
        .map_err(|source| TrainError::State {
            path: optimizer_path,
            source,
        })?;
    Ok((state, model, optimizer))
}

/// The bytes of the checkpoint file at `path`, if they have the size and SHA-256 that
/// the state file `state_name` recorded.
fn read_intact(path: &Path, size: u64, sha256: &str, state_name: &str) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| TrainError::os(path, e))?;
    if bytes.len() as u64 != size {
        return Err(TrainError::file(
            path,
            format!(
                "checkpoint file has {} bytes, {state_name} recorded {size}",
                bytes.len()
            ),
        ));
    }
    let actual = sha256_hex(&bytes);
    if actual != sha256 {
        return Err(TrainError::file(
            path,
            format!("checkpoint file is corrupt: SHA-256 {actual}, {state_name} recorded {sha256}"),
        ));
    }
    Ok(bytes)
}
