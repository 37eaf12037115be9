//! Validation on whole volumes: sliding-window inference over each preprocessed
//! validation case, argmax, and MONAI's Dice per foreground class.

use burn::tensor::Device;
use medssl_data::loader::SampleSource;
use medssl_model::SwinUnetr;
use ndarray::{Array3, ArrayView4, Axis};

use crate::error::{EvalError, Result};
use crate::metrics::dice_per_class;
use crate::predictor::argmax_classes;
use crate::sliding_window::SlidingWindow;

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

/// The label map predicted for one preprocessed image `[C, D, H, W]`.
pub fn predict_labels(
    network: &SwinUnetr,
    image: ArrayView4<f32>,
    window: &SlidingWindow,
    device: &Device,
) -> Result<Array3<u8>> {
    let logits = window.run(image.insert_axis(Axis(0)), |batch| {
        network.predict_array(batch, device)
    })?;
    argmax_classes(&logits.index_axis_move(Axis(0), 0))
}

/// Validates `network` on every case of `source` (preprocessed images with label
/// maps of `classes` classes, background included), inferred with `window`.
pub fn validate(
    network: &SwinUnetr,
    source: &dyn SampleSource,
    window: &SlidingWindow,
    device: &Device,
    classes: usize,
) -> Result<ValidationOutcome> {
    let mut per_case = Vec::with_capacity(source.len());
    for index in 0..source.len() {
        let sample = source.load(index)?;
        let case = sample.id.clone();
        let fail = |e: &dyn std::fmt::Display| EvalError::ValidationCase {
            id: case.clone(),
            message: e.to_string(),
        };
        let label = sample.label.as_ref().ok_or_else(|| fail(&"no label map"))?;
        let predicted = predict_labels(network, sample.image.data().view(), window, device)
            .map_err(|e| fail(&e))?;
        let truth = label.channel(0).mapv(|v| v as u8);
        let dice = dice_per_class(predicted.view(), truth.view(), classes).map_err(|e| fail(&e))?;
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
