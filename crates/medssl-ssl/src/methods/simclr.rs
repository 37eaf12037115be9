//! SimCLR (Chen et al., ICML 2020) on the 3-D Swin encoder: two augmented random
//! resized crops of one region of each volume (so the two views share content, as
//! torchvision's `RandomResizedCrop` cuts both from the same image), the pooled
//! last-stage output through a 2-layer MLP projector, and NT-Xent with every other view
//! of the batch as a negative.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use medssl_data::Pipeline;
use medssl_data::views::{Crops, RegionCrops, ScaledViews, ViewBatch, ViewPlan};
use medssl_model::SwinUnetrConfig;
use medssl_model::swin::SwinTransformer;
use serde::{Deserialize, Serialize};

use super::checks;
use crate::error::{Result, SslError};
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
    /// Side of the region both views are cut from, in voxels, placed at random in the
    /// volume: 48³ in `tiny` (views of 32³), 128³ in `paper` (views of 96³). Absent: the
    /// whole volume, as torchvision crops the whole image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<[usize; 3]>,
    /// Range of the fraction of the region's volume each view covers before it is
    /// resized to the crop: `[0.08, 1]` in `paper`, torchvision's `RandomResizedCrop`
    /// default, which SimCLR uses; `[0.4, 1]` in `tiny` ([`contrastive_scale`]).
    pub scale: [f64; 2],
}

/// The scale range of SimCLR's and MoCo v3's views. `paper`: torchvision's
/// `RandomResizedCrop` default `(0.08, 1)` (MoCo v3's `--crop-min 0.08`). `tiny`:
/// DINO's global `(0.4, 1)`: on a 48³ region two views of 8% of its volume often share
/// little, and in 300 steps of the learning run (batch 8, texture volumes) SimCLR's
/// NT-Xent fell only from 2.77 to 1.95 (chance ln 15 = 2.71); at `(0.4, 1)` it fell
/// below 0.6 in 200 steps, and MoCo v3's loss from 1.94 to 0.92 (chance 1.66).
pub(super) fn contrastive_scale(preset: Preset) -> [f64; 2] {
    if preset == Preset::Tiny {
        [0.4, 1.0]
    } else {
        [0.08, 1.0]
    }
}

/// The region the views of SimCLR, MoCo v3, DINO and iBOT are cut from: 48³ in `tiny`
/// (as SMIT's outer crop there), 128³ in `paper` (SMIT's outer crop; the 96³ views
/// then cover 40–100% of its volume at DINO's global scale).
pub(super) fn preset_region(preset: Preset) -> [usize; 3] {
    [if preset == Preset::Tiny { 48 } else { 128 }; 3]
}

/// A region, when given, must be at least the crop on every axis (every view is a box
/// inside it, resized to the crop), and a scale range must lie in `(0, 1]`.
pub(super) fn check_region(region: Option<[usize; 3]>, crop: [usize; 3]) -> Result<()> {
    match region {
        Some(r) if (0..3).any(|a| r[a] < crop[a]) => Err(SslError::Invalid(format!(
            "region {r:?} must be at least the crop {crop:?} on every axis: the views are \
             boxes inside the region resized to the crop"
        ))),
        _ => Ok(()),
    }
}

/// `scale` (named `name`) must be a range `0 < low <= high <= 1` of volume fractions.
pub(super) fn check_scale(name: &str, scale: [f64; 2]) -> Result<()> {
    let [low, high] = scale;
    if low.is_finite() && high.is_finite() && 0.0 < low && low <= high && high <= 1.0 {
        Ok(())
    } else {
        Err(SslError::Invalid(format!(
            "{name} {scale:?} must be a range [low, high] with 0 < low <= high <= 1 \
             (fractions of the region's volume)"
        )))
    }
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
    /// 0.1; both views cut from one region (128³ in `paper`, 48³ in `tiny`) at 8–100% of
    /// its volume in `paper`, torchvision's `RandomResizedCrop` default, and 40–100% in
    /// `tiny` ([`contrastive_scale`]).
    fn settings(preset: Preset) -> SimClrSettings {
        let tiny = preset == Preset::Tiny;
        SimClrSettings {
            hidden_dim: if tiny { 256 } else { 2048 },
            out_dim: if tiny { 64 } else { 128 },
            temperature: 0.1,
            region: Some(preset_region(preset)),
            scale: contrastive_scale(preset),
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
        crop: [usize; 3],
    ) -> Result<()> {
        checks::positive("temperature", settings.temperature)?;
        check_region(settings.region, crop)?;
        check_scale("scale", settings.scale)?;
        checks::widths(&[
            ("hidden_dim", settings.hidden_dim),
            ("out_dim", settings.out_dim),
        ])
    }

    fn view_plan(
        settings: &SimClrSettings,
        _encoder: &SwinUnetrConfig,
        crop: [usize; 3],
        augment: Pipeline,
        local_augment: Pipeline,
    ) -> Result<ViewPlan> {
        Ok(two_crops(
            settings.region,
            settings.scale,
            crop,
            augment,
            local_augment,
        ))
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

/// Two views of `crop` voxels, random resized crops at `scale` of one `region` (SimCLR,
/// MoCo v3), each augmented on its own.
pub(super) fn two_crops(
    region: Option<[usize; 3]>,
    scale: [f64; 2],
    crop: [usize; 3],
    augment: Pipeline,
    local_augment: Pipeline,
) -> ViewPlan {
    ViewPlan {
        crops: Crops::Region(RegionCrops {
            region,
            global: ScaledViews {
                count: 2,
                size: crop,
                scale,
            },
            local: None,
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
        let spread = embedding_spread(h1.clone())?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::methods::test_support::{
        assert_apart, assert_close, assert_two_views_of_one_region, assert_views_share_one_region,
        epoch_start, finite_scalar, pooled_last_stage, seeded, smooth_batch, view_tensor,
    };

    /// Both views come from one region, at torchvision's scale range in `paper` and
    /// DINO's global one in `tiny`; the region follows the preset and must hold the
    /// crop.
    #[test]
    fn views_are_resized_crops_of_one_region() {
        assert_eq!(SimClrMethod::settings(Preset::Paper).scale, [0.08, 1.0]);
        assert_eq!(SimClrMethod::settings(Preset::Tiny).scale, [0.4, 1.0]);
        assert_two_views_of_one_region::<SimClrMethod>([0.4, 1.0], [0.08, 1.0]);
    }

    #[test]
    fn bad_regions_and_scales_are_named() {
        let encoder = SwinUnetrConfig::new(1, 2).with_feature_size(12);
        let tiny = SimClrMethod::settings(Preset::Tiny);
        let small = SimClrSettings {
            region: Some([48, 16, 48]),
            ..tiny.clone()
        };
        let err = SimClrMethod::check(&small, &encoder, [32; 3]).unwrap_err();
        assert!(err.to_string().contains("region"), "{err}");
        for scale in [[0.0, 1.0], [0.5, 0.2], [0.1, 1.5], [f64::NAN, 1.0]] {
            let bad = SimClrSettings {
                scale,
                ..tiny.clone()
            };
            let err = SimClrMethod::check(&bad, &encoder, [32; 3]).unwrap_err();
            assert!(err.to_string().contains("scale"), "{scale:?}: {err}");
        }
        // The whole volume as the region needs no size.
        let whole = SimClrSettings {
            region: None,
            ..tiny
        };
        SimClrMethod::check(&whole, &encoder, [32; 3]).unwrap();
    }

    /// Written presets read back unchanged; a missing `scale` is named, not filled in,
    /// and a missing region reads as the whole volume.
    #[test]
    fn presets_round_trip_and_a_missing_scale_is_named() {
        for preset in [Preset::Tiny, Preset::Paper] {
            let settings = SimClrMethod::settings(preset);
            let text = serde_json::to_string(&settings).unwrap();
            assert_eq!(
                serde_json::from_str::<SimClrSettings>(&text).unwrap(),
                settings
            );
        }
        let err = serde_json::from_str::<SimClrSettings>(
            r#"{"hidden_dim": 256, "out_dim": 64, "temperature": 0.1}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("scale"), "{err}");
        let whole: SimClrSettings = serde_json::from_str(
            r#"{"hidden_dim": 256, "out_dim": 64, "temperature": 0.1, "scale": [0.08, 1.0]}"#,
        )
        .unwrap();
        assert_eq!(whole.region, None);
    }

    /// The views the plan cuts really are random resized crops of one 48³ region of the
    /// volume (the positive pair shares content), not crops at independent positions of
    /// the whole volume (the old bug, which the helper shows the check would catch).
    #[test]
    fn the_views_of_a_pair_come_from_one_region() {
        assert_views_share_one_region::<SimClrMethod>();
    }

    /// Views 0 and 1 each go through the one encoder, the mean over space of its last
    /// stage and the projector, and the loss is NT-Xent between the two projections at
    /// the settings' temperature: the method's loss equals the loss recomputed here
    /// from those branch outputs, which a wiring feeding view 0 twice or skipping the
    /// projector would not give.
    #[test]
    fn the_loss_is_ntxent_between_the_projections_of_views_0_and_1() {
        let device = Device::flex();
        let settings = SimClrMethod::settings(Preset::Tiny);
        let net = seeded::<SimClrMethod>(&settings, 1, &device);
        let batch = smooth_batch(2, 2, 32);
        let out = net.loss(&batch, &epoch_start(0)).unwrap();
        let loss = finite_scalar("loss", out.total.clone());
        assert_eq!(out.components.len(), 1);
        assert_eq!(out.components[0].0, "contrastive");
        assert_close(
            "component",
            finite_scalar("component", out.components[0].1.clone()),
            loss,
            0.0,
        );

        let h = [0, 1].map(|v| pooled_last_stage(&net.swin_vit, view_tensor(&batch, v, &device)));
        let z = h.clone().map(|h| net.projector.forward(h));
        let t = settings.temperature;
        let want = finite_scalar("by hand", ntxent(z[0].clone(), z[1].clone(), t));
        assert_close("loss", loss, want, 1e-5);
        let [h0, h1] = h;
        for (wrong, value) in [
            ("view 0 twice", ntxent(z[0].clone(), z[0].clone(), t)),
            ("no projector", ntxent(h0, h1, t)),
        ] {
            assert_apart(wrong, want, finite_scalar(wrong, value), 1e-3);
        }
    }
}
