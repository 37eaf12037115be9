//! Contrastive predictive coding (van den Oord et al. 2018) in 3-D as Taleb et al.
//! (NeurIPS 2020): a grid of `g × g × g` sub-volumes of `encoder.crop` voxels (cells
//! overlapping by `overlap`) is cut at a random position; each cell is encoded
//! separately to one vector (the pooled deepest stage). The cells of the first
//! `context_rows` rows of the grid (along the first axis) are the context; a context
//! network summarises them and predicts the embedding of every cell of the remaining
//! rows, one linear map per predicted cell (CPC's `W_k`). InfoNCE scores each prediction
//! against the embedding of its cell, every other predicted cell of the batch being a
//! negative.
//!
//! The context network is an MLP over the context embeddings in raster order (so it
//! knows which cell each came from), its last layer holding the per-cell maps. Taleb et
//! al.'s GRU over the context rows reads the same cells; with one to two context rows a
//! recurrence has nothing to carry.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use medssl_data::Pipeline;
use medssl_data::views::{CpcGrid, Crops, ViewBatch, ViewPlan};
use medssl_model::SwinUnetrConfig;
use medssl_model::swin::SwinTransformer;
use serde::{Deserialize, Serialize};

use super::checks;
use crate::error::{Result, SslError};
use crate::heads::{Mlp, MlpConfig};
use crate::inputs::view;
use crate::losses::contrastive::{Similarity, infonce};
use crate::monitors::{embedding_spread, pooled};
use crate::pretext::{Family, Method, MethodInfo, Preset, Pretext, Recipe, StepContext, StepLoss};

/// How a prediction is scored against a cell's embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Score {
    /// The dot product (van den Oord et al.).
    Dot,
    /// Cosine similarity over `temperature`.
    Cosine,
}

/// CPC's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpcSettings {
    /// Cells per axis.
    pub grid: usize,
    /// Rows (along the first axis) that form the context; the rest are predicted.
    pub context_rows: usize,
    /// Voxels shared by neighbouring cells.
    pub overlap: usize,
    /// Largest random shift of a cell, per axis, in voxels.
    pub jitter: usize,
    /// Hidden width of the context network.
    pub hidden_dim: usize,
    /// The score of a prediction.
    pub score: Score,
    /// Temperature of the cosine score (unused with `dot`).
    pub temperature: f64,
}

impl CpcSettings {
    fn cells(&self) -> usize {
        self.grid * self.grid * self.grid
    }

    fn context_cells(&self) -> usize {
        self.context_rows * self.grid * self.grid
    }

    fn similarity(&self) -> Similarity {
        match self.score {
            Score::Dot => Similarity::Dot,
            Score::Cosine => Similarity::Cosine {
                temperature: self.temperature,
            },
        }
    }
}

/// The CPC method.
pub struct CpcMethod;

/// CPC's network: the encoder and the context network.
#[derive(Module, Debug)]
pub struct Cpc {
    pub swin_vit: SwinTransformer,
    pub context: Mlp,
    #[module(skip)]
    settings: CpcSettings,
}

impl Method for CpcMethod {
    type Net = Cpc;
    type Settings = CpcSettings;

    const INFO: MethodInfo = MethodInfo {
        name: "cpc",
        family: Family::Contrastive,
        description: "predict the embeddings of the lower rows of a grid of sub-volumes from \
                      the upper rows, InfoNCE against the batch's other cells (van den Oord \
                      et al. 2018, Taleb et al. 2020)",
    };

    /// `paper`: 3³ cells of 64³ overlapping by half (a 128³ region), the first row the
    /// context; `tiny`: 2³ touching cells of 32³. Dot-product scores as van den Oord et
    /// al.
    fn settings(preset: Preset) -> CpcSettings {
        let tiny = preset == Preset::Tiny;
        CpcSettings {
            grid: if tiny { 2 } else { 3 },
            context_rows: 1,
            overlap: if tiny { 0 } else { 32 },
            jitter: 0,
            hidden_dim: if tiny { 256 } else { 1024 },
            score: Score::Dot,
            temperature: 0.1,
        }
    }

    /// AdamW at 1e-4 (Taleb et al.'s Adam rate); cells of 64³ in `paper`.
    fn recipe(preset: Preset) -> Recipe {
        Recipe {
            crop: (preset == Preset::Paper).then_some([64; 3]),
            ..Recipe::adamw(1e-4)
        }
    }

    fn check(settings: &CpcSettings, _encoder: &SwinUnetrConfig, crop: [usize; 3]) -> Result<()> {
        if settings.grid < 2 {
            return Err(SslError::Invalid(format!(
                "grid must be at least 2 (a context row and a predicted row), got {}",
                settings.grid
            )));
        }
        if settings.context_rows == 0 || settings.context_rows >= settings.grid {
            return Err(SslError::Invalid(format!(
                "context_rows must be between 1 and grid - 1 = {}, got {}",
                settings.grid - 1,
                settings.context_rows
            )));
        }
        let smallest = crop.iter().copied().min().unwrap_or(0);
        if settings.overlap >= smallest {
            return Err(SslError::Invalid(format!(
                "overlap {} must be below the cell size (encoder.crop {crop:?})",
                settings.overlap
            )));
        }
        checks::positive("temperature", settings.temperature)?;
        checks::widths(&[("hidden_dim", settings.hidden_dim)])
    }

    fn view_plan(
        settings: &CpcSettings,
        _encoder: &SwinUnetrConfig,
        crop: [usize; 3],
        augment: Pipeline,
        local_augment: Pipeline,
    ) -> Result<ViewPlan> {
        Ok(ViewPlan {
            crops: Crops::Grid(CpcGrid {
                grid: settings.grid,
                cell: crop,
                overlap: settings.overlap,
                jitter: settings.jitter,
                fill: 0.0,
            }),
            augment,
            local_augment,
            masks: None,
            rotations: None,
            inpainting: None,
        })
    }

    fn build(settings: &CpcSettings, encoder: &SwinUnetrConfig, device: &Device) -> Cpc {
        let dim = encoder.feature_size << 4;
        let predicted = settings.cells() - settings.context_cells();
        Cpc {
            swin_vit: SwinTransformer::new(encoder, device),
            context: MlpConfig {
                dims: vec![
                    settings.context_cells() * dim,
                    settings.hidden_dim,
                    predicted * dim,
                ],
                batch_norm: false,
                output_norm: false,
            }
            .init(device),
            settings: settings.clone(),
        }
    }
}

impl Pretext for Cpc {
    type Aux = ();

    /// Every cell of the batch goes through the encoder as one batch.
    fn loss(&self, batch: &ViewBatch, _context: &StepContext) -> Result<StepLoss<()>> {
        let device = self.swin_vit.patch_embed.proj.weight.val().device();
        let cells = self.settings.cells();
        let b = batch.ids.len();
        let views = (0..cells)
            .map(|v| view(batch, v, &device))
            .collect::<Result<Vec<_>>>()?;
        let [.., deepest] = self.swin_vit.forward(Tensor::cat(views, 0));
        let embeddings = pooled(deepest);
        let dim = embeddings.dims()[1];
        let spread = embedding_spread(embeddings.clone().narrow(0, 0, b));
        // Rows of the encoder batch are `cell · B + b`; per volume, cells in raster order.
        let grid = embeddings.reshape([cells, b, dim]).swap_dims(0, 1);
        let context = self.settings.context_cells();
        let predicted = cells - context;
        let summary = grid
            .clone()
            .narrow(1, 0, context)
            .reshape([b, context * dim]);
        let prediction = self.context.forward(summary).reshape([b, predicted, dim]);
        let target = grid.narrow(1, context, predicted);
        let loss = infonce(prediction, target, self.settings.similarity());
        Ok(StepLoss::contrastive("contrastive", loss, spread))
    }

    fn after_step(self, _aux: Vec<()>, _momentum: f64) -> Cpc {
        self
    }

    fn encoder(&self) -> &SwinTransformer {
        &self.swin_vit
    }
}
