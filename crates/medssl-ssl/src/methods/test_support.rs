//! What the methods' unit tests share: the small encoder they build and a method's view
//! plan with no augmentation.

use medssl_data::Pipeline;
use medssl_data::views::{ViewBatch, ViewPlan};
use medssl_model::SwinUnetrConfig;
use ndarray::{Array4, Array5};

use crate::pretext::{Method, StepContext};

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
