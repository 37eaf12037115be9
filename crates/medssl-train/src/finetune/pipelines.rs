//! The default preprocessing and augmentation of a fine-tuning run, written as the
//! transform tables a user would put in a configuration, so `config.toml` of a run
//! shows exactly what ran.

use medssl_data::dataset::Task;

use super::config::FinetuneConfig;
use crate::transforms::{floats, ints, table};

/// Orientation to RAS, resampling to `data.spacing` when set, then the modality's
/// intensity normalisation: the CT window -175..250 HU to 0..1 (clipped) of the
/// SwinUNETR BTCV recipe, or a z-score over non-zero voxels per channel otherwise.
pub fn default_preprocess(config: &FinetuneConfig, task: &Task) -> Vec<toml::Table> {
    let mut steps = vec![table("orientation", &[])];
    if let Some(spacing) = config.data.spacing {
        steps.push(table("spacing", &[("pixdim", floats(&spacing))]));
    }
    let is_ct = task.channels.iter().all(|c| c.eq_ignore_ascii_case("CT"));
    steps.push(if is_ct {
        table(
            "scale_intensity_range",
            &[
                ("a_min", (-175.0).into()),
                ("a_max", 250.0.into()),
                ("b_min", 0.0.into()),
                ("b_max", 1.0.into()),
                ("clip", true.into()),
            ],
        )
    } else {
        table(
            "normalize_intensity",
            &[("nonzero", true.into()), ("channel_wise", true.into())],
        )
    });
    steps
}

/// Padding to the crop size, balanced positive/negative crops, flips along each axis,
/// 90-degree rotations and random intensity scale/shift (the SwinUNETR BTCV recipe).
pub fn default_augment(config: &FinetuneConfig) -> Vec<toml::Table> {
    let roi = config.model.roi;
    let mut steps = vec![
        table("spatial_pad", &[("spatial_size", ints(&roi))]),
        table(
            "rand_crop_by_pos_neg_label",
            &[
                ("spatial_size", ints(&roi)),
                ("pos", 1.0.into()),
                ("neg", 1.0.into()),
                (
                    "num_samples",
                    (config.data.samples_per_volume as i64).into(),
                ),
            ],
        ),
    ];
    for axis in 0..3 {
        steps.push(table(
            "rand_flip",
            &[("prob", 0.1.into()), ("spatial_axis", ints(&[axis]))],
        ));
    }
    steps.push(table(
        "rand_rotate90",
        &[("prob", 0.1.into()), ("max_k", 3.into())],
    ));
    steps.push(table(
        "rand_scale_intensity",
        &[("factors", 0.1.into()), ("prob", 0.1.into())],
    ));
    steps.push(table(
        "rand_shift_intensity",
        &[("offsets", 0.1.into()), ("prob", 0.1.into())],
    ));
    steps
}
