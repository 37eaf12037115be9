//! Loading MONAI SwinUNETR weights (safetensors with MONAI's state-dict key names) and
//! reporting what matched, as PyTorch's `load_state_dict(strict=False)` does.

use std::path::Path;

use burn::store::{
    ApplyError, BurnToPyTorchAdapter, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore,
};

use medssl_io::atomic::write_atomically;

use crate::swin::geometry::relative_position_index;

use crate::config::SwinUnetrConfig;
use crate::sealed;
use crate::swin::SwinTransformer;
use crate::swin_unetr::SwinUnetr;

/// What loading a checkpoint into a network did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    /// Network tensors that received a value (MONAI names).
    pub loaded: Vec<String>,
    /// Network tensors the file did not provide (they keep their initial values).
    pub missing: Vec<String>,
    /// File tensors the network has no place for.
    pub unexpected: Vec<String>,
    /// Tensors present on both sides with different shapes or types, with the reason.
    pub mismatched: Vec<(String, String)>,
}

impl LoadReport {
    /// True when every network tensor was loaded and nothing was left over.
    pub fn is_exact(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.mismatched.is_empty()
    }
}

/// Why a checkpoint could not be loaded at all.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", path.display())]
pub struct WeightsError {
    pub path: std::path::PathBuf,
    pub problem: String,
}

/// Our module path to MONAI's key name.
fn monai_name(path: &str) -> String {
    let path = path
        .strip_prefix("swin_vit.")
        .map(|rest| format!("swinViT.{rest}"))
        .unwrap_or_else(|| path.to_string());
    // Burn names LayerNorm parameters gamma/beta; PyTorch weight/bias.
    if let Some(stem) = path.strip_suffix(".gamma") {
        format!("{stem}.weight")
    } else if let Some(stem) = path.strip_suffix(".beta") {
        format!("{stem}.bias")
    } else {
        path
    }
}

/// Loads a safetensors file with MONAI key names into `model`, leaving tensors the
/// file lacks as they are (the normal case for an encoder-only SSL checkpoint).
/// A checksum recorded in the file ([`crate::sealed`]) is checked first: a corrupt file
/// is an error, never loaded.
pub fn load_monai_safetensors(
    model: &mut SwinUnetr,
    path: &Path,
) -> Result<LoadReport, WeightsError> {
    let fail = |problem: String| WeightsError {
        path: path.to_path_buf(),
        problem,
    };
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    sealed::verify(&bytes).map_err(|e| fail(e.to_string()))?;
    load_from_store(model, SafetensorsStore::from_bytes(Some(bytes)), path)
}

/// [`load_monai_safetensors`] for safetensors bytes already in memory (a checkpoint
/// converted from another format); `origin` names them in errors.
pub fn load_monai_safetensors_bytes(
    model: &mut SwinUnetr,
    bytes: Vec<u8>,
    origin: &Path,
) -> Result<LoadReport, WeightsError> {
    load_from_store(model, SafetensorsStore::from_bytes(Some(bytes)), origin)
}

fn load_from_store(
    model: &mut SwinUnetr,
    store: SafetensorsStore,
    path: &Path,
) -> Result<LoadReport, WeightsError> {
    let mut store = store
        .with_from_adapter(PyTorchToBurnAdapter)
        .with_key_remapping(r"^swinViT\.", "swin_vit.")
        .allow_partial(true)
        // Shape mismatches are reported in the result, not raised, so the caller sees all.
        .validate(false);
    let result = model.load_from(&mut store).map_err(|e| WeightsError {
        path: path.to_path_buf(),
        problem: format!("cannot read safetensors: {e}"),
    })?;
    let mut report = LoadReport {
        loaded: result.applied.iter().map(|p| monai_name(p)).collect(),
        missing: result.missing.iter().map(|(p, _)| monai_name(p)).collect(),
        // MONAI's relative_position_index buffers are derived from the window size and
        // rebuilt here, so they are expected in a MONAI file rather than left over.
        unexpected: result
            .unused
            .iter()
            .map(|p| monai_name(p))
            .filter(|k| !k.ends_with(".relative_position_index"))
            .collect(),
        mismatched: Vec::new(),
    };
    for error in &result.errors {
        let (path, reason) = match error {
            ApplyError::ShapeMismatch {
                path,
                expected,
                found,
            } => (
                path.clone(),
                format!("shape {found:?} in file, {expected:?} in network"),
            ),
            ApplyError::DTypeMismatch {
                path,
                expected,
                found,
            } => (
                path.clone(),
                format!("dtype {found:?} in file, {expected:?} in network"),
            ),
            other => (String::new(), format!("{other:?}")),
        };
        report.mismatched.push((monai_name(&path), reason));
    }
    for list in [
        &mut report.loaded,
        &mut report.missing,
        &mut report.unexpected,
    ] {
        list.sort();
    }
    Ok(report)
}

/// Writes `model` as a MONAI state dict in safetensors: every parameter under MONAI's
/// key name, in PyTorch layout, plus the `relative_position_index` buffers that MONAI
/// registers, so `SwinUNETR.load_state_dict(..., strict=True)` accepts the file. The
/// file records the checksum of its data ([`crate::sealed`]); the write is atomic
/// (temporary file, then rename).
pub fn export_monai_safetensors(model: &SwinUnetr, path: &Path) -> Result<(), WeightsError> {
    write_monai(model, "", model.config(), path)
}

/// Writes a pretrained encoder alone under MONAI's `swinViT.*` key names (with its
/// `relative_position_index` buffers): what MONAI's `SwinUNETR.load_state_dict(...,
/// strict=False)` and `medssl finetune --init` load as an SSL encoder. `config` is the
/// network the encoder was built from. Atomic, as [`export_monai_safetensors`].
pub fn export_encoder_safetensors(
    encoder: &SwinTransformer,
    config: &SwinUnetrConfig,
    path: &Path,
) -> Result<(), WeightsError> {
    write_monai(encoder, "swin_vit.", config, path)
}

/// Writes `module`'s tensors, their module paths prefixed with `prefix`, under MONAI
/// names, with the window index buffers of the encoder of `config`.
fn write_monai<M: ModuleSnapshot>(
    module: &M,
    prefix: &str,
    config: &SwinUnetrConfig,
    path: &Path,
) -> Result<(), WeightsError> {
    let fail = |problem: String| WeightsError {
        path: path.to_path_buf(),
        problem,
    };
    let mut store = SafetensorsStore::from_bytes(None).with_to_adapter(BurnToPyTorchAdapter);
    module
        .save_into(&mut store)
        .map_err(|e| fail(format!("cannot collect tensors: {e}")))?;
    let bytes = store
        .get_bytes()
        .map_err(|e| fail(format!("cannot serialise tensors: {e}")))?;
    let parsed = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| fail(format!("cannot re-read tensors: {e}")))?;

    let index: Vec<u8> = relative_position_index(config.window_size)
        .into_iter()
        .flat_map(|i| (i as i64).to_le_bytes())
        .collect();
    let n = config.window_size.iter().product::<usize>();
    let mut tensors: Vec<(String, safetensors::tensor::TensorView<'_>)> = parsed
        .tensors()
        .into_iter()
        .map(|(name, view)| (monai_name(&format!("{prefix}{name}")), view))
        .collect();
    for (stage, &depth) in config.depths.iter().enumerate() {
        for block in 0..depth {
            let name = format!(
                "swinViT.layers{}.0.blocks.{block}.attn.relative_position_index",
                stage + 1
            );
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::I64, vec![n, n], &index)
                    .map_err(|e| fail(format!("index tensor: {e}")))?;
            tensors.push((name, view));
        }
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let out = safetensors::serialize(tensors, None)
        .map_err(|e| fail(format!("cannot serialise: {e}")))?;
    let out = sealed::seal(&out).map_err(|e| fail(e.to_string()))?;
    write_atomically(path, &out).map_err(|e| fail(e.to_string()))
}
