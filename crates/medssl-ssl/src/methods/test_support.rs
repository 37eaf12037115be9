//! What the methods' unit tests share: the small encoder they build and a method's view
//! plan with no augmentation.

use medssl_data::Pipeline;
use medssl_data::views::{Crops, RegionCrops, ScaledViews, ViewBatch, ViewPlan};
use medssl_model::SwinUnetrConfig;
use ndarray::{Array4, Array5};

use crate::pretext::{Method, Preset, StepContext};

/// The encoder of the unit tests: feature size 12, one input channel.
pub fn encoder() -> SwinUnetrConfig {
    SwinUnetrConfig::new(1, 2).with_feature_size(12)
}

/// `M`'s view plan for `settings` and `crop`³ crops of [`encoder`], with empty
/// augmentation pipelines.
pub fn plan_of<M: Method>(settings: &M::Settings, crop: usize) -> ViewPlan {
    M::view_plan(
        settings,
        &encoder(),
        [crop; 3],
        Pipeline::default(),
        Pipeline::default(),
    )
    .expect("a view plan")
}

/// Two smooth, different 32³ views of a batch of 2, the first half of the 16³ patch grid
/// (along the first axis) masked in both: a batch for the masked distillation methods.
pub fn masked_two_view_batch() -> ViewBatch {
    let view = |k: f32| {
        Array5::from_shape_fn((2, 1, 32, 32, 32), |(b, _, z, y, x)| {
            ((z * 7 + y * 3 + x) as f32 * 0.05 + k + b as f32).sin()
        })
    };
    let mask = Array4::from_shape_fn((2, 16, 16, 16), |(_, z, _, _)| z < 8);
    ViewBatch {
        ids: vec!["a".into(), "b".into()],
        views: vec![view(0.0), view(1.0)],
        masks: vec![mask.clone(), mask],
        labels: Vec::new(),
    }
}

/// The first step of `epoch` in a 10-epoch run.
pub fn epoch_start(epoch: u64) -> StepContext {
    StepContext {
        epoch,
        epochs: 10,
        iteration: 0,
    }
}

/// The region crops of `M`'s plan for `settings`.
pub fn region_crops<M: Method>(settings: &M::Settings, crop: usize) -> RegionCrops {
    match plan_of::<M>(settings, crop).crops {
        Crops::Region(crops) => crops,
        other => panic!("{} cuts {other:?}, not region crops", M::INFO.name),
    }
}

/// `M`'s presets cut two global views of the crop size at `scale` from one region (48³
/// tiny, 128³ paper) and no local views.
pub fn assert_two_views_of_one_region<M: Method>(scale: [f64; 2]) {
    for (preset, region, crop) in [(Preset::Tiny, 48, 32), (Preset::Paper, 128, 96)] {
        let settings = M::settings(preset);
        M::check(&settings, &encoder(), [crop; 3]).expect("valid settings");
        let crops = region_crops::<M>(&settings, crop);
        assert_eq!(crops.region, Some([region; 3]), "{preset:?}");
        assert_eq!(
            crops.global,
            ScaledViews {
                count: 2,
                size: [crop; 3],
                scale
            },
            "{preset:?}"
        );
        assert_eq!(crops.local, None, "{preset:?}");
    }
}
