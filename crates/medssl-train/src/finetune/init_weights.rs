//! Pretrained initial weights: checked against the run's network before anything is
//! written, then loaded with a key report that the run keeps and the CLI prints.
//!
//! A file may be an SSL encoder, a whole SwinUNETR, or a MONAI/SMIT PyTorch checkpoint.
//! Its architecture is read off the tensor shapes. Input channels, feature size and the
//! Swin layout must equal the run's; a whole SwinUNETR trained for another number of
//! classes gives everything but its output head, which starts from the seed (as a
//! transfer study expects).

use std::path::{Path, PathBuf};

use medssl_model::checkpoint::{Architecture, Checkpoint, infer_architecture};
use medssl_model::weights::load_monai_safetensors_bytes;
use medssl_model::{SwinUnetr, SwinUnetrConfig};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// Prefix of the output head's tensors (MONAI `out.conv.conv.*`).
const HEAD: &str = "out.";

/// What loading the initial weights did, saved as `init_report.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InitReport {
    pub weights: PathBuf,
    /// The architecture found in the file.
    pub architecture: String,
    /// Network tensors that received a value (MONAI names).
    pub loaded: Vec<String>,
    /// Network tensors the file did not provide: they start from the seed.
    pub missing: Vec<String>,
    /// File tensors the network has no place for.
    pub unexpected: Vec<String>,
    /// Why the file's output head was not used, when it was not.
    pub head_not_loaded: Option<String>,
}

impl InitReport {
    /// A few lines for a person: counts, and the names when there are few.
    pub fn summary(&self) -> String {
        let names = |list: &[String]| -> String {
            match list.len() {
                0 => "none".into(),
                1..=6 => list.join(", "),
                n => format!("{n} ({}, ...)", list[..3].join(", ")),
            }
        };
        let mut text = format!(
            "init {}: {}\n  loaded {} tensors; missing (from the seed): {}; unexpected: {}",
            self.weights.display(),
            self.architecture,
            self.loaded.len(),
            names(&self.missing),
            names(&self.unexpected)
        );
        if let Some(why) = &self.head_not_loaded {
            text.push_str(&format!("\n  output head not loaded: {why}"));
        }
        text
    }
}

/// Reads `path` and checks that it fits `network` (the task has `channels`); the error
/// names the file, both values and the setting that would fix it.
pub fn check_weights(
    path: &Path,
    network: &SwinUnetrConfig,
    channels: &[String],
) -> Result<(Checkpoint, Architecture)> {
    let checkpoint = Checkpoint::read(path).map_err(|e| TrainError::Invalid(e.to_string()))?;
    let arch = infer_architecture(&checkpoint.shapes()).map_err(|why| {
        TrainError::file(path, format!("cannot read a SwinUNETR architecture: {why}"))
    })?;
    if arch.in_channels != network.in_channels {
        return Err(TrainError::file(
            path,
            format!(
                "the weights take {} input channel(s), the task has {} ({}); pick weights \
                 pretrained on {} channel(s)",
                arch.in_channels,
                network.in_channels,
                channels.join(", "),
                network.in_channels
            ),
        ));
    }
    if arch.feature_size != network.feature_size {
        return Err(TrainError::file(
            path,
            format!(
                "the weights have feature size {}, this run {}; add --set model.feature_size={}",
                arch.feature_size, network.feature_size, arch.feature_size
            ),
        ));
    }
    if arch.use_v2 != network.use_v2 {
        return Err(TrainError::file(
            path,
            format!(
                "the weights are a SwinUNETR with use_v2={}, this run has use_v2={}; add --set \
                 model.use_v2={}",
                arch.use_v2, network.use_v2, arch.use_v2
            ),
        ));
    }
    let layout = |depths: [usize; 4], heads: [usize; 4], window: usize, patch: usize| {
        format!("depths {depths:?}, heads {heads:?}, window {window}, patch {patch}")
    };
    let theirs = layout(
        arch.depths,
        arch.num_heads,
        arch.window_size,
        arch.patch_size,
    );
    let ours = layout(
        network.depths,
        network.num_heads,
        network.window_size[0],
        network.patch_size,
    );
    if theirs != ours {
        return Err(TrainError::file(
            path,
            format!("the weights' Swin layout ({theirs}) differs from this run's ({ours})"),
        ));
    }
    Ok((checkpoint, arch))
}

/// Checks and loads `path` into `model`.
pub fn load_weights(
    model: &mut SwinUnetr,
    path: &Path,
    network: &SwinUnetrConfig,
    channels: &[String],
) -> Result<InitReport> {
    let (mut checkpoint, arch) = check_weights(path, network, channels)?;
    let head_not_loaded = match arch.out_channels {
        Some(classes) if classes != network.out_channels => {
            checkpoint.tensors.retain(|name, _| !name.starts_with(HEAD));
            Some(format!(
                "the weights predict {classes} classes, the task has {}",
                network.out_channels
            ))
        }
        _ => None,
    };
    let bytes = checkpoint
        .to_safetensors(path)
        .map_err(|e| TrainError::Invalid(e.to_string()))?;
    let report = load_monai_safetensors_bytes(model, bytes, path)
        .map_err(|e| TrainError::Invalid(e.to_string()))?;
    if let Some((name, why)) = report.mismatched.first() {
        return Err(TrainError::file(
            path,
            format!(
                "{} tensors do not fit the network (first: {name}: {why})",
                report.mismatched.len()
            ),
        ));
    }
    if report.loaded.is_empty() {
        return Err(TrainError::file(
            path,
            "no tensor of the file matches a SwinUNETR tensor name",
        ));
    }
    Ok(InitReport {
        weights: path.to_path_buf(),
        architecture: arch.to_string(),
        loaded: report.loaded,
        missing: report.missing,
        unexpected: report.unexpected,
        head_not_loaded,
    })
}
