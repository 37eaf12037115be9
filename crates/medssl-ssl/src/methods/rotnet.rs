//! RotNet (Gidaris et al., ICLR 2018; in 3-D as Taleb et al., NeurIPS 2020): a crop
//! rotated by one of a fixed set of quarter-turn rotations; a linear classifier on the
//! pooled last-stage output says which. The sets (see `medssl_data::views::RotationSet`):
//! `axis-planes`, the identity and 90/180/270° about each axis (10 classes, Taleb et
//! al.), and `tang`, 0/90/180/270° in one plane (4 classes, as SwinUNETR's pretraining).

use medssl_model::arrays::read_count;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use medssl_data::Pipeline;
use medssl_data::views::{Crops, RandomCrops, RotationSet, ViewBatch, ViewPlan};
use medssl_model::SwinUnetrConfig;
use medssl_model::swin::SwinTransformer;
use serde::{Deserialize, Serialize};

use super::simclr::global_token;
use crate::error::{Result, SslError};
use crate::losses::cross_entropy;
use crate::monitors::embedding_spread;
use crate::pretext::{Family, Method, MethodInfo, Preset, Pretext, Recipe, StepContext, StepLoss};

/// The rotation sets by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rotations {
    /// 10 classes: identity and three quarter turns about each axis.
    AxisPlanes,
    /// 4 classes: quarter turns in the (J, K) plane.
    Tang,
}

impl Rotations {
    fn set(self) -> RotationSet {
        match self {
            Rotations::AxisPlanes => RotationSet::AxisPlanes,
            Rotations::Tang => RotationSet::Tang,
        }
    }
}

/// RotNet's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotNetSettings {
    /// Which rotations are classified.
    pub rotations: Rotations,
}

/// The RotNet method.
pub struct RotNetMethod;

/// RotNet's network: the encoder and the linear classifier.
#[derive(Module, Debug)]
pub struct RotNet {
    pub swin_vit: SwinTransformer,
    pub classifier: Linear,
}

impl Method for RotNetMethod {
    type Net = RotNet;
    type Settings = RotNetSettings;

    const INFO: MethodInfo = MethodInfo {
        name: "rotnet",
        family: Family::Rotation,
        description: "classify which of 10 quarter-turn 3-D rotations was applied to a crop \
                      (Gidaris et al. 2018, Taleb et al. 2020)",
    };

    /// Taleb et al.'s 10 classes in both presets.
    fn settings(_preset: Preset) -> RotNetSettings {
        RotNetSettings {
            rotations: Rotations::AxisPlanes,
        }
    }

    /// Taleb et al.'s 3-D rotation task (`configs/train/rotation_3d.json`,
    /// `RotationBuilder`): Adam at 1e-4, no weight decay, no gradient clipping.
    fn recipe(_preset: Preset) -> Recipe {
        Recipe {
            weight_decay: (0.0, 0.0),
            grad_clip_norm: None,
            ..Recipe::adamw(1e-4)
        }
    }

    /// A rotation must keep the crop's shape (quarter turns swap two axes).
    fn check(
        _settings: &RotNetSettings,
        _encoder: &SwinUnetrConfig,
        crop: [usize; 3],
    ) -> Result<()> {
        if crop[0] != crop[1] || crop[1] != crop[2] {
            return Err(SslError::Invalid(format!(
                "encoder.crop {crop:?} must be a cube: a quarter turn swaps two axes"
            )));
        }
        Ok(())
    }

    fn view_plan(
        settings: &RotNetSettings,
        _encoder: &SwinUnetrConfig,
        crop: [usize; 3],
        augment: Pipeline,
        local_augment: Pipeline,
    ) -> Result<ViewPlan> {
        Ok(ViewPlan {
            crops: Crops::Random(RandomCrops {
                count: 1,
                size: crop,
                fill: 0.0,
            }),
            augment,
            local_augment,
            masks: None,
            rotations: Some(settings.rotations.set()),
            inpainting: None,
        })
    }

    fn build(settings: &RotNetSettings, encoder: &SwinUnetrConfig, device: &Device) -> RotNet {
        let classes = settings.rotations.set().targets().len();
        RotNet {
            swin_vit: SwinTransformer::new(encoder, device),
            classifier: LinearConfig::new(encoder.feature_size << 4, classes).init(device),
        }
    }
}

/// The rotation labels of view `v`, `[B]`, on `device`.
pub(super) fn rotation_labels(
    batch: &ViewBatch,
    v: usize,
    device: &Device,
) -> Result<Tensor<1, Int>> {
    let labels = batch.labels.get(v).ok_or_else(|| {
        SslError::Invalid(format!("the batch has no rotation labels for view {v}"))
    })?;
    let values: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
    Ok(Tensor::from_data(
        TensorData::new(values, [labels.len()]),
        device,
    ))
}

impl Pretext for RotNet {
    type Aux = ();

    fn loss(&self, batch: &ViewBatch, _context: &StepContext) -> Result<StepLoss<()>> {
        let device = self.classifier.weight.val().device();
        let token = global_token(&self.swin_vit, batch, 0, &device)?;
        let spread = embedding_spread(token.clone())?;
        let logits = self.classifier.forward(token);
        let accuracy = {
            let predicted = logits.clone().argmax(1).reshape([batch.ids.len()]);
            let labels = rotation_labels(batch, 0, &device)?;
            let hits = read_count(predicted.equal(labels).int().sum())?;
            hits as f64 / batch.ids.len() as f64
        };
        let loss = cross_entropy(logits, rotation_labels(batch, 0, &device)?);
        let mut monitors = vec![("accuracy", accuracy)];
        monitors.extend(spread.map(|s| ("embedding_spread", s)));
        Ok(StepLoss {
            total: loss.clone(),
            components: vec![("rotation", loss)],
            monitors,
            aux: (),
        })
    }

    fn after_step(self, _aux: Vec<()>, _momentum: f64) -> RotNet {
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
        argmax_rows, assert_apart, assert_close, cross_entropy_f64, encoder, epoch_start,
        finite_scalar, plan_of, pooled_last_stage, seeded, smooth_batch, values, view_tensor,
    };
    use medssl_data::loader::CaseWork;
    use medssl_data::{Sample, rng};
    use medssl_io::{Affine, Volume};

    /// Taleb et al.'s 3-D RotNet: 10 axis-plane classes, Adam at 1e-4 without weight
    /// decay or clipping; one random crop of the run's size, rotated; the default CT
    /// window.
    #[test]
    fn presets_follow_talebs_rotation_task() {
        for (preset, crop) in [(Preset::Tiny, 32), (Preset::Paper, 96)] {
            let settings = RotNetMethod::settings(preset);
            assert_eq!(settings.rotations, Rotations::AxisPlanes);
            assert_eq!(settings.rotations.set().targets().len(), 10);
            RotNetMethod::check(&settings, &encoder(), [crop; 3]).unwrap();
            let plan = plan_of::<RotNetMethod>(&settings, crop);
            assert_eq!(
                plan.crops,
                Crops::Random(RandomCrops {
                    count: 1,
                    size: [crop; 3],
                    fill: 0.0
                })
            );
            assert_eq!(plan.rotations, Some(RotationSet::AxisPlanes));
            let recipe = RotNetMethod::recipe(preset);
            assert_eq!(recipe.lr, 1e-4);
            assert_eq!(recipe.weight_decay, (0.0, 0.0));
            assert_eq!(recipe.grad_clip_norm, None);
            assert_eq!(recipe.crop, None);
            assert!(!RotNetMethod::lr_batch_scaling(preset));
            assert_eq!(RotNetMethod::intensity_window(preset), [-1000.0, 1000.0]);
        }
    }

    #[test]
    fn a_crop_that_is_not_a_cube_is_refused() {
        let settings = RotNetMethod::settings(Preset::Tiny);
        let err = RotNetMethod::check(&settings, &encoder(), [32, 32, 64])
            .unwrap_err()
            .to_string();
        assert!(err.contains("encoder.crop"), "{err}");
    }

    /// The batch the plan makes carries, per volume, the crop rotated by the rotation
    /// its label names: two 32³ volumes (the crop is the whole volume), each view equal
    /// to `RotationSet::AxisPlanes.rotate(volume, label)`, with labels that differ.
    #[test]
    fn each_view_is_rotated_by_its_label() {
        let settings = RotNetMethod::settings(Preset::Tiny);
        let plan = plan_of::<RotNetMethod>(&settings, 32);
        let volumes = smooth_batch(2, 1, 32).views;
        let samples: Vec<Sample> = volumes
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let image = v.index_axis(ndarray::Axis(0), 0).to_owned();
                Sample::unlabelled(format!("case{i}"), Volume::new(image, Affine::identity()))
            })
            .collect();
        let sets: Vec<_> = samples
            .iter()
            .zip([0, 3])
            .map(|(s, seed)| plan.views(s, &mut rng::stream(seed, &[])).unwrap())
            .collect();
        let batch = plan.stack(&sets).unwrap();
        assert_eq!(batch.views.len(), 1);
        let labels = &batch.labels[0];
        assert_ne!(labels[0], labels[1], "pick seeds whose labels differ");
        for (b, sample) in samples.iter().enumerate() {
            let rotated = RotationSet::AxisPlanes
                .rotate(&sample.image, labels[b])
                .unwrap();
            let view = batch.views[0].index_axis(ndarray::Axis(0), b);
            assert_eq!(view, rotated.data().view(), "volume {b}");
        }
    }

    /// The one view goes through the encoder (mean over space of the last stage) and
    /// the linear classifier, and the loss is the cross-entropy of its logits against
    /// the view's rotation labels, the accuracy monitor their argmax hits: both equal
    /// what is recomputed here (the cross-entropy in f64 from the definition), and
    /// labels shifted by one class would give another loss.
    #[test]
    fn the_loss_classifies_the_view_against_its_labels() {
        let device = Device::flex();
        let settings = RotNetMethod::settings(Preset::Tiny);
        let net = seeded::<RotNetMethod>(&settings, 1, &device);
        let mut batch = smooth_batch(1, 2, 32);
        let labels = vec![3, 8];
        batch.labels = vec![labels.clone()];
        let out = net.loss(&batch, &epoch_start(0)).unwrap();
        let loss = finite_scalar("loss", out.total);

        let token = pooled_last_stage(&net.swin_vit, view_tensor(&batch, 0, &device));
        let logits = values(net.classifier.forward(token));
        let want = cross_entropy_f64(&logits, 10, &labels);
        assert_close("loss", loss, want, 1e-5);
        let shifted: Vec<usize> = labels.iter().map(|l| (l + 1) % 10).collect();
        assert_apart(
            "labels shifted",
            want,
            cross_entropy_f64(&logits, 10, &shifted),
            1e-3,
        );
        let hits = argmax_rows(&logits, 10)
            .iter()
            .zip(&labels)
            .filter(|(p, l)| p == l)
            .count();
        let accuracy = out
            .monitors
            .iter()
            .find(|(name, _)| *name == "accuracy")
            .map(|(_, a)| *a);
        assert_eq!(accuracy, Some(hits as f64 / 2.0));
    }
}
