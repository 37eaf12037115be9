//! SwinUNETR's self-supervised pretraining (Tang et al., CVPR 2022; MONAI
//! research-contributions `SwinUNETR/Pretrain`): each crop is copied twice, each copy
//! rotated by a quarter turn in one plane (4 classes) and corrupted by in-painting with
//! noise boxes and boxes swapped in from another volume of the batch. From the deepest
//! stage's tokens of a corrupted copy, token 0 goes to a linear rotation classifier and
//! token 1 to a linear contrastive head (NT-Xent between the two copies, temperature
//! 0.5), and the whole stage to a convolutional decoder that reconstructs the clean
//! rotated copy (L1). The loss is `1·rotation + 1·contrastive + 1·reconstruction`.
//!
//! Token 1 exists only when the deepest stage has two tokens, so crops are at least
//! 64³ (the tiny preset's crop is 64³ for this method).

use medssl_model::arrays::read_count;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};
use medssl_data::Pipeline;
use medssl_data::views::{Crops, Inpainting, RandomCrops, RotationSet, ViewBatch, ViewPlan};
use medssl_model::SwinUnetrConfig;
use medssl_model::swin::SwinTransformer;
use serde::{Deserialize, Serialize};

use super::checks;
use super::rotnet::rotation_labels;
use crate::conv_decoder::ConvDecoder;
use crate::error::{Result, SslError};
use crate::inputs::{tokens, view};
use crate::losses::contrastive::ntxent;
use crate::losses::cross_entropy;
use crate::losses::reconstruction::l1;
use crate::monitors::embedding_spread;
use crate::pretext::{Family, Method, MethodInfo, Preset, Pretext, Recipe, StepContext, StepLoss};

/// SwinUNETR-SSL's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwinUnetrSslSettings {
    /// Output width of the contrastive head.
    pub contrastive_dim: usize,
    /// NT-Xent temperature.
    pub temperature: f64,
    /// Weight of the rotation loss.
    pub rotation_weight: f64,
    /// Weight of the contrastive loss.
    pub contrastive_weight: f64,
    /// Weight of the reconstruction loss.
    pub reconstruction_weight: f64,
    /// The in-painting boxes.
    pub inpainting: Inpainting,
}

/// The SwinUNETR-SSL method.
pub struct SwinUnetrSslMethod;

/// SwinUNETR-SSL's network: the encoder and its three heads.
#[derive(Module, Debug)]
pub struct SwinUnetrSsl {
    pub swin_vit: SwinTransformer,
    pub rotation_head: Linear,
    pub contrastive_head: Linear,
    pub decoder: ConvDecoder,
    #[module(skip)]
    settings: SwinUnetrSslSettings,
}

impl Method for SwinUnetrSslMethod {
    type Net = SwinUnetrSsl;
    type Settings = SwinUnetrSslSettings;

    const INFO: MethodInfo = MethodInfo {
        name: "swinunetr-ssl",
        family: Family::Rotation,
        description: "rotation prediction, contrastive coding and in-painting of two rotated \
                      copies of a crop, weights 1/1/1 (Tang et al. 2022)",
    };

    /// Tang et al.'s heads and weights in both presets.
    fn settings(_preset: Preset) -> SwinUnetrSslSettings {
        SwinUnetrSslSettings {
            contrastive_dim: 512,
            temperature: 0.5,
            rotation_weight: 1.0,
            contrastive_weight: 1.0,
            reconstruction_weight: 1.0,
            inpainting: Inpainting::default(),
        }
    }

    /// The official script's defaults: AdamW at 4e-4, weight decay 0.1, no clipping
    /// (its `--grad_clip` is off by default); 64³ crops in `tiny`.
    fn recipe(preset: Preset) -> Recipe {
        Recipe {
            weight_decay: (0.1, 0.1),
            grad_clip_norm: None,
            crop: (preset == Preset::Tiny).then_some([64; 3]),
            ..Recipe::adamw(4e-4)
        }
    }

    /// A cube (quarter turns swap two axes) of at least 64 voxels a side, so that the
    /// deepest stage has the two tokens the heads read.
    fn check(
        settings: &SwinUnetrSslSettings,
        _encoder: &SwinUnetrConfig,
        crop: [usize; 3],
    ) -> Result<()> {
        if crop[0] != crop[1] || crop[1] != crop[2] || crop[0] < 64 {
            return Err(SslError::Invalid(format!(
                "encoder.crop {crop:?} must be a cube of at least 64 voxels a side: a quarter \
                 turn swaps two axes, and the heads read two tokens of the deepest stage"
            )));
        }
        checks::positive("temperature", settings.temperature)?;
        checks::widths(&[("contrastive_dim", settings.contrastive_dim)])?;
        for (name, weight) in [
            ("rotation_weight", settings.rotation_weight),
            ("contrastive_weight", settings.contrastive_weight),
            ("reconstruction_weight", settings.reconstruction_weight),
        ] {
            if !(weight >= 0.0 && weight.is_finite()) {
                return Err(SslError::Invalid(format!(
                    "{name} must be zero or positive, got {weight}"
                )));
            }
        }
        Ok(())
    }

    fn view_plan(
        settings: &SwinUnetrSslSettings,
        _encoder: &SwinUnetrConfig,
        crop: [usize; 3],
        augment: Pipeline,
        local_augment: Pipeline,
    ) -> Result<ViewPlan> {
        Ok(ViewPlan {
            crops: Crops::Copies {
                crops: RandomCrops {
                    count: 1,
                    size: crop,
                    fill: 0.0,
                },
                copies: 2,
            },
            augment,
            local_augment,
            masks: None,
            rotations: Some(RotationSet::Tang),
            inpainting: Some(settings.inpainting.clone()),
        })
    }

    fn build(
        settings: &SwinUnetrSslSettings,
        encoder: &SwinUnetrConfig,
        device: &Device,
    ) -> SwinUnetrSsl {
        let dim = encoder.feature_size << 4;
        SwinUnetrSsl {
            swin_vit: SwinTransformer::new(encoder, device),
            rotation_head: LinearConfig::new(dim, RotationSet::Tang.targets().len()).init(device),
            contrastive_head: LinearConfig::new(dim, settings.contrastive_dim).init(device),
            decoder: ConvDecoder::new(encoder.feature_size, encoder.in_channels, device),
            settings: settings.clone(),
        }
    }
}

impl Pretext for SwinUnetrSsl {
    type Aux = ();

    /// Both corrupted copies go through the network as one batch (nothing in it mixes
    /// samples), the rotation loss is over both copies' predictions, the contrastive loss
    /// pairs the copies, and the reconstruction targets are the clean rotated copies.
    fn loss(&self, batch: &ViewBatch, _context: &StepContext) -> Result<StepLoss<()>> {
        let device = self.rotation_head.weight.val().device();
        let b = batch.ids.len();
        let input = Tensor::cat(vec![view(batch, 0, &device)?, view(batch, 1, &device)?], 0);
        let target = Tensor::cat(vec![view(batch, 2, &device)?, view(batch, 3, &device)?], 0);
        let [.., deepest] = self.swin_vit.forward(input);
        let stage = tokens(deepest.clone());
        let [rows, count, channels] = stage.dims();
        if count < 2 {
            return Err(SslError::Invalid(format!(
                "the deepest stage has {count} token; the heads need two (crops of at least 64³)"
            )));
        }
        let token = |i: usize| stage.clone().narrow(1, i, 1).reshape([rows, channels]);
        let rotation_logits = self.rotation_head.forward(token(0));
        let labels = Tensor::cat(
            vec![
                rotation_labels(batch, 0, &device)?,
                rotation_labels(batch, 1, &device)?,
            ],
            0,
        );
        let accuracy = {
            let predicted = rotation_logits.clone().argmax(1).reshape([rows]);
            let hits = read_count(predicted.equal(labels.clone()).int().sum())?;
            hits as f64 / rows as f64
        };
        let contrastive = self.contrastive_head.forward(token(1));
        let spread = embedding_spread(contrastive.clone().narrow(0, 0, b))?;
        let settings = &self.settings;
        let rotation = cross_entropy(rotation_logits, labels).mul_scalar(settings.rotation_weight);
        let contrast = ntxent(
            contrastive.clone().narrow(0, 0, b),
            contrastive.narrow(0, b, b),
            settings.temperature,
        )
        .mul_scalar(settings.contrastive_weight);
        let reconstruction =
            l1(self.decoder.forward(deepest), target).mul_scalar(settings.reconstruction_weight);
        let mut monitors = vec![("rotation_accuracy", accuracy)];
        monitors.extend(spread.map(|s| ("embedding_spread", s)));
        Ok(StepLoss {
            total: rotation.clone() + contrast.clone() + reconstruction.clone(),
            components: vec![
                ("rotation", rotation),
                ("contrastive", contrast),
                ("reconstruction", reconstruction),
            ],
            monitors,
            aux: (),
        })
    }

    fn after_step(self, _aux: Vec<()>, _momentum: f64) -> SwinUnetrSsl {
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
        assert_apart, assert_close, component, cross_entropy_f64, encoder, epoch_start,
        finite_scalar, seeded, values, view_tensor, zeroed,
    };
    use medssl_data::loader::CaseWork;
    use medssl_data::views::rotate;
    use medssl_data::{Sample, rng};
    use medssl_io::{Affine, Volume};
    use ndarray::{Array4, Axis};

    /// As `SwinUNETR/Pretrain/main.py`: two copies of one crop (96³ in `paper`, its
    /// `roi_x/y/z`; 64³ in `tiny`), each turned by one of 4 quarter turns in one plane
    /// and in-painted (`aug_rand`: up to 30% of the voxels, boxes of 5-25% of a side);
    /// NT-Xent at 0.5 on a 512-d head, weights 1/1/1; AdamW at 4e-4, weight decay 0.1,
    /// no clipping (`--grad_clip` off); the window -1000..1000 HU (`--a_min/--a_max`).
    #[test]
    fn presets_follow_tangs_pretraining_script() {
        for (preset, crop) in [(Preset::Tiny, 64), (Preset::Paper, 96)] {
            let settings = SwinUnetrSslMethod::settings(preset);
            assert_eq!(settings.contrastive_dim, 512);
            assert_eq!(settings.temperature, 0.5);
            assert_eq!(
                (
                    settings.rotation_weight,
                    settings.contrastive_weight,
                    settings.reconstruction_weight
                ),
                (1.0, 1.0, 1.0)
            );
            assert_eq!(settings.inpainting, Inpainting::default());
            assert_eq!(settings.inpainting.max_drop, 0.3);
            assert_eq!(settings.inpainting.max_block, 0.25);
            assert_eq!(settings.inpainting.min_block, 0.05);

            let recipe = SwinUnetrSslMethod::recipe(preset);
            let run_crop = recipe.crop.unwrap_or([96; 3]);
            assert_eq!(run_crop, [crop; 3]);
            assert_eq!(recipe.lr, 4e-4);
            assert_eq!(recipe.weight_decay, (0.1, 0.1));
            assert_eq!(recipe.grad_clip_norm, None);
            assert!(!SwinUnetrSslMethod::lr_batch_scaling(preset));
            assert_eq!(
                SwinUnetrSslMethod::intensity_window(preset),
                [-1000.0, 1000.0]
            );

            SwinUnetrSslMethod::check(&settings, &encoder(), run_crop).unwrap();
            let plan = SwinUnetrSslMethod::view_plan(
                &settings,
                &encoder(),
                run_crop,
                Pipeline::default(),
                Pipeline::default(),
            )
            .unwrap();
            assert_eq!(
                plan.crops,
                Crops::Copies {
                    crops: RandomCrops {
                        count: 1,
                        size: [crop; 3],
                        fill: 0.0
                    },
                    copies: 2
                }
            );
            assert_eq!(plan.rotations, Some(RotationSet::Tang));
            assert_eq!(plan.inpainting, Some(Inpainting::default()));
            assert_eq!(plan.masks, None);
        }
    }

    #[test]
    fn crops_the_heads_cannot_read_are_refused() {
        let settings = SwinUnetrSslMethod::settings(Preset::Tiny);
        for crop in [[32; 3], [64, 64, 96]] {
            let err = SwinUnetrSslMethod::check(&settings, &encoder(), crop)
                .unwrap_err()
                .to_string();
            assert!(err.contains("encoder.crop"), "{crop:?}: {err}");
        }
        let cold = SwinUnetrSslSettings {
            temperature: 0.0,
            ..settings
        };
        let err = SwinUnetrSslMethod::check(&cold, &encoder(), [64; 3])
            .unwrap_err()
            .to_string();
        assert!(err.contains("temperature"), "{err}");
    }

    /// The batch the plan makes from two 64³ volumes (the crop is the whole volume):
    /// views 0 and 1 are the in-painted copies (the network's inputs), views 2 and 3 the
    /// clean ones (the reconstruction targets), and label row `v` says how copy `v` was
    /// turned. Both clean copies turn back to one crop; each corrupted copy differs from
    /// its clean one in some voxels, not all. The streams are picked so that the two
    /// copies of a volume are turned differently.
    fn planned_batch() -> ViewBatch {
        let settings = SwinUnetrSslMethod::settings(Preset::Tiny);
        let plan = SwinUnetrSslMethod::view_plan(
            &settings,
            &encoder(),
            [64; 3],
            Pipeline::default(),
            Pipeline::default(),
        )
        .unwrap();
        let volumes: Vec<Volume> = (0..2)
            .map(|b| {
                let image = Array4::from_shape_fn((1, 64, 64, 64), |(_, z, y, x)| {
                    0.5 + 0.5 * ((z * 3 + y * 5 + x * 7 + b * 11) as f32 * 0.07).sin()
                });
                Volume::new(image, Affine::identity())
            })
            .collect();
        // Per volume, the first stream whose two copies turn differently.
        let sets: Vec<_> = volumes
            .iter()
            .enumerate()
            .map(|(b, volume)| {
                let sample = Sample::unlabelled(format!("case{b}"), volume.clone());
                (10 * b as u64..)
                    .map(|seed| plan.views(&sample, &mut rng::stream(seed, &[])).unwrap())
                    .find(|set| set.labels[0] != set.labels[1])
                    .unwrap()
            })
            .collect();
        let batch = plan.stack(&sets).unwrap();
        assert_eq!(batch.views.len(), 4);
        assert_eq!(batch.labels.len(), 2);
        for (b, volume) in volumes.iter().enumerate() {
            for copy in 0..2 {
                let clean = batch.views[2 + copy].index_axis(Axis(0), b).to_owned();
                let turn = RotationSet::Tang.rotation(batch.labels[copy][b]).unwrap();
                let back = rotate(
                    &Volume::new(clean.clone(), Affine::identity()),
                    turn.inverse(),
                );
                assert_eq!(back.data(), volume.data(), "volume {b} copy {copy}");
                let corrupted = batch.views[copy].index_axis(Axis(0), b);
                let changed = corrupted.iter().zip(&clean).filter(|(a, c)| a != c).count();
                assert!(
                    changed > 0 && changed < clean.len(),
                    "volume {b} copy {copy}: {changed} voxels in-painted"
                );
            }
        }
        batch
    }

    /// The corrupted copies (views 0 and 1) go through the encoder; token 0 of its
    /// deepest stage (the first in raster order) goes to the rotation head, scored
    /// against the copies' labels, token 1 to the contrastive head, NT-Xent pairing the
    /// two copies of each volume; the decoder's reconstruction is scored against the
    /// clean copies (views 2 and 3). With the decoder's output layer zeroed, the
    /// reconstruction loss is the mean |x| of the clean copies; every component equals
    /// what is recomputed here (cross-entropy in f64, tokens cut from the stage by
    /// position, one copy per encoder pass), the total their sum; reading the labels of
    /// the other copy, the other token for either head, or the corrupted copies as the
    /// targets would give other values.
    #[test]
    fn inputs_labels_tokens_and_targets_reach_their_heads() {
        let batch = planned_batch();
        let device = Device::flex();
        // A cold temperature: at initialisation the contrastive embeddings of all four
        // copies point almost the same way (cosines about 0.99), which Tang's 0.5 would
        // leave NT-Xent near ln 3 whichever token or pairing it read.
        let settings = SwinUnetrSslSettings {
            temperature: 0.01,
            ..SwinUnetrSslMethod::settings(Preset::Tiny)
        };
        let mut net = seeded::<SwinUnetrSslMethod>(&settings, 1, &device);
        net.decoder.out = zeroed(net.decoder.out);
        let out = net.loss(&batch, &epoch_start(0)).unwrap();
        let [rotation, contrastive, reconstruction] =
            ["rotation", "contrastive", "reconstruction"].map(|name| component(&out, name));
        let total = finite_scalar("total", out.total);
        assert_close(
            "total",
            total,
            rotation + contrastive + reconstruction,
            1e-6,
        );

        let tokens: Vec<[Tensor<2>; 2]> = (0..2)
            .map(|v| {
                let [.., deepest] = net.swin_vit.forward(view_tensor(&batch, v, &device));
                let [b, c, d, h, w] = deepest.dims();
                assert_eq!([d, h, w], [2, 2, 2]);
                [0, 1].map(|i| {
                    deepest
                        .clone()
                        .slice([0..b, 0..c, 0..1, 0..1, i..i + 1])
                        .reshape([b, c])
                })
            })
            .collect();
        let logits = |i: usize| {
            let rows = tokens.iter().map(|t| t[i].clone()).collect();
            values(net.rotation_head.forward(Tensor::cat(rows, 0)))
        };
        let labels = |first: usize| -> Vec<usize> {
            [first, 1 - first]
                .iter()
                .flat_map(|&v| batch.labels[v].clone())
                .collect()
        };
        let want = cross_entropy_f64(&logits(0), 4, &labels(0));
        assert_close("rotation", rotation, want, 1e-5);
        assert_apart(
            "labels of the other copy",
            want,
            cross_entropy_f64(&logits(0), 4, &labels(1)),
            1e-3,
        );
        assert_apart(
            "token 1",
            want,
            cross_entropy_f64(&logits(1), 4, &labels(0)),
            1e-3,
        );

        let contrast = |i: usize| {
            let [a, b] = [0, 1].map(|v| net.contrastive_head.forward(tokens[v][i].clone()));
            finite_scalar("by hand", ntxent(a, b, settings.temperature))
        };
        assert_close("contrastive", contrastive, contrast(1), 1e-5);
        assert_apart("token 0", contrast(1), contrast(0), 1e-3);

        let mean_abs = |views: [usize; 2]| {
            let all: Vec<f64> = views
                .iter()
                .flat_map(|&v| batch.views[v].iter().map(|x| f64::from(x.abs())))
                .collect();
            all.iter().sum::<f64>() / all.len() as f64
        };
        assert_close("reconstruction", reconstruction, mean_abs([2, 3]), 1e-5);
        assert_apart(
            "corrupted targets",
            mean_abs([2, 3]),
            mean_abs([0, 1]),
            1e-3,
        );
    }
}
