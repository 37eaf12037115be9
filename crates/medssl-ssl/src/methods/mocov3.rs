//! MoCo v3 (Chen et al., ICCV 2021) on the 3-D Swin encoder: an online encoder,
//! projector and predictor; a momentum encoder and projector (EMA, momentum rising from
//! 0.99 to 1 on a cosine); the symmetric InfoNCE `ctr(q1, k2) + ctr(q2, k1)` scaled by
//! `2T`, the other volumes of the batch as negatives.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use medssl_data::Pipeline;
use medssl_data::views::{ViewBatch, ViewPlan};
use medssl_model::SwinUnetrConfig;
use medssl_model::swin::SwinTransformer;
use serde::{Deserialize, Serialize};

use super::checks;
use super::simclr::{global_token, two_crops};
use crate::error::Result;
use crate::heads::{Mlp, MlpConfig};
use crate::losses::contrastive::mocov3;
use crate::monitors::embedding_spread;
use crate::pretext::{Family, Method, MethodInfo, Preset, Pretext, Recipe, StepContext, StepLoss};
use crate::teacher::{ema, frozen_copy};

/// MoCo v3's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MocoV3Settings {
    /// Hidden width of the projector and predictor MLPs.
    pub hidden_dim: usize,
    /// Output width (where the loss is computed).
    pub out_dim: usize,
    /// InfoNCE temperature.
    pub temperature: f64,
}

/// The MoCo v3 method.
pub struct MocoV3Method;

/// MoCo v3's network.
#[derive(Module, Debug)]
pub struct MocoV3 {
    pub swin_vit: SwinTransformer,
    pub projector: Mlp,
    pub predictor: Mlp,
    /// The momentum encoder and projector (EMA, no gradients).
    pub momentum_encoder: SwinTransformer,
    pub momentum_projector: Mlp,
    temperature: f64,
}

impl Method for MocoV3Method {
    type Net = MocoV3;
    type Settings = MocoV3Settings;

    const INFO: MethodInfo = MethodInfo {
        name: "mocov3",
        family: Family::Contrastive,
        description: "symmetric InfoNCE between an online encoder with predictor and a \
                      momentum encoder (Chen et al. 2021)",
    };

    /// The paper's heads (3-layer projector and 2-layer predictor, hidden 4096, output
    /// 256, batch norms) in `paper`, hidden 256 and output 64 in `tiny`; T = 0.2.
    fn settings(preset: Preset) -> MocoV3Settings {
        let tiny = preset == Preset::Tiny;
        MocoV3Settings {
            hidden_dim: if tiny { 256 } else { 4096 },
            out_dim: if tiny { 64 } else { 256 },
            temperature: 0.2,
        }
    }

    /// AdamW with weight decay 0.1 (the paper's ViT recipe), momentum 0.99 rising to 1.
    fn recipe(_preset: Preset) -> Recipe {
        Recipe {
            weight_decay: (0.1, 0.1),
            teacher_momentum: 0.99,
            ..Recipe::adamw(1.5e-4)
        }
    }

    fn check(
        settings: &MocoV3Settings,
        _encoder: &SwinUnetrConfig,
        _crop: [usize; 3],
    ) -> Result<()> {
        checks::positive("temperature", settings.temperature)?;
        checks::widths(&[
            ("hidden_dim", settings.hidden_dim),
            ("out_dim", settings.out_dim),
        ])
    }

    fn view_plan(
        _settings: &MocoV3Settings,
        _encoder: &SwinUnetrConfig,
        crop: [usize; 3],
        augment: Pipeline,
        local_augment: Pipeline,
    ) -> Result<ViewPlan> {
        Ok(two_crops(crop, augment, local_augment))
    }

    fn build(settings: &MocoV3Settings, encoder: &SwinUnetrConfig, device: &Device) -> MocoV3 {
        let (hidden, out) = (settings.hidden_dim, settings.out_dim);
        let swin_vit = SwinTransformer::new(encoder, device);
        let projector = MlpConfig {
            dims: vec![encoder.feature_size << 4, hidden, hidden, out],
            batch_norm: true,
            output_norm: true,
        }
        .init(device);
        MocoV3 {
            momentum_encoder: frozen_copy(&swin_vit),
            momentum_projector: frozen_copy(&projector),
            swin_vit,
            projector,
            predictor: MlpConfig {
                dims: vec![out, hidden, out],
                batch_norm: true,
                output_norm: false,
            }
            .init(device),
            temperature: settings.temperature,
        }
    }
}

impl Pretext for MocoV3 {
    type Aux = ();

    fn loss(&self, batch: &ViewBatch, _context: &StepContext) -> Result<StepLoss<()>> {
        let device = self.swin_vit.patch_embed.proj.weight.val().device();
        let h1 = global_token(&self.swin_vit, batch, 0, &device)?;
        let h2 = global_token(&self.swin_vit, batch, 1, &device)?;
        let spread = embedding_spread(h1.clone());
        let query = |h: Tensor<2>| self.predictor.forward(self.projector.forward(h));
        let key = |v: usize| -> Result<Tensor<2>> {
            let h = global_token(&self.momentum_encoder, batch, v, &device)?;
            Ok(self.momentum_projector.forward(h).detach())
        };
        let loss = mocov3(query(h1), query(h2), key(0)?, key(1)?, self.temperature);
        Ok(StepLoss::contrastive("contrastive", loss, spread))
    }

    fn after_step(self, _aux: Vec<()>, momentum: f64) -> MocoV3 {
        MocoV3 {
            momentum_encoder: ema(self.momentum_encoder, &self.swin_vit, momentum),
            momentum_projector: ema(self.momentum_projector, &self.projector, momentum),
            ..self
        }
    }

    fn encoder(&self) -> &SwinTransformer {
        &self.swin_vit
    }

    fn has_teacher(&self) -> bool {
        true
    }
}
