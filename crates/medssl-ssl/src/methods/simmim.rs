//! SimMIM (Xie et al., CVPR 2022) on the 3-D Swin encoder: block-wise masking of the
//! patch embeddings with a learned mask token, a one-layer prediction head (1×1×1
//! convolution from each bottleneck token to the voxels it covers, then pixel shuffle
//! back to the input grid) and L1 over the masked voxels only.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv3d, Conv3dConfig};
use burn::tensor::{Device, Distribution, Tensor};
use medssl_data::Pipeline;
use medssl_data::masks::MaskRatio;
use medssl_data::views::{Crops, MaskPlan, RandomCrops, ViewBatch, ViewPlan};
use medssl_model::SwinUnetrConfig;
use medssl_model::swin::SwinTransformer;
use serde::{Deserialize, Serialize};

use super::checks;
use crate::error::{Result, SslError};
use crate::inputs::{pixel_shuffle, token_mask, view, voxel_mask};
use crate::losses::reconstruction::masked_l1;
use crate::monitors::{embedding_spread, pooled};
use crate::pretext::{Family, Method, MethodInfo, Preset, Pretext, Recipe, StepContext, StepLoss};

/// SimMIM's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimMimSettings {
    /// Fraction of mask blocks masked (SimMIM: 0.6).
    pub mask_ratio: f64,
    /// Side of a mask block in voxels, a multiple of the patch size dividing the crop.
    pub block_size: usize,
}

/// The SimMIM method.
pub struct SimMimMethod;

/// SimMIM's network: the encoder, the mask token and the prediction head.
#[derive(Module, Debug)]
pub struct SimMim {
    /// The encoder (MONAI's `swinViT`).
    pub swin_vit: SwinTransformer,
    /// The embedding that replaces a masked patch, `[feature_size]`.
    pub mask_token: Param<Tensor<1>>,
    /// Bottleneck features to `stride³ · in_channels` voxel values per token.
    pub decoder: Conv3d,
    /// The encoder's total stride (patch size · 2⁴).
    stride: usize,
    /// The patch embedding's patch size.
    patch: usize,
}

impl Method for SimMimMethod {
    type Net = SimMim;
    type Settings = SimMimSettings;

    const INFO: MethodInfo = MethodInfo {
        name: "simmim",
        family: Family::MaskedImageModelling,
        description: "reconstruct the voxels of masked blocks (L1) from a learned mask token, \
                      one-layer head (Xie et al. 2022)",
    };

    /// Ratio 0.6 as the paper; 16³-voxel blocks (a 96³ crop has 6 per side, as the
    /// paper's 32-pixel blocks on 192² images).
    fn settings(_preset: Preset) -> SimMimSettings {
        SimMimSettings {
            mask_ratio: 0.6,
            block_size: 16,
        }
    }

    /// SimMIM's AdamW with weight decay 0.05 and clipping at 5; the learning rate is its
    /// 8e-4 for batch 2048 scaled down (2e-4 in `paper`, 5e-4 for the short `tiny` runs).
    fn recipe(preset: Preset) -> Recipe {
        Recipe {
            grad_clip_norm: Some(5.0),
            ..Recipe::adamw(if preset == Preset::Tiny { 5e-4 } else { 2e-4 })
        }
    }

    fn check(settings: &SimMimSettings, encoder: &SwinUnetrConfig, crop: [usize; 3]) -> Result<()> {
        MaskRatio::fixed(settings.mask_ratio)
            .map_err(|e| SslError::Invalid(format!("method.mask_ratio: {e}")))?;
        checks::mask_blocks(
            settings.block_size,
            encoder.patch_size,
            encoder.patch_size,
            crop,
        )
    }

    fn view_plan(
        settings: &SimMimSettings,
        encoder: &SwinUnetrConfig,
        crop: [usize; 3],
        augment: Pipeline,
        local_augment: Pipeline,
    ) -> Result<ViewPlan> {
        Ok(ViewPlan {
            crops: Crops::Random(RandomCrops {
                count: 1,
                size: crop,
                fill: 0.0,
            }),
            augment,
            local_augment,
            masks: Some(MaskPlan {
                views: 1,
                ratio: MaskRatio::fixed(settings.mask_ratio)?,
                patch_size: encoder.patch_size,
                block_size: settings.block_size,
            }),
            rotations: None,
            inpainting: None,
        })
    }

    /// The mask token from N(0, 0.02) (SimMIM's `trunc_normal_(std=.02)`); the head with
    /// Burn's default convolution initialisation.
    fn build(_settings: &SimMimSettings, encoder: &SwinUnetrConfig, device: &Device) -> SimMim {
        let fs = encoder.feature_size;
        let stride = encoder.patch_size << 4;
        let outputs = stride.pow(3) * encoder.in_channels;
        SimMim {
            swin_vit: SwinTransformer::new(encoder, device),
            mask_token: Param::from_tensor(Tensor::random(
                [fs],
                Distribution::Normal(0.0, 0.02),
                device,
            )),
            decoder: Conv3dConfig::new([fs << 4, outputs], [1, 1, 1]).init(device),
            stride,
            patch: encoder.patch_size,
        }
    }
}

impl Pretext for SimMim {
    type Aux = ();

    fn loss(&self, batch: &ViewBatch, _context: &StepContext) -> Result<StepLoss<()>> {
        let device = self.mask_token.val().device();
        let image = view(batch, 0, &device)?;
        let tokens = token_mask(batch, 0, &device)?;
        let [.., bottleneck] =
            self.swin_vit
                .forward_masked(image.clone(), tokens.clone(), self.mask_token.val());
        let spread = embedding_spread(pooled(bottleneck.clone()))?;
        let reconstruction = pixel_shuffle(self.decoder.forward(bottleneck), self.stride);
        let mask = voxel_mask(tokens, self.patch);
        let loss = masked_l1(reconstruction, image, mask, true);
        Ok(StepLoss {
            total: loss.clone(),
            components: vec![("reconstruction", loss)],
            monitors: spread
                .map(|s| ("embedding_spread", s))
                .into_iter()
                .collect(),
            aux: (),
        })
    }

    fn after_step(self, _aux: Vec<()>, _momentum: f64) -> SimMim {
        self
    }

    fn encoder(&self) -> &SwinTransformer {
        &self.swin_vit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::methods::test_support::{
        ParamGrad, assert_apart, assert_close, encoder, epoch_start, finite_scalar, param_grads,
        patch_mask, plan_of, seeded, zeroed,
    };
    use crate::pretext::ClipMode;
    use burn::optim::GradientsParams;
    use ndarray::{Array4, Array5};

    /// SimMIM's `config.py` and Swin-B pretraining config: mask ratio 0.6, AdamW with
    /// weight decay 0.05, gradients clipped to a global norm of 5
    /// (`clip_grad_norm_(model.parameters(), TRAIN.CLIP_GRAD = 5.0)`); 16³ blocks, one
    /// crop of the run's size.
    #[test]
    fn presets_follow_simmims_config() {
        for (preset, crop, lr) in [(Preset::Tiny, 32, 5e-4), (Preset::Paper, 96, 2e-4)] {
            let settings = SimMimMethod::settings(preset);
            assert_eq!(settings.mask_ratio, 0.6);
            assert_eq!(settings.block_size, 16);
            SimMimMethod::check(&settings, &encoder(), [crop; 3]).unwrap();
            let plan = plan_of::<SimMimMethod>(&settings, crop);
            assert_eq!(
                plan.crops,
                Crops::Random(RandomCrops {
                    count: 1,
                    size: [crop; 3],
                    fill: 0.0
                })
            );
            let masks = plan.masks.unwrap();
            assert_eq!((masks.views, masks.block_size), (1, 16));

            let recipe = SimMimMethod::recipe(preset);
            assert_eq!(recipe.lr, lr);
            assert_eq!(recipe.weight_decay, (0.05, 0.05));
            assert_eq!(recipe.grad_clip_norm, Some(5.0));
            assert_eq!(SimMimMethod::clip_mode(preset), ClipMode::Global);
            assert!(!SimMimMethod::lr_batch_scaling(preset));
        }
    }

    #[test]
    fn bad_masks_are_named() {
        let settings = SimMimMethod::settings(Preset::Tiny);
        let err = SimMimMethod::check(
            &SimMimSettings {
                mask_ratio: 1.5,
                ..settings.clone()
            },
            &encoder(),
            [32; 3],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("mask_ratio"), "{err}");
        let err = SimMimMethod::check(
            &SimMimSettings {
                block_size: 3,
                ..settings
            },
            &encoder(),
            [32; 3],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("block_size"), "{err}");
    }

    /// An irregular token mask of a batch of two 32³ views (about 3 patches in 7,
    /// different per volume and along each axis, so a transposed, shifted, inverted or
    /// swapped mask is another one).
    fn irregular_mask() -> Array4<bool> {
        patch_mask(|b, [z, y, x]| (z + 2 * y + 3 * x + 5 * b) % 7 < 3)
    }

    /// A one-view batch of `image` with `mask`.
    fn masked_batch(image: Array5<f32>, mask: Array4<bool>) -> ViewBatch {
        ViewBatch {
            ids: vec!["a".into(), "b".into()],
            views: vec![image],
            masks: vec![mask],
            labels: Vec::new(),
        }
    }

    /// A 32³ image of a batch of two: `masked(b, z, y, x)` at the voxels of the masked
    /// patches of `mask`, `visible(..)` at the others.
    fn image(
        mask: &Array4<bool>,
        masked: impl Fn(usize, usize, usize, usize) -> f32,
        visible: impl Fn(usize, usize, usize, usize) -> f32,
    ) -> Array5<f32> {
        Array5::from_shape_fn((2, 1, 32, 32, 32), |(b, _, z, y, x)| {
            if mask[[b, z / 2, y / 2, x / 2]] {
                masked(b, z, y, x)
            } else {
                visible(b, z, y, x)
            }
        })
    }

    /// A smooth pattern in `-1..1`.
    fn smooth(b: usize, z: usize, y: usize, x: usize) -> f32 {
        ((z * 3 + y * 5 + x * 7 + b * 11) as f32 * 0.13).sin()
    }

    /// The L1 loss counts the masked voxels only, each voxel under the 2³ patch its
    /// token covers: with the head zeroed (a reconstruction of 0 everywhere) the loss is
    /// the mean |x| over the masked voxels, computed here from the batch's arrays, and
    /// visible voxels of 50 and more (which would dominate any mean they entered) do not
    /// enter it; the same mean under the mask transposed (first and last axes swapped)
    /// would differ.
    #[test]
    fn the_loss_counts_only_the_masked_voxels() {
        let device = Device::flex();
        let settings = SimMimMethod::settings(Preset::Tiny);
        let mut net = seeded::<SimMimMethod>(&settings, 1, &device);
        net.decoder = zeroed(net.decoder);
        let mask = irregular_mask();
        let x = image(&mask, smooth, |_, z, _, _| 50.0 + z as f32);
        let out = net
            .loss(&masked_batch(x.clone(), mask.clone()), &epoch_start(0))
            .unwrap();
        assert_eq!(out.components.len(), 1);
        assert_eq!(out.components[0].0, "reconstruction");
        let loss = finite_scalar("loss", out.total);

        let masked_mean = |mask: &Array4<bool>| {
            let (mut sum, mut count) = (0.0f64, 0usize);
            for ((b, _, z, y, xx), v) in x.indexed_iter() {
                if mask[[b, z / 2, y / 2, xx / 2]] {
                    sum += f64::from(v.abs());
                    count += 1;
                }
            }
            assert!(count > 0);
            sum / (count as f64 + 1e-5)
        };
        let want = masked_mean(&mask);
        assert_close("loss", loss, want, 1e-5);
        let mut transposed = mask.clone();
        transposed.swap_axes(1, 3);
        assert_apart(
            "transposed mask",
            want,
            masked_mean(&transposed.as_standard_layout().to_owned()),
            1e-3,
        );
    }

    /// The mask token replaces exactly the masked patches' embeddings: on an image that
    /// is zero on every visible patch and non-zero on every masked one, no voxel that
    /// reaches the patch embedding is non-zero, so its weight gets a gradient of exactly
    /// 0 (while its bias and the mask token get non-zero ones: both are in the graph).
    /// Any masked patch leaking into the encoder (no masking, a transposed, shifted or
    /// inverted mask, another volume's mask) would give the weight a non-zero gradient,
    /// as one visible patch made non-zero does.
    #[test]
    fn the_mask_token_replaces_exactly_the_masked_patches() {
        let device = Device::flex().autodiff();
        let settings = SimMimMethod::settings(Preset::Tiny);
        let net = seeded::<SimMimMethod>(&settings, 2, &device);
        let mask = irregular_mask();
        let gradients = |x: Array5<f32>| {
            let loss = net
                .loss(&masked_batch(x, mask.clone()), &epoch_start(0))
                .unwrap()
                .total;
            finite_scalar("loss", loss.clone());
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            param_grads(&net, &grads)
        };
        let norm = |report: &[ParamGrad], path: &str| {
            let entry = report.iter().find(|p| p.path == path).expect(path);
            let norm = entry
                .grad_norm
                .unwrap_or_else(|| panic!("{path}: no gradient"));
            assert!(norm.is_finite(), "{path}: {norm}");
            norm
        };
        let weight = "swin_vit.patch_embed.proj.weight";

        let hidden = image(
            &mask,
            |b, z, y, x| 2.0 + smooth(b, z, y, x),
            |_, _, _, _| 0.0,
        );
        let report = gradients(hidden.clone());
        assert_eq!(
            norm(&report, weight),
            0.0,
            "masked voxels reached the encoder"
        );
        assert!(norm(&report, "swin_vit.patch_embed.proj.bias") > 0.0);
        assert!(norm(&report, "mask_token") > 0.0);

        // Token (0, 0, 0) of volume 0 is masked, token (0, 0, 1) visible.
        assert!(mask[[0, 0, 0, 0]] && !mask[[0, 0, 0, 1]]);
        let mut one_visible = hidden;
        for i in 0..8 {
            one_visible[[0, 0, i / 4, i / 2 % 2, 2 + i % 2]] = 1.0;
        }
        let report = gradients(one_visible);
        assert!(norm(&report, weight) > 0.0, "the check cannot fail");
    }
}
