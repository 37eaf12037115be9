//! DINO (Caron et al., ICCV 2021) on the 3-D Swin encoder: a student and an EMA teacher
//! see different crops of a volume; the student's distribution over `out_dim`
//! prototypes must match the teacher's centred and sharpened one, for every pair of a
//! teacher (global) crop and a different student crop. The global token is the
//! average-pooled, layer-normalised output of the last stage (the encoder has no class
//! token).
//!
//! The crops are DINO's `DataAugmentationDINO`: random resized crops of one region of
//! the volume (so every crop shares content with the others), globals at 40–100% and
//! locals at 5–40% of its volume. Gradients are clipped per parameter (`clip_gradients`)
//! and, in `paper`, the learning rate is per 256 volumes (`lr * batch / 256`).

use burn::module::{Module, Param, ParamId};
use burn::tensor::{Device, Tensor};
use medssl_data::Pipeline;
use medssl_data::views::{Crops, RegionCrops, ScaledViews, ViewBatch, ViewPlan};
use medssl_model::SwinUnetrConfig;
use medssl_model::swin::SwinTransformer;
use serde::{Deserialize, Serialize};

use super::checks;
use super::simclr::{check_region, check_scale, preset_region};
use crate::error::{Result, SslError};
use crate::heads::{DinoHead, HeadSettings};
use crate::inputs::view;
use crate::monitors::{embedding_spread, pooled, teacher_entropy};
use crate::pretext::{
    ClipMode, Family, Method, MethodInfo, Preset, Pretext, Recipe, StepContext, StepLoss,
};
use crate::teacher::{ema, frozen_copy, mean_center};
use crate::temperature::Sharpening;

/// DINO's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DinoSettings {
    /// The head.
    pub head: HeadSettings,
    /// Global crops (the teacher sees these), of the run's crop size.
    pub global_crops: usize,
    /// Local crops (student only); 0 turns multi-crop off.
    pub local_crops: usize,
    /// Size of a local crop in voxels, what its box (cut at `local_scale` of the region)
    /// is resized to: multiples of 32, no larger than the global crop.
    pub local_size: [usize; 3],
    /// Side of the region every crop of a volume is cut from, placed at random in the
    /// volume: 48³ in `tiny` (global crops of 32³), 128³ in `paper` (global crops of 96³,
    /// local ones of 64³). Absent: the whole volume, as DINO crops the whole image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<[usize; 3]>,
    /// Range of the fraction of the region's volume a global crop covers before it is
    /// resized to the crop: DINO's `global_crops_scale`, `(0.4, 1)`.
    pub global_scale: [f64; 2],
    /// The same for a local crop, resized to `local_size`: DINO's `local_crops_scale`,
    /// `(0.05, 0.4)`.
    pub local_scale: [f64; 2],
    /// Temperatures and centring.
    pub sharpening: Sharpening,
}

/// The teacher temperature of the tiny preset: 0.04 throughout (`main_dino.py`'s default
/// `teacher_temp` and `warmup_teacher_temp`), student 0.1, centre momentum 0.9.
fn fixed_teacher_temp() -> Sharpening {
    Sharpening {
        teacher_temp: 0.04,
        ..Sharpening::recipe(0)
    }
}

/// DINO's `global_crops_scale` default.
fn global_crops_scale() -> [f64; 2] {
    [0.4, 1.0]
}

/// DINO's `local_crops_scale` default.
fn local_crops_scale() -> [f64; 2] {
    [0.05, 0.4]
}

/// The random resized crops of one region that DINO and iBOT cut: `global_crops` of
/// `crop` voxels, then `local_crops` of `local_size` (none when 0).
pub(super) fn region_multi_crop(
    region: Option<[usize; 3]>,
    (global_crops, crop, global_scale): (usize, [usize; 3], [f64; 2]),
    (local_crops, local_size, local_scale): (usize, [usize; 3], [f64; 2]),
) -> Crops {
    Crops::Region(RegionCrops {
        region,
        global: ScaledViews {
            count: global_crops,
            size: crop,
            scale: global_scale,
        },
        local: (local_crops > 0).then_some(ScaledViews {
            count: local_crops,
            size: local_size,
            scale: local_scale,
        }),
        fill: 0.0,
    })
}

/// The DINO method.
pub struct DinoMethod;

/// DINO's network: student encoder and head, their EMA teacher, and the centre.
#[derive(Module, Debug)]
pub struct Dino {
    /// The student encoder (what is exported).
    pub swin_vit: SwinTransformer,
    /// The student head.
    pub head: DinoHead,
    /// The teacher encoder (EMA of the student, no gradients).
    pub teacher_encoder: SwinTransformer,
    /// The teacher head.
    pub teacher_head: DinoHead,
    /// The centre of the teacher outputs, `[out_dim]` (no gradients).
    pub center: Param<Tensor<1>>,
    global_crops: usize,
    #[module(skip)]
    sharpening: Sharpening,
}

impl Method for DinoMethod {
    type Net = Dino;
    type Settings = DinoSettings;

    const INFO: MethodInfo = MethodInfo {
        name: "dino",
        family: Family::SelfDistillation,
        description: "match an EMA teacher's centred, sharpened prototype distribution of the \
                      global token across crops (Caron et al. 2021)",
    };

    /// The paper's head (65536 prototypes, hidden 2048, bottleneck 256), two 96³
    /// global and four 64³ local crops of a 128³ region at DINO's scales (globals
    /// `global_crops_scale = (0.4, 1)`, locals `local_crops_scale = (0.05, 0.4)`),
    /// temperatures 0.1 (student) and 0.04 to 0.07 over 30 epochs (teacher: the
    /// published ViT-S/16 run's `--teacher_temp 0.07 --warmup_teacher_temp_epochs 30`),
    /// centre momentum 0.9.
    ///
    /// `tiny`: a 1024-prototype head of width 256 and bottleneck 64 with batch norm
    /// (`HeadSettings::preset` says why), two 32³ global crops of a 48³ region and no
    /// local ones, and the teacher temperature held at
    /// 0.04, `main_dino.py`'s default (`warmup_teacher_temp = teacher_temp = 0.04`,
    /// no warm-up): its help advises starting there and calls anything above 0.07
    /// unstable. The warm-up to 0.07 belongs to the published long runs; a short run
    /// with a batch of 2, whose centre is the mean of 4 teacher outputs per step, keeps
    /// the sharper targets, the side away from the uniform collapse that centring alone
    /// pushes towards.
    fn settings(preset: Preset) -> DinoSettings {
        let tiny = preset == Preset::Tiny;
        DinoSettings {
            head: HeadSettings::preset(preset, 65536),
            global_crops: 2,
            local_crops: if tiny { 0 } else { 4 },
            local_size: [if tiny { 32 } else { 64 }; 3],
            region: Some(preset_region(preset)),
            global_scale: global_crops_scale(),
            local_scale: local_crops_scale(),
            sharpening: if tiny {
                fixed_teacher_temp()
            } else {
                Sharpening::recipe(30)
            },
        }
    }

    /// DINO's: weight decay 0.04 rising to 0.4 (cosine), clipping at 3 per parameter,
    /// the last layer frozen for the first epoch, teacher momentum 0.996 rising to 1 on
    /// a cosine, learning rate 5e-4: per 256 volumes in `paper` (`lr_batch_scaling`,
    /// `lr * batch_size / 256`; DINO's batch of 1024 trains at 2e-3).
    ///
    /// `tiny` trains at 1e-4, unscaled. DINO's linear rule gives 3.9e-6 for its batch
    /// of 2, with which AdamW (whose steps are about `lr` in size) moves a weight by
    /// under 1e-3 in a few hundred steps, against initial weights of standard deviation
    /// 0.02: the encoder would not change. The square-root rule of Adam-type optimisers
    /// gives 5e-4 · √(2/256) = 4.4e-5 (8.8e-5 from DINO's 2e-3 at 1024); 1e-4 is that
    /// order. The unscaled 5e-4 is too much for a batch of 2: on 16 synthetic CT volumes
    /// (40 steps) it shrank the embedding spread from 0.066 to 0.009, a collapse
    /// warning, where 1e-4 kept 0.034 and 5e-5 0.047.
    ///
    /// Both presets keep momentum 0.996. DINO's advice of a higher value for small
    /// batches (0.9995 at 256) keeps the teacher's horizon in images over runs of 10⁵
    /// steps and more, but under the cosine rise to 1 a run of `T` steps leaves
    /// `exp(-(1 - m)·T/2)` of the random initial teacher in it: at 0.9995, 95% after 200
    /// steps and 78% after 1000, a teacher that never leaves its initialisation; at
    /// 0.996, 67% and 14%.
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

    /// `utils.clip_gradients`: each parameter's gradient clipped to the limit on its own.
    fn clip_mode(_preset: Preset) -> ClipMode {
        ClipMode::PerParameter
    }

    /// `paper`: DINO's `lr * batch_size_per_gpu * world_size / 256`; `tiny`: the rate
    /// itself (see [`recipe`](Self::recipe)).
    fn lr_batch_scaling(preset: Preset) -> bool {
        preset == Preset::Paper
    }

    fn check(settings: &DinoSettings, _encoder: &SwinUnetrConfig, crop: [usize; 3]) -> Result<()> {
        let bad = |m: String| Err(SslError::Invalid(m));
        if settings.global_crops < 2 && settings.local_crops == 0 {
            return bad(
                "global_crops must be at least 2, or local_crops at least 1: every loss \
                 term pairs a teacher crop with a different student crop"
                    .into(),
            );
        }
        if settings.global_crops == 0 {
            return bad("global_crops must be at least 1".into());
        }
        checks::local_crops(settings.local_crops, settings.local_size, crop)?;
        check_region(settings.region, crop)?;
        check_scale("global_scale", settings.global_scale)?;
        if settings.local_crops > 0 {
            check_scale("local_scale", settings.local_scale)?;
        }
        settings.sharpening.check()?;
        settings.head.check()
    }

    fn view_plan(
        settings: &DinoSettings,
        _encoder: &SwinUnetrConfig,
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
            masks: None,
            rotations: None,
            inpainting: None,
        })
    }

    /// Student from the seed; the teacher starts as its frozen copy; the centre at 0.
    fn build(settings: &DinoSettings, encoder: &SwinUnetrConfig, device: &Device) -> Dino {
        let swin_vit = SwinTransformer::new(encoder, device);
        let head = settings.head.init(encoder.feature_size << 4, device);
        Dino {
            teacher_encoder: frozen_copy(&swin_vit),
            teacher_head: frozen_copy(&head),
            swin_vit,
            head,
            center: settings.head.center(device),
            global_crops: settings.global_crops,
            sharpening: settings.sharpening,
        }
    }
}

impl Dino {
    /// The global token of a view: the last stage's output, pooled.
    fn token(encoder: &SwinTransformer, x: Tensor<5>) -> Tensor<2> {
        let [.., last] = encoder.forward(x);
        pooled(last)
    }
}

impl Pretext for Dino {
    /// The updated centre.
    type Aux = Tensor<1>;

    fn loss(&self, batch: &ViewBatch, context: &StepContext) -> Result<StepLoss<Tensor<1>>> {
        let device = self.center.val().device();
        let views = (0..batch.views.len())
            .map(|v| view(batch, v, &device))
            .collect::<Result<Vec<_>>>()?;
        let teacher_tokens = views[..self.global_crops]
            .iter()
            .map(|x| Dino::token(&self.teacher_encoder, x.clone()))
            .collect();
        let teacher: Vec<Tensor<2>> = self
            .teacher_head
            .forward_crops(teacher_tokens)
            .into_iter()
            .map(|t| t.detach())
            .collect();
        let student_tokens: Vec<Tensor<2>> = views
            .into_iter()
            .map(|x| Dino::token(&self.swin_vit, x))
            .collect();
        let spread = embedding_spread(student_tokens[0].clone())?;
        let student = self.head.forward_crops(student_tokens);
        let distill = self.sharpening.at(context.epoch);
        let teacher_temp = distill.teacher_temp;
        let center = self.center.val();
        let entropy = teacher_entropy(&teacher[0], &center, teacher_temp)?;
        let (loss, new_center) = distill.dino(&teacher, &student, center, None);
        let mut monitors = vec![("teacher_temp", teacher_temp), ("teacher_entropy", entropy)];
        monitors.extend(spread.map(|s| ("embedding_spread", s)));
        Ok(StepLoss {
            total: loss.clone(),
            components: vec![("distillation", loss)],
            monitors,
            aux: new_center,
        })
    }

    /// EMA of encoder and head; the centre becomes the mean of the batches' updates.
    fn after_step(self, aux: Vec<Tensor<1>>, momentum: f64) -> Dino {
        let center = mean_center(aux, &self.center);
        Dino {
            teacher_encoder: ema(self.teacher_encoder, &self.swin_vit, momentum),
            teacher_head: ema(self.teacher_head, &self.head, momentum),
            center: self.center.map(|_| center),
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
        self.head.last_layer()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::methods::test_support::{encoder, region_crops};

    /// `paper`: two 96³ globals at (0.4, 1) and four 64³ locals at (0.05, 0.4) of one
    /// 128³ region; `tiny`: two 32³ globals of a 48³ region, no locals.
    #[test]
    fn crops_are_resized_crops_of_one_region_at_dinos_scales() {
        let paper = DinoMethod::settings(Preset::Paper);
        DinoMethod::check(&paper, &encoder(), [96; 3]).unwrap();
        let crops = region_crops::<DinoMethod>(&paper, 96);
        assert_eq!(crops.region, Some([128; 3]));
        assert_eq!(
            crops.global,
            ScaledViews {
                count: 2,
                size: [96; 3],
                scale: [0.4, 1.0]
            }
        );
        assert_eq!(
            crops.local,
            Some(ScaledViews {
                count: 4,
                size: [64; 3],
                scale: [0.05, 0.4]
            })
        );

        let tiny = DinoMethod::settings(Preset::Tiny);
        DinoMethod::check(&tiny, &encoder(), [32; 3]).unwrap();
        let crops = region_crops::<DinoMethod>(&tiny, 32);
        assert_eq!(crops.region, Some([48; 3]));
        assert_eq!(crops.global.size, [32; 3]);
        assert_eq!(crops.global.scale, [0.4, 1.0]);
        assert_eq!(crops.local, None);

        // Overridden scales reach the plan.
        let wide = DinoSettings {
            global_scale: [0.14, 1.0],
            local_scale: [0.05, 0.25],
            ..paper
        };
        let crops = region_crops::<DinoMethod>(&wide, 96);
        assert_eq!(crops.global.scale, [0.14, 1.0]);
        assert_eq!(crops.local.unwrap().scale, [0.05, 0.25]);
    }

    /// `paper` as published: teacher 0.04 warmed to 0.07 over 30 epochs, momentum 0.996,
    /// 5e-4 per 256 volumes; `tiny`: teacher 0.04 throughout, 1e-4 unscaled; both clip
    /// per parameter.
    #[test]
    fn presets_follow_dino_and_the_tiny_choices() {
        let paper = DinoMethod::settings(Preset::Paper).sharpening;
        assert_eq!(paper, Sharpening::recipe(30));
        assert_eq!(paper.at(0).teacher_temp, 0.04);
        assert!((paper.at(29).teacher_temp - 0.07).abs() < 1e-15);
        assert_eq!(paper.at(0).student_temp, 0.1);
        let tiny = DinoMethod::settings(Preset::Tiny).sharpening;
        for epoch in [0, 1, 5, 30, 1000] {
            assert_eq!(tiny.at(epoch).teacher_temp, 0.04, "epoch {epoch}");
        }
        assert_eq!(tiny.student_temp, 0.1);
        assert_eq!(tiny.center_momentum, 0.9);

        let recipe = DinoMethod::recipe(Preset::Paper);
        assert_eq!(recipe.lr, 5e-4);
        assert_eq!(recipe.teacher_momentum, 0.996);
        assert_eq!(recipe.weight_decay, (0.04, 0.4));
        assert_eq!(recipe.grad_clip_norm, Some(3.0));
        assert_eq!(recipe.freeze_last_layer, 1);
        assert!(DinoMethod::lr_batch_scaling(Preset::Paper));
        let recipe = DinoMethod::recipe(Preset::Tiny);
        assert_eq!(recipe.lr, 1e-4);
        assert_eq!(recipe.teacher_momentum, 0.996);
        assert!(!DinoMethod::lr_batch_scaling(Preset::Tiny));
        for preset in [Preset::Tiny, Preset::Paper] {
            assert_eq!(DinoMethod::clip_mode(preset), ClipMode::PerParameter);
        }
    }

    #[test]
    fn bad_regions_and_scales_are_named() {
        let paper = DinoMethod::settings(Preset::Paper);
        let cases = [
            (
                DinoSettings {
                    region: Some([128, 128, 64]),
                    ..paper.clone()
                },
                "region",
            ),
            (
                DinoSettings {
                    global_scale: [0.0, 1.0],
                    ..paper.clone()
                },
                "global_scale",
            ),
            (
                DinoSettings {
                    local_scale: [0.4, 0.05],
                    ..paper.clone()
                },
                "local_scale",
            ),
        ];
        for (settings, key) in cases {
            let err = DinoMethod::check(&settings, &encoder(), [96; 3])
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
        // Without local crops their scale is not used, nor checked.
        let tiny = DinoSettings {
            local_scale: [0.4, 0.05],
            ..DinoMethod::settings(Preset::Tiny)
        };
        DinoMethod::check(&tiny, &encoder(), [32; 3]).unwrap();
    }

    /// Every setting must be written: a missing scale is named, not filled in; only the
    /// optional region may be left out (the whole volume).
    #[test]
    fn a_missing_setting_is_named() {
        let full = serde_json::to_value(DinoMethod::settings(Preset::Paper)).unwrap();
        for key in ["global_scale", "local_scale"] {
            let mut json = full.clone();
            json.as_object_mut().unwrap().remove(key).unwrap();
            let err = serde_json::from_value::<DinoSettings>(json).unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
        let mut json = full;
        json.as_object_mut().unwrap().remove("region").unwrap();
        let whole: DinoSettings = serde_json::from_value(json).unwrap();
        assert_eq!(whole.region, None);
    }

    // Wiring: which views reach which network, where gradients go, and the order of the
    // EMA and centre updates.

    use crate::methods::test_support::{
        assert_all_close, assert_apart, assert_close, assert_ema_step,
        assert_only_the_student_learns, center_update, crop_pairs, cross_view_loss, epoch_start,
        fast_encoder, finite_scalar, largest_gap, param_grads, parameters, seeded, sgd_step,
        rows_through, small_head, smooth_batch, test_center, values, view_tensor,
    };
    use burn::optim::GradientsParams;

    /// Tiny DINO with the small head, `local_crops` 32³ local crops and centre momentum
    /// 0.5, under which a centre moves far enough in one step for a stale one to show.
    fn small_settings(local_crops: usize) -> DinoSettings {
        let tiny = DinoMethod::settings(Preset::Tiny);
        let settings = DinoSettings {
            head: small_head(),
            local_crops,
            sharpening: Sharpening {
                center_momentum: 0.5,
                ..tiny.sharpening
            },
            ..tiny
        };
        DinoMethod::check(&settings, &fast_encoder(), [32; 3]).unwrap();
        settings
    }

    /// The head outputs worked out view by view: the teacher's (encoder, then head over
    /// those views at once) of the views `teacher_views`, the student's of every view.
    fn outputs_by_hand(
        net: &Dino,
        batch: &ViewBatch,
        teacher_views: usize,
    ) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
        let device = net.center.val().device();
        let x = |v| view_tensor(batch, v, &device);
        let teacher = (0..teacher_views)
            .map(|v| Dino::token(&net.teacher_encoder, x(v)))
            .collect();
        let student = (0..batch.views.len())
            .map(|v| Dino::token(&net.swin_vit, x(v)))
            .collect();
        (
            rows_through(&net.teacher_head, teacher),
            rows_through(&net.head, student),
        )
    }

    /// DINO's crops reach the networks as in `main_dino.py`: the teacher sees only the
    /// global crops, the student every crop, and each student crop is compared with every
    /// teacher crop except itself, against the teacher's output less the current centre.
    /// With two global crops, one local crop, a teacher unlike the student and a centre
    /// that is not 0, the loss and the centre update equal those worked out here from
    /// each network's forward pass of each view; a teacher that also saw the local crop,
    /// pairs of a crop with itself, the student in the teacher's place or no centring
    /// would each move them far beyond the tolerance.
    #[test]
    fn the_teacher_sees_the_global_crops_and_each_student_crop_meets_the_others() {
        let device = Device::flex();
        let settings = small_settings(1);
        let net = seeded::<DinoMethod>(&settings, 1, &device);
        // At build the teacher is the student's copy, which would hide the two being
        // swapped: take another network's.
        let other = seeded::<DinoMethod>(&settings, 2, &device);
        let net = Dino {
            teacher_encoder: other.teacher_encoder,
            teacher_head: other.teacher_head,
            center: net
                .center
                .map(|c| test_center(c.dims()[0], 0.0, &c.device())),
            ..net
        };
        let batch = smooth_batch(3, 2, 32);
        let step = net.loss(&batch, &epoch_start(0)).unwrap();
        let total = finite_scalar("loss", step.total.clone());
        assert_eq!(step.components.len(), 1);
        let (name, distillation) = step.components[0].clone();
        assert_eq!(name, "distillation");
        assert_close(
            "the component",
            finite_scalar(name, distillation),
            total,
            1e-7,
        );

        let (teacher, student) = outputs_by_hand(&net, &batch, 2);
        let globals = &teacher[..];
        // A teacher that also saw the local crop (its head's statistics over all three).
        let (all_three, _) = outputs_by_hand(&net, &batch, 3);
        let center = values(net.center.val());
        let distill = settings.sharpening.at(0);
        let loss = |teacher: &[Vec<f32>], student: &[Vec<f32>], center: &[f32], same| {
            let pairs = crop_pairs(teacher.len(), student.len(), same);
            cross_view_loss(teacher, student, center, &distill, &pairs)
        };
        assert_close("loss", total, loss(globals, &student, &center, false), 1e-5);
        let momentum = distill.center_momentum;
        let update = values(step.aux);
        assert_all_close(
            "centre update",
            &update,
            &center_update(&center, globals, momentum),
            1e-6,
        );

        for (wrong, value) in [
            (
                "a teacher seeing the local crop",
                loss(&all_three, &student, &center, false),
            ),
            (
                "pairs of a crop with itself",
                loss(globals, &student, &center, true),
            ),
            (
                "the student as teacher",
                loss(&student[..2], &student, &center, false),
            ),
            ("no centring", loss(globals, &student, &[0.0; 32], false)),
        ] {
            assert_apart(wrong, total, value, 1e-4);
        }
        let seeing_local = center_update(&center, &all_three, momentum);
        assert!(largest_gap(&update, &seeing_local) > 1e-4);
    }

    /// A backward pass of DINO's loss reaches the student's encoder and head, and nothing
    /// of the teacher or the centre: the optimiser can move only the student, and the
    /// teacher changes by the EMA alone.
    #[test]
    fn gradients_reach_the_student_and_not_the_teacher() {
        let device = Device::flex().autodiff();
        let net = seeded::<DinoMethod>(&small_settings(0), 1, &device);
        let step = net.loss(&smooth_batch(2, 2, 32), &epoch_start(0)).unwrap();
        let grads = GradientsParams::from_grads(step.total.backward(), &net);
        assert_only_the_student_learns(
            &param_grads(&net, &grads),
            &["teacher_encoder", "teacher_head", "center"],
            &["swin_vit", "head"],
        );
    }

    /// Two steps in the loop's order (loss and backward, optimiser step, `after_step`),
    /// against `main_dino.py`: after step 1 every teacher parameter is `m·θ_t + (1 −
    /// m)·θ_s` of the student *after* the optimiser step, and the centre is the update
    /// step 1's loss computed, `c·cm + (1 − cm)·mean(teacher outputs)` (`update_center`
    /// runs after the loss); step 2's loss centres the teacher's outputs with that centre,
    /// not the initial one nor the one step 2 computes, and its update starts from it.
    #[test]
    fn two_steps_move_the_teacher_after_the_optimiser_and_the_centre_after_the_loss() {
        let device = Device::flex().autodiff();
        let settings = small_settings(0);
        let distill = settings.sharpening.at(0);
        let momentum = 0.9;
        let net = seeded::<DinoMethod>(&settings, 1, &device);
        let net = Dino {
            center: net
                .center
                .map(|c| test_center(c.dims()[0], 0.0, &c.device())),
            ..net
        };
        let batch = smooth_batch(2, 2, 32);
        let initial_center = values(net.center.val());
        let before = parameters(&net);

        let step = net.loss(&batch, &epoch_start(0)).unwrap();
        let grads = GradientsParams::from_grads(step.total.backward(), &net);
        let net = sgd_step(net, grads, 0.1);
        let stepped = parameters(&net);
        let update = values(step.aux.clone());
        let net = net.after_step(vec![step.aux], momentum);
        assert_ema_step(
            &before,
            &stepped,
            &parameters(&net),
            &[("teacher_encoder", "swin_vit"), ("teacher_head", "head")],
            momentum,
        );
        let center = values(net.center.val());
        assert_eq!(center, update, "the centre after step 1 is step 1's update");
        assert!(!net.center.val().is_require_grad());

        let context = StepContext {
            iteration: 1,
            ..epoch_start(0)
        };
        let step = net.loss(&batch, &context).unwrap();
        let total = finite_scalar("step 2 loss", step.total.clone());
        let (teacher, student) = outputs_by_hand(&net, &batch, 2);
        let pairs = crop_pairs(2, 2, false);
        let loss = |center: &[f32]| cross_view_loss(&teacher, &student, center, &distill, &pairs);
        assert_close("step 2 loss", total, loss(&center), 1e-5);
        let next = center_update(&center, &teacher, distill.center_momentum);
        assert_all_close("step 2's centre update", &values(step.aux), &next, 1e-6);
        assert_apart("the initial centre", total, loss(&initial_center), 1e-4);
        assert_apart("step 2's own centre update", total, loss(&next), 1e-4);
    }

    /// With gradient accumulation the loop hands `after_step` one centre update per
    /// batch: the centre becomes their mean; with none it stays as it is.
    #[test]
    fn the_centre_after_accumulated_batches_is_the_mean_of_their_updates() {
        let device = Device::flex();
        let net = seeded::<DinoMethod>(&small_settings(0), 1, &device);
        let updates = [0.0, 2.0].map(|phase| test_center(32, phase, &device));
        let [a, b] = updates.clone().map(values);
        let mean: Vec<f32> = a
            .iter()
            .zip(&b)
            .map(|(a, b)| ((f64::from(*a) + f64::from(*b)) / 2.0) as f32)
            .collect();
        assert!(largest_gap(&a, &b) > 1e-2);
        let net = net.after_step(updates.to_vec(), 0.996);
        assert_all_close(
            "the mean of two updates",
            &values(net.center.val()),
            &mean,
            1e-6,
        );
        let net = net.after_step(Vec::new(), 0.996);
        assert_all_close("no update", &values(net.center.val()), &mean, 0.0);
    }
}
