//! SMIT (Jiang et al., MICCAI 2022), self-distilled masked image transformer: two crops
//! nested in one larger crop; the student sees them with blocks of patches masked, the
//! EMA teacher sees them whole. Three terms: masked patch-token distillation within each
//! view (stage-3 tokens, masked ones only), global-token distillation across the views
//! (the pooled, layer-normalised stage-3 output), and L1 reconstruction of the masked
//! voxels from the last stage (SimMIM's head); total 0.1 patch + 0.1 global + 1.0
//! reconstruction.

use burn::module::{Module, Param, ParamId};
use burn::nn::conv::{Conv3d, Conv3dConfig};
use burn::tensor::{Device, Distribution, Tensor};
use medssl_data::Pipeline;
use medssl_data::masks::MaskRatio;
use medssl_data::views::{Crops, MaskPlan, NestedCrops, ViewBatch, ViewPlan};
use medssl_model::SwinUnetrConfig;
use medssl_model::swin::SwinTransformer;
use serde::{Deserialize, Serialize};

use super::checks;
use crate::error::{Result, SslError};
use crate::heads::{DinoHead, HeadSettings};
use crate::inputs::{coarse_mask, pixel_shuffle, token_mask, tokens, view, voxel_mask};
use crate::losses::smit::{SmitBatch, SmitLoss};
use crate::monitors::{embedding_spread, pooled, teacher_entropy};
use crate::pretext::{Family, Method, MethodInfo, Preset, Pretext, Recipe, StepContext, StepLoss};
use crate::teacher::{ema, frozen_copy, mean_center, split_updates};
use crate::temperature::Sharpening;

/// SMIT's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmitSettings {
    /// Side of the crop the two views are cut from (the views have the run's crop).
    pub outer_size: [usize; 3],
    /// Fraction of mask blocks masked in each student view.
    pub mask_ratio: f64,
    /// Side of a mask block in voxels, a multiple of the stage-3 stride (16).
    pub block_size: usize,
    /// The global and patch heads.
    pub head: HeadSettings,
    /// Temperatures (the teacher's for global and patch tokens alike) and centring.
    pub sharpening: Sharpening,
    /// Weights of the patch, global and reconstruction terms.
    pub patch_weight: f64,
    pub global_weight: f64,
    pub reconstruction_weight: f64,
}

/// The SMIT method.
pub struct SmitMethod;

/// SMIT's network: student encoder, mask token, reconstruction head, global and patch
/// heads, their EMA teachers, and the two centres.
#[derive(Module, Debug)]
pub struct Smit {
    /// The student encoder (what is exported).
    pub swin_vit: SwinTransformer,
    /// The embedding of a masked patch.
    pub mask_token: Param<Tensor<1>>,
    /// Last-stage features to the voxels of each token (then pixel shuffle).
    pub decoder: Conv3d,
    /// Global-token head.
    pub head_global: DinoHead,
    /// Patch-token head.
    pub head_patch: DinoHead,
    pub teacher_encoder: SwinTransformer,
    pub teacher_global: DinoHead,
    pub teacher_patch: DinoHead,
    /// Centres of the teacher's global and patch outputs (no gradients).
    pub center_global: Param<Tensor<1>>,
    pub center_patch: Param<Tensor<1>>,
    stride: usize,
    patch: usize,
    #[module(skip)]
    sharpening: Sharpening,
    patch_weight: f64,
    global_weight: f64,
    reconstruction_weight: f64,
}

impl Method for SmitMethod {
    type Net = Smit;
    type Settings = SmitSettings;

    const INFO: MethodInfo = MethodInfo {
        name: "smit",
        family: Family::MaskedImageModelling,
        description: "masked patch-token and global-token self-distillation from an EMA \
                      teacher plus masked-voxel reconstruction (Jiang et al. 2022)",
    };

    /// The paper's: two 96³ views of a 128³ crop, 70% of 16³-voxel blocks masked,
    /// heads of 8192 prototypes (hidden 2048, bottleneck 256), temperatures 0.1 and 0.04
    /// to 0.07 over 30 epochs, centre momentum 0.9, weights 0.1 / 0.1 / 1.0. `tiny`: two
    /// 32³ views of a 48³ crop, heads of 1024 (hidden 256, bottleneck 64), warm-up over
    /// 5 epochs.
    fn settings(preset: Preset) -> SmitSettings {
        let tiny = preset == Preset::Tiny;
        SmitSettings {
            outer_size: [if tiny { 48 } else { 128 }; 3],
            mask_ratio: 0.7,
            block_size: 16,
            head: HeadSettings::preset(preset, 8192),
            sharpening: Sharpening::recipe(if tiny { 5 } else { 30 }),
            patch_weight: 0.1,
            global_weight: 0.1,
            reconstruction_weight: 1.0,
        }
    }

    /// AdamW at 1e-4 × batch size (the paper's rule: 2e-4 for the preset's batch of 2),
    /// weight decay 0.04 to 0.4 and clipping at 3 as in its DINO/iBOT code base.
    fn recipe(_preset: Preset) -> Recipe {
        Recipe {
            lr: 2e-4,
            weight_decay: (0.04, 0.4),
            grad_clip_norm: Some(3.0),
            freeze_last_layer: 1,
            teacher_momentum: 0.996,
            crop: None,
        }
    }

    fn check(settings: &SmitSettings, encoder: &SwinUnetrConfig, crop: [usize; 3]) -> Result<()> {
        let bad = |m: String| Err(SslError::Invalid(m));
        MaskRatio::fixed(settings.mask_ratio)
            .map_err(|e| SslError::Invalid(format!("mask_ratio: {e}")))?;
        let stage3 = encoder.patch_size << 3;
        checks::mask_blocks(settings.block_size, encoder.patch_size, stage3, crop)?;
        if (0..3).any(|a| settings.outer_size[a] < crop[a]) {
            return bad(format!(
                "outer_size {:?} must be at least the crop {crop:?}",
                settings.outer_size
            ));
        }
        settings.sharpening.check()?;
        settings.head.check()?;
        Ok(())
    }

    fn view_plan(
        settings: &SmitSettings,
        encoder: &SwinUnetrConfig,
        crop: [usize; 3],
        augment: Pipeline,
        local_augment: Pipeline,
    ) -> Result<ViewPlan> {
        Ok(ViewPlan {
            crops: Crops::Nested(NestedCrops {
                outer_size: settings.outer_size,
                inner_size: crop,
                count: 2,
                fill: 0.0,
            }),
            augment,
            local_augment,
            masks: Some(MaskPlan {
                views: 2,
                ratio: MaskRatio::fixed(settings.mask_ratio)?,
                patch_size: encoder.patch_size,
                block_size: settings.block_size,
            }),
            rotations: None,
            inpainting: None,
        })
    }

    fn build(settings: &SmitSettings, encoder: &SwinUnetrConfig, device: &Device) -> Smit {
        let fs = encoder.feature_size;
        let stride = encoder.patch_size << 4;
        let head = |in_dim: usize| settings.head.init(in_dim, device);
        let swin_vit = SwinTransformer::new(encoder, device);
        let head_global = head(fs << 3);
        let head_patch = head(fs << 3);
        let center = || settings.head.center(device);
        Smit {
            teacher_encoder: frozen_copy(&swin_vit),
            teacher_global: frozen_copy(&head_global),
            teacher_patch: frozen_copy(&head_patch),
            swin_vit,
            mask_token: Param::from_tensor(Tensor::random(
                [fs],
                Distribution::Normal(0.0, 0.02),
                device,
            )),
            decoder: Conv3dConfig::new([fs << 4, stride.pow(3) * encoder.in_channels], [1, 1, 1])
                .init(device),
            head_global,
            head_patch,
            center_global: center(),
            center_patch: center(),
            stride,
            patch: encoder.patch_size,
            sharpening: settings.sharpening,
            patch_weight: settings.patch_weight,
            global_weight: settings.global_weight,
            reconstruction_weight: settings.reconstruction_weight,
        }
    }
}

impl Pretext for Smit {
    /// The updated global and patch centres.
    type Aux = [Tensor<1>; 2];

    fn loss(&self, batch: &ViewBatch, context: &StepContext) -> Result<StepLoss<[Tensor<1>; 2]>> {
        let device = self.mask_token.val().device();
        let image = Tensor::cat(vec![view(batch, 0, &device)?, view(batch, 1, &device)?], 0);
        let mask = Tensor::cat(
            vec![
                token_mask(batch, 0, &device)?,
                token_mask(batch, 1, &device)?,
            ],
            0,
        );
        let [_, _, _, student3, student4] =
            self.swin_vit
                .forward_masked(image.clone(), mask.clone(), self.mask_token.val());
        let [_, _, _, teacher3, _] = self.teacher_encoder.forward(image.clone());
        let teacher3 = teacher3.detach();
        let spread = embedding_spread(pooled(student3.clone()));
        let distill = self.sharpening.at(context.epoch);
        let teacher_temp = distill.teacher_temp;
        let smit = SmitLoss {
            patch_weight: self.patch_weight,
            cls_weight: self.global_weight,
            recon_weight: self.reconstruction_weight,
            student_temp: distill.student_temp,
            teacher_temp_cls: teacher_temp,
            teacher_temp_patch: teacher_temp,
            center_momentum: distill.center_momentum,
        };
        let teacher_cls = self
            .teacher_global
            .forward(pooled(teacher3.clone()))
            .detach();
        let entropy = teacher_entropy(&teacher_cls, &self.center_global.val(), teacher_temp);
        let out = smit.forward(
            SmitBatch {
                teacher_cls,
                student_cls: self.head_global.forward(pooled(student3.clone())),
                teacher_patch: self.teacher_patch.forward_tokens(tokens(teacher3)).detach(),
                student_patch: self.head_patch.forward_tokens(tokens(student3)),
                token_mask: coarse_mask(mask.clone(), 8),
                reconstruction: pixel_shuffle(self.decoder.forward(student4), self.stride),
                image,
                voxel_mask: voxel_mask(mask, self.patch),
            },
            self.center_global.val(),
            self.center_patch.val(),
        );
        let mut monitors = vec![("teacher_temp", teacher_temp), ("teacher_entropy", entropy)];
        monitors.extend(spread.map(|s| ("embedding_spread", s)));
        Ok(StepLoss {
            total: out.total,
            components: vec![
                ("patch", out.patch.mul_scalar(self.patch_weight)),
                ("global", out.cls.mul_scalar(self.global_weight)),
                (
                    "reconstruction",
                    out.recon.mul_scalar(self.reconstruction_weight),
                ),
            ],
            monitors,
            aux: [out.center_cls, out.center_patch],
        })
    }

    /// EMA of the encoder and both heads; each centre becomes the mean of the batches'
    /// updates.
    fn after_step(self, aux: Vec<[Tensor<1>; 2]>, momentum: f64) -> Smit {
        let [global_updates, patch_updates] = split_updates(aux);
        let global = mean_center(global_updates, &self.center_global);
        let patch = mean_center(patch_updates, &self.center_patch);
        Smit {
            teacher_encoder: ema(self.teacher_encoder, &self.swin_vit, momentum),
            teacher_global: ema(self.teacher_global, &self.head_global, momentum),
            teacher_patch: ema(self.teacher_patch, &self.head_patch, momentum),
            center_global: self.center_global.map(|_| global),
            center_patch: self.center_patch.map(|_| patch),
            ..self
        }
    }

    fn encoder(&self) -> &SwinTransformer {
        &self.swin_vit
    }

    fn has_teacher(&self) -> bool {
        true
    }

    fn last_layer(&self) -> Vec<ParamId> {
        let mut ids = self.head_global.last_layer();
        ids.extend(self.head_patch.last_layer());
        ids
    }
}
