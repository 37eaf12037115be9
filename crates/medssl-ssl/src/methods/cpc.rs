//! Contrastive predictive coding (van den Oord et al. 2018) in 3-D as Taleb et al.
//! (NeurIPS 2020): a grid of `g × g × g` touching sub-volumes of `encoder.crop` voxels
//! is cut at a random position; each cell is encoded
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
//!
//! The cells touch, as Taleb et al.'s 3-D preprocessing cuts them (`preprocess_3d`:
//! `patch_overlap = 0  # dont use overlap here`; `preprocess_grid_3d(skip_row=False)`
//! predicts the row right after the context): a predicted cell that shared voxels with
//! a context cell could be predicted by copying them, so `check` refuses a grid whose
//! cells overlap or are jittered.

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
    /// Voxels shared by neighbouring cells: must be 0, since the first predicted row
    /// would share them with the last context row (kept so that files naming it read).
    pub overlap: usize,
    /// Largest random shift of a cell, per axis, in voxels: must be 0, since two
    /// neighbouring cells shifted towards each other share voxels.
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

    /// `paper`: 3³ touching cells of 64³ (a 192³ region, 288 × 288 × 384 mm at the
    /// paper spacing: most of an abdomen, as Taleb et al.'s 4³ touching cells of 32³
    /// tile a whole volume resized to 128³, `images_resized_128_bbox`), the first row
    /// the context and the two after it predicted; `tiny`: 2³ touching cells of 32³.
    /// Dot-product scores as van den Oord et al.
    fn settings(preset: Preset) -> CpcSettings {
        let tiny = preset == Preset::Tiny;
        CpcSettings {
            grid: if tiny { 2 } else { 3 },
            context_rows: 1,
            overlap: 0,
            jitter: 0,
            hidden_dim: if tiny { 256 } else { 1024 },
            score: Score::Dot,
            temperature: 0.1,
        }
    }

    /// Taleb et al.'s (`configs/train/cpc_3d.json`, `CPCBuilder`): Adam at 1e-4, no
    /// weight decay, no gradient clipping; cells of 64³ in `paper`.
    fn recipe(preset: Preset) -> Recipe {
        Recipe {
            weight_decay: (0.0, 0.0),
            grad_clip_norm: None,
            crop: (preset == Preset::Paper).then_some([64; 3]),
            ..Recipe::adamw(1e-4)
        }
    }

    fn check(settings: &CpcSettings, _encoder: &SwinUnetrConfig, _crop: [usize; 3]) -> Result<()> {
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
        // Along the first axis a cell of the last context row reaches up to `overlap +
        // jitter` voxels past the unshifted start of the first predicted row, whose cells
        // may start up to `jitter` voxels early.
        let shared = settings.overlap + 2 * settings.jitter;
        if shared > 0 {
            return Err(SslError::Invalid(format!(
                "overlap {} and jitter {} let a predicted cell share up to {shared} voxels \
                 along the first axis with a context cell, which the prediction could copy: \
                 set overlap = 0 and jitter = 0 (touching cells, as Taleb et al.'s 3-D CPC)",
                settings.overlap, settings.jitter
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
        let spread = embedding_spread(embeddings.clone().narrow(0, 0, b))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::methods::test_support::{
        assert_apart, assert_close, coordinate_sample, encoder, epoch_start, finite_scalar,
        plan_of, pooled_last_stage, seeded, smooth_batch, source_range, view_tensor,
    };
    use medssl_data::rng;
    use medssl_io::{Affine, Volume};
    use ndarray::Array4;

    fn grid(settings: &CpcSettings, crop: [usize; 3]) -> CpcGrid {
        let plan = CpcMethod::view_plan(
            settings,
            &encoder(),
            crop,
            Pipeline::default(),
            Pipeline::default(),
        )
        .unwrap();
        match plan.crops {
            Crops::Grid(grid) => grid,
            other => panic!("CPC cuts a grid, not {other:?}"),
        }
    }

    /// Voxels shared by any context cell and any predicted cell of `grid`, cut from a
    /// volume of its span.
    fn shared_voxels(grid: &CpcGrid, context_rows: usize) -> usize {
        let [x, y, z] = grid.span();
        let volume = Volume::new(Array4::zeros((1, x, y, z)), Affine::identity());
        let cells = grid.cells(&volume, &mut rng::stream(0, &[])).unwrap();
        let (context, predicted): (Vec<_>, Vec<_>) = cells
            .iter()
            .partition(|cell| cell.position[0] < context_rows);
        let mut shared = 0;
        for a in &context {
            for b in &predicted {
                let overlap: [isize; 3] = std::array::from_fn(|i| {
                    let end = |c: &medssl_data::views::GridCell| c.start[i] + grid.cell[i] as isize;
                    (end(a).min(end(b)) - a.start[i].max(b.start[i])).max(0)
                });
                shared += overlap.iter().product::<isize>() as usize;
            }
        }
        shared
    }

    /// `paper`: 3³ touching 64³ cells (a 192³ region), one context row; `tiny`: 2³
    /// touching 32³ cells. No predicted cell shares a voxel with a context cell.
    #[test]
    fn preset_cells_touch_without_sharing_voxels() {
        let paper = CpcMethod::settings(Preset::Paper);
        let crop = CpcMethod::recipe(Preset::Paper).crop.unwrap();
        assert_eq!(crop, [64; 3]);
        CpcMethod::check(&paper, &encoder(), crop).unwrap();
        let cells = grid(&paper, crop);
        assert_eq!((cells.grid, cells.overlap, cells.jitter), (3, 0, 0));
        assert_eq!(cells.span(), [192; 3]);
        assert_eq!(paper.context_rows, 1);
        assert_eq!(shared_voxels(&cells, paper.context_rows), 0);

        let tiny = CpcMethod::settings(Preset::Tiny);
        assert_eq!(CpcMethod::recipe(Preset::Tiny).crop, None);
        CpcMethod::check(&tiny, &encoder(), [32; 3]).unwrap();
        let cells = grid(&tiny, [32; 3]);
        assert_eq!((cells.grid, cells.overlap, cells.jitter), (2, 0, 0));
        assert_eq!(cells.span(), [64; 3]);
        assert_eq!(shared_voxels(&cells, tiny.context_rows), 0);
    }

    /// The grid the `paper` preset used to cut (64³ cells overlapping by 32) shares half
    /// of each first-row predicted cell with the context, and is refused, naming the
    /// settings; so is a jittered grid.
    #[test]
    fn grids_whose_predicted_cells_overlap_the_context_are_refused() {
        let paper = CpcMethod::settings(Preset::Paper);
        let overlapping = CpcSettings {
            overlap: 32,
            ..paper.clone()
        };
        // Each of the 9 first-row predicted cells shares a 32 × 64 × 64 slab with the
        // context cell before it, and parts of its neighbours' (16 + 16 of 64 per side).
        let cells = grid(&overlapping, [64; 3]);
        let slab = 32 * 64 * 64;
        assert!(shared_voxels(&cells, 1) >= 9 * slab);
        let err = CpcMethod::check(&overlapping, &encoder(), [64; 3])
            .unwrap_err()
            .to_string();
        for part in ["overlap 32", "jitter 0", "32 voxels", "overlap = 0"] {
            assert!(err.contains(part), "{part}: {err}");
        }

        let jittered = CpcSettings {
            jitter: 4,
            ..paper.clone()
        };
        let err = CpcMethod::check(&jittered, &encoder(), [64; 3])
            .unwrap_err()
            .to_string();
        for part in ["overlap 0", "jitter 4", "8 voxels", "jitter = 0"] {
            assert!(err.contains(part), "{part}: {err}");
        }
    }

    #[test]
    fn other_bad_settings_are_named() {
        let tiny = CpcMethod::settings(Preset::Tiny);
        for (settings, key) in [
            (
                CpcSettings {
                    grid: 1,
                    ..tiny.clone()
                },
                "grid",
            ),
            (
                CpcSettings {
                    context_rows: 2,
                    ..tiny.clone()
                },
                "context_rows",
            ),
            (
                CpcSettings {
                    hidden_dim: 0,
                    ..tiny.clone()
                },
                "hidden_dim",
            ),
        ] {
            let err = CpcMethod::check(&settings, &encoder(), [32; 3])
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
    }

    /// Taleb et al.'s optimiser: Adam at 1e-4, no weight decay, no clipping.
    #[test]
    fn recipe_is_talebs() {
        for preset in [Preset::Tiny, Preset::Paper] {
            let recipe = CpcMethod::recipe(preset);
            assert_eq!(recipe.lr, 1e-4);
            assert_eq!(recipe.weight_decay, (0.0, 0.0));
            assert_eq!(recipe.grad_clip_norm, None);
            assert!(!CpcMethod::lr_batch_scaling(preset));
            assert_eq!(CpcMethod::intensity_window(preset), [-1000.0, 1000.0]);
        }
    }

    /// The loss takes its first `context_rows · grid²` views as the context and the rest
    /// as the cells to predict, so the plan must hand the cells over in raster order with
    /// the first axis slowest: cut from a volume whose voxels hold their coordinates,
    /// view `v` of the tiny plan shows exactly the 32³ cell at grid position
    /// `(v / 4, v / 2 % 2, v % 2)` of one 64³ span, so views 0–3 are the context row (the
    /// first 32 voxels along the first axis) and views 4–7 the row after it.
    #[test]
    fn the_first_views_are_the_context_rows_of_the_grid() {
        let settings = CpcMethod::settings(Preset::Tiny);
        let context = settings.context_cells();
        assert_eq!((settings.cells(), context), (8, 4));
        let plan = plan_of::<CpcMethod>(&settings, 32);
        let sample = coordinate_sample([80, 72, 88]);
        for seed in 0..4 {
            let set = plan.views(&sample, &mut rng::stream(seed, &[])).unwrap();
            assert_eq!(set.views.len(), 8);
            let origin = source_range(&set.views[0]).map(|[low, _]| low);
            for (v, view) in set.views.iter().enumerate() {
                let position = [v / 4, v / 2 % 2, v % 2];
                let range = source_range(view);
                for axis in 0..3 {
                    let low = origin[axis] + 32.0 * position[axis] as f32;
                    assert_eq!(
                        range[axis],
                        [low, low + 31.0],
                        "seed {seed} view {v} axis {axis}"
                    );
                }
                assert_eq!(
                    v < context,
                    range[0][1] < origin[0] + 32.0,
                    "seed {seed} view {v}: context iff in the first row"
                );
            }
        }
    }

    /// Every cell goes through the one encoder (mean over space of the last stage);
    /// the context network reads the context cells' embeddings of one volume,
    /// concatenated in raster order, and predicts one embedding per later cell of that
    /// volume, scored by InfoNCE (dot product) against those cells' embeddings with the
    /// other predicted cells of the batch as negatives. The method's loss equals the
    /// loss recomputed here from per-view encoder passes, which a layout mixing the
    /// volumes' cells (rows read volume-major instead of cell-major) or swapping the
    /// context and the predicted rows would not give.
    #[test]
    fn the_context_cells_predict_the_embeddings_of_the_later_cells() {
        let device = Device::flex();
        let settings = CpcMethod::settings(Preset::Tiny);
        let net = seeded::<CpcMethod>(&settings, 1, &device);
        let (b, cells, context) = (2, settings.cells(), settings.context_cells());
        let batch = smooth_batch(cells, b, 32);
        let loss = finite_scalar("loss", net.loss(&batch, &epoch_start(0)).unwrap().total);

        let embeddings: Vec<Tensor<2>> = (0..cells)
            .map(|v| pooled_last_stage(&net.swin_vit, view_tensor(&batch, v, &device)))
            .collect();
        let dim = embeddings[0].dims()[1];
        let score = |first: &[Tensor<2>], second: &[Tensor<2>]| {
            let summary = Tensor::cat(first.to_vec(), 1);
            let prediction = net.context.forward(summary).reshape([b, second.len(), dim]);
            let target = Tensor::stack::<3>(second.to_vec(), 1);
            finite_scalar("by hand", infonce(prediction, target, Similarity::Dot))
        };
        let want = score(&embeddings[..context], &embeddings[context..]);
        assert_close("loss", loss, want, 1e-5);

        // Rows `cell · B + b` of the encoder batch read as `b · cells + cell`.
        let mixed: Vec<Tensor<2>> = Tensor::cat(embeddings.clone(), 0)
            .reshape([b, cells, dim])
            .swap_dims(0, 1)
            .iter_dim(0)
            .map(|t| t.reshape([b, dim]))
            .collect();
        for (wrong, value) in [
            ("volumes mixed", score(&mixed[..context], &mixed[context..])),
            (
                "rows swapped",
                score(&embeddings[context..], &embeddings[..context]),
            ),
        ] {
            assert_apart(wrong, want, value, 1e-3);
        }
    }
}
