//! SimCLR (Chen et al., ICML 2020) on the 3-D Swin encoder: two augmented crops of each
//! volume, the pooled last-stage output through a 2-layer MLP projector, and NT-Xent
//! with every other view of the batch as a negative.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use medssl_data::Pipeline;
use medssl_data::views::{Crops, RandomCrops, ViewBatch, ViewPlan};
use medssl_model::SwinUnetrConfig;
use medssl_model::swin::SwinTransformer;
use serde::{Deserialize, Serialize};

use super::checks;
use crate::error::Result;
use crate::heads::{Mlp, MlpConfig};
use crate::inputs::view;
use crate::losses::contrastive::ntxent;
use crate::monitors::{embedding_spread, pooled};
use crate::pretext::{Family, Method, MethodInfo, Preset, Pretext, Recipe, StepContext, StepLoss};

/// SimCLR's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimClrSettings {
    /// Hidden width of the projector.
    pub hidden_dim: usize,
    /// Output width of the projector (where the loss is computed).
    pub out_dim: usize,
    /// NT-Xent temperature.
    pub temperature: f64,
}

/// The SimCLR method.
pub struct SimClrMethod;

/// SimCLR's network: the encoder and the projector.
#[derive(Module, Debug)]
pub struct SimClr {
    pub swin_vit: SwinTransformer,
    pub projector: Mlp,
    temperature: f64,
}

impl Method for SimClrMethod {
    type Net = SimClr;
    type Settings = SimClrSettings;

    const INFO: MethodInfo = MethodInfo {
        name: "simclr",
        family: Family::Contrastive,
        description: "NT-Xent between two augmented crops of a volume, every other crop of the \
                      batch a negative (Chen et al. 2020)",
    };

    /// Projector 2048 → 128 in `paper` (the paper's), 256 → 64 in `tiny`; temperature
    /// 0.1.
    fn settings(preset: Preset) -> SimClrSettings {
        let tiny = preset == Preset::Tiny;
        SimClrSettings {
            hidden_dim: if tiny { 256 } else { 2048 },
            out_dim: if tiny { 64 } else { 128 },
            temperature: 0.1,
        }
    }

    /// AdamW (the paper's LARS is for batches of thousands) at 3e-4, weight decay 1e-6
    /// as the paper, clipping at 3.
    fn recipe(_preset: Preset) -> Recipe {
        Recipe {
            weight_decay: (1e-6, 1e-6),
            ..Recipe::adamw(3e-4)
        }
    }

    fn check(
        settings: &SimClrSettings,
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
        _settings: &SimClrSettings,
        _encoder: &SwinUnetrConfig,
        crop: [usize; 3],
        augment: Pipeline,
        local_augment: Pipeline,
    ) -> Result<ViewPlan> {
        Ok(two_crops(crop, augment, local_augment))
    }

    fn build(settings: &SimClrSettings, encoder: &SwinUnetrConfig, device: &Device) -> SimClr {
        SimClr {
            swin_vit: SwinTransformer::new(encoder, device),
            projector: MlpConfig {
                dims: vec![
                    encoder.feature_size << 4,
                    settings.hidden_dim,
                    settings.out_dim,
                ],
                batch_norm: false,
                output_norm: false,
            }
            .init(device),
            temperature: settings.temperature,
        }
    }
}

/// Two independently augmented crops of `crop` voxels (SimCLR, MoCo v3).
pub(super) fn two_crops(crop: [usize; 3], augment: Pipeline, local_augment: Pipeline) -> ViewPlan {
    ViewPlan {
        crops: Crops::Random(RandomCrops {
            count: 2,
            size: crop,
            fill: 0.0,
        }),
        augment,
        local_augment,
        masks: None,
        rotations: None,
        inpainting: None,
    }
}

/// The pooled last-stage output of `encoder` for view `v` of the batch.
pub(super) fn global_token(
    encoder: &SwinTransformer,
    batch: &ViewBatch,
    v: usize,
    device: &Device,
) -> Result<Tensor<2>> {
    let [.., last] = encoder.forward(view(batch, v, device)?);
    Ok(pooled(last))
}

impl Pretext for SimClr {
    type Aux = ();

    fn loss(&self, batch: &ViewBatch, _context: &StepContext) -> Result<StepLoss<()>> {
        let device = self.swin_vit.patch_embed.proj.weight.val().device();
        let h1 = global_token(&self.swin_vit, batch, 0, &device)?;
        let h2 = global_token(&self.swin_vit, batch, 1, &device)?;
        let spread = embedding_spread(h1.clone());
        let loss = ntxent(
            self.projector.forward(h1),
            self.projector.forward(h2),
            self.temperature,
        );
        Ok(StepLoss::contrastive("contrastive", loss, spread))
    }

    fn after_step(self, _aux: Vec<()>, _momentum: f64) -> SimClr {
        self
    }

    fn encoder(&self) -> &SwinTransformer {
        &self.swin_vit
    }
}
