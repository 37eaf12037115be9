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

use ndarray::ArrayView2;

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

/// Checks that `features` has one finite row per label.
fn check_tokens(
    what: &'static str,
    features: ArrayView2<f64>,
    labels: usize,
) -> Result<(), ProbeError> {
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
