//! The key layouts in which public SwinUNETR and Swin-encoder checkpoints are published,
//! and where each key of them goes in MONAI's SwinUNETR.
//!
//! A public checkpoint is useful only if every encoder tensor reaches the network; a key
//! kept under a foreign name is a tensor silently lost. So every key of a file gets a
//! [`Fate`]: a MONAI name, a known pretext head left out on purpose, a tensor of the
//! file's architecture that MONAI's SwinUNETR has no place for, or unknown. The importer
//! ([`crate::import`]) refuses files whose encoder is incomplete and, unless asked,
//! files with leftovers that are not known heads.

use serde::{Deserialize, Serialize};

/// Who wrote a checkpoint, read off its key names (after wrapper prefixes are removed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// A MONAI `SwinUNETR` state dict (`swinViT.*`, `encoder1.*`, `decoder*`, `out.*`);
    /// medssl's own files.
    #[default]
    Monai,
    /// Tang et al.'s released `model_swinvit.pt`: the encoder alone (`patch_embed.*`,
    /// `layersN.0.blocks.*` with the MLP as `mlp.fc1`/`mlp.fc2`), beside the heads of
    /// their pretraining network. MONAI reads it with `SwinUNETR.load_from`.
    Tang,
    /// MONAI's `ssl_pretrained_weights.pth`: `encoder.patch_embed.*`,
    /// `encoder.layersN.0.0.blocks.*`, read by MONAI's `filter_swinunetr`.
    MonaiSsl,
    /// The SMIT repository's encoder (`patch_embed.*`, `layers.{i}.blocks.*`,
    /// `layers.{i}.downsample.*`, output norms `norm{i}`), loaded there into its
    /// `SwinTransformer_Unetr`.
    Smit,
}

impl Layout {
    /// Recognises the layout from the file's keys (wrapper prefixes removed).
    pub fn detect<'a>(keys: impl IntoIterator<Item = &'a str> + Clone) -> Layout {
        let any = |test: &dyn Fn(&str) -> bool| keys.clone().into_iter().any(test);
        if any(&|k| k.starts_with("layers.") && k.contains(".blocks.")) {
            Layout::Smit
        } else if any(&|k| k.starts_with("encoder.patch_embed.") || k.starts_with("encoder.layers"))
        {
            Layout::MonaiSsl
        } else if any(&|k| k.starts_with("patch_embed.") || is_stage_key(k)) {
            Layout::Tang
        } else {
            Layout::Monai
        }
    }

    /// A name for people.
    pub fn describe(self) -> &'static str {
        match self {
            Layout::Monai => "MONAI SwinUNETR state dict",
            Layout::Tang => "Tang et al. Swin encoder (model_swinvit.pt)",
            Layout::MonaiSsl => "MONAI SSL pretrained weights (ssl_pretrained_weights.pth)",
            Layout::Smit => "SMIT pretrained encoder",
        }
    }
}

/// Where one key of a checkpoint goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Loaded under this MONAI SwinUNETR name.
    Tensor {
        name: String,
        /// The tensor is a patch-merging weight whose eight input chunks (last axis)
        /// are in SMIT's order and must be put in MONAI's ([`SMIT_TO_MONAI_MERGE`]).
        smit_merge: bool,
    },
    /// A pretext head or training state of the method that wrote the file, which a
    /// SwinUNETR never has: left out, as the file's own loader does.
    Head,
    /// A tensor of the file's network that MONAI's SwinUNETR has no place for.
    NoPlace(&'static str),
    /// Not a known part of any layout.
    Unknown,
}

/// Pretext heads of the published pretraining networks (Tang et al.'s rotation,
/// contrastive and reconstruction heads; masked-image tokens).
const HEADS: [&str; 5] = [
    "rotation_head.",
    "rotation_pre.",
    "contrastive_head.",
    "contrastive_pre.",
    "conv.",
];

/// MONAI's chunk order of the eight sub-grids in patch merging (offsets along D, H, W)
/// and SMIT's: they differ in the sixth and seventh chunk.
const MONAI_MERGE: [[u8; 3]; 8] = [
    [0, 0, 0],
    [1, 0, 0],
    [0, 1, 0],
    [0, 0, 1],
    [1, 1, 0],
    [1, 0, 1],
    [0, 1, 1],
    [1, 1, 1],
];
const SMIT_MERGE: [[u8; 3]; 8] = [
    [0, 0, 0],
    [1, 0, 0],
    [0, 1, 0],
    [0, 0, 1],
    [1, 1, 0],
    [0, 1, 1],
    [1, 0, 1],
    [1, 1, 1],
];

/// For each chunk position of MONAI's merging input, the chunk of SMIT's holding the
/// same sub-grid.
pub const SMIT_TO_MONAI_MERGE: [usize; 8] = smit_to_monai();

const fn smit_to_monai() -> [usize; 8] {
    let mut out = [0; 8];
    let mut m = 0;
    while m < 8 {
        let mut s = 0;
        while s < 8 {
            let (a, b) = (MONAI_MERGE[m], SMIT_MERGE[s]);
            if a[0] == b[0] && a[1] == b[1] && a[2] == b[2] {
                out[m] = s;
            }
            s += 1;
        }
        m += 1;
    }
    out
}

/// True for `layersN.*` and `layersNc.*` with N in 1..=4 (Tang's and MONAI's stage
/// names, without the `swinViT.` prefix).
fn is_stage_key(key: &str) -> bool {
    key.strip_prefix("layers").is_some_and(|rest| {
        rest.starts_with(['1', '2', '3', '4']) && matches!(rest.get(1..2), Some("." | "c"))
    })
}

/// MONAI's MLP names (`linear1`, `linear2`) for the original Swin ones (`fc1`, `fc2`).
fn monai_mlp(key: &str) -> String {
    key.replace(".mlp.fc1.", ".mlp.linear1.")
        .replace(".mlp.fc2.", ".mlp.linear2.")
}

fn tensor(name: String) -> Fate {
    Fate::Tensor {
        name: monai_mlp(&name),
        smit_merge: false,
    }
}

/// Where `key` (wrapper prefixes removed) of a file in `layout` goes.
pub fn fate(layout: Layout, key: &str) -> Fate {
    if HEADS.iter().any(|h| key.starts_with(h)) || key == "mask_token" {
        return Fate::Head;
    }
    match layout {
        Layout::Monai => {
            let key = match key.strip_prefix("swin_vit.") {
                Some(rest) => format!("swinViT.{rest}"),
                None => key.to_string(),
            };
            let swin_unetr = ["swinViT.", "encoder", "decoder", "out."]
                .iter()
                .any(|p| key.starts_with(p));
            if swin_unetr {
                tensor(key)
            } else {
                Fate::Unknown
            }
        }
        Layout::Tang => {
            if key.starts_with("patch_embed.") || is_stage_key(key) {
                tensor(format!("swinViT.{key}"))
            } else {
                Fate::Unknown
            }
        }
        Layout::MonaiSsl => monai_ssl_fate(key),
        Layout::Smit => smit_fate(key),
    }
}

/// MONAI's `filter_swinunetr`: five keys dropped, `encoder.patch_embed.*` and
/// `encoder.layersN.0.0.*` moved under `swinViT.`; anything else is not MONAI's.
fn monai_ssl_fate(key: &str) -> Fate {
    const DROPPED: [&str; 5] = [
        "encoder.mask_token",
        "encoder.norm.weight",
        "encoder.norm.bias",
        "out.conv.conv.weight",
        "out.conv.conv.bias",
    ];
    if DROPPED.contains(&key) {
        return Fate::Head;
    }
    let Some(rest) = key.strip_prefix("encoder.") else {
        return Fate::Unknown;
    };
    if rest.starts_with("patch_embed.") {
        return tensor(format!("swinViT.{rest}"));
    }
    // `layersN.0.0.<rest>`: MONAI's filter keeps `layersN.0.` and drops the next `0.`.
    match rest.split_at_checked(10) {
        Some((stage, tail)) if is_stage_key(rest) && stage.ends_with(".0.") => {
            match tail.strip_prefix("0.") {
                Some(tail) => tensor(format!("swinViT.{stage}{tail}")),
                None => Fate::Unknown,
            }
        }
        _ => Fate::Unknown,
    }
}

/// SMIT's `SwinTransformer_Unetr`: stage `i` (0-based) is MONAI's `layers{i+1}.0`.
fn smit_fate(key: &str) -> Fate {
    if key.starts_with("patch_embed.proj.") {
        return tensor(format!("swinViT.{key}"));
    }
    if key.starts_with("patch_embed.norm.") {
        return Fate::NoPlace(
            "SMIT's LayerNorm after the patch embedding: MONAI's SwinUNETR embeds patches \
             without one",
        );
    }
    if let Some(rest) = key.strip_prefix("norm")
        && rest.starts_with(['0', '1', '2', '3'])
        && rest.get(1..2) == Some(".")
    {
        return Fate::NoPlace(
            "SMIT's learned LayerNorm on a stage output: MONAI's SwinUNETR normalises stage \
             outputs without parameters",
        );
    }
    let Some(rest) = key.strip_prefix("layers.") else {
        return Fate::Unknown;
    };
    let Some((stage, tail)) = rest.split_once('.') else {
        return Fate::Unknown;
    };
    match stage.parse::<usize>() {
        Ok(i @ 0..=3) if tail.starts_with("blocks.") || tail.starts_with("downsample.") => {
            Fate::Tensor {
                name: monai_mlp(&format!("swinViT.layers{}.0.{tail}", i + 1)),
                smit_merge: tail.starts_with("downsample."),
            }
        }
        _ => Fate::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(layout: Layout, key: &str) -> String {
        match fate(layout, key) {
            Fate::Tensor { name, .. } => name,
            other => panic!("{key}: {other:?}"),
        }
    }

    #[test]
    fn layouts_are_recognised_from_their_keys() {
        let detect = |keys: &[&str]| Layout::detect(keys.iter().copied());
        assert_eq!(
            detect(&["swinViT.patch_embed.proj.weight", "out.conv.conv.bias"]),
            Layout::Monai
        );
        assert_eq!(
            detect(&[
                "patch_embed.proj.weight",
                "layers1.0.blocks.0.mlp.fc1.weight"
            ]),
            Layout::Tang
        );
        assert_eq!(
            detect(&[
                "encoder.layers1.0.0.blocks.0.norm1.weight",
                "encoder.mask_token"
            ]),
            Layout::MonaiSsl
        );
        assert_eq!(
            detect(&["layers.0.blocks.0.norm1.weight", "norm0.weight"]),
            Layout::Smit
        );
    }

    #[test]
    fn mlp_and_stage_names_become_monai_names() {
        assert_eq!(
            name(Layout::Tang, "layers3.0.blocks.1.mlp.fc2.bias"),
            "swinViT.layers3.0.blocks.1.mlp.linear2.bias"
        );
        assert_eq!(
            name(
                Layout::MonaiSsl,
                "encoder.layers4.0.0.downsample.reduction.weight"
            ),
            "swinViT.layers4.0.downsample.reduction.weight"
        );
        assert_eq!(
            name(Layout::Smit, "layers.2.blocks.3.mlp.fc1.weight"),
            "swinViT.layers3.0.blocks.3.mlp.linear1.weight"
        );
        assert_eq!(
            fate(Layout::Smit, "layers.0.downsample.norm.bias"),
            Fate::Tensor {
                name: "swinViT.layers1.0.downsample.norm.bias".into(),
                smit_merge: true
            }
        );
    }

    #[test]
    fn heads_foreign_tensors_and_strangers_are_told_apart() {
        assert_eq!(fate(Layout::Tang, "rotation_head.weight"), Fate::Head);
        assert_eq!(fate(Layout::MonaiSsl, "encoder.norm.bias"), Fate::Head);
        assert_eq!(fate(Layout::Smit, "mask_token"), Fate::Head);
        assert!(matches!(
            fate(Layout::Smit, "norm3.weight"),
            Fate::NoPlace(_)
        ));
        assert!(matches!(
            fate(Layout::Smit, "patch_embed.norm.weight"),
            Fate::NoPlace(_)
        ));
        assert_eq!(fate(Layout::Tang, "projector.0.weight"), Fate::Unknown);
        assert_eq!(
            fate(Layout::MonaiSsl, "encoder.layers1.0.1.x"),
            Fate::Unknown
        );
        assert_eq!(
            fate(Layout::Smit, "layers.4.blocks.0.norm1.weight"),
            Fate::Unknown
        );
    }

    #[test]
    fn smit_merge_order_maps_sub_grids_to_monai_positions() {
        // Chunks 5 and 6 swap; the rest stay.
        assert_eq!(SMIT_TO_MONAI_MERGE, [0, 1, 2, 3, 4, 6, 5, 7]);
    }
}
