//! DINO (Caron et al., ICCV 2021) on the 3-D Swin encoder: a student and an EMA teacher
//! see different crops of a volume; the student's distribution over `out_dim`
//! prototypes must match the teacher's centred and sharpened one, for every pair of a
//! teacher (global) crop and a different student crop. The global token is the
//! average-pooled, layer-normalised output of the last stage (the encoder has no class
//! token).

use burn::module::{Module, Param, ParamId};
use burn::tensor::{Device, Tensor};
use medssl_data::Pipeline;
use medssl_data::views::{Crops, MultiCrop, ViewBatch, ViewPlan};
use medssl_model::SwinUnetrConfig;
use medssl_model::swin::SwinTransformer;
use serde::{Deserialize, Serialize};

use super::checks;
use crate::error::{Result, SslError};
use crate::heads::{DinoHead, HeadSettings};
use crate::inputs::view;
use crate::monitors::{embedding_spread, pooled, teacher_entropy};
use crate::pretext::{Family, Method, MethodInfo, Preset, Pretext, Recipe, StepContext, StepLoss};
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
    /// Side of a local crop in voxels (a multiple of 32, below the global crop).
    pub local_size: [usize; 3],
    /// Temperatures and centring.
    pub sharpening: Sharpening,
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
    /// global and four 64³ local crops, temperatures 0.1 (student) and 0.04 to 0.07
    /// over 30 epochs (teacher), centre momentum 0.9. `tiny`: a 1024-prototype head of
    /// width 256 and bottleneck 64, two global crops and no local ones, teacher
    /// temperature warmed over 5 epochs.
    fn settings(preset: Preset) -> DinoSettings {
        let tiny = preset == Preset::Tiny;
        DinoSettings {
            head: HeadSettings::preset(preset, 65536),
            global_crops: 2,
            local_crops: if tiny { 0 } else { 4 },
            local_size: [if tiny { 32 } else { 64 }; 3],
            sharpening: Sharpening::recipe(if tiny { 5 } else { 30 }),
        }
    }

    /// DINO's: weight decay 0.04 rising to 0.4, clipping at 3, the last layer frozen
    /// for the first epoch, teacher momentum 0.996 rising to 1; learning rate 5e-4 ×
    /// batch / 256 in the paper (its batch of 1024 gives 2e-3; 5e-4 here).
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
        let teacher: Vec<Tensor<2>> = views[..self.global_crops]
            .iter()
            .map(|x| {
                self.teacher_head
                    .forward(Dino::token(&self.teacher_encoder, x.clone()))
                    .detach()
            })
            .collect();
        let student_tokens: Vec<Tensor<2>> = views
            .into_iter()
            .map(|x| Dino::token(&self.swin_vit, x))
            .collect();
        let spread = embedding_spread(student_tokens[0].clone());
        let student: Vec<Tensor<2>> = student_tokens
            .into_iter()
            .map(|t| self.head.forward(t))
            .collect();
        let distill = self.sharpening.at(context.epoch);
        let teacher_temp = distill.teacher_temp;
        let center = self.center.val();
        let entropy = teacher_entropy(&teacher[0], &center, teacher_temp);
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
