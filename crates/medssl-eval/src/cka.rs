//! Centered kernel alignment (CKA): how similar two representations of the same
//! examples are (e.g. one encoder layer before and after fine-tuning), invariant to
//! rotations and isotropic scaling of either.
//!
//! Follows the reference code of Kornblith et al. 2019 ("Similarity of neural network
//! representations revisited", demo notebook): linear CKA in feature form
//! ([`linear_cka`], cheap when features are fewer than examples) and Gram form
//! ([`cka`] with [`gram_linear`] or the RBF kernel [`gram_rbf`]), each with the biased
//! HSIC or the debiased one. For more examples than fit in memory, [`MinibatchCka`]
//! averages the unbiased HSIC estimator of Song et al. 2012 over minibatches
//! (Nguyen, Raghu & Kornblith 2021, "Do wide and deep networks learn the same things?").
//! Rows are examples, columns features; all arithmetic is in f64.

use ndarray::{Array1, Array2, ArrayView2, Axis};

/// Which HSIC estimator the similarity is built on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Estimator {
    /// Plain centering `H K H` (the original CKA).
    Biased,
    /// Kornblith et al.'s debiased centering (unbiased HSIC); needs at least 4 examples.
    Debiased,
}

impl Estimator {
    fn min_examples(self) -> usize {
        match self {
            Self::Biased => 2,
            Self::Debiased => 4,
        }
    }
}

/// Why a similarity could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CkaError {
    #[error("X has {x} examples (rows) but Y has {y}")]
    Examples { x: usize, y: usize },
    #[error("this estimator needs at least {min} examples, got {n}")]
    TooFew { n: usize, min: usize },
    #[error("{0} holds a non-finite value")]
    NonFinite(&'static str),
    #[error("{name} must be square and symmetric, got shape {shape:?}")]
    Gram {
        name: &'static str,
        shape: [usize; 2],
    },
    #[error("the RBF threshold must be finite and positive, got {0}")]
    Threshold(f64),
    #[error("{0} is the same for every example: its similarity is undefined")]
    Degenerate(&'static str),
    #[error("no minibatch was added")]
    NoBatches,
}

/// Linear kernel `K = X Xᵀ`.
pub fn gram_linear(x: ArrayView2<'_, f64>) -> Array2<f64> {
    x.dot(&x.t())
}

/// RBF kernel `K_ij = exp(−|x_i − x_j|² / (2 · threshold² · median |x_i − x_j|²))`, the
/// median taken over all n² entries (zero diagonal included), as in Kornblith et al.:
/// `threshold` is the bandwidth as a fraction of the median distance.
pub fn gram_rbf(x: ArrayView2<'_, f64>, threshold: f64) -> Result<Array2<f64>, CkaError> {
    if !(threshold.is_finite() && threshold > 0.0) {
        return Err(CkaError::Threshold(threshold));
    }
    finite(x, "X")?;
    let dot = gram_linear(x);
    let norms = dot.diag().to_owned();
    let squared = Array2::from_shape_fn(dot.raw_dim(), |(i, j)| {
        -2.0 * dot[[i, j]] + norms[i] + norms[j]
    });
    let median = median(squared.iter().copied().collect());
    if median.is_nan() || median <= 0.0 {
        return Err(CkaError::Degenerate("X"));
    }
    let scale = 2.0 * threshold.powi(2) * median;
    Ok(squared.mapv(|d| (-d / scale).exp()))
}

/// Centres a Gram matrix: `H K H` ([`Estimator::Biased`]), or Kornblith et al.'s
/// debiased centering (diagonal zeroed, column sums over `n − 2` less their total over
/// `2(n − 1)` subtracted from rows and columns, diagonal zeroed again), whose Frobenius
/// products are `n(n − 3)` times the unbiased HSIC.
pub fn center_gram(
    gram: ArrayView2<'_, f64>,
    estimator: Estimator,
) -> Result<Array2<f64>, CkaError> {
    check_gram(gram, "the Gram matrix", estimator)?;
    Ok(centred(gram, estimator))
}

/// CKA from two Gram matrices over the same examples: `⟨Kc, Lc⟩ / (‖Kc‖ ‖Lc‖)`.
pub fn cka(
    gram_x: ArrayView2<'_, f64>,
    gram_y: ArrayView2<'_, f64>,
    estimator: Estimator,
) -> Result<f64, CkaError> {
    check_gram(gram_x, "K", estimator)?;
    check_gram(gram_y, "L", estimator)?;
    if gram_x.nrows() != gram_y.nrows() {
        return Err(CkaError::Examples {
            x: gram_x.nrows(),
            y: gram_y.nrows(),
        });
    }
    let (k, l) = (centred(gram_x, estimator), centred(gram_y, estimator));
    let norm = |m: &Array2<f64>| m.iter().map(|v| v * v).sum::<f64>().sqrt();
    ratio((&k * &l).sum(), norm(&k), norm(&l))
}

/// Linear CKA computed from the features, `‖XᵀY‖² / (‖XᵀX‖ ‖YᵀY‖)` after centring each
/// feature (or its debiased counterpart): equals [`cka`] of the linear Grams without
/// forming n×n matrices.
pub fn linear_cka(
    x: ArrayView2<'_, f64>,
    y: ArrayView2<'_, f64>,
    estimator: Estimator,
) -> Result<f64, CkaError> {
    let n = examples(x, y, estimator.min_examples())?;
    let centre = |m: ArrayView2<'_, f64>| {
        let mean = m
            .mean_axis(Axis(0))
            .unwrap_or_else(|| Array1::zeros(m.ncols()));
        &m - &mean
    };
    let (x, y) = (centre(x), centre(y));
    let frobenius = |m: Array2<f64>| m.iter().map(|v| v * v).sum::<f64>().sqrt();
    let xy = frobenius(x.t().dot(&y)).powi(2);
    let (norm_x, norm_y) = (frobenius(x.t().dot(&x)), frobenius(y.t().dot(&y)));
    match estimator {
        Estimator::Biased => ratio(xy, norm_x, norm_y),
        Estimator::Debiased => {
            let n = n as f64;
            let rows = |m: &Array2<f64>| m.map_axis(Axis(1), |r| r.dot(&r));
            let (rows_x, rows_y) = (rows(&x), rows(&y));
            let (total_x, total_y) = (rows_x.sum(), rows_y.sum());
            // Debiased HSIC up to the factor n(n − 3) that cancels in the ratio.
            let debias = |dot: f64, a: &Array1<f64>, b: &Array1<f64>, ta: f64, tb: f64| {
                dot - n / (n - 2.0) * a.dot(b) + ta * tb / ((n - 1.0) * (n - 2.0))
            };
            let xx = debias(norm_x.powi(2), &rows_x, &rows_x, total_x, total_x);
            let yy = debias(norm_y.powi(2), &rows_y, &rows_y, total_y, total_y);
            ratio(
                debias(xy, &rows_x, &rows_y, total_x, total_y),
                xx.sqrt(),
                yy.sqrt(),
            )
        }
    }
}

/// Unbiased HSIC estimator of Song et al. 2012 ("HSIC₁"): with `K̃`, `L̃` the Grams with
/// zeroed diagonals, `[tr(K̃L̃) + 1ᵀK̃1·1ᵀL̃1 / ((n−1)(n−2)) − 2/(n−2) · 1ᵀK̃L̃1] / (n(n−3))`.
pub fn hsic1(k: ArrayView2<'_, f64>, l: ArrayView2<'_, f64>) -> Result<f64, CkaError> {
    check_gram(k, "K", Estimator::Debiased)?;
    check_gram(l, "L", Estimator::Debiased)?;
    if k.nrows() != l.nrows() {
        return Err(CkaError::Examples {
            x: k.nrows(),
            y: l.nrows(),
        });
    }
    Ok(unbiased_hsic(k, l))
}

/// Linear CKA over more examples than fit in memory: the mean over minibatches of the
/// unbiased HSIC of the linear Grams, `mean HSIC₁(K, L) / √(mean HSIC₁(K, K) · mean
/// HSIC₁(L, L))` (Nguyen, Raghu & Kornblith 2021). Memory is one batch's Grams; the
/// estimate does not depend on the batch order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MinibatchCka {
    xy: f64,
    xx: f64,
    yy: f64,
    batches: usize,
}

impl MinibatchCka {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one minibatch: the same `n ≥ 4` examples (rows) in both representations.
    pub fn add<A, B>(&mut self, x: ArrayView2<'_, A>, y: ArrayView2<'_, B>) -> Result<(), CkaError>
    where
        A: Copy + Into<f64>,
        B: Copy + Into<f64>,
    {
        let (x, y) = (x.mapv(Into::into), y.mapv(Into::into));
        examples(x.view(), y.view(), Estimator::Debiased.min_examples())?;
        let (k, l) = (gram_linear(x.view()), gram_linear(y.view()));
        self.xy += unbiased_hsic(k.view(), l.view());
        self.xx += unbiased_hsic(k.view(), k.view());
        self.yy += unbiased_hsic(l.view(), l.view());
        self.batches += 1;
        Ok(())
    }

    /// Minibatches added so far.
    pub fn batches(&self) -> usize {
        self.batches
    }

    /// The CKA estimate over the minibatches added so far.
    pub fn finish(&self) -> Result<f64, CkaError> {
        if self.batches == 0 {
            return Err(CkaError::NoBatches);
        }
        let b = self.batches as f64;
        ratio(self.xy / b, (self.xx / b).sqrt(), (self.yy / b).sqrt())
    }
}

fn unbiased_hsic(k: ArrayView2<'_, f64>, l: ArrayView2<'_, f64>) -> f64 {
    let n = k.nrows() as f64;
    let zero_diagonal = |m: ArrayView2<'_, f64>| {
        let mut m = m.to_owned();
        m.diag_mut().fill(0.0);
        m
    };
    let (k, l) = (zero_diagonal(k), zero_diagonal(l));
    let trace = (&k * &l.t()).sum();
    let middle = k.sum() * l.sum() / ((n - 1.0) * (n - 2.0));
    let last = 2.0 / (n - 2.0) * k.sum_axis(Axis(0)).dot(&l.sum_axis(Axis(1)));
    (trace + middle - last) / (n * (n - 3.0))
}

fn centred(gram: ArrayView2<'_, f64>, estimator: Estimator) -> Array2<f64> {
    let n = gram.nrows() as f64;
    let mut gram = gram.to_owned();
    let mut means = match estimator {
        Estimator::Biased => gram.sum_axis(Axis(0)) / n,
        Estimator::Debiased => {
            gram.diag_mut().fill(0.0);
            gram.sum_axis(Axis(0)) / (n - 2.0)
        }
    };
    let shift = match estimator {
        Estimator::Biased => means.sum() / n / 2.0,
        Estimator::Debiased => means.sum() / (2.0 * (n - 1.0)),
    };
    means -= shift;
    for ((i, j), v) in gram.indexed_iter_mut() {
        *v = *v - means[i] - means[j];
    }
    if estimator == Estimator::Debiased {
        gram.diag_mut().fill(0.0);
    }
    gram
}

/// `num / (a · b)`, or an error naming the representation without variance.
fn ratio(num: f64, norm_x: f64, norm_y: f64) -> Result<f64, CkaError> {
    if norm_x.is_nan() || norm_x <= 0.0 {
        return Err(CkaError::Degenerate("X"));
    }
    if norm_y.is_nan() || norm_y <= 0.0 {
        return Err(CkaError::Degenerate("Y"));
    }
    Ok(num / (norm_x * norm_y))
}

fn examples(x: ArrayView2<'_, f64>, y: ArrayView2<'_, f64>, min: usize) -> Result<usize, CkaError> {
    if x.nrows() != y.nrows() {
        return Err(CkaError::Examples {
            x: x.nrows(),
            y: y.nrows(),
        });
    }
    if x.nrows() < min {
        return Err(CkaError::TooFew { n: x.nrows(), min });
    }
    finite(x, "X")?;
    finite(y, "Y")?;
    Ok(x.nrows())
}

fn finite(m: ArrayView2<'_, f64>, name: &'static str) -> Result<(), CkaError> {
    if m.iter().all(|v| v.is_finite()) {
        Ok(())
    } else {
        Err(CkaError::NonFinite(name))
    }
}

/// Square, symmetric to numpy's `allclose` defaults (as the reference code checks),
/// finite, and large enough for the estimator.
fn check_gram(
    gram: ArrayView2<'_, f64>,
    name: &'static str,
    estimator: Estimator,
) -> Result<(), CkaError> {
    let shape = [gram.nrows(), gram.ncols()];
    finite(gram, name)?;
    let symmetric = shape[0] == shape[1]
        && gram
            .indexed_iter()
            .all(|((i, j), &v)| (v - gram[[j, i]]).abs() <= 1e-8 + 1e-5 * gram[[j, i]].abs());
    if !symmetric {
        return Err(CkaError::Gram { name, shape });
    }
    let min = estimator.min_examples();
    if shape[0] < min {
        return Err(CkaError::TooFew { n: shape[0], min });
    }
    Ok(())
}

/// numpy's median: the middle value, or the mean of the two middle values.
fn median(mut values: Vec<f64>) -> f64 {
    let n = values.len();
    let (below, &mut upper, _) = values.select_nth_unstable_by(n / 2, f64::total_cmp);
    if n % 2 == 1 {
        upper
    } else {
        let lower = below.iter().copied().reduce(f64::max).unwrap_or(upper);
        (lower + upper) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn invalid_inputs_are_errors() {
        let x = array![[1.0, 2.0], [3.0, 4.0], [5.0, 7.0], [0.0, 1.0]];
        let y3 = array![[1.0], [2.0], [3.0]];
        assert_eq!(
            linear_cka(x.view(), y3.view(), Estimator::Biased),
            Err(CkaError::Examples { x: 4, y: 3 })
        );
        assert_eq!(
            linear_cka(y3.view(), y3.view(), Estimator::Debiased),
            Err(CkaError::TooFew { n: 3, min: 4 })
        );
        let mut bad = x.clone();
        bad[[1, 1]] = f64::NAN;
        assert_eq!(
            linear_cka(x.view(), bad.view(), Estimator::Biased),
            Err(CkaError::NonFinite("Y"))
        );
        let constant = Array2::from_elem([4, 3], 2.5);
        assert_eq!(
            linear_cka(constant.view(), x.view(), Estimator::Biased),
            Err(CkaError::Degenerate("X"))
        );
        assert_eq!(
            gram_rbf(constant.view(), 1.0),
            Err(CkaError::Degenerate("X"))
        );
        assert_eq!(gram_rbf(x.view(), 0.0), Err(CkaError::Threshold(0.0)));
        let asymmetric = array![[1.0, 2.0], [0.0, 1.0]];
        assert_eq!(
            center_gram(asymmetric.view(), Estimator::Biased)
                .unwrap_err()
                .to_string(),
            "the Gram matrix must be square and symmetric, got shape [2, 2]"
        );
        assert_eq!(MinibatchCka::new().finish(), Err(CkaError::NoBatches));
    }

    #[test]
    fn median_matches_numpy() {
        // np.median([3, 1, 2]) = 2.0, np.median([4, 1, 3, 2]) = 2.5
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
