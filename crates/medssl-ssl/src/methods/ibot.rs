//! iBOT (Zhou et al., ICLR 2022) on the 3-D Swin encoder: DINO's global-token
//! distillation across crops, plus masked patch-token distillation: the student sees
//! the global crops with blocks of patches replaced by a mask token, and must match the
//! teacher's patch-token distribution (from the unmasked crop) at the masked tokens.
//!
//! The global token is the pooled last stage, as in DINO. Patch tokens come from the
//! last stage too in `paper` (27 tokens in a 96³ crop, as iBOT's Swin-T has 49 at 224²;
//! one head can then serve both, `shared_head`), and from stage 3 (stride 16) in `tiny`,
//! where the last stage of a 32³ crop is a single token.

use burn::module::{Module, Param, ParamId};
use burn::tensor::{Device, Distribution, Tensor};
use medssl_data::Pipeline;
use medssl_data::masks::MaskRatio;
use medssl_data::views::{Crops, MaskPlan, MultiCrop, ViewBatch, ViewPlan};
use medssl_model::SwinUnetrConfig;
use medssl_model::swin::SwinTransformer;
use serde::{Deserialize, Serialize};

use super::checks;
use crate::error::{Result, SslError};
use crate::heads::{DinoHead, HeadSettings};
use crate::inputs::{coarse_mask, token_mask, tokens, view};
use crate::losses::distillation::Distill;
use crate::monitors::{embedding_spread, pooled, teacher_entropy};
use crate::pretext::{Family, Method, MethodInfo, Preset, Pretext, Recipe, StepContext, StepLoss};
use crate::teacher::{ema, frozen_copy, mean_center, split_updates};
use crate::temperature::Sharpening;

/// iBOT's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IbotSettings {
    /// The global and patch heads.
    pub head: HeadSettings,
    /// One head for global and patch tokens (otherwise a separate patch head); needs
    /// `patch_stage` 4.
    pub shared_head: bool,
    /// The encoder stage whose tokens are distilled: 3 (stride 16) or 4 (stride 32).
    pub patch_stage: usize,
    /// Global crops (masked for the student, whole for the teacher).
    pub global_crops: usize,
    /// Local crops (student only, never masked).
    pub local_crops: usize,
    /// Side of a local crop (a multiple of 32).
    pub local_size: [usize; 3],
    /// A global crop is masked with this probability (iBOT: 0.5) ...
    pub mask_probability: f64,
    /// ... at a ratio drawn uniformly from this range (iBOT: 0.3 ± 0.2).
    pub mask_ratio: [f64; 2],
    /// Side of a mask block in voxels, a multiple of the patch stage's stride.
    pub block_size: usize,
    /// Temperatures (the teacher's for the global tokens) and centring.
    pub sharpening: Sharpening,
    /// The teacher temperature of the patch tokens (not warmed up, as iBOT's).
    pub teacher_patch_temp: f64,
    /// Weights of the global and patch terms.
    pub global_weight: f64,
    pub patch_weight: f64,
}

/// The iBOT method.
pub struct IbotMethod;

/// iBOT's network.
#[derive(Module, Debug)]
pub struct Ibot {
    pub swin_vit: SwinTransformer,
    pub mask_token: Param<Tensor<1>>,
    pub head: DinoHead,
    /// The separate patch head (none when shared).
    pub head_patch: Option<DinoHead>,
    pub teacher_encoder: SwinTransformer,
    pub teacher_head: DinoHead,
    pub teacher_patch: Option<DinoHead>,
    pub center_global: Param<Tensor<1>>,
    pub center_patch: Param<Tensor<1>>,
    global_crops: usize,
    patch_stage: usize,
    #[module(skip)]
    sharpening: Sharpening,
    teacher_patch_temp: f64,
    global_weight: f64,
    patch_weight: f64,
}

impl Method for IbotMethod {
    type Net = Ibot;
    type Settings = IbotSettings;

    const INFO: MethodInfo = MethodInfo {
        name: "ibot",
        family: Family::SelfDistillation,
        description: "DINO's global-token distillation plus distillation of masked patch \
                      tokens from an EMA teacher (Zhou et al. 2022)",
    };

    /// The paper's: separate heads of 8192 prototypes (hidden 2048, bottleneck 256), a
    /// global crop masked with probability 0.5 at a ratio in [0.1, 0.5], temperatures
    /// 0.1 and 0.04 to 0.07 (patch 0.07), centre momentum 0.9, equal weights; two 96³
    /// global and four 64³ local crops. `tiny`: heads of 1024 (hidden 256, bottleneck
    /// 64), no local crops, warm-up over 5 epochs.
    fn settings(preset: Preset) -> IbotSettings {
        let tiny = preset == Preset::Tiny;
        IbotSettings {
            head: HeadSettings::preset(preset, 8192),
            shared_head: false,
            patch_stage: if tiny { 3 } else { 4 },
            global_crops: 2,
            local_crops: if tiny { 0 } else { 4 },
            local_size: [if tiny { 32 } else { 64 }; 3],
            mask_probability: 0.5,
            mask_ratio: [0.1, 0.5],
            block_size: if tiny { 16 } else { 32 },
            sharpening: Sharpening::recipe(if tiny { 5 } else { 30 }),
            teacher_patch_temp: 0.07,
            global_weight: 1.0,
            patch_weight: 1.0,
        }
    }

    /// DINO's recipe, which iBOT keeps.
    fn recipe(_preset: Preset) -> Recipe {
        Recipe {
            lr: 5e-4,
            weight_decay: (0.04, 0.4),
            grad_clip_norm: Some(3.0),
            freeze_last_layer: 1,
            teacher_momentum: 0.996,
            crop: None,
        }
    }

    fn check(settings: &IbotSettings, encoder: &SwinUnetrConfig, crop: [usize; 3]) -> Result<()> {
        let bad = |m: String| Err(SslError::Invalid(m));
        if settings.global_crops < 2 {
            return bad("global_crops must be at least 2".into());
        }
        MaskRatio::range(
            settings.mask_ratio[0],
            settings.mask_ratio[1],
            settings.mask_probability,
        )
        .map_err(|e| SslError::Invalid(format!("mask_ratio / mask_probability: {e}")))?;
        if !(3..=4).contains(&settings.patch_stage) {
            return bad(format!(
                "patch_stage must be 3 or 4, got {}",
                settings.patch_stage
            ));
        }
        if settings.shared_head && settings.patch_stage != 4 {
            return bad(
                "shared_head needs patch_stage = 4 (the global token's stage and width)".into(),
            );
        }
        let stride = encoder.patch_size << settings.patch_stage;
        checks::mask_blocks(settings.block_size, encoder.patch_size, stride, crop)?;
        checks::local_crops(settings.local_crops, settings.local_size, crop)?;
        settings.sharpening.check()?;
        settings.head.check()?;
        checks::positive("teacher_patch_temp", settings.teacher_patch_temp)?;
        Ok(())
    }

    fn view_plan(
        settings: &IbotSettings,
        encoder: &SwinUnetrConfig,
        crop: [usize; 3],
        augment: Pipeline,
        local_augment: Pipeline,
    ) -> Result<ViewPlan> {
        Ok(ViewPlan {
            crops: Crops::Multi(MultiCrop {
                global_count: settings.global_crops,
                global_size: crop,
                local_count: settings.local_crops,
                local_size: settings.local_size,
                local_resize: None,
                fill: 0.0,
            }),
            augment,
            local_augment,
            masks: Some(MaskPlan {
                views: settings.global_crops,
                ratio: MaskRatio::range(
                    settings.mask_ratio[0],
                    settings.mask_ratio[1],
                    settings.mask_probability,
                )?,
                patch_size: encoder.patch_size,
                block_size: settings.block_size,
            }),
            rotations: None,
            inpainting: None,
        })
    }

    fn build(settings: &IbotSettings, encoder: &SwinUnetrConfig, device: &Device) -> Ibot {
        let fs = encoder.feature_size;
        let head = |in_dim: usize| settings.head.init(in_dim, device);
        let swin_vit = SwinTransformer::new(encoder, device);
        let global_head = head(fs << 4);
        let head_patch = (!settings.shared_head).then(|| head(fs << settings.patch_stage));
        let center = || settings.head.center(device);
        Ibot {
            teacher_encoder: frozen_copy(&swin_vit),
            teacher_head: frozen_copy(&global_head),
            teacher_patch: head_patch.as_ref().map(frozen_copy),
            swin_vit,
            mask_token: Param::from_tensor(Tensor::random(
                [fs],
                Distribution::Normal(0.0, 0.02),
                device,
            )),
            head: global_head,
            head_patch,
            center_global: center(),
            center_patch: center(),
            global_crops: settings.global_crops,
            patch_stage: settings.patch_stage,
            sharpening: settings.sharpening,
            teacher_patch_temp: settings.teacher_patch_temp,
            global_weight: settings.global_weight,
            patch_weight: settings.patch_weight,
        }
    }
}

impl Pretext for Ibot {
    /// The updated global and patch centres.
    type Aux = [Tensor<1>; 2];

    fn loss(&self, batch: &ViewBatch, context: &StepContext) -> Result<StepLoss<[Tensor<1>; 2]>> {
        let device = self.mask_token.val().device();
        let globals = self.global_crops;
        let views = (0..batch.views.len())
            .map(|v| view(batch, v, &device))
            .collect::<Result<Vec<_>>>()?;
        let masks = (0..globals)
            .map(|v| token_mask(batch, v, &device))
            .collect::<Result<Vec<_>>>()?;
        let patch_head = self.head_patch.as_ref().unwrap_or(&self.head);
        let teacher_patch_head = self.teacher_patch.as_ref().unwrap_or(&self.teacher_head);

        let (mut teacher_global, mut student_global) = (Vec::new(), Vec::new());
        let (mut teacher_patch, mut student_patch, mut patch_masks) =
            (Vec::new(), Vec::new(), Vec::new());
        let stage = self.patch_stage;
        // Patch-grid masks to the patch stage's grid: its stride over the patch size.
        let factor = 1 << stage;
        for (v, x) in views.into_iter().enumerate() {
            if v < globals {
                let teacher = self.teacher_encoder.forward(x.clone());
                let last = teacher[4].clone().detach();
                teacher_global.push(self.teacher_head.forward(pooled(last)).detach());
                let patches = teacher[stage].clone().detach();
                teacher_patch.push(teacher_patch_head.forward_tokens(tokens(patches)).detach());
                let student =
                    self.swin_vit
                        .forward_masked(x, masks[v].clone(), self.mask_token.val());
                student_global.push(self.head.forward(pooled(student[4].clone())));
                student_patch.push(patch_head.forward_tokens(tokens(student[stage].clone())));
                patch_masks.push(coarse_mask(masks[v].clone(), factor));
            } else {
                let [.., last] = self.swin_vit.forward(x);
                student_global.push(self.head.forward(pooled(last)));
            }
        }
        let spread = embedding_spread(student_global[0].clone());
        let global = self.sharpening.at(context.epoch);
        let teacher_temp = global.teacher_temp;
        let entropy = teacher_entropy(&teacher_global[0], &self.center_global.val(), teacher_temp);
        let (global_loss, center_global) = global.dino(
            &teacher_global,
            &student_global,
            self.center_global.val(),
            None,
        );
        let patch = Distill {
            teacher_temp: self.teacher_patch_temp,
            ..global
        };
        let (patch_loss, center_patch) = patch.ibot_patch(
            Tensor::cat(teacher_patch, 0),
            Tensor::cat(student_patch, 0),
            Tensor::cat(patch_masks, 0),
            self.center_patch.val(),
        );
        let global_term = global_loss.mul_scalar(self.global_weight);
        let patch_term = patch_loss.mul_scalar(self.patch_weight);
        let mut monitors = vec![("teacher_temp", teacher_temp), ("teacher_entropy", entropy)];
        monitors.extend(spread.map(|s| ("embedding_spread", s)));
        Ok(StepLoss {
            total: global_term.clone() + patch_term.clone(),
            components: vec![("global", global_term), ("patch", patch_term)],
            monitors,
            aux: [center_global, center_patch],
        })
    }

    /// EMA of the encoder and heads; each centre becomes the mean of the batches'
    /// updates.
    fn after_step(self, aux: Vec<[Tensor<1>; 2]>, momentum: f64) -> Ibot {
        let [global_updates, patch_updates] = split_updates(aux);
        let global = mean_center(global_updates, &self.center_global);
        let patch = mean_center(patch_updates, &self.center_patch);
        let teacher_patch = match (self.teacher_patch, &self.head_patch) {
            (Some(teacher), Some(student)) => Some(ema(teacher, student, momentum)),
            (teacher, _) => teacher,
        };
        Ibot {
            teacher_encoder: ema(self.teacher_encoder, &self.swin_vit, momentum),
            teacher_head: ema(self.teacher_head, &self.head, momentum),
            teacher_patch,
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
        let mut ids = self.head.last_layer();
        if let Some(head) = &self.head_patch {
            ids.extend(head.last_layer());
        }
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_that_cannot_work_are_named() {
        let encoder = SwinUnetrConfig::new(1, 2).with_feature_size(12);
        let crop = [32; 3];
        let tiny = IbotMethod::settings(Preset::Tiny);
        IbotMethod::check(&tiny, &encoder, crop).unwrap();
        let paper = IbotMethod::settings(Preset::Paper);
        IbotMethod::check(&paper, &encoder, [96; 3]).unwrap();
        let cases = [
            (
                IbotSettings {
                    shared_head: true,
                    ..tiny.clone()
                },
                "shared_head",
            ),
            (
                IbotSettings {
                    patch_stage: 2,
                    ..tiny.clone()
                },
                "patch_stage",
            ),
            (
                IbotSettings {
                    block_size: 8,
                    ..tiny.clone()
                },
                "block_size",
            ),
            (
                IbotSettings {
                    mask_ratio: [0.6, 0.2],
                    ..tiny.clone()
                },
                "mask_ratio",
            ),
            (
                IbotSettings {
                    global_crops: 1,
                    ..tiny.clone()
                },
                "global_crops",
            ),
        ];
        for (settings, key) in cases {
            let err = IbotMethod::check(&settings, &encoder, crop)
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
    }
}
