//! The 3-D Swin Transformer encoder of SwinUNETR (MONAI's `SwinTransformer`, v1
//! semantics; `use_v2` adds a residual conv block before each stage).

mod attention;
mod block;
pub mod geometry;

use burn::module::Module;
use burn::nn::conv::{Conv3d, Conv3dConfig};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::ops::PadMode;
use burn::tensor::{Device, Int, Tensor, TensorData};

pub use attention::WindowAttention;
pub use block::{BlockSpec, Mlp, SwinBlock, partition, unpartition};

use crate::config::SwinUnetrConfig;
use crate::unetr::UnetrBasicBlock;
use geometry::{effective_window, padded, shifted_window_mask};

/// MONAI's `PatchEmbed` without normalisation: a strided Conv3d.
#[derive(Module, Debug)]
pub struct PatchEmbed {
    pub proj: Conv3d,
}

/// MONAI's v0.9 `PatchMerging`: the 8 voxels of each 2x2x2 block concatenated (in
/// MONAI's order), LayerNorm, then Linear 8C -> 2C without bias.
#[derive(Module, Debug)]
pub struct PatchMerging {
    pub norm: LayerNorm,
    pub reduction: Linear,
}

/// Positions, within the flattened 2x2x2 block `(d*4 + h*2 + w)`, of MONAI's
/// concatenation order `x0 .. x7`.
const MERGE_ORDER: [i64; 8] = [0, 4, 2, 1, 6, 5, 3, 7];

impl PatchMerging {
    fn new(dim: usize, device: &Device) -> PatchMerging {
        PatchMerging {
            norm: LayerNormConfig::new(8 * dim).init(device),
            reduction: LinearConfig::new(8 * dim, 2 * dim)
                .with_bias(false)
                .init(device),
        }
    }

    /// `[B, D, H, W, C]` to `[B, D/2, H/2, W/2, 2C]` (odd sizes are zero-padded at the end).
    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        let [_, d, h, w, _] = x.dims();
        let x = if d % 2 + h % 2 + w % 2 > 0 {
            x.pad(
                [(0, d % 2), (0, h % 2), (0, w % 2), (0, 0)],
                PadMode::Constant(0.0),
            )
        } else {
            x
        };
        let [b, d, h, w, c] = x.dims();
        let order =
            Tensor::<1, Int>::from_data(TensorData::new(MERGE_ORDER.to_vec(), [8]), &x.device());
        let x = x
            .reshape([b, d / 2, 2, h / 2, 2, w / 2, 2, c])
            .permute([0, 1, 3, 5, 2, 4, 6, 7])
            .reshape([b * (d / 2) * (h / 2) * (w / 2), 8, c])
            .select(1, order)
            .reshape([b, d / 2, h / 2, w / 2, 8 * c]);
        self.reduction.forward(self.norm.forward(x))
    }
}

/// One stage: Swin blocks alternating regular and shifted windows, then patch merging.
#[derive(Module, Debug)]
pub struct BasicLayer {
    pub blocks: Vec<SwinBlock>,
    pub downsample: PatchMerging,
    window: [usize; 3],
}

impl BasicLayer {
    /// `x`: `[B, C, D, H, W]`; returns `[B, 2C, D/2, H/2, W/2]`.
    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        let [_, _, d, h, w] = x.dims();
        let shift = self.window.map(|s| s / 2);
        let (window, shift) = effective_window([d, h, w], self.window, shift);
        let mask = shift.iter().any(|&s| s > 0).then(|| {
            let dims = padded([d, h, w], window);
            let n = window.iter().product::<usize>();
            let windows = dims
                .iter()
                .zip(window)
                .map(|(p, w)| p / w)
                .product::<usize>();
            let values = shifted_window_mask(dims, window, shift);
            Tensor::<3>::from_data(TensorData::new(values, [windows, n, n]), &x.device())
        });
        let mut x = x.permute([0, 2, 3, 4, 1]);
        for block in &self.blocks {
            x = block.forward(x, mask.as_ref());
        }
        self.downsample.forward(x).permute([0, 4, 1, 2, 3])
    }
}

/// The encoder: patch embedding and four stages; returns the five stage outputs.
#[derive(Module, Debug)]
pub struct SwinTransformer {
    pub patch_embed: PatchEmbed,
    pub layers1: Vec<BasicLayer>,
    pub layers2: Vec<BasicLayer>,
    pub layers3: Vec<BasicLayer>,
    pub layers4: Vec<BasicLayer>,
    /// `use_v2`: a residual conv block before each stage (empty otherwise).
    pub layers1c: Vec<UnetrBasicBlock>,
    pub layers2c: Vec<UnetrBasicBlock>,
    pub layers3c: Vec<UnetrBasicBlock>,
    pub layers4c: Vec<UnetrBasicBlock>,
    normalize: bool,
}

impl SwinTransformer {
    /// The encoder of `config`, randomly initialised.
    pub fn new(config: &SwinUnetrConfig, device: &Device) -> SwinTransformer {
        let fs = config.feature_size;
        let total: usize = config.depths.iter().sum();
        let rate = |i: usize| {
            if total > 1 {
                config.dropout_path_rate * i as f64 / (total - 1) as f64
            } else {
                0.0
            }
        };
        let mut block_index = 0;
        let mut stages: Vec<Vec<BasicLayer>> = Vec::new();
        let mut conv_stages: Vec<Vec<UnetrBasicBlock>> = Vec::new();
        for (stage, (&depth, &heads)) in config.depths.iter().zip(&config.num_heads).enumerate() {
            let dim = fs << stage;
            let spec = BlockSpec {
                dim,
                heads,
                window: config.window_size,
                mlp_ratio: config.mlp_ratio,
                qkv_bias: config.qkv_bias,
                drop: config.drop_rate,
                attn_drop: config.attn_drop_rate,
            };
            let blocks = (0..depth)
                .map(|i| SwinBlock::new(spec, i % 2 == 1, rate(block_index + i), device))
                .collect();
            block_index += depth;
            stages.push(vec![BasicLayer {
                blocks,
                downsample: PatchMerging::new(dim, device),
                window: config.window_size,
            }]);
            conv_stages.push(if config.use_v2 {
                vec![UnetrBasicBlock::new(dim, dim, device)]
            } else {
                Vec::new()
            });
        }
        let mut stages = stages.into_iter();
        let mut convs = conv_stages.into_iter();
        let mut next = || stages.next().expect("four stages");
        let mut next_conv = || convs.next().expect("four stages");
        SwinTransformer {
            patch_embed: PatchEmbed {
                proj: Conv3dConfig::new([config.in_channels, fs], [config.patch_size; 3])
                    .with_stride([config.patch_size; 3])
                    .init(device),
            },
            layers1: next(),
            layers2: next(),
            layers3: next(),
            layers4: next(),
            layers1c: next_conv(),
            layers2c: next_conv(),
            layers3c: next_conv(),
            layers4c: next_conv(),
            normalize: config.normalize,
        }
    }

    /// The parameter-free LayerNorm over channels that MONAI applies to each stage
    /// output when `normalize` is set.
    fn proj_out(&self, x: Tensor<5>) -> Tensor<5> {
        if !self.normalize {
            return x;
        }
        let x = x.permute([0, 2, 3, 4, 1]);
        let (var, mean) = x.clone().var_mean_bias(4);
        ((x - mean) / var.add_scalar(1e-5).sqrt()).permute([0, 4, 1, 2, 3])
    }

    /// The five stage outputs `[B, fs * 2^i, S / 2^(i+1), ...]` for `i = 0..5`, as
    /// MONAI's `swinViT(x, normalize)` returns them.
    pub fn forward(&self, x: Tensor<5>) -> [Tensor<5>; 5] {
        self.stages(self.patch_embed.proj.forward(x))
    }

    /// [`forward`](Self::forward) with masked patches (SimMIM, SMIT, iBOT): where
    /// `token_mask` `[B, d, h, w]` (the patch grid, 1 = masked) is set, the patch embedding
    /// is replaced by `mask_token` `[C]`, as `x·(1 - w) + token·w` in the SimMIM code.
    ///
    /// Panics when `token_mask` is not on the patch grid of `x` (a caller's bug: the mask
    /// generator is given the grid).
    pub fn forward_masked(
        &self,
        x: Tensor<5>,
        token_mask: Tensor<4>,
        mask_token: Tensor<1>,
    ) -> [Tensor<5>; 5] {
        let x0 = self.patch_embed.proj.forward(x);
        let [b, c, d, h, w] = x0.dims();
        assert_eq!(
            token_mask.dims(),
            [b, d, h, w],
            "token mask shape against the patch grid"
        );
        let weight = token_mask.unsqueeze_dim::<5>(1);
        let token = mask_token.reshape([1, c, 1, 1, 1]);
        let blended = x0 * (weight.clone().neg().add_scalar(1.0)) + token * weight;
        self.stages(blended)
    }

    /// The four stages after the patch embedding `x0`, with `x0` as output 0.
    fn stages(&self, x0: Tensor<5>) -> [Tensor<5>; 5] {
        let mut outputs = vec![self.proj_out(x0.clone())];
        let mut x = x0;
        let stages = [
            (&self.layers1c, &self.layers1),
            (&self.layers2c, &self.layers2),
            (&self.layers3c, &self.layers3),
            (&self.layers4c, &self.layers4),
        ];
        for (conv, layer) in stages {
            if let Some(conv) = conv.first() {
                x = conv.forward(x);
            }
            x = layer[0].forward(x);
            outputs.push(self.proj_out(x.clone()));
        }
        outputs.try_into().expect("five outputs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    fn floats(outputs: [Tensor<5>; 5]) -> Vec<Vec<f32>> {
        outputs
            .into_iter()
            .map(|t| t.into_data().try_to_vec().unwrap())
            .collect()
    }

    /// No masked token: the plain forward. Every token masked: the image no longer
    /// matters, only the mask token does.
    #[test]
    fn masked_forward_replaces_exactly_the_masked_patch_embeddings() {
        let device = Device::flex();
        let config = SwinUnetrConfig::new(1, 2).with_feature_size(12);
        let encoder = SwinTransformer::new(&config, &device);
        let image = |seed: u64| {
            device.seed(seed);
            Tensor::<5>::random([1, 1, 32, 32, 32], Distribution::Normal(0.0, 1.0), &device)
        };
        let token = Tensor::<1>::random([12], Distribution::Normal(0.0, 1.0), &device);
        let none = Tensor::<4>::zeros([1, 16, 16, 16], &device);
        let all = Tensor::<4>::ones([1, 16, 16, 16], &device);
        assert_eq!(
            floats(encoder.forward_masked(image(1), none, token.clone())),
            floats(encoder.forward(image(1)))
        );
        let a = floats(encoder.forward_masked(image(1), all.clone(), token.clone()));
        let b = floats(encoder.forward_masked(image(2), all, token));
        assert_eq!(a, b);
        assert_ne!(
            floats(encoder.forward(image(1))),
            floats(encoder.forward(image(2)))
        );
    }
}
