//! SMIT (Jiang et al., MICCAI 2022), self-distilled masked image transformer: two crops
//! nested in one larger crop; the student sees them with blocks of patches masked, the
//! EMA teacher sees them whole. Three terms: masked patch-token distillation within each
//! view (stage-3 tokens, masked ones only), global-token distillation across the views
//! (the pooled, layer-normalised stage-3 output), and L1 reconstruction of the masked
//! voxels from the last stage (SimMIM's head); total 0.1 patch + 0.1 global + 1.0
//! reconstruction.
//!
//! As SMIT's `train_self_supervised.py` runs it: the global tokens' teacher temperature
//! is warmed from 0.04 to 0.07 over the first epochs, while the patch tokens' is held at
//! `warmup_teacher_patch_temp` until `mim_start_epoch` (its `pred_start_epoch`) and
//! warmed to `teacher_patch_temp` over as many epochs after it (`Cls_Patch_Loss`'s
//! `teacher_temp2_schedule`); the student masks and the patch term are on from the first
//! epoch. Preprocessing: 2 mm voxels and the CT window -175..250 HU; AdamW at 1e-4 per
//! volume of the batch, PyTorch's default weight decay, no gradient clipping.

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
use crate::pretext::{
    ClipMode, Family, Method, MethodInfo, Preset, Pretext, Recipe, StepContext, StepLoss,
};
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
    /// Student temperature, the global tokens' teacher temperature and its warm-up
    /// (`warmup_teacher_temp_epochs`, which SMIT's global and patch schedules share), and
    /// the centres' momentum (SMIT's `center_momentum` and `center_momentum2`, both 0.9).
    pub sharpening: Sharpening,
    /// The patch tokens' teacher temperature after its warm-up (`teacher_patch_temp`,
    /// SMIT: 0.07).
    pub teacher_patch_temp: f64,
    /// The patch tokens' teacher temperature until `mim_start_epoch` and at the start of
    /// its warm-up (`warmup_teacher_patch_temp`, SMIT: 0.04).
    pub warmup_teacher_patch_temp: f64,
    /// Epochs (from 0) the patch temperature is held at `warmup_teacher_patch_temp`
    /// before its warm-up begins (SMIT's `mim_start_epoch`, set from `pred_start_epoch
    /// = 30`).
    pub mim_start_epoch: u64,
    /// Weights of the patch, global and reconstruction terms.
    pub patch_weight: f64,
    pub global_weight: f64,
    pub reconstruction_weight: f64,
}

/// SMIT's `teacher_patch_temp`.
fn teacher_patch_temp() -> f64 {
    0.07
}

/// SMIT's `warmup_teacher_patch_temp`.
fn warmup_teacher_patch_temp() -> f64 {
    0.04
}

impl SmitSettings {
    /// The patch tokens' teacher temperature and centring: `warmup_teacher_patch_temp`
    /// for `mim_start_epoch` epochs, warmed linearly to `teacher_patch_temp` over the
    /// shared warm-up epochs, then held (SMIT's `teacher_temp2_schedule`).
    pub fn patch_sharpening(&self) -> Sharpening {
        Sharpening {
            teacher_temp: self.teacher_patch_temp,
            warmup_teacher_temp: self.warmup_teacher_patch_temp,
            delay_epochs: self.mim_start_epoch,
            ..self.sharpening
        }
    }
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
    /// The patch tokens' schedule ([`SmitSettings::patch_sharpening`]).
    #[module(skip)]
    patch_sharpening: Sharpening,
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

    /// The paper's, as `train_self_supervised.py`: two 96³ views of a 128³ crop
    /// (`RandSpatialCropSamplesd` 128³, then two of 96³), 70% of 16³-voxel blocks masked
    /// (`MaskGenerator(mask_patch_size=16, mask_ratio=0.7)`), heads of 8192 prototypes
    /// (hidden 2048, bottleneck 256), student temperature 0.1, global teacher 0.04 to
    /// 0.07 over 30 epochs (`warmup_teacher_temp_epochs`), patch teacher 0.04 until epoch
    /// 30 (`pred_start_epoch`) and 0.04 to 0.07 over the 30 epochs after it, centre
    /// momenta 0.9, weights 0.1 / 0.1 / 1.0 (`--patch_w`, `--cls_w`, `--rec_w`).
    ///
    /// `tiny`: two 32³ views of a 48³ crop, heads of 1024 (hidden 256, bottleneck 64,
    /// batch norm: `HeadSettings::preset`); SMIT's schedules in the same shape (the patch
    /// warm-up, epochs 30-59 of its 500, starts when the global one, epochs 0-29, ends)
    /// in epochs that fit the tiny preset's 20: the patch temperature held at 0.04 for
    /// epochs 0-4 and warmed over epochs 5-9, 0.07 from epoch 9 on. The global teacher
    /// temperature stays at 0.04, as in DINO's and iBOT's tiny presets: warmed to 0.07,
    /// it left the teacher near uniform in a 200-step run at batch 8 (entropy 5.68 of
    /// ln 1024 = 6.93, perplexity about 290 prototypes), where 0.04 gave 1.8.
    fn settings(preset: Preset) -> SmitSettings {
        let tiny = preset == Preset::Tiny;
        let warmup = if tiny { 5 } else { 30 };
        SmitSettings {
            outer_size: [if tiny { 48 } else { 128 }; 3],
            mask_ratio: 0.7,
            block_size: 16,
            head: HeadSettings::preset(preset, 8192),
            sharpening: if tiny {
                // The warm-up epochs still time the patch temperature's warm-up.
                Sharpening {
                    teacher_temp: 0.04,
                    ..Sharpening::recipe(warmup)
                }
            } else {
                Sharpening::recipe(warmup)
            },
            teacher_patch_temp: teacher_patch_temp(),
            warmup_teacher_patch_temp: warmup_teacher_patch_temp(),
            mim_start_epoch: warmup,
            patch_weight: 0.1,
            global_weight: 0.1,
            reconstruction_weight: 1.0,
        }
    }

    /// `train_self_supervised.py`'s optimisation: `torch.optim.AdamW(lr=1e-4 *
    /// batch_size)`, i.e. 1e-4 per volume of the batch (written here as 0.0256 per 256
    /// volumes with `lr_batch_scaling`: 2e-4 at the presets' batch of 2, 6e-4 at its
    /// batch of 6), PyTorch's default weight decay 0.01, constant, no gradient clipping
    /// (its `clip_gradients` is never called), the last head layers frozen in the first
    /// epoch (`cancel_gradients_last_layer(epoch, model_S, 1)`), teacher momentum 0.996
    /// (the start of its cosine schedule to 1, which its loop indexes by the step within
    /// the epoch, so that its momentum stays near 0.996 throughout).
    fn recipe(_preset: Preset) -> Recipe {
        Recipe {
            lr: 0.0256,
            weight_decay: (0.01, 0.01),
            grad_clip_norm: None,
            freeze_last_layer: 1,
            teacher_momentum: 0.996,
            crop: None,
        }
    }

    /// Irrelevant without clipping; SMIT's `train_utils.clip_gradients` (unused) would
    /// clip per parameter.
    fn clip_mode(_preset: Preset) -> ClipMode {
        ClipMode::PerParameter
    }

    /// SMIT's `lr = 0.0001 * batch_size`: the rate follows the batch.
    fn lr_batch_scaling(_preset: Preset) -> bool {
        true
    }

    /// `ScaleIntensityRanged(a_min=-175, a_max=250)` in `MIMTransform` (and its
    /// fine-tuning's `--a_min`/`--a_max` defaults).
    fn intensity_window(_preset: Preset) -> [f64; 2] {
        [-175.0, 250.0]
    }

    /// `Spacingd(pixdim=(2.0, 2.0, 2.0))` in `MIMTransform` (its fine-tuning resamples
    /// to 1.5 × 1.5 × 2 mm).
    fn spacing(_preset: Preset) -> [f64; 3] {
        [2.0, 2.0, 2.0]
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
        checks::positive("teacher_patch_temp", settings.teacher_patch_temp)?;
        checks::positive(
            "warmup_teacher_patch_temp",
            settings.warmup_teacher_patch_temp,
        )?;
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
            patch_sharpening: settings.patch_sharpening(),
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
        let spread = embedding_spread(pooled(student3.clone()))?;
        let distill = self.sharpening.at(context.epoch);
        let teacher_temp = distill.teacher_temp;
        let teacher_patch_temp = self.patch_sharpening.at(context.epoch).teacher_temp;
        let smit = SmitLoss {
            patch_weight: self.patch_weight,
            cls_weight: self.global_weight,
            recon_weight: self.reconstruction_weight,
            student_temp: distill.student_temp,
            teacher_temp_cls: teacher_temp,
            teacher_temp_patch: teacher_patch_temp,
            center_momentum: distill.center_momentum,
        };
        let teacher_cls = self
            .teacher_global
            .forward(pooled(teacher3.clone()))
            .detach();
        let entropy = teacher_entropy(&teacher_cls, &self.center_global.val(), teacher_temp)?;
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
        let mut monitors = vec![
            ("teacher_temp", teacher_temp),
            ("teacher_patch_temp", teacher_patch_temp),
            ("teacher_entropy", entropy),
        ];
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::methods::test_support::{encoder, epoch_start, masked_two_view_batch, plan_of};

    fn close(got: f64, want: f64) -> bool {
        (got - want).abs() < 1e-15
    }

    /// `paper` as `train_self_supervised.py`: `warmup_teacher_temp_epochs = 30`,
    /// `pred_start_epoch = 30`, temperatures 0.04 to 0.07 for both token kinds.
    #[test]
    fn paper_temperatures_follow_smits_schedules() {
        let paper = SmitMethod::settings(Preset::Paper);
        assert_eq!(paper.sharpening, Sharpening::recipe(30));
        assert_eq!(paper.mim_start_epoch, 30);
        assert_eq!(paper.warmup_teacher_patch_temp, 0.04);
        assert_eq!(paper.teacher_patch_temp, 0.07);
        SmitMethod::check(&paper, &encoder(), [96; 3]).unwrap();
        // Global tokens: np.linspace(0.04, 0.07, 30), then 0.07.
        let global = |e| paper.sharpening.at(e).teacher_temp;
        assert_eq!(global(0), 0.04);
        assert!(close(global(15), 0.04 + 0.03 * 15.0 / 29.0));
        assert!(close(global(29), 0.07));
        assert_eq!(global(30), 0.07);
        // Patch tokens: np.ones(30) * 0.04, np.linspace(0.04, 0.07, 30), then 0.07.
        let patch = paper.patch_sharpening();
        let temp = |e| patch.at(e).teacher_temp;
        for epoch in [0, 1, 15, 29] {
            assert_eq!(temp(epoch), 0.04, "before mim_start_epoch: epoch {epoch}");
        }
        assert_eq!(temp(30), 0.04, "at mim_start_epoch");
        assert!(close(temp(31), 0.04 + 0.03 / 29.0), "{}", temp(31));
        assert!(close(temp(45), 0.04 + 0.03 * 15.0 / 29.0), "{}", temp(45));
        assert!(close(temp(59), 0.07), "{}", temp(59));
        assert_eq!(temp(60), 0.07);
        assert_eq!(temp(499), 0.07);
        // The student temperature and the centre momentum are the global ones.
        assert_eq!(patch.at(40).student_temp, 0.1);
        assert_eq!(patch.at(40).center_momentum, 0.9);
    }

    /// `tiny`: the global teacher temperature at 0.04 throughout, the patch temperature
    /// held until epoch 5 and warmed over epochs 5-9.
    #[test]
    fn tiny_temperatures_fit_a_twenty_epoch_run() {
        let tiny = SmitMethod::settings(Preset::Tiny);
        assert_eq!(tiny.mim_start_epoch, 5);
        SmitMethod::check(&tiny, &encoder(), [32; 3]).unwrap();
        let global: Vec<f64> = (0..12).map(|e| tiny.sharpening.at(e).teacher_temp).collect();
        assert!(global.iter().all(|&g| g == 0.04), "{global:?}");
        let patch = tiny.patch_sharpening();
        let temps: Vec<f64> = (0..12).map(|e| patch.at(e).teacher_temp).collect();
        let want = [
            0.04, 0.04, 0.04, 0.04, 0.04, 0.04, 0.0475, 0.055, 0.0625, 0.07, 0.07, 0.07,
        ];
        assert!(
            temps.iter().zip(want).all(|(t, w)| close(*t, w)),
            "{temps:?}"
        );
    }

    /// Crops, optimisation and preprocessing as the script: 96³ views of a 128³ crop,
    /// AdamW at 1e-4 per volume, weight decay 0.01, no clipping, -175..250 HU, 2 mm.
    #[test]
    fn recipe_and_preprocessing_follow_smits_script() {
        for (preset, outer, crop) in [(Preset::Paper, 128, 96), (Preset::Tiny, 48, 32)] {
            let settings = SmitMethod::settings(preset);
            let plan = plan_of::<SmitMethod>(&settings, crop);
            match plan.crops {
                Crops::Nested(nested) => {
                    assert_eq!(nested.outer_size, [outer; 3]);
                    assert_eq!(nested.inner_size, [crop; 3]);
                    assert_eq!(nested.count, 2);
                }
                other => panic!("SMIT cuts nested crops, not {other:?}"),
            }
            let masks = plan.masks.unwrap();
            assert_eq!((masks.views, masks.block_size), (2, 16));

            let recipe = SmitMethod::recipe(preset);
            assert!(SmitMethod::lr_batch_scaling(preset));
            // lr · batch / 256: 1e-4 per volume (2e-4 at batch 2, 6e-4 at its batch of 6).
            for (batch, want) in [(1.0, 1e-4), (2.0, 2e-4), (6.0, 6e-4)] {
                let lr = recipe.lr * batch / 256.0;
                assert!((lr - want).abs() < 1e-15, "batch {batch}: {lr}");
            }
            assert_eq!(recipe.weight_decay, (0.01, 0.01));
            assert_eq!(recipe.grad_clip_norm, None);
            assert_eq!(recipe.freeze_last_layer, 1);
            assert_eq!(recipe.teacher_momentum, 0.996);
            assert_eq!(recipe.crop, None);
            assert_eq!(SmitMethod::intensity_window(preset), [-175.0, 250.0]);
            assert_eq!(SmitMethod::spacing(preset), [2.0; 3]);
        }
    }

    /// Every setting must be written: a missing patch schedule setting is named, not
    /// filled in.
    #[test]
    fn a_missing_setting_is_named() {
        let full = serde_json::to_value(SmitMethod::settings(Preset::Paper)).unwrap();
        for key in [
            "teacher_patch_temp",
            "warmup_teacher_patch_temp",
            "mim_start_epoch",
        ] {
            let mut json = full.clone();
            json.as_object_mut().unwrap().remove(key).unwrap();
            let err = serde_json::from_value::<SmitSettings>(json).unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn bad_patch_temperatures_are_named() {
        let tiny = SmitMethod::settings(Preset::Tiny);
        for (settings, key) in [
            (
                SmitSettings {
                    teacher_patch_temp: 0.0,
                    ..tiny.clone()
                },
                "teacher_patch_temp",
            ),
            (
                SmitSettings {
                    warmup_teacher_patch_temp: -0.04,
                    ..tiny.clone()
                },
                "warmup_teacher_patch_temp",
            ),
        ] {
            let err = SmitMethod::check(&settings, &encoder(), [32; 3])
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
    }

    /// The loss uses the patch schedule for the patch tokens: with a 2-epoch global
    /// warm-up and `mim_start_epoch = 2`, the global temperature is 0.07 from epoch 1
    /// while the patch temperature is 0.04 before and at epoch 2, 0.07 after it.
    #[test]
    fn the_loss_warms_the_patch_temperature_after_mim_start_epoch() {
        let device = Device::flex();
        let settings = SmitSettings {
            head: small_head(),
            sharpening: Sharpening::recipe(2),
            mim_start_epoch: 2,
            ..SmitMethod::settings(Preset::Tiny)
        };
        SmitMethod::check(&settings, &encoder(), [32; 3]).unwrap();
        let net = seeded::<SmitMethod>(&settings, 1, &device);
        let batch = masked_two_view_batch();
        let at = |epoch| {
            let step = net.loss(&batch, &epoch_start(epoch)).unwrap();
            let monitor = |name| step.monitors.iter().find(|(n, _)| *n == name).unwrap().1;
            let total = f64::from(step.total.into_data().try_to_vec::<f32>().unwrap()[0]);
            assert!(total.is_finite() && total > 0.0, "epoch {epoch}: {total}");
            (monitor("teacher_temp"), monitor("teacher_patch_temp"))
        };
        for (epoch, want, when) in [
            (0, (0.04, 0.04), "first epoch"),
            (1, (0.07, 0.04), "before mim_start_epoch"),
            (2, (0.07, 0.04), "at mim_start_epoch"),
            (3, (0.07, 0.07), "after mim_start_epoch"),
        ] {
            let got = at(epoch);
            assert!(
                close(got.0, want.0) && close(got.1, want.1),
                "{when}: {got:?} != {want:?}"
            );
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

    /// Tiny SMIT with the small heads, weights 0.3 (patch), 0.2 (global) and 1.5
    /// (reconstruction) that tell the terms apart, and centre momentum 0.5, under which a
    /// centre moves far enough in one step for a stale one to show.
    fn small_settings() -> SmitSettings {
        let tiny = SmitMethod::settings(Preset::Tiny);
        let settings = SmitSettings {
            head: small_head(),
            patch_weight: 0.3,
            global_weight: 0.2,
            reconstruction_weight: 1.5,
            sharpening: Sharpening {
                center_momentum: 0.5,
                ..tiny.sharpening
            },
            ..tiny
        };
        SmitMethod::check(&settings, &fast_encoder(), [32; 3]).unwrap();
        settings
    }

    /// Two views of a batch of 2, masked by [`uneven_masks`].
    fn masked_batch() -> ViewBatch {
        ViewBatch {
            masks: uneven_masks(),
            ..smooth_batch(2, 2, 32)
        }
    }

    /// The networks' outputs worked out one view at a time.
    struct ByHand {
        /// Global-token outputs per view: the teacher's of the whole view, the student's of
        /// the masked one.
        teacher_global: Vec<Vec<f32>>,
        student_global: Vec<Vec<f32>>,
        /// Stage-3 patch-token outputs `[views · B, 8, K]`, likewise.
        teacher_patch: Vec<f32>,
        student_patch: Vec<f32>,
        /// The masks on the stage-3 grid, `[views · B, 8]`.
        mask: Vec<f32>,
        /// The L1 of the student's prediction against the whole views over the masked
        /// voxels of both views (`Σ|p − x| / (n + 1e-5)`), and over every voxel.
        reconstruction: f64,
        every_voxel: f64,
    }

    fn by_hand(net: &Smit, batch: &ViewBatch) -> ByHand {
        let device = net.mask_token.val().device();
        let mut out = ByHand {
            teacher_global: Vec::new(),
            student_global: Vec::new(),
            teacher_patch: Vec::new(),
            student_patch: Vec::new(),
            mask: Vec::new(),
            reconstruction: 0.0,
            every_voxel: 0.0,
        };
        let (mut masked_error, mut masked, mut error, mut voxels) = (0.0, 0.0, 0.0, 0.0);
        // Each head runs once over both views (batch norm statistics over them both).
        let (mut teacher_global, mut student_global) = (Vec::new(), Vec::new());
        let (mut teacher_patch, mut student_patch) = (Vec::new(), Vec::new());
        for v in 0..2 {
            let x = view_tensor(batch, v, &device);
            let [_, _, _, teacher3, _] = net.teacher_encoder.forward(x.clone());
            teacher_global.push(pooled(teacher3.clone()));
            teacher_patch.push(tokens(teacher3));
            let mask = token_mask(batch, v, &device).unwrap();
            let [_, _, _, student3, student4] =
                net.swin_vit.forward_masked(x, mask, net.mask_token.val());
            student_global.push(pooled(student3.clone()));
            student_patch.push(tokens(student3));
            out.mask.extend(coarse_tokens(&batch.masks[v], 8));
            // The last stage's 32³-voxel tokens, each decoded to its voxels.
            let prediction = values(pixel_shuffle(net.decoder.forward(student4), 32));
            for (&p, ((b, _, z, y, x), &target)) in
                prediction.iter().zip(batch.views[v].indexed_iter())
            {
                let gap = (f64::from(p) - f64::from(target)).abs();
                (error, voxels) = (error + gap, voxels + 1.0);
                if batch.masks[v][[b, z / 2, y / 2, x / 2]] {
                    (masked_error, masked) = (masked_error + gap, masked + 1.0);
                }
            }
        }
        out.teacher_global = rows_through(&net.teacher_global, teacher_global);
        out.student_global = rows_through(&net.head_global, student_global);
        out.teacher_patch = tokens_through(&net.teacher_patch, teacher_patch);
        out.student_patch = tokens_through(&net.head_patch, student_patch);
        out.reconstruction = masked_error / (masked + 1e-5);
        out.every_voxel = error / voxels;
        out
    }

    impl ByHand {
        /// The unweighted patch, global and reconstruction terms of epoch `epoch` with
        /// the centres `[global, patch]`.
        fn terms(&self, settings: &SmitSettings, epoch: u64, centers: [&[f32]; 2]) -> [f64; 3] {
            [
                masked_patch_loss(
                    &self.teacher_patch,
                    &self.student_patch,
                    &self.mask,
                    centers[1],
                    &settings.patch_sharpening().at(epoch),
                    8,
                ),
                cross_view_loss(
                    &self.teacher_global,
                    &self.student_global,
                    centers[0],
                    &settings.sharpening.at(epoch),
                    &crop_pairs(2, 2, false),
                ),
                self.reconstruction,
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

    /// The weights of the patch, global and reconstruction terms.
    const WEIGHTS: [f64; 3] = [0.3, 0.2, 1.5];

    /// A step's weighted `[patch, global, reconstruction]` terms, after checking that they
    /// sum to the total.
    fn weighted_terms<A>(step: &StepLoss<A>) -> [f64; 3] {
        let terms = ["patch", "global", "reconstruction"].map(|name| component(step, name));
        let total = finite_scalar("total", step.total.clone());
        assert_close("total", total, terms.iter().sum(), 1e-6);
        terms
    }

    /// A network with the teacher of another and centres that are not 0.
    fn unlike_teacher(settings: &SmitSettings, device: &Device) -> Smit {
        let net = seeded::<SmitMethod>(settings, 1, device);
        let other = seeded::<SmitMethod>(settings, 2, device);
        Smit {
            teacher_encoder: other.teacher_encoder,
            teacher_global: other.teacher_global,
            teacher_patch: other.teacher_patch,
            ..with_test_centers(net)
        }
    }

    /// `net` with the test centres (global phase 0, patch phase 2).
    fn with_test_centers(net: Smit) -> Smit {
        Smit {
            center_global: net.center_global.map(|c| test_center(32, 0.0, &c.device())),
            center_patch: net.center_patch.map(|c| test_center(32, 2.0, &c.device())),
            ..net
        }
    }

    /// SMIT's inputs reach the networks as its `train_self_supervised.py` and
    /// `Cls_Patch_Loss` have them: the teacher sees both views whole, the student sees
    /// them masked; the global term pairs each teacher view with the student's other view
    /// (stage-3 tokens pooled), the patch term compares the student's masked view with the
    /// teacher's whole same view at the masked stage-3 tokens only, per image then over
    /// images, each term against its own centre; the reconstruction term is the L1 of the
    /// student's decoded last stage against the whole views over the masked voxels. With
    /// masks that differ between the views and between the volumes, a teacher unlike the
    /// student and centres that are not 0, the terms and centre updates equal those worked
    /// out here from each network's forward pass of each view; the wrong wirings listed
    /// below would move them far beyond the tolerance.
    #[test]
    fn the_student_sees_masked_views_and_the_teacher_whole_ones() {
        let device = Device::flex();
        let settings = small_settings();
        let net = unlike_teacher(&settings, &device);
        let batch = masked_batch();
        let step = net.loss(&batch, &epoch_start(0)).unwrap();
        let got = weighted_terms(&step);
        let hand = by_hand(&net, &batch);
        let centers = [
            values(net.center_global.val()),
            values(net.center_patch.val()),
        ];
        let want = hand.terms(&settings, 0, [&centers[0], &centers[1]]);
        for (i, name) in ["patch", "global", "reconstruction"].iter().enumerate() {
            assert_close(&format!("{name} term"), got[i], WEIGHTS[i] * want[i], 1e-5);
        }
        let updates = step.aux.map(values);
        let momentum = settings.sharpening.center_momentum;
        let want_updates = hand.center_updates([&centers[0], &centers[1]], momentum);
        assert_all_close("global centre update", &updates[0], &want_updates[0], 1e-6);
        assert_all_close("patch centre update", &updates[1], &want_updates[1], 1e-6);

        let swapped = hand.terms(&settings, 0, [&centers[1], &centers[0]]);
        let same_pairs = cross_view_loss(
            &hand.teacher_global,
            &hand.student_global,
            &centers[0],
            &settings.sharpening.at(0),
            &crop_pairs(2, 2, true),
        );
        let distill = settings.patch_sharpening().at(0);
        let patch_loss = |teacher: &[f32], mask: &[f32]| {
            let (student, center) = (&hand.student_patch, &centers[1]);
            masked_patch_loss(teacher, student, mask, center, &distill, 8)
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
        let [patch, global, reconstruction] = got;
        for (wrong, got, value) in [
            ("swapped centres, patch", patch, WEIGHTS[0] * swapped[0]),
            (
                "the teacher's other view",
                patch,
                WEIGHTS[0] * patch_loss(&other_view, &hand.mask),
            ),
            (
                "every token counted",
                patch,
                WEIGHTS[0] * patch_loss(&hand.teacher_patch, &[1.0; 32]),
            ),
            (
                "one mean over the batch's masked tokens",
                patch,
                WEIGHTS[0] * pooled_tokens,
            ),
            ("swapped centres, global", global, WEIGHTS[1] * swapped[1]),
            (
                "pairs of a view with itself",
                global,
                WEIGHTS[1] * same_pairs,
            ),
            (
                "every voxel counted",
                reconstruction,
                WEIGHTS[2] * hand.every_voxel,
            ),
        ] {
            assert_apart(wrong, got, value, 1e-4);
        }
        assert!(largest_gap(&updates[0], &updates[1]) > 1e-4);
    }

    /// Where the masks apply, seen from outside: content under masked patches reaches the
    /// teacher (its centre updates change) and the reconstruction target but never the
    /// student (with a teacher blind to content, neither distillation term changes),
    /// while content under visible patches reaches the student; with a student blind to
    /// content, whose prediction then ignores the input, content under visible patches
    /// leaves the reconstruction term as it is (only masked voxels count); and a batch
    /// without masked patches has no patch or reconstruction term, though every student
    /// token differs from the teacher's.
    #[test]
    fn masked_content_reaches_the_teacher_and_the_target_but_not_the_student() {
        let device = Device::flex();
        let net = seeded::<SmitMethod>(&small_settings(), 1, &device);
        let batch = masked_batch();
        let [under_masks, visible] = [true, false].map(|under| perturbed(&batch, under));
        let run = |net: &Smit, batch: &ViewBatch| {
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

        let names = ["patch", "global", "reconstruction"];
        let blind_teacher = Smit {
            teacher_encoder: content_blind(net.teacher_encoder.clone()),
            ..net.clone()
        };
        let base = run(&blind_teacher, &batch).0;
        let masked = run(&blind_teacher, &under_masks).0;
        let changed = run(&blind_teacher, &visible).0;
        for i in 0..2 {
            assert_close(
                &format!("{} term, masked content", names[i]),
                masked[i],
                base[i],
                1e-6,
            );
        }
        assert_apart("reconstruction, masked content", masked[2], base[2], 1e-4);
        for i in 0..2 {
            assert_apart(
                &format!("{}, visible content", names[i]),
                changed[i],
                base[i],
                1e-4,
            );
        }

        let blind_student = Smit {
            swin_vit: content_blind(net.swin_vit.clone()),
            ..net.clone()
        };
        let base = run(&blind_student, &batch).0;
        let changed = run(&blind_student, &visible).0;
        assert_close("reconstruction, visible content", changed[2], base[2], 1e-6);

        let unmasked = ViewBatch {
            masks: vec![patch_mask(|_, _| false); 2],
            ..batch
        };
        let [patch, global, reconstruction] = run(&net, &unmasked).0;
        assert!(global > 0.0);
        assert_eq!(
            [patch, reconstruction],
            [0.0; 2],
            "terms without masked patches"
        );
    }

    /// A backward pass of SMIT's loss reaches the student's encoder, mask token, decoder
    /// and both heads, and nothing of the teacher or the centres.
    #[test]
    fn gradients_reach_the_student_and_not_the_teacher() {
        let device = Device::flex().autodiff();
        let net = seeded::<SmitMethod>(&small_settings(), 1, &device);
        let step = net.loss(&masked_batch(), &epoch_start(0)).unwrap();
        let grads = GradientsParams::from_grads(step.total.backward(), &net);
        assert_only_the_student_learns(
            &param_grads(&net, &grads),
            &[
                "teacher_encoder",
                "teacher_global",
                "teacher_patch",
                "center_global",
                "center_patch",
            ],
            &[
                "swin_vit",
                "mask_token",
                "decoder",
                "head_global",
                "head_patch",
            ],
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
        let settings = small_settings();
        let momentum = 0.9;
        let net = with_test_centers(seeded::<SmitMethod>(&settings, 1, &device));
        let batch = masked_batch();
        let centers = |net: &Smit| [&net.center_global, &net.center_patch].map(|c| values(c.val()));
        let initial = centers(&net);
        let pairs = &[
            ("teacher_encoder", "swin_vit"),
            ("teacher_global", "head_global"),
            ("teacher_patch", "head_patch"),
        ];
        let (net, current) = first_step_of_two_centres(net, &batch, pairs, momentum, centers);

        let context = StepContext {
            iteration: 1,
            ..epoch_start(0)
        };
        let step = net.loss(&batch, &context).unwrap();
        let got = weighted_terms(&step);
        let hand = by_hand(&net, &batch);
        let terms = |c: &[Vec<f32>; 2]| hand.terms(&settings, 0, [&c[0], &c[1]]);
        let want = terms(&current);
        for (i, name) in ["patch", "global", "reconstruction"].iter().enumerate() {
            assert_close(
                &format!("step 2 {name} term"),
                got[i],
                WEIGHTS[i] * want[i],
                1e-5,
            );
        }
        let momentum = settings.sharpening.center_momentum;
        let next = hand.center_updates([&current[0], &current[1]], momentum);
        let updates = step.aux.map(values);
        assert_all_close("step 2's global centre update", &updates[0], &next[0], 1e-6);
        assert_all_close("step 2's patch centre update", &updates[1], &next[1], 1e-6);
        for (wrong, centers) in [
            ("the initial centres", &initial),
            ("step 2's own updates", &next),
        ] {
            let value = terms(centers);
            assert_apart(wrong, got[0], WEIGHTS[0] * value[0], 1e-4);
            assert_apart(wrong, got[1], WEIGHTS[1] * value[1], 1e-4);
        }
    }
}
