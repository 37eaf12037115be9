//! Frozen-feature probes: how well an encoder's features predict the labels of the
//! tokens they describe, without fine-tuning (DINO's k-NN and the linear probe of MAE
//! and DINO, done per token for segmentation). Two classifiers are fitted on the
//! training cases' tokens and scored on held-out tokens:
//!
//! - [`LinearProbe`]: multinomial logistic regression with L2 on the weights (not the
//!   intercepts) and balanced class weights, solved to convergence (scikit-learn's
//!   `LogisticRegression(C, class_weight="balanced")` with `lbfgs`), on features
//!   standardised with the training tokens' mean and deviation;
//! - [`Knn`]: DINO's weighted k-NN (`eval_knn.py`): cosine similarity to the training
//!   tokens, the `k` nearest vote with weight `exp(similarity / T)`.
//!
//! Scores: [`balanced_accuracy`] (the mean recall over the classes present, chance
//! `1 / classes`) and [`token_dice`] per class. The classifiers and scores work on plain
//! arrays in f64; [`case_tokens`] makes the tokens of one case with a network.

mod knn;
mod linear;
mod tokens;

pub use knn::Knn;
pub use linear::{LinearClassifier, LinearProbe};
pub use tokens::{StageTokens, case_tokens};

use std::collections::BTreeMap;

use burn::tensor::Device;
use medssl_data::loader::SampleSource;
use medssl_model::swin::SwinTransformer;
use ndarray::{ArrayView2, Axis};
use serde::Serialize;

use crate::error::{EvalError, Result};
use crate::feature_reuse::STAGES;

/// Why a probe could not be fitted or scored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProbeError {
    /// No training or no held-out token.
    #[error("the probe has no {0} tokens")]
    Empty(&'static str),
    /// Feature rows and labels that do not pair up, or feature widths that differ.
    #[error("{what}: {got} where {expected} were expected")]
    Shape {
        what: &'static str,
        got: usize,
        expected: usize,
    },
    /// Training tokens of a single class: there is nothing to tell apart.
    #[error("every training token has label {0}: a probe needs two classes")]
    OneClass(usize),
    /// A feature that is NaN or infinite.
    #[error("{0} features hold a value that is not finite")]
    NotFinite(&'static str),
}

/// How [`probe_stages`] runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeSettings {
    /// The window the encoder sees (the network's training crop).
    pub roi: [usize; 3],
    pub linear: LinearProbe,
    pub knn: Knn,
    /// Tokens of a stage kept at most, from the training cases and from the held-out
    /// ones: every `ceil(n / max)`-th in case and position order, so the k-NN's
    /// similarity matrix stays small and the result is deterministic.
    pub max_train_tokens: usize,
    pub max_held_out_tokens: usize,
}

impl ProbeSettings {
    /// The defaults around a window of `roi`: C = 1, k = 20 at T = 0.07, at most 8192
    /// training and 4096 held-out tokens per stage.
    pub fn new(roi: [usize; 3]) -> ProbeSettings {
        ProbeSettings {
            roi,
            linear: LinearProbe::default(),
            knn: Knn::default(),
            max_train_tokens: 8192,
            max_held_out_tokens: 4096,
        }
    }
}

/// One classifier's scores on the held-out tokens.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scores {
    pub balanced_accuracy: f64,
    /// Per class `0..classes`, NaN for a class neither side has.
    pub dice: Vec<f64>,
}

impl Scores {
    /// No score (NaN): the stage's training tokens all have one class.
    fn none(classes: usize) -> Scores {
        Scores {
            balanced_accuracy: f64::NAN,
            dice: vec![f64::NAN; classes],
        }
    }
}

/// The probes of one encoder stage.
#[derive(Debug, Clone, PartialEq)]
pub struct StageScores {
    /// As `medssl cka` names stages (`patch_embed`, `stage1` ..).
    pub stage: &'static str,
    pub train_tokens: usize,
    pub held_out_tokens: usize,
    pub linear: Scores,
    pub knn: Scores,
}

/// One stage's scores as `medssl probe --json` and pretraining's probe lines write them
/// (NaN, no score, becomes null in JSON).
#[derive(Debug, Clone, Serialize)]
pub struct StageJson<'a> {
    pub train_tokens: usize,
    pub held_out_tokens: usize,
    pub linear: &'a Scores,
    pub knn: &'a Scores,
}

/// The scores by stage name: `{"<stage>": {"train_tokens", "held_out_tokens", "linear":
/// {"balanced_accuracy", "dice": [..]}, "knn": {..}}}`.
pub fn stages_json(stages: &[StageScores]) -> BTreeMap<&'static str, StageJson<'_>> {
    stages
        .iter()
        .map(|stage| {
            let json = StageJson {
                train_tokens: stage.train_tokens,
                held_out_tokens: stage.held_out_tokens,
                linear: &stage.linear,
                knn: &stage.knn,
            };
            (stage.stage, json)
        })
        .collect()
}

/// Fits both probes on the tokens of `train`'s cases and scores them on `held_out`'s,
/// for every stage of `encoder`. Both sources give preprocessed images with
/// label maps of `classes` classes. A stage whose training tokens all have one class
/// gets NaN scores.
pub fn probe_stages(
    encoder: &SwinTransformer,
    train: &dyn SampleSource,
    held_out: &dyn SampleSource,
    classes: usize,
    settings: &ProbeSettings,
    device: &Device,
) -> Result<Vec<StageScores>> {
    let tokens = |source: &dyn SampleSource, max: usize| -> Result<Vec<StageTokens>> {
        let mut stages: Vec<StageTokens> = Vec::new();
        for index in 0..source.len() {
            let sample = source.load(index)?;
            let label = sample
                .label
                .as_ref()
                .ok_or_else(|| EvalError::case(&sample.id, "no label map"))?
                .channel(0)
                .mapv(|v| v as u8);
            let case = case_tokens(
                encoder,
                sample.image.data().view(),
                label.view(),
                settings.roi,
                device,
            )?;
            if stages.is_empty() {
                stages = case;
            } else {
                for (all, more) in stages.iter_mut().zip(case) {
                    all.features
                        .append(Axis(0), more.features.view())
                        .expect("one width");
                    all.labels.extend(more.labels);
                }
            }
        }
        Ok(stages.into_iter().map(|s| every_nth(s, max)).collect())
    };
    let train = tokens(train, settings.max_train_tokens)?;
    let held_out = tokens(held_out, settings.max_held_out_tokens)?;
    train
        .iter()
        .zip(&held_out)
        .zip(STAGES)
        .map(|((train, test), stage)| {
            let (x, t) = (
                train.features.mapv(f64::from),
                test.features.mapv(f64::from),
            );
            let scores = |predicted: Vec<usize>| Scores {
                balanced_accuracy: balanced_accuracy(&predicted, &test.labels),
                dice: token_dice(&predicted, &test.labels, classes),
            };
            let (linear, knn) = match settings.linear.fit(x.view(), &train.labels) {
                // A deep stage of small volumes can have tokens of one class only:
                // nothing to tell apart, so no score (NaN), not a failed probe.
                Err(ProbeError::OneClass(_)) => (Scores::none(classes), Scores::none(classes)),
                fitted => (
                    scores(fitted?.predict(t.view())?),
                    scores(settings.knn.predict(x.view(), &train.labels, t.view())?),
                ),
            };
            Ok(StageScores {
                stage,
                train_tokens: train.labels.len(),
                held_out_tokens: test.labels.len(),
                linear,
                knn,
            })
        })
        .collect()
}

/// `tokens` thinned to at most `max`: every `ceil(n / max)`-th.
fn every_nth(tokens: StageTokens, max: usize) -> StageTokens {
    let step = tokens.labels.len().div_ceil(max.max(1)).max(1);
    if step == 1 {
        return tokens;
    }
    let keep: Vec<usize> = (0..tokens.labels.len()).step_by(step).collect();
    StageTokens {
        features: tokens.features.select(Axis(0), &keep),
        labels: keep.iter().map(|&i| tokens.labels[i]).collect(),
    }
}

/// Checks that `features` has one finite row per label.
fn check_tokens(
    what: &'static str,
    features: ArrayView2<f64>,
    labels: usize,
) -> std::result::Result<(), ProbeError> {
    if features.nrows() == 0 {
        return Err(ProbeError::Empty(what));
    }
    if features.nrows() != labels {
        return Err(ProbeError::Shape {
            what: "labels",
            got: labels,
            expected: features.nrows(),
        });
    }
    if features.iter().any(|v| !v.is_finite()) {
        return Err(ProbeError::NotFinite(what));
    }
    Ok(())
}

/// scikit-learn's `balanced_accuracy_score`: the mean over the classes present in
/// `truth` of the fraction of their tokens predicted right.
pub fn balanced_accuracy(predicted: &[usize], truth: &[usize]) -> f64 {
    assert_eq!(predicted.len(), truth.len(), "one prediction per token");
    let classes = truth.iter().max().map_or(0, |m| m + 1);
    let (mut right, mut total) = (vec![0usize; classes], vec![0usize; classes]);
    for (&p, &t) in predicted.iter().zip(truth) {
        total[t] += 1;
        right[t] += usize::from(p == t);
    }
    let recalls: Vec<f64> = right
        .iter()
        .zip(&total)
        .filter(|(_, n)| **n > 0)
        .map(|(&r, &n)| r as f64 / n as f64)
        .collect();
    if recalls.is_empty() {
        return f64::NAN;
    }
    recalls.iter().sum::<f64>() / recalls.len() as f64
}

/// Dice of each class `0..classes` at token resolution: `2|P ∩ T| / (|P| + |T|)`, NaN
/// for a class neither side has.
pub fn token_dice(predicted: &[usize], truth: &[usize], classes: usize) -> Vec<f64> {
    assert_eq!(predicted.len(), truth.len(), "one prediction per token");
    (0..classes)
        .map(|c| {
            let (mut both, mut sizes) = (0usize, 0usize);
            for (&p, &t) in predicted.iter().zip(truth) {
                both += usize::from(p == c && t == c);
                sizes += usize::from(p == c) + usize::from(t == c);
            }
            if sizes == 0 {
                f64::NAN
            } else {
                2.0 * both as f64 / sizes as f64
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use medssl_data::Sample;
    use medssl_io::Volume;
    use medssl_model::{SwinUnetr, SwinUnetrConfig};
    use ndarray::Array4;

    /// Cases of 32³ voxels whose label is a bright cube (class 1) at a case-dependent
    /// place, the rest dark with a faint pattern.
    struct Cubes {
        first: usize,
        count: usize,
    }

    impl SampleSource for Cubes {
        fn len(&self) -> usize {
            self.count
        }

        fn id(&self, index: usize) -> String {
            format!("cube{}", self.first + index)
        }

        fn fingerprint(&self, index: usize) -> medssl_data::Result<String> {
            Ok(self.id(index))
        }

        fn load(&self, index: usize) -> medssl_data::Result<Sample> {
            let at = 4 + 6 * ((self.first + index) % 3);
            let inside = |z: usize, y: usize, x: usize| {
                (at..at + 12).contains(&z) && (4..20).contains(&y) && (at..at + 14).contains(&x)
            };
            let image = Array4::from_shape_fn((1, 32, 32, 32), |(_, z, y, x)| {
                let pattern = ((z * 5 + y * 3 + x * 7) % 13) as f32 / 130.0;
                if inside(z, y, x) {
                    1.0 + pattern
                } else {
                    pattern
                }
            });
            let label = Array4::from_shape_fn((1, 32, 32, 32), |(_, z, y, x)| {
                f32::from(u8::from(inside(z, y, x)))
            });
            let affine = medssl_io::Affine::identity();
            Sample::labelled(
                self.id(index),
                Volume::new(image, affine),
                Volume::new(label, affine),
            )
        }
    }

    /// A randomly initialised encoder's patch embedding is a linear map of the voxels,
    /// so a label drawn by intensity is linearly decodable from it: the linear probe
    /// scores near 1 there. The deepest stage has one token per case, all background
    /// (the cube fills less than half of a case): no score there.
    #[test]
    fn an_intensity_label_is_decodable_from_the_patch_embedding() {
        let device = Device::flex();
        let network =
            SwinUnetr::new(&SwinUnetrConfig::new(1, 2).with_feature_size(12), &device).unwrap();
        let train = Cubes { first: 0, count: 2 };
        let held_out = Cubes { first: 2, count: 1 };
        let settings = ProbeSettings {
            max_train_tokens: 2048,
            max_held_out_tokens: 1024,
            ..ProbeSettings::new([32; 3])
        };
        let scores =
            probe_stages(&network.swin_vit, &train, &held_out, 2, &settings, &device).unwrap();
        let stages: Vec<&str> = scores.iter().map(|s| s.stage).collect();
        assert_eq!(stages, STAGES);
        let patch = &scores[0];
        // 2 × 16³ and 16³ tokens thinned to every 4th.
        assert_eq!((patch.train_tokens, patch.held_out_tokens), (2048, 1024));
        assert!(patch.linear.balanced_accuracy > 0.95, "{patch:?}");
        assert!(patch.knn.balanced_accuracy > 0.9, "{patch:?}");
        for stage in &scores[..3] {
            assert!(stage.linear.balanced_accuracy.is_finite(), "{stage:?}");
            assert_eq!(stage.linear.dice.len(), 2);
        }
        let deepest = &scores[4];
        assert_eq!((deepest.train_tokens, deepest.held_out_tokens), (2, 1));
        assert!(deepest.linear.balanced_accuracy.is_nan() && deepest.knn.dice[1].is_nan());
    }

    /// Hand-counted: class 0 has 2 of 3 right, class 1 1 of 1, class 2 0 of 2; class 3
    /// is absent from the truth and does not count.
    #[test]
    fn balanced_accuracy_averages_the_recall_of_the_classes_present() {
        let truth = [0, 0, 0, 1, 2, 2];
        let predicted = [0, 0, 3, 1, 0, 1];
        let want = (2.0 / 3.0 + 1.0 + 0.0) / 3.0;
        assert!((balanced_accuracy(&predicted, &truth) - want).abs() < 1e-15);
        assert!(balanced_accuracy(&[], &[]).is_nan());
    }

    /// Hand-counted per class; a class neither side has is NaN.
    #[test]
    fn token_dice_counts_each_class() {
        let truth = [0, 0, 1, 1, 1];
        let predicted = [0, 1, 1, 1, 0];
        let dice = token_dice(&predicted, &truth, 3);
        assert!((dice[0] - 2.0 * 1.0 / 4.0).abs() < 1e-15);
        assert!((dice[1] - 2.0 * 2.0 / 6.0).abs() < 1e-15);
        assert!(dice[2].is_nan());
    }
}
