//! Validation on whole volumes: sliding-window inference over each preprocessed
//! validation case, argmax, and MONAI's Dice per foreground class.

use burn::tensor::Device;
use medssl_data::loader::SampleSource;
use medssl_eval::metrics::dice_per_class;
use medssl_eval::sliding_window::{Blend, SlidingWindow};
use medssl_model::SwinUnetr;
use ndarray::{Array3, ArrayView4, Axis};

use super::config::FinetuneConfig;
use super::inference::argmax_classes;
use crate::error::{Result, TrainError};

/// The validation result: the mean over cases (NaN cases skipped) of each case's mean
/// foreground Dice (classes absent from the case's ground truth skipped, as MONAI's
/// `DiceMetric(ignore_empty=True)` with a NaN-skipping mean).
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationOutcome {
    /// Mean foreground Dice over cases.
    pub mean_dice: f64,
    /// Each case's mean foreground Dice.
    pub per_case: Vec<(String, f64)>,
}

/// The sliding-window settings a run validates and predicts with: the training ROI,
/// Gaussian blending with σ = 0.125·ROI (MONAI's default).
pub fn sliding_window(config: &FinetuneConfig) -> SlidingWindow {
    SlidingWindow {
        roi: config.model.roi,
        overlap: config.validation.overlap,
        batch: config.validation.sw_batch_size,
        blend: Blend::Gaussian { sigma_scale: 0.125 },
        cval: 0.0,
    }
}

/// The label map predicted for one preprocessed image `[C, D, H, W]`.
pub fn predict_labels(
    network: &SwinUnetr,
    image: ArrayView4<f32>,
    config: &FinetuneConfig,
    device: &Device,
) -> std::result::Result<Array3<u8>, String> {
    let logits = sliding_window(config)
        .run(image.insert_axis(Axis(0)), |batch| {
            network.predict_array(batch, device)
        })
        .map_err(|e| e.to_string())?;
    argmax_classes(&logits.index_axis_move(Axis(0), 0)).map_err(|e| e.to_string())
}

/// Validates `network` on every case of `source`.
pub fn validate(
    network: &SwinUnetr,
    source: &dyn SampleSource,
    config: &FinetuneConfig,
    device: &Device,
    classes: usize,
) -> Result<ValidationOutcome> {
    let mut per_case = Vec::with_capacity(source.len());
    for index in 0..source.len() {
        let sample = source
            .load(index)
            .map_err(|e| TrainError::Invalid(e.to_string()))?;
        let case = sample.id.clone();
        let fail = |e: String| TrainError::Invalid(format!("validation case {case}: {e}"));
        let label = sample
            .label
            .as_ref()
            .ok_or_else(|| fail("no label map".into()))?;
        let predicted =
            predict_labels(network, sample.image.data().view(), config, device).map_err(fail)?;
        let truth = label.channel(0).mapv(|v| v as u8);
        let dice = dice_per_class(predicted.view(), truth.view(), classes)
            .map_err(|e| fail(e.to_string()))?;
        per_case.push((case, nan_mean(&dice)));
    }
    let scores: Vec<f64> = per_case.iter().map(|(_, d)| *d).collect();
    Ok(ValidationOutcome {
        mean_dice: nan_mean(&scores),
        per_case,
    })
}

/// The mean of the finite values, NaN when there are none.
fn nan_mean(values: &[f64]) -> f64 {
    let finite: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if finite.is_empty() {
        f64::NAN
    } else {
        finite.iter().sum::<f64>() / finite.len() as f64
    }
}
