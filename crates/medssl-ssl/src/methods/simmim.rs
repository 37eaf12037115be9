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
        let spread = embedding_spread(pooled(bottleneck.clone()));
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
    use crate::methods::test_support::{encoder, plan_of};
    use crate::pretext::ClipMode;

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
}
