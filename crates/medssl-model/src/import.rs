//! Importing a checkpoint into a network with nothing lost silently: every encoder
//! tensor of the network must come from the file, and a file tensor that lands nowhere
//! is an error unless it is a known pretext head or the caller allows leftovers.
//!
//! This is the one rule behind `medssl weights import`, `medssl finetune --init` and a
//! study's `import:` rows.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::foreign::Checkpoint;
use crate::layouts::Layout;
use crate::swin_unetr::SwinUnetr;
use crate::weights::{LoadReport, WeightsError, load_monai_safetensors_bytes};

/// What an import did, for the key report a run keeps and the CLI prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportReport {
    /// The layout the file was read in.
    pub layout: Layout,
    /// Network tensors loaded, per stage (`patch_embed`, `layers1`..`layers4`,
    /// `layers1c`..`layers4c` with `use_v2`, `decoder` for everything outside the Swin
    /// encoder).
    pub loaded_per_stage: BTreeMap<String, usize>,
    /// Network tensors that received a value (MONAI names).
    pub loaded: Vec<String>,
    /// Network tensors outside the encoder that the file did not provide (the decoder
    /// of an encoder-only file): they keep their initial values.
    pub missing: Vec<String>,
    /// Known pretext heads of the file, left out (file names).
    pub left_out: Vec<String>,
    /// File tensors that went nowhere, with why (only with `allow_unused`).
    pub unused: Vec<(String, String)>,
}

impl ImportReport {
    /// One line per stage, then what was left out, for a person.
    pub fn summary(&self) -> String {
        let mut text = format!(
            "{}: loaded {} tensors ({})",
            self.layout.describe(),
            self.loaded.len(),
            per_stage(&self.loaded_per_stage)
        );
        if !self.left_out.is_empty() {
            text.push_str(&format!(
                "\n  left out {} pretext-head tensors: {}",
                self.left_out.len(),
                abbreviated(&self.left_out)
            ));
        }
        if !self.unused.is_empty() {
            let names: Vec<String> = self.unused.iter().map(|(k, _)| k.clone()).collect();
            text.push_str(&format!(
                "\n  not imported (--allow-unused) {} tensors: {}",
                self.unused.len(),
                abbreviated(&names)
            ));
        }
        if !self.missing.is_empty() {
            text.push_str(&format!(
                "\n  {} tensors outside the encoder start from the seed: {}",
                self.missing.len(),
                abbreviated(&self.missing)
            ));
        }
        text
    }
}

/// `stage n` for each stage, comma-separated.
pub fn per_stage(counts: &BTreeMap<String, usize>) -> String {
    let stages: Vec<String> = counts
        .iter()
        .map(|(stage, n)| format!("{stage} {n}"))
        .collect();
    stages.join(", ")
}

/// Up to six names, else the first three.
pub fn abbreviated(names: &[String]) -> String {
    match names.len() {
        0 => "none".into(),
        1..=6 => names.join(", "),
        _ => format!("{}, ...", names[..3].join(", ")),
    }
}

/// The stage a MONAI SwinUNETR tensor belongs to.
pub fn stage_of(name: &str) -> String {
    match name.strip_prefix("swinViT.") {
        Some(rest) => rest.split('.').next().unwrap_or(rest).to_string(),
        None => "decoder".to_string(),
    }
}

/// Loads `checkpoint` into `model` under the import rule: mismatched shapes and missing
/// encoder tensors are errors naming the tensors; leftovers that are not known heads are
/// an error unless `allow_unused`. `origin` names the file in errors.
pub fn import_checkpoint(
    model: &mut SwinUnetr,
    checkpoint: &Checkpoint,
    origin: &Path,
    allow_unused: bool,
) -> Result<ImportReport, WeightsError> {
    let fail = |problem: String| WeightsError {
        path: origin.to_path_buf(),
        problem,
    };
    let bytes = checkpoint
        .to_safetensors(origin)
        .map_err(|e| fail(e.problem))?;
    let LoadReport {
        loaded,
        missing,
        unexpected,
        mismatched,
    } = load_monai_safetensors_bytes(model, bytes, origin)?;
    if !mismatched.is_empty() {
        let list: Vec<String> = mismatched
            .iter()
            .map(|(k, why)| format!("{k}: {why}"))
            .collect();
        return Err(fail(format!(
            "{} tensors do not fit the network: {}",
            mismatched.len(),
            list.join("; ")
        )));
    }
    let (missing_encoder, missing): (Vec<String>, Vec<String>) =
        missing.into_iter().partition(|k| k.starts_with("swinViT."));
    if !missing_encoder.is_empty() {
        return Err(fail(format!(
            "the file ({}) lacks {} of the network's {} encoder tensors, which would stay \
             random: {}",
            checkpoint.layout.describe(),
            missing_encoder.len(),
            missing_encoder.len() + loaded.iter().filter(|k| k.starts_with("swinViT.")).count(),
            missing_encoder.join(", ")
        )));
    }
    let mut unused = checkpoint.unused.clone();
    unused.extend(
        unexpected
            .into_iter()
            .map(|k| (k, "the network has no tensor of this name".to_string())),
    );
    if !unused.is_empty() && !allow_unused {
        let list: Vec<String> = unused
            .iter()
            .map(|(k, why)| format!("{k} ({why})"))
            .collect();
        return Err(fail(format!(
            "{} tensors of the file ({}) have no place in the network and are not known \
             pretext heads: {}. Pass --allow-unused to import the rest anyway",
            unused.len(),
            checkpoint.layout.describe(),
            list.join("; ")
        )));
    }
    let mut loaded_per_stage = BTreeMap::new();
    for name in &loaded {
        *loaded_per_stage.entry(stage_of(name)).or_insert(0) += 1;
    }
    Ok(ImportReport {
        layout: checkpoint.layout,
        loaded_per_stage,
        loaded,
        missing,
        left_out: checkpoint.dropped.clone(),
        unused,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensors_are_counted_by_stage() {
        assert_eq!(stage_of("swinViT.patch_embed.proj.weight"), "patch_embed");
        assert_eq!(
            stage_of("swinViT.layers3.0.blocks.1.mlp.linear1.weight"),
            "layers3"
        );
        assert_eq!(
            stage_of("swinViT.layers2c.0.layer.conv1.conv.weight"),
            "layers2c"
        );
        assert_eq!(stage_of("decoder1.layer.conv1.conv.weight"), "decoder");
        assert_eq!(stage_of("out.conv.conv.bias"), "decoder");
    }
}
