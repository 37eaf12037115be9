//! Pretrained initial weights: checked against the run's network before anything is
//! written, then loaded with a key report that the run keeps and the CLI prints.
//!
//! A file may be an SSL encoder, a whole SwinUNETR, or a MONAI/SMIT PyTorch checkpoint.
//! Its architecture is read off the tensor shapes. Input channels, feature size and the
//! Swin layout must equal the run's; a whole SwinUNETR trained for another number of
//! classes gives everything but its output head, which starts from the seed (as a
//! transfer study expects).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use medssl_model::foreign::{Architecture, Checkpoint, infer_architecture};
use medssl_model::import::{ImportReport, abbreviated, import_checkpoint, per_stage};
use medssl_model::layouts::Layout;
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
    /// The layout the file was read in.
    pub layout: Option<Layout>,
    /// Network tensors loaded per stage (`patch_embed`, `layers1`.., `decoder`).
    pub loaded_per_stage: BTreeMap<String, usize>,
    /// Network tensors that received a value (MONAI names).
    pub loaded: Vec<String>,
    /// Network tensors the file did not provide (never encoder tensors): they start
    /// from the seed.
    pub missing: Vec<String>,
    /// Pretext heads of the file, left out.
    pub left_out: Vec<String>,
    /// File tensors the network has no place for (imported with `--allow-unused`).
    pub unexpected: Vec<String>,
    /// Why the file's output head was not used, when it was not.
    pub head_not_loaded: Option<String>,
}

impl InitReport {
    /// A few lines for a person: counts, and the names when there are few.
    pub fn summary(&self) -> String {
        let mut text = format!(
            "init {}: {}\n  loaded {} tensors ({}); missing (from the seed): {}; left out \
             (pretext heads): {}; not imported: {}",
            self.weights.display(),
            self.architecture,
            self.loaded.len(),
            per_stage(&self.loaded_per_stage),
            abbreviated(&self.missing),
            abbreviated(&self.left_out),
            abbreviated(&self.unexpected)
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
    let checkpoint = Checkpoint::read(path)?;
    let arch =
        infer_architecture(&checkpoint.shapes()).map_err(|source| TrainError::Architecture {
            path: path.to_path_buf(),
            source: Box::new(source),
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
    let layout = |depths: [usize; 4], heads: [usize; 4], window: usize, patch: usize, bias| {
        format!(
            "depths {depths:?}, heads {heads:?}, window {window}, patch {patch}, qkv bias {bias}"
        )
    };
    let theirs = layout(
        arch.depths,
        arch.num_heads,
        arch.window_size,
        arch.patch_size,
        arch.qkv_bias,
    );
    let ours = layout(
        network.depths,
        network.num_heads,
        network.window_size[0],
        network.patch_size,
        network.qkv_bias,
    );
    if theirs != ours {
        let list = |v: [usize; 4]| format!("{v:?}").replace(' ', "");
        return Err(TrainError::file(
            path,
            format!(
                "the weights' Swin layout ({theirs}) differs from this run's ({ours}); add \
                 --set 'model.depths={}' --set 'model.num_heads={}' --set \
                 model.window_size={} --set model.qkv_bias={}",
                list(arch.depths),
                list(arch.num_heads),
                arch.window_size,
                arch.qkv_bias
            ),
        ));
    }
    Ok((checkpoint, arch))
}

/// Checks `path` against `network` as [`check_weights`] does, then imports it into a
/// throw-away network of that configuration, so a file whose encoder is incomplete (or
/// that holds leftovers, unless `allow_unused`) is refused before a run is created.
pub fn check_import(
    path: &Path,
    network: &SwinUnetrConfig,
    channels: &[String],
    allow_unused: bool,
) -> Result<()> {
    let mut model = SwinUnetr::new(network, &Device::flex())
        .map_err(|e| TrainError::file(path, e.to_string()))?;
    load_weights(&mut model, path, network, channels, allow_unused).map(|_| ())
}

/// Checks and loads `path` into `model` under the import rule
/// ([`medssl_model::import`]): every encoder tensor from the file, leftovers that are
/// not known heads refused unless `allow_unused`.
pub fn load_weights(
    model: &mut SwinUnetr,
    path: &Path,
    network: &SwinUnetrConfig,
    channels: &[String],
    allow_unused: bool,
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
    let report = import_checkpoint(model, &checkpoint, path, allow_unused)
        .map_err(|e| TrainError::file(path, e.problem))?;
    let ImportReport {
        layout,
        loaded_per_stage,
        loaded,
        missing,
        left_out,
        unused,
    } = report;
    Ok(InitReport {
        weights: path.to_path_buf(),
        architecture: arch.to_string(),
        layout: Some(layout),
        loaded_per_stage,
        loaded,
        missing,
        left_out,
        unexpected: unused.into_iter().map(|(k, _)| k).collect(),
        head_not_loaded,
    })
}
