//! `run.json` of a fine-tune run: what it was made from. The loop writes it when a run
//! starts and reads it on resume; opening a trained run reads it too.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `run.json`: what a run was made from, so `--resume`, `evaluate` and `predict` need
/// only the run directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The task directory, absolute.
    pub task: PathBuf,
    /// The initial weights (`None`: from scratch).
    pub init: Option<PathBuf>,
    /// Whether the initial weights were imported with `--allow-unused`.
    pub init_allow_unused: bool,
    /// Image channels of the task.
    pub channels: usize,
    /// Classes including background.
    pub classes: usize,
}
