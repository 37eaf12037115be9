//! Checkpoint files as other tools write them: key-name normalisation (wrapper
//! prefixes, encoder-only checkpoints) and the SwinUNETR architecture read off tensor
//! names and shapes, so `medssl weights import` can say what a file holds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::store::pytorch_reader::{self, PytorchReader};
use safetensors::Dtype;

use crate::config::SwinUnetrConfig;
use crate::error::ModelError;
use crate::layouts::{Fate, Layout, SMIT_TO_MONAI_MERGE, fate};
use medssl_io::atomic::write_atomically;

/// Why a checkpoint could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", path.display())]
pub struct CheckpointError {
    pub path: PathBuf,
    pub problem: String,
}

fn error(path: &Path, problem: impl Into<String>) -> CheckpointError {
    CheckpointError {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

/// One tensor of a checkpoint: type, shape and little-endian bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct RawTensor {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

/// Tensors with the names a file gave them.
type NamedTensors = Vec<(String, RawTensor)>;

/// The tensors of a checkpoint file under MONAI SwinUNETR key names.
#[derive(Debug, Clone, Default)]
pub struct Checkpoint {
    /// The layout the file's keys were read in.
    pub layout: Layout,
    /// SwinUNETR tensors (`swinViT.*`, `encoder*`, `decoder*`, `out.*`).
    pub tensors: BTreeMap<String, RawTensor>,
    /// Keys of pretext heads and training state that a SwinUNETR never has, left out as
    /// the file's own loader leaves them out (file names).
    pub dropped: Vec<String>,
    /// Keys that are neither SwinUNETR tensors nor known heads (file names), with why:
    /// importing them would lose something, so the importer refuses them unless told.
    pub unused: Vec<(String, String)>,
    /// The wrapper the state dict was found in (`state_dict`, `model`, `student`, ...).
    pub wrapper: Option<String>,
}

/// Top-level entries under which checkpoints commonly keep the state dict.
const WRAPPERS: [&str; 5] = [
    "state_dict",
    "model",
    "student",
    "teacher",
    "network_weights",
];

impl Checkpoint {
    /// Reads a MONAI / SMIT / Tang et al. checkpoint: safetensors, or a PyTorch `.pt` /
    /// `.pth` (zip or legacy pickle) holding a state dict directly or under one of the
    /// usual wrapper entries.
    pub fn read(path: &Path) -> Result<Checkpoint, CheckpointError> {
        let bytes = std::fs::read(path).map_err(|e| error(path, e.to_string()))?;
        // safetensors: an 8-byte header length, then the JSON header.
        let safetensors = bytes.get(8) == Some(&b'{');
        let pickle =
            !safetensors && (bytes.starts_with(b"PK\x03\x04") || bytes.first() == Some(&0x80));
        let (named, wrapper) = if pickle {
            read_pytorch(path)?
        } else {
            crate::sealed::verify(&bytes).map_err(|problem| error(path, problem.to_string()))?;
            (read_safetensors(path, &bytes)?, None)
        };
        let layout = Layout::detect(named.iter().map(|(k, _)| strip_wrapper_prefixes(k)));
        let mut checkpoint = Checkpoint {
            layout,
            wrapper,
            ..Checkpoint::default()
        };
        for (key, tensor) in named {
            match fate(layout, strip_wrapper_prefixes(&key)) {
                Fate::Tensor { name, smit_merge } => {
                    let tensor = if smit_merge {
                        permute_merge_chunks(tensor)
                            .map_err(|why| error(path, format!("{key}: {why}")))?
                    } else {
                        tensor
                    };
                    if checkpoint.tensors.insert(name.clone(), tensor).is_some() {
                        return Err(error(path, format!("two tensors map to {name}")));
                    }
                }
                Fate::Head => checkpoint.dropped.push(key),
                Fate::NoPlace(why) => checkpoint.unused.push((key, why.to_string())),
                Fate::Unknown => checkpoint
                    .unused
                    .push((key, format!("not a tensor of a {}", layout.describe()))),
            }
        }
        if checkpoint.tensors.is_empty() {
            return Err(error(
                path,
                "no SwinUNETR tensors (swinViT.*, encoder*, decoder*, out.*) in this file",
            ));
        }
        checkpoint.dropped.sort();
        checkpoint.unused.sort();
        Ok(checkpoint)
    }

    /// Tensor shapes by name, for [`infer_architecture`].
    pub fn shapes(&self) -> BTreeMap<String, Vec<usize>> {
        self.tensors
            .iter()
            .map(|(k, t)| (k.clone(), t.shape.clone()))
            .collect()
    }

    /// The tensors serialised as safetensors with MONAI key names and the checksum of
    /// their data ([`crate::sealed`]); `path` names the checkpoint in errors.
    pub fn to_safetensors(&self, path: &Path) -> Result<Vec<u8>, CheckpointError> {
        let views = self
            .tensors
            .iter()
            .map(|(k, t)| {
                safetensors::tensor::TensorView::new(t.dtype, t.shape.clone(), &t.data)
                    .map(|v| (k.clone(), v))
                    .map_err(|e| error(path, format!("{k}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let bytes = safetensors::serialize(views, None)
            .map_err(|e| error(path, format!("cannot serialise: {e}")))?;
        crate::sealed::seal(&bytes).map_err(|problem| error(path, problem.to_string()))
    }

    /// Writes the tensors as safetensors with MONAI key names, atomically.
    pub fn write(&self, path: &Path) -> Result<(), CheckpointError> {
        let bytes = self.to_safetensors(path)?;
        write_atomically(path, &bytes).map_err(|e| error(path, e.to_string()))
    }
}

fn read_safetensors(
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<(String, RawTensor)>, CheckpointError> {
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| {
        error(
            path,
            format!("not a readable safetensors or PyTorch checkpoint: {e}"),
        )
    })?;
    Ok(st
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let tensor = RawTensor {
                dtype: view.dtype(),
                shape: view.shape().to_vec(),
                data: view.data().to_vec(),
            };
            (name, tensor)
        })
        .collect())
}

fn pytorch_dtype(d: pytorch_reader::DType) -> Dtype {
    use pytorch_reader::DType as P;
    match d {
        P::F64 => Dtype::F64,
        P::F32 => Dtype::F32,
        P::F16 => Dtype::F16,
        P::BF16 => Dtype::BF16,
        P::I64 => Dtype::I64,
        P::I32 => Dtype::I32,
        P::I16 => Dtype::I16,
        P::I8 => Dtype::I8,
        P::U64 => Dtype::U64,
        P::U32 => Dtype::U32,
        P::U16 => Dtype::U16,
        P::U8 => Dtype::U8,
        P::Bool => Dtype::BOOL,
    }
}

/// Reads a PyTorch pickle. Nested dictionaries come back with dotted keys
/// (`state_dict.module.swinViT...`); when the Swin tensors sit under one of the usual
/// wrapper entries, that entry alone is read (so SMIT's `student` wins over `teacher`).
fn read_pytorch(path: &Path) -> Result<(NamedTensors, Option<String>), CheckpointError> {
    let top = PytorchReader::new(path)
        .map_err(|e| error(path, format!("not a PyTorch state dict: {e}")))?;
    let keys = top.keys();
    let wrapper = WRAPPERS.iter().find(|w| {
        let prefix = format!("{w}.");
        keys.iter()
            .any(|k| k.starts_with(&prefix) && k.contains("patch_embed"))
    });
    let reader = match wrapper {
        Some(w) => PytorchReader::with_top_level_key(path, w)
            .map_err(|e| error(path, format!("cannot read the '{w}' entry: {e}")))?,
        None if keys.iter().any(|k| k.contains("patch_embed")) => top,
        None => {
            return Err(error(
                path,
                format!(
                    "a PyTorch file without Swin tensors (no *patch_embed* key at the top \
                     level or under {WRAPPERS:?})"
                ),
            ));
        }
    };
    let wrapper = wrapper.map(|w| w.to_string());
    let mut out = Vec::new();
    for (name, tensor) in reader.into_tensors() {
        let dtype = pytorch_dtype(tensor.dtype());
        let shape = tensor.shape().to_vec();
        let data = tensor
            .read()
            .map_err(|e| error(path, format!("{name}: {e}")))?;
        out.push((name, RawTensor { dtype, shape, data }));
    }
    Ok((out, wrapper))
}

/// Prefixes that training wrappers put before a network's own names (DataParallel, SSL
/// frameworks' `backbone`), removed in this order.
const WRAPPER_PREFIXES: [&str; 4] = ["module.", "backbone.", "student.", "model."];

/// `key` without the wrapper prefixes of [`WRAPPER_PREFIXES`].
fn strip_wrapper_prefixes(key: &str) -> &str {
    let mut k = key;
    while let Some(rest) = WRAPPER_PREFIXES.iter().find_map(|p| k.strip_prefix(p)) {
        k = rest;
    }
    k
}

/// Puts the eight chunks of a SMIT patch-merging tensor's last axis (`reduction.weight`
/// `[2C, 8C]`, `norm.weight`/`norm.bias` `[8C]`) in MONAI's order.
fn permute_merge_chunks(tensor: RawTensor) -> Result<RawTensor, String> {
    let last = *tensor
        .shape
        .last()
        .ok_or("a scalar where a patch-merging tensor belongs")?;
    if last % 8 != 0 {
        return Err(format!("last axis {last} is not 8 chunks"));
    }
    let row = last * tensor.dtype.bitsize() / 8;
    let chunk = row / 8;
    let mut data = Vec::with_capacity(tensor.data.len());
    for src in tensor.data.chunks_exact(row) {
        for &from in &SMIT_TO_MONAI_MERGE {
            data.extend_from_slice(&src[from * chunk..(from + 1) * chunk]);
        }
    }
    Ok(RawTensor { data, ..tensor })
}

/// The architecture found in a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Architecture {
    pub in_channels: usize,
    /// `None` for an encoder-only checkpoint.
    pub out_channels: Option<usize>,
    pub feature_size: usize,
    pub depths: [usize; 4],
    pub num_heads: [usize; 4],
    pub window_size: usize,
    pub patch_size: usize,
    /// Whether the attention's qkv projection has a bias (MONAI's default; SMIT's has
    /// none).
    pub qkv_bias: bool,
    pub use_v2: bool,
}

impl Architecture {
    /// The network configuration (out channels default to 1 for encoder-only files).
    pub fn config(&self) -> SwinUnetrConfig {
        let mut c = SwinUnetrConfig::new(self.in_channels, self.out_channels.unwrap_or(1));
        c.feature_size = self.feature_size;
        c.depths = self.depths;
        c.num_heads = self.num_heads;
        c.window_size = [self.window_size; 3];
        c.patch_size = self.patch_size;
        c.qkv_bias = self.qkv_bias;
        c.use_v2 = self.use_v2;
        c
    }
}

impl std::fmt::Display for Architecture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SwinUNETR in_channels={} out_channels={} feature_size={} depths={:?} num_heads={:?} \
             window_size={} patch_size={} qkv_bias={} use_v2={}",
            self.in_channels,
            self.out_channels
                .map_or("(encoder only)".to_string(), |c| c.to_string()),
            self.feature_size,
            self.depths,
            self.num_heads,
            self.window_size,
            self.patch_size,
            self.qkv_bias,
            self.use_v2
        )
    }
}

/// Reads the architecture off MONAI-named tensor shapes; the error says which tensor
/// is missing or odd.
pub fn infer_architecture(
    shapes: &BTreeMap<String, Vec<usize>>,
) -> Result<Architecture, ModelError> {
    let get = |name: &str| {
        shapes.get(name).ok_or_else(|| ModelError::MissingTensor {
            name: name.to_string(),
        })
    };
    let embed = get("swinViT.patch_embed.proj.weight")?;
    if embed.len() != 5 {
        return Err(ModelError::Architecture(format!(
            "swinViT.patch_embed.proj.weight has shape {embed:?}, expected 5-D"
        )));
    }
    let (feature_size, in_channels, patch_size) = (embed[0], embed[1], embed[2]);
    let mut depths = [0; 4];
    let mut num_heads = [0; 4];
    let mut window_size = 0;
    for stage in 0..4 {
        let prefix = format!("swinViT.layers{}.0.blocks.", stage + 1);
        depths[stage] = shapes
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .filter_map(|rest| rest.split('.').next()?.parse::<usize>().ok())
            .max()
            .map_or(0, |m| m + 1);
        if depths[stage] == 0 {
            return Err(ModelError::Architecture(format!(
                "no Swin blocks under {prefix}*"
            )));
        }
        let table = get(&format!("{prefix}0.attn.relative_position_bias_table"))?;
        num_heads[stage] = table[1];
        let side = (table[0] as f64).cbrt().round() as usize;
        if side * side * side != table[0] || side % 2 == 0 {
            return Err(ModelError::Architecture(format!(
                "{prefix}0.attn.relative_position_bias_table has {} rows, not (2w-1)^3",
                table[0]
            )));
        }
        window_size = side.div_ceil(2);
    }
    let out_channels = shapes.get("out.conv.conv.weight").map(|s| s[0]);
    Ok(Architecture {
        in_channels,
        out_channels,
        feature_size,
        depths,
        num_heads,
        window_size,
        patch_size,
        qkv_bias: shapes.contains_key("swinViT.layers1.0.blocks.0.attn.qkv.bias"),
        use_v2: shapes.keys().any(|k| k.starts_with("swinViT.layers1c.")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapper_prefixes_are_removed_before_the_layout_is_read() {
        assert_eq!(
            strip_wrapper_prefixes("module.backbone.swinViT.patch_embed.proj.weight"),
            "swinViT.patch_embed.proj.weight"
        );
        assert_eq!(
            strip_wrapper_prefixes("student.model.layers1.0.blocks.0.norm1.weight"),
            "layers1.0.blocks.0.norm1.weight"
        );
    }

    #[test]
    fn smit_merge_chunks_are_reordered_per_row() {
        // Two rows of eight 1-element chunks, f32.
        let values: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let tensor = RawTensor {
            dtype: Dtype::F32,
            shape: vec![2, 8],
            data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        };
        let out = permute_merge_chunks(tensor).unwrap();
        let got: Vec<f32> = out
            .data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                0., 1., 2., 3., 4., 6., 5., 7., 8., 9., 10., 11., 12., 14., 13., 15.
            ]
        );
    }

    #[test]
    fn architecture_is_read_off_shapes() {
        let mut shapes = BTreeMap::new();
        shapes.insert(
            "swinViT.patch_embed.proj.weight".to_string(),
            vec![48, 4, 2, 2, 2],
        );
        for (stage, heads) in [3usize, 6, 12, 24].iter().enumerate() {
            for block in 0..2 {
                shapes.insert(
                    format!(
                        "swinViT.layers{}.0.blocks.{block}.attn.relative_position_bias_table",
                        stage + 1
                    ),
                    vec![2197, *heads],
                );
            }
        }
        let arch = infer_architecture(&shapes).unwrap();
        assert_eq!(arch.feature_size, 48);
        assert_eq!(arch.in_channels, 4);
        assert_eq!(arch.depths, [2; 4]);
        assert_eq!(arch.num_heads, [3, 6, 12, 24]);
        assert_eq!(arch.window_size, 7);
        assert_eq!(arch.out_channels, None);
        shapes.remove("swinViT.patch_embed.proj.weight");
        let err = infer_architecture(&shapes).unwrap_err();
        assert!(
            matches!(&err, ModelError::MissingTensor { name } if name == "swinViT.patch_embed.proj.weight"),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "no tensor swinViT.patch_embed.proj.weight: not a SwinUNETR / Swin encoder checkpoint"
        );
    }
}
