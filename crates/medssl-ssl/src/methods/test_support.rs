//! What the methods' unit tests share: the small encoder they build and a method's view
//! plan with no augmentation.

use medssl_data::Pipeline;
use medssl_data::views::ViewPlan;
use medssl_model::SwinUnetrConfig;

use crate::pretext::Method;

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
