//! iBOT (Zhou et al., ICLR 2022) on the 3-D Swin encoder: DINO's global-token
//! distillation across crops, plus masked patch-token distillation: the student sees
//! the global crops with blocks of patches replaced by a mask token, and must match the
//! teacher's patch-token distribution (from the unmasked crop) at the masked tokens.
//!
//! The global token is the pooled last stage, as in DINO. Patch tokens come from the
//! last stage too in `paper` (27 tokens in a 96³ crop, as iBOT's Swin-T has 49 at 224²;
//! one head can then serve both, `shared_head`), and from stage 3 (stride 16) in `tiny`,
//! where the last stage of a 32³ crop is a single token.
//!
//! As `main_ibot.py` runs it: the crops are random resized crops of one region of the
//! volume; masked-token prediction starts at `pred_start_epoch` (before it no token is
//! masked and the patch term is 0, as iBOT's loader then draws empty masks), and the
//! patch tokens' teacher temperature is held at `warmup_teacher_patch_temp` until then
//! and warmed to `teacher_patch_temp` over the warm-up epochs after it
//! (`teacher_temp2_schedule`); gradients are clipped per parameter, and the `paper`
//! learning rate is per 256 volumes.

use burn::module::{Module, Param, ParamId};
use burn::tensor::{Device, Distribution, Tensor};
use medssl_data::Pipeline;
use medssl_data::masks::MaskRatio;
use medssl_data::views::{MaskPlan, ViewBatch, ViewPlan};
use medssl_model::SwinUnetrConfig;
use medssl_model::swin::SwinTransformer;
use serde::{Deserialize, Serialize};

use super::checks;
use super::dino::region_multi_crop;
use super::simclr::{check_region, check_scale, preset_region};
use crate::error::{Result, SslError};
use crate::heads::{DinoHead, HeadSettings, token_rows};
use crate::inputs::{coarse_mask, token_mask, tokens, view};
use crate::monitors::{embedding_spread, pooled, teacher_entropy};
use crate::pretext::{
    ClipMode, Family, Method, MethodInfo, Preset, Pretext, Recipe, StepContext, StepLoss,
};
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
    /// Size of a local crop in voxels, what its box (cut at `local_scale` of the region)
    /// is resized to: multiples of 32, no larger than the global crop.
    pub local_size: [usize; 3],
    /// Side of the region every crop of a volume is cut from, placed at random in the
    /// volume: 48³ in `tiny` (global crops of 32³), 128³ in `paper` (global crops of 96³,
    /// local ones of 64³). Absent: the whole volume, as iBOT crops the whole image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<[usize; 3]>,
    /// Range of the fraction of the region's volume a global crop covers before it is
    /// resized to the crop: `global_crops_scale`, `(0.14, 1)` in `main_ibot.py` (its
    /// advice without local crops), `(0.25, 1)` in the published runs with local
    /// crops.
    pub global_scale: [f64; 2],
    /// The same for a local crop, resized to `local_size`: `local_crops_scale`,
    /// `(0.05, 0.4)` in `main_ibot.py`, `(0.05, 0.25)` in the published runs.
    pub local_scale: [f64; 2],
    /// A global crop is masked with this probability (iBOT: 0.5) ...
    pub mask_probability: f64,
    /// ... at a ratio drawn uniformly from this range (iBOT: 0.3 ± 0.2).
    pub mask_ratio: [f64; 2],
    /// Side of a mask block in voxels, a multiple of the patch stage's stride.
    pub block_size: usize,
    /// Temperatures (the teacher's for the global tokens), centring, and the epochs of
    /// the teacher temperatures' warm-up (`warmup_teacher_temp_epochs`, which iBOT's
    /// global and patch schedules share).
    pub sharpening: Sharpening,
    /// The teacher temperature of the patch tokens after its warm-up
    /// (`teacher_patch_temp`, iBOT: 0.07).
    pub teacher_patch_temp: f64,
    /// The patch tokens' teacher temperature until `pred_start_epoch` and at the start of
    /// its warm-up (`warmup_teacher_patch_temp`, iBOT: 0.04).
    pub warmup_teacher_patch_temp: f64,
    /// The epoch (from 0) masked-token prediction starts: before it no token is masked
    /// and the patch term is 0 (`pred_start_epoch`; iBOT: 0 by default, 50 of 300
    /// epochs for its Swin-T).
    pub pred_start_epoch: u64,
    /// Weights of the global and patch terms.
    pub global_weight: f64,
    pub patch_weight: f64,
}


/// `main_ibot.py`'s `local_crops_scale` default.
fn local_crops_scale() -> [f64; 2] {
    [0.05, 0.4]
}

/// `main_ibot.py`'s `warmup_teacher_patch_temp` default.
fn warmup_teacher_patch_temp() -> f64 {
    0.04
}

impl IbotSettings {
    /// The patch tokens' teacher temperature and centring: `warmup_teacher_patch_temp`
    /// for `pred_start_epoch` epochs, warmed linearly to `teacher_patch_temp` over the
    /// shared warm-up epochs, then held (iBOT's `teacher_temp2_schedule`).
    pub fn patch_sharpening(&self) -> Sharpening {
        Sharpening {
            teacher_temp: self.teacher_patch_temp,
            warmup_teacher_temp: self.warmup_teacher_patch_temp,
            delay_epochs: self.pred_start_epoch,
            ..self.sharpening
        }
    }
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
    /// The patch tokens' schedule ([`IbotSettings::patch_sharpening`]).
    #[module(skip)]
    patch_sharpening: Sharpening,
    #[module(skip)]
    pred_start_epoch: u64,
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

    /// The paper's, as iBOT's Swin-T run (`README.md`, over `main_ibot.py`'s defaults):
    /// separate heads of 8192 prototypes (hidden 2048, bottleneck 256), a global crop
    /// masked with probability 0.5 at a ratio in [0.1, 0.5] (`--pred_ratio 0 0.3
    /// --pred_ratio_var 0 0.2`), masked-token prediction from epoch 50
    /// (`--pred_start_epoch 50`, of its 300), student temperature 0.1, teacher 0.04 to
    /// 0.07 over 30 epochs for the global tokens (`--teacher_temp 0.07
    /// --warmup_teacher_temp_epochs 30`) and for the patch tokens after epoch 50
    /// (`warmup_teacher_patch_temp` 0.04, `teacher_patch_temp` 0.07), centre momentum
    /// 0.9, equal weights; two 96³ global and four 64³ local crops of a 128³ region at
    /// the published runs' scales, `--global_crops_scale 0.25 1 --local_crops_scale
    /// 0.05 0.25` (they use ten local crops).
    ///
    /// `tiny`: heads of 1024 (hidden 256, bottleneck 64, batch norm:
    /// `HeadSettings::preset`), two 32³ global crops of a 48³ region at DINO's
    /// `global_crops_scale` (0.4, 1) and no local ones. `main_ibot.py` advises
    /// (0.14, 1) without local crops, but on 48³ regions such small global crops left
    /// the two global views too little in common: in 200 steps the teacher drifted
    /// towards uniform (entropy 3.3 → 4.9, also with masking off), and at (0.4, 1) it
    /// held (4.3, student excess 4.15 → 1.15); the global teacher temperature held at 0.04
    /// (`main_ibot.py`'s default, as DINO's tiny preset); iBOT's Swin schedule scaled to
    /// the tiny preset's 20 epochs: masked-token prediction from epoch 3 (50 of 300
    /// epochs is 1/6 of the run) and the patch temperature warmed from 0.04 to 0.07 over
    /// 2 epochs after it (30 of 300 is 1/10), reaching 0.07 at epoch 4.
    fn settings(preset: Preset) -> IbotSettings {
        let tiny = preset == Preset::Tiny;
        IbotSettings {
            head: HeadSettings::preset(preset, 8192),
            shared_head: false,
            patch_stage: if tiny { 3 } else { 4 },
            global_crops: 2,
            local_crops: if tiny { 0 } else { 4 },
            local_size: [if tiny { 32 } else { 64 }; 3],
            region: Some(preset_region(preset)),
            global_scale: if tiny { [0.4, 1.0] } else { [0.25, 1.0] },
            local_scale: if tiny {
                local_crops_scale()
            } else {
                [0.05, 0.25]
            },
            mask_probability: 0.5,
            mask_ratio: [0.1, 0.5],
            block_size: if tiny { 16 } else { 32 },
            sharpening: if tiny {
                Sharpening {
                    teacher_temp: 0.04,
                    ..Sharpening::recipe(2)
                }
            } else {
                Sharpening::recipe(30)
            },
            teacher_patch_temp: 0.07,
            warmup_teacher_patch_temp: warmup_teacher_patch_temp(),
            pred_start_epoch: if tiny { 3 } else { 50 },
            global_weight: 1.0,
            patch_weight: 1.0,
        }
    }

    /// `main_ibot.py`'s defaults, which are DINO's: weight decay 0.04 rising to 0.4,
    /// clipping at 3 per parameter, the last layer frozen for the first epoch, teacher
    /// momentum 0.996 rising to 1, learning rate 5e-4 per 256 volumes (`paper`); `tiny`
    /// trains at 1e-4 unscaled and keeps the momentum, as DINO's tiny preset (see
    /// [`DinoMethod`](super::DinoMethod)'s recipe for why).
    fn recipe(preset: Preset) -> Recipe {
        Recipe {
            lr: if preset == Preset::Tiny { 1e-4 } else { 5e-4 },
            weight_decay: (0.04, 0.4),
            grad_clip_norm: Some(3.0),
            freeze_last_layer: 1,
            teacher_momentum: 0.996,
            crop: None,
        }
    }

    /// `utils.clip_gradients`: each parameter's gradient clipped on its own.
    fn clip_mode(_preset: Preset) -> ClipMode {
        ClipMode::PerParameter
    }

    /// `paper`: `lr * batch_size_per_gpu * world_size / 256`; `tiny`: the rate itself.
    fn lr_batch_scaling(preset: Preset) -> bool {
        preset == Preset::Paper
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
        check_region(settings.region, crop)?;
        check_scale("global_scale", settings.global_scale)?;
        if settings.local_crops > 0 {
            check_scale("local_scale", settings.local_scale)?;
        }
        settings.sharpening.check()?;
        settings.head.check()?;
        checks::positive("teacher_patch_temp", settings.teacher_patch_temp)?;
        checks::positive(
            "warmup_teacher_patch_temp",
            settings.warmup_teacher_patch_temp,
        )?;
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
            crops: region_multi_crop(
                settings.region,
                (settings.global_crops, crop, settings.global_scale),
                (
                    settings.local_crops,
                    settings.local_size,
                    settings.local_scale,
                ),
            ),
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
            patch_sharpening: settings.patch_sharpening(),
            pred_start_epoch: settings.pred_start_epoch,
            global_weight: settings.global_weight,
            patch_weight: settings.patch_weight,
        }
    }
}

/// The global and patch logits of a network's crops: `global` rows `[B, C]` of every crop
/// and `patches` tokens `[B, N, C]` of the global crops, each head run once over all the
/// crops it sees (iBOT's `MultiCropWrapper`, so that batch norms in the head see them
/// all); a shared head (no separate `patch` head) runs once over both kinds together,
/// as iBOT's head does over the class and patch tokens.
fn heads_on_crops(
    head: &DinoHead,
    patch: Option<&DinoHead>,
    global: Vec<Tensor<2>>,
    patches: Vec<Tensor<3>>,
) -> (Vec<Tensor<2>>, Vec<Tensor<3>>) {
    if let Some(patch) = patch {
        return (head.forward_crops(global), patch.forward_token_crops(patches));
    }
    let crops = global.len();
    let shapes: Vec<[usize; 3]> = patches.iter().map(|p| p.dims()).collect();
    let rows = global.into_iter().chain(token_rows(patches)).collect();
    let mut out = head.forward_crops(rows);
    let patch_out = out
        .split_off(crops)
        .into_iter()
        .zip(shapes)
        .map(|(o, [b, n, _])| {
            let k = o.dims()[1];
            o.reshape([b, n, k])
        })
        .collect();
    (out, patch_out)
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
        // Before `pred_start_epoch` no token is masked (iBOT's loader draws empty masks
        // then): the student sees whole crops and the patch term is 0.
        let predict = context.epoch >= self.pred_start_epoch;
        let masks = (0..globals)
            .map(|v| {
                let mask = token_mask(batch, v, &device)?;
                Ok(if predict { mask } else { mask.zeros_like() })
            })
            .collect::<Result<Vec<_>>>()?;
        let (mut teacher_global, mut student_global) = (Vec::new(), Vec::new());
        let (mut teacher_patch, mut student_patch, mut patch_masks) =
            (Vec::new(), Vec::new(), Vec::new());
        let stage = self.patch_stage;
        // Patch-grid masks to the patch stage's grid: its stride over the patch size.
        let factor = 1 << stage;
        for (v, x) in views.into_iter().enumerate() {
            if v < globals {
                let teacher = self.teacher_encoder.forward(x.clone());
                teacher_global.push(pooled(teacher[4].clone()).detach());
                teacher_patch.push(tokens(teacher[stage].clone()).detach());
                let student =
                    self.swin_vit
                        .forward_masked(x, masks[v].clone(), self.mask_token.val());
                student_global.push(pooled(student[4].clone()));
                student_patch.push(tokens(student[stage].clone()));
                patch_masks.push(coarse_mask(masks[v].clone(), factor));
            } else {
                let [.., last] = self.swin_vit.forward(x);
                student_global.push(pooled(last));
            }
        }
        let spread = embedding_spread(student_global[0].clone())?;
        let (teacher_global, teacher_patch) = heads_on_crops(
            &self.teacher_head,
            self.teacher_patch.as_ref(),
            teacher_global,
            teacher_patch,
        );
        let teacher_global: Vec<Tensor<2>> = teacher_global.into_iter().map(|t| t.detach()).collect();
        let teacher_patch: Vec<Tensor<3>> = teacher_patch.into_iter().map(|t| t.detach()).collect();
        let (student_global, student_patch) = heads_on_crops(
            &self.head,
            self.head_patch.as_ref(),
            student_global,
            student_patch,
        );
        let global = self.sharpening.at(context.epoch);
        let teacher_temp = global.teacher_temp;
        let entropy = teacher_entropy(&teacher_global[0], &self.center_global.val(), teacher_temp)?;
        let (global_loss, center_global) = global.dino(
            &teacher_global,
            &student_global,
            self.center_global.val(),
            None,
        );
        let patch = self.patch_sharpening.at(context.epoch);
        let teacher_patch_temp = patch.teacher_temp;
        let (patch_loss, center_patch) = patch.ibot_patch(
            Tensor::cat(teacher_patch, 0),
            Tensor::cat(student_patch, 0),
            Tensor::cat(patch_masks, 0),
            self.center_patch.val(),
        );
        let global_term = global_loss.mul_scalar(self.global_weight);
        let patch_term = patch_loss.mul_scalar(self.patch_weight);
        let mut monitors = vec![
            ("teacher_temp", teacher_temp),
            ("teacher_patch_temp", teacher_patch_temp),
            ("teacher_entropy", entropy),
        ];
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
    use crate::methods::test_support::{
        self, encoder, epoch_start, masked_two_view_batch, plan_of,
    };
    use medssl_data::views::{RegionCrops, ScaledViews};

    /// The region crops of iBOT's plan, whose two global views are masked.
    fn region_crops(settings: &IbotSettings, crop: usize) -> RegionCrops {
        assert_eq!(
            plan_of::<IbotMethod>(settings, crop).masks.unwrap().views,
            2
        );
        test_support::region_crops::<IbotMethod>(settings, crop)
    }

    /// `paper`: the published runs' scales (globals 0.25–1, locals 0.05–0.25) on a 128³
    /// region; `tiny`: DINO's 0.4–1 without local crops, on a 48³ region.
    #[test]
    fn crops_are_resized_crops_of_one_region_at_ibots_scales() {
        let paper = IbotMethod::settings(Preset::Paper);
        let crops = region_crops(&paper, 96);
        assert_eq!(crops.region, Some([128; 3]));
        assert_eq!(
            crops.global,
            ScaledViews {
                count: 2,
                size: [96; 3],
                scale: [0.25, 1.0]
            }
        );
        assert_eq!(
            crops.local,
            Some(ScaledViews {
                count: 4,
                size: [64; 3],
                scale: [0.05, 0.25]
            })
        );
        let tiny = IbotMethod::settings(Preset::Tiny);
        let crops = region_crops(&tiny, 32);
        assert_eq!(crops.region, Some([48; 3]));
        assert_eq!(crops.global.size, [32; 3]);
        assert_eq!(crops.global.scale, [0.4, 1.0]);
        assert_eq!(crops.local, None);
    }

    /// The teacher temperatures per epoch, and the recipe.
    #[test]
    fn presets_follow_ibot() {
        let paper = IbotMethod::settings(Preset::Paper);
        assert_eq!(paper.pred_start_epoch, 50);
        assert_eq!(paper.sharpening, Sharpening::recipe(30));
        let patch = paper.patch_sharpening();
        // Held at 0.04 until epoch 50, then np.linspace(0.04, 0.07, 30), then 0.07.
        for epoch in [0, 10, 49, 50] {
            assert_eq!(patch.at(epoch).teacher_temp, 0.04, "epoch {epoch}");
        }
        let want = 0.04 + 0.03 * 10.0 / 29.0;
        assert!((patch.at(60).teacher_temp - want).abs() < 1e-15);
        assert!((patch.at(79).teacher_temp - 0.07).abs() < 1e-15);
        assert_eq!(patch.at(80).teacher_temp, 0.07);
        assert_eq!(patch.at(80).student_temp, 0.1);
        // The global tokens' warm-up is not delayed.
        assert!((paper.sharpening.at(29).teacher_temp - 0.07).abs() < 1e-15);

        let tiny = IbotMethod::settings(Preset::Tiny);
        assert_eq!(tiny.pred_start_epoch, 3);
        let global: Vec<f64> = (0..8).map(|e| tiny.sharpening.at(e).teacher_temp).collect();
        assert_eq!(global, [0.04; 8]);
        let patch: Vec<f64> = (0..8)
            .map(|e| tiny.patch_sharpening().at(e).teacher_temp)
            .collect();
        assert_eq!(patch, [0.04, 0.04, 0.04, 0.04, 0.07, 0.07, 0.07, 0.07]);

        assert_eq!(IbotMethod::recipe(Preset::Paper).lr, 5e-4);
        assert_eq!(IbotMethod::recipe(Preset::Tiny).lr, 1e-4);
        for preset in [Preset::Tiny, Preset::Paper] {
            let recipe = IbotMethod::recipe(preset);
            assert_eq!(recipe.weight_decay, (0.04, 0.4));
            assert_eq!(recipe.grad_clip_norm, Some(3.0));
            assert_eq!(recipe.freeze_last_layer, 1);
            assert_eq!(IbotMethod::clip_mode(preset), ClipMode::PerParameter);
        }
        for preset in [Preset::Tiny, Preset::Paper] {
            assert_eq!(IbotMethod::recipe(preset).teacher_momentum, 0.996);
        }
        assert!(IbotMethod::lr_batch_scaling(Preset::Paper));
        assert!(!IbotMethod::lr_batch_scaling(Preset::Tiny));
    }

    /// Every setting must be written: a missing one is named, not filled in.
    #[test]
    fn a_missing_setting_is_named() {
        let full = serde_json::to_value(IbotMethod::settings(Preset::Paper)).unwrap();
        for key in [
            "global_scale",
            "local_scale",
            "warmup_teacher_patch_temp",
            "pred_start_epoch",
        ] {
            let mut json = full.clone();
            json.as_object_mut().unwrap().remove(key).unwrap();
            let err = serde_json::from_value::<IbotSettings>(json).unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    fn scalar(t: &Tensor<1>) -> f64 {
        f64::from(t.clone().into_data().try_to_vec::<f32>().unwrap()[0])
    }

    /// Before `pred_start_epoch` the patch term is exactly 0 (and the masked tokens of
    /// the batch are ignored); from it on, the masked tokens are predicted.
    #[test]
    fn the_patch_loss_is_off_before_pred_start_epoch() {
        let device = Device::flex();
        let settings = IbotSettings {
            head: small_head(),
            pred_start_epoch: 2,
            ..IbotMethod::settings(Preset::Tiny)
        };
        IbotMethod::check(&settings, &encoder(), [32; 3]).unwrap();
        let net = seeded::<IbotMethod>(&settings, 1, &device);
        let batch = masked_two_view_batch();
        let at = |epoch| {
            let step = net.loss(&batch, &epoch_start(epoch)).unwrap();
            let component = |name| {
                let (_, value) = step.components.iter().find(|(n, _)| *n == name).unwrap();
                scalar(value)
            };
            let monitor = |name| step.monitors.iter().find(|(n, _)| *n == name).unwrap().1;
            (
                component("global"),
                component("patch"),
                scalar(&step.total),
                monitor("teacher_patch_temp"),
            )
        };
        for epoch in [0, 1] {
            let (global, patch, total, temp) = at(epoch);
            assert_eq!(patch, 0.0, "epoch {epoch}");
            assert!(
                global > 0.0 && (total - global).abs() < 1e-6,
                "epoch {epoch}"
            );
            assert_eq!(temp, 0.04);
        }
        let (global, patch, total, temp) = at(2);
        assert!(patch > 0.0 && patch.is_finite(), "{patch}");
        assert!((total - global - patch).abs() < 1e-5);
        assert_eq!(temp, 0.04);
        assert_eq!(at(3).3, 0.07);
    }

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

    // Wiring: which views reach which network and where the masks apply, where gradients
    // go, and the order of the EMA and centre updates.

    use crate::inputs::token_mask;
    use crate::methods::test_support::{
        assert_all_close, assert_apart, assert_close, assert_only_the_student_learns,
        center_update, coarse_tokens, component, content_blind, crop_pairs, cross_view_loss,
        fast_encoder, finite_scalar, first_step_of_two_centres, largest_gap, masked_patch_loss,
        param_grads, patch_mask, perturbed, pooled_masked_patch_loss, rows_through, seeded, small_head,
        smooth_batch, test_center, tokens_through, uneven_masks, values, view_tensor,
    };
    use burn::optim::GradientsParams;

    /// Tiny iBOT with the small heads, masked-token prediction from the first epoch,
    /// `local_crops` 32³ local crops, weights 2 (global) and 0.5 (patch) that tell the
    /// terms apart, and centre momentum 0.5, under which a centre moves far enough in one
    /// step for a stale one to show.
    fn small_settings(local_crops: usize) -> IbotSettings {
        let tiny = IbotMethod::settings(Preset::Tiny);
        let settings = IbotSettings {
            head: small_head(),
            local_crops,
            pred_start_epoch: 0,
            global_weight: 2.0,
            patch_weight: 0.5,
            sharpening: Sharpening {
                center_momentum: 0.5,
                ..tiny.sharpening
            },
            ..tiny
        };
        IbotMethod::check(&settings, &fast_encoder(), [32; 3]).unwrap();
        settings
    }

    /// `count` views (two global, masked by [`uneven_masks`]) of a batch of 2.
    fn masked_batch(count: usize) -> ViewBatch {
        ViewBatch {
            masks: uneven_masks(),
            ..smooth_batch(count, 2, 32)
        }
    }

    /// The head outputs worked out view by view, each head applied once to the
    /// concatenated outputs of the views it sees.
    struct ByHand {
        /// The teacher's global outputs of each whole global view.
        teacher_global: Vec<Vec<f32>>,
        /// The student's of each global view with its mask, then of each local view whole.
        student_global: Vec<Vec<f32>>,
        /// Patch-token outputs `[views · B, tokens, K]`: the teacher's of the whole global
        /// views, the student's of the masked ones.
        teacher_patch: Vec<f32>,
        student_patch: Vec<f32>,
        /// The global views' masks on the patch tokens' grid, `[views · B, tokens]`.
        mask: Vec<f32>,
        tokens: usize,
    }

    fn by_hand(net: &Ibot, batch: &ViewBatch) -> ByHand {
        let device = net.mask_token.val().device();
        let (stage, globals) = (net.patch_stage, net.global_crops);
        let (patch_head, teacher_patch_head) = (
            net.head_patch.as_ref().unwrap(),
            net.teacher_patch.as_ref().unwrap(),
        );
        let mut out = ByHand {
            teacher_global: Vec::new(),
            student_global: Vec::new(),
            teacher_patch: Vec::new(),
            student_patch: Vec::new(),
            mask: Vec::new(),
            tokens: (32usize >> (stage + 1)).pow(3),
        };
        // Each head runs once over all the crops it sees (batch norm statistics over
        // them all): collect the encoders' outputs first.
        let (mut teacher_global, mut student_global) = (Vec::new(), Vec::new());
        let (mut teacher_patch, mut student_patch) = (Vec::new(), Vec::new());
        for v in 0..batch.views.len() {
            let x = view_tensor(batch, v, &device);
            if v >= globals {
                let [.., last] = net.swin_vit.forward(x);
                student_global.push(pooled(last));
                continue;
            }
            let teacher = net.teacher_encoder.forward(x.clone());
            teacher_global.push(pooled(teacher[4].clone()));
            teacher_patch.push(tokens(teacher[stage].clone()));
            let mask = token_mask(batch, v, &device).unwrap();
            let student = net.swin_vit.forward_masked(x, mask, net.mask_token.val());
            student_global.push(pooled(student[4].clone()));
            student_patch.push(tokens(student[stage].clone()));
            out.mask.extend(coarse_tokens(&batch.masks[v], 1 << stage));
        }
        out.teacher_global = rows_through(&net.teacher_head, teacher_global);
        out.student_global = rows_through(&net.head, student_global);
        out.teacher_patch = tokens_through(teacher_patch_head, teacher_patch);
        out.student_patch = tokens_through(patch_head, student_patch);
        out
    }

    impl ByHand {
        /// The unweighted global and patch terms of epoch `epoch` with the centres
        /// `[global, patch]`.
        fn terms(&self, settings: &IbotSettings, epoch: u64, centers: [&[f32]; 2]) -> [f64; 2] {
            let (teachers, students) = (self.teacher_global.len(), self.student_global.len());
            [
                cross_view_loss(
                    &self.teacher_global,
                    &self.student_global,
                    centers[0],
                    &settings.sharpening.at(epoch),
                    &crop_pairs(teachers, students, false),
                ),
                masked_patch_loss(
                    &self.teacher_patch,
                    &self.student_patch,
                    &self.mask,
                    centers[1],
                    &settings.patch_sharpening().at(epoch),
                    self.tokens,
                ),
            ]
        }

        /// The centre updates `[global, patch]` from the centres `[global, patch]`.
        fn center_updates(&self, centers: [&[f32]; 2], momentum: f64) -> [Vec<f32>; 2] {
            [
                center_update(centers[0], &self.teacher_global, momentum),
                center_update(
                    centers[1],
                    std::slice::from_ref(&self.teacher_patch),
                    momentum,
                ),
            ]
        }
    }

    /// A step's weighted `[global, patch]` terms, after checking that they sum to the
    /// total.
    fn weighted_terms<A>(step: &StepLoss<A>) -> [f64; 2] {
        let terms = [component(step, "global"), component(step, "patch")];
        let total = finite_scalar("total", step.total.clone());
        assert_close("total", total, terms[0] + terms[1], 1e-6);
        terms
    }

    /// iBOT's inputs reach the networks as in `main_ibot.py`: the teacher sees the global
    /// crops whole, the student sees them masked (and the local crops whole); the global
    /// term pairs each teacher crop with every other student crop, the patch term
    /// compares the student's masked crop with the teacher's whole same crop at the
    /// masked tokens only, per image then over images, each term against its own centre
    /// and with its own weight. With masks that differ between the views and between the
    /// volumes, a local crop, a teacher unlike the student and centres that are not 0,
    /// the terms and centre updates equal those worked out here from each network's
    /// forward pass of each view; the wrong wirings listed below would move them far
    /// beyond the tolerance.
    #[test]
    fn the_student_sees_masked_global_crops_and_the_teacher_whole_ones() {
        let device = Device::flex();
        let settings = small_settings(1);
        let net = seeded::<IbotMethod>(&settings, 1, &device);
        let other = seeded::<IbotMethod>(&settings, 2, &device);
        let center = |phase| test_center(32, phase, &device);
        let net = Ibot {
            teacher_encoder: other.teacher_encoder,
            teacher_head: other.teacher_head,
            teacher_patch: other.teacher_patch,
            center_global: net.center_global.map(|_| center(0.0)),
            center_patch: net.center_patch.map(|_| center(2.0)),
            ..net
        };
        let batch = masked_batch(3);
        let step = net.loss(&batch, &epoch_start(0)).unwrap();
        let [global, patch] = weighted_terms(&step);
        let hand = by_hand(&net, &batch);
        assert_eq!(
            (hand.teacher_global.len(), hand.student_global.len()),
            (2, 3)
        );
        let centers = [
            values(net.center_global.val()),
            values(net.center_patch.val()),
        ];
        let want = hand.terms(&settings, 0, [&centers[0], &centers[1]]);
        assert_close("global term", global, 2.0 * want[0], 1e-5);
        assert_close("patch term", patch, 0.5 * want[1], 1e-5);
        let updates = step.aux.map(values);
        let momentum = settings.sharpening.center_momentum;
        let want_updates = hand.center_updates([&centers[0], &centers[1]], momentum);
        for (name, got, want) in [
            ("global centre update", &updates[0], &want_updates[0]),
            ("patch centre update", &updates[1], &want_updates[1]),
        ] {
            assert_all_close(name, got, want, 1e-6);
        }

        let swapped = hand.terms(&settings, 0, [&centers[1], &centers[0]]);
        let same_pairs = cross_view_loss(
            &hand.teacher_global,
            &hand.student_global,
            &centers[0],
            &settings.sharpening.at(0),
            &crop_pairs(2, 3, true),
        );
        let distill = settings.patch_sharpening().at(0);
        let patch_loss = |teacher: &[f32], mask: &[f32]| {
            let (student, center) = (&hand.student_patch, &centers[1]);
            masked_patch_loss(teacher, student, mask, center, &distill, hand.tokens)
        };
        let half = hand.teacher_patch.len() / 2;
        let other_view = [&hand.teacher_patch[half..], &hand.teacher_patch[..half]].concat();
        let pooled_tokens = pooled_masked_patch_loss(
            &hand.teacher_patch,
            &hand.student_patch,
            &hand.mask,
            &centers[1],
            &distill,
        );
        for (wrong, got, value) in [
            ("swapped centres, global", global, 2.0 * swapped[0]),
            ("pairs of a crop with itself", global, 2.0 * same_pairs),
            ("swapped centres, patch", patch, 0.5 * swapped[1]),
            (
                "the teacher's other view",
                patch,
                0.5 * patch_loss(&other_view, &hand.mask),
            ),
            (
                "every token counted",
                patch,
                0.5 * patch_loss(&hand.teacher_patch, &[1.0; 32]),
            ),
            (
                "one mean over the batch's masked tokens",
                patch,
                0.5 * pooled_tokens,
            ),
        ] {
            assert_apart(wrong, got, value, 1e-4);
        }
        assert!(largest_gap(&updates[0], &updates[1]) > 1e-4);
    }

    /// Where the masks apply, seen from outside: content under masked patches reaches the
    /// teacher (its centre updates change) but never the student (with a teacher blind
    /// to content, the loss does not change), while content under visible patches reaches
    /// the student; and crops without a masked token add nothing to the patch term,
    /// though every student token differs from the teacher's (the teacher's sharper
    /// distribution is never the student's, so each token's cross-entropy is positive).
    #[test]
    fn masked_content_reaches_the_teacher_and_not_the_student() {
        let device = Device::flex();
        // A content-blind teacher gives every row the same features, which a batch norm
        // in its head maps to one uniform target and the student's sensitivity to its
        // visible content almost vanishes: this test is about the encoders' masks, so
        // its head has none.
        let settings = IbotSettings {
            head: HeadSettings {
                batch_norm: false,
                ..small_head()
            },
            ..small_settings(0)
        };
        let net = seeded::<IbotMethod>(&settings, 1, &device);
        let batch = masked_batch(2);
        let [under_masks, visible] = [true, false].map(|under| perturbed(&batch, under));
        let run = |net: &Ibot, batch: &ViewBatch| {
            let step = net.loss(batch, &epoch_start(0)).unwrap();
            (weighted_terms(&step), step.aux.map(values))
        };
        let (_, seen) = run(&net, &batch);
        let (_, seen_masked) = run(&net, &under_masks);
        for (centre, (a, b)) in ["global", "patch"]
            .iter()
            .zip(seen.iter().zip(&seen_masked))
        {
            assert!(largest_gap(a, b) > 1e-4, "the teacher's {centre} outputs");
        }

        let blind = Ibot {
            teacher_encoder: content_blind(net.teacher_encoder.clone()),
            ..net.clone()
        };
        let base = run(&blind, &batch).0;
        let masked = run(&blind, &under_masks).0;
        let changed = run(&blind, &visible).0;
        for (i, term) in ["global", "patch"].iter().enumerate() {
            assert_close(
                &format!("{term} term, masked content"),
                masked[i],
                base[i],
                1e-6,
            );
            assert_apart(
                &format!("{term} term, visible content"),
                changed[i],
                base[i],
                1e-3,
            );
        }

        let unmasked = ViewBatch {
            masks: vec![patch_mask(|_, _| false); 2],
            ..batch
        };
        let [global, patch] = run(&net, &unmasked).0;
        assert!(global > 0.0);
        assert_eq!(patch, 0.0, "a patch term without masked tokens");
    }

    /// A backward pass of iBOT's loss reaches the student's encoder, mask token and both
    /// heads, and nothing of the teacher or the centres.
    #[test]
    fn gradients_reach_the_student_and_not_the_teacher() {
        let device = Device::flex().autodiff();
        let net = seeded::<IbotMethod>(&small_settings(0), 1, &device);
        let step = net.loss(&masked_batch(2), &epoch_start(0)).unwrap();
        let grads = GradientsParams::from_grads(step.total.backward(), &net);
        assert_only_the_student_learns(
            &param_grads(&net, &grads),
            &[
                "teacher_encoder",
                "teacher_head",
                "teacher_patch",
                "center_global",
                "center_patch",
            ],
            &["swin_vit", "mask_token", "head", "head_patch"],
        );
    }

    /// Two steps in the loop's order (loss and backward, optimiser step, `after_step`):
    /// after step 1 the teacher's encoder and both heads are `m·θ_t + (1 − m)·θ_s` of the
    /// student after the optimiser step, and both centres are the updates step 1's loss
    /// computed; step 2's terms use those centres, not the initial ones nor the ones step
    /// 2 computes, and its updates start from them.
    #[test]
    fn two_steps_move_the_teacher_after_the_optimiser_and_the_centres_after_the_loss() {
        let device = Device::flex().autodiff();
        let settings = small_settings(0);
        let momentum = 0.9;
        let net = seeded::<IbotMethod>(&settings, 1, &device);
        let net = Ibot {
            center_global: net.center_global.map(|c| test_center(32, 0.0, &c.device())),
            center_patch: net.center_patch.map(|c| test_center(32, 2.0, &c.device())),
            ..net
        };
        let batch = masked_batch(2);
        let centers = |net: &Ibot| [&net.center_global, &net.center_patch].map(|c| values(c.val()));
        let initial = centers(&net);
        let pairs = &[
            ("teacher_encoder", "swin_vit"),
            ("teacher_head", "head"),
            ("teacher_patch", "head_patch"),
        ];
        let (net, current) = first_step_of_two_centres(net, &batch, pairs, momentum, centers);

        let context = StepContext {
            iteration: 1,
            ..epoch_start(0)
        };
        let step = net.loss(&batch, &context).unwrap();
        let [global, patch] = weighted_terms(&step);
        let hand = by_hand(&net, &batch);
        let terms = |c: &[Vec<f32>; 2]| hand.terms(&settings, 0, [&c[0], &c[1]]);
        let want = terms(&current);
        assert_close("step 2 global term", global, 2.0 * want[0], 1e-5);
        assert_close("step 2 patch term", patch, 0.5 * want[1], 1e-5);
        let next = hand.center_updates(
            [&current[0], &current[1]],
            settings.sharpening.center_momentum,
        );
        let got = step.aux.map(values);
        assert_all_close("step 2's global centre update", &got[0], &next[0], 1e-6);
        assert_all_close("step 2's patch centre update", &got[1], &next[1], 1e-6);
        for (wrong, centers) in [
            ("the initial centres", &initial),
            ("step 2's own updates", &next),
        ] {
            let value = terms(centers);
            assert_apart(wrong, global, 2.0 * value[0], 1e-4);
            assert_apart(wrong, patch, 0.5 * value[1], 1e-4);
        }
    }
}
