//! The linear probe: multinomial logistic regression on standardised features, fitted
//! to convergence with L-BFGS. The objective is scikit-learn's for
//! `LogisticRegression(C, class_weight="balanced", solver="lbfgs")` (multinomial), up to
//! the factor `1 / n` that makes the tolerance independent of the token count:
//!
//! `f(W, b) = (1/n) Σᵢ sᵢ · CE(softmax(W xᵢ + b), yᵢ) + ‖W‖² / (2 C n)`
//!
//! with `sᵢ = n / (K · n_{yᵢ})` (balanced: every class weighs the same in all), `K` the
//! classes present in the training labels, and no penalty on the intercepts `b`.

use std::collections::VecDeque;

use ndarray::{Array1, Array2, ArrayView2, Axis};

use super::{ProbeError, check_tokens};

/// How the linear probe is fitted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearProbe {
    /// scikit-learn's `C`: the inverse strength of the L2 penalty.
    pub c: f64,
    /// L-BFGS iterations at most.
    pub max_iterations: usize,
    /// Converged when no component of the objective's gradient exceeds this.
    pub tolerance: f64,
}

impl Default for LinearProbe {
    /// `C = 1` (scikit-learn's default), solved until no gradient component exceeds
    /// 1e-6 (scikit-learn stops at 1e-4), at most 500 iterations: the scores do not
    /// move past that, and the deep stages' nearly separable tokens would otherwise
    /// take thousands of iterations towards ever larger weights.
    fn default() -> LinearProbe {
        LinearProbe {
            c: 1.0,
            max_iterations: 500,
            tolerance: 1e-6,
        }
    }
}

/// A fitted linear probe.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearClassifier {
    /// The classes of the training labels, ascending: row `k` of the weights is
    /// `classes[k]`'s.
    pub classes: Vec<usize>,
    /// The training tokens' mean and standard deviation per feature (a constant
    /// feature's deviation is taken as 1, as scikit-learn's `StandardScaler` does).
    pub mean: Array1<f64>,
    pub std: Array1<f64>,
    /// `[classes, features]` on the standardised features.
    pub weights: Array2<f64>,
    pub intercept: Array1<f64>,
    /// L-BFGS iterations taken, and whether the gradient fell below the tolerance.
    pub iterations: usize,
    pub converged: bool,
}

impl LinearProbe {
    /// Fits the probe to `features` (`[tokens, features]`) and their `labels`.
    pub fn fit(
        &self,
        features: ArrayView2<f64>,
        labels: &[usize],
    ) -> Result<LinearClassifier, ProbeError> {
        check_tokens("training", features, labels.len())?;
        let mut classes = labels.to_vec();
        classes.sort_unstable();
        classes.dedup();
        if classes.len() < 2 {
            return Err(ProbeError::OneClass(classes[0]));
        }
        let (n, d, k) = (features.nrows(), features.ncols(), classes.len());
        let mean = features.mean_axis(Axis(0)).expect("tokens");
        let std = features
            .std_axis(Axis(0), 0.0)
            .mapv(|s| if s > 0.0 { s } else { 1.0 });
        let x = (&features - &mean) / &std;
        let y: Vec<usize> = labels
            .iter()
            .map(|l| classes.binary_search(l).expect("a training class"))
            .collect();
        let mut counts = vec![0usize; k];
        for &c in &y {
            counts[c] += 1;
        }
        let weight: Vec<f64> = y
            .iter()
            .map(|&c| n as f64 / (k * counts[c]) as f64)
            .collect();
        let objective = Objective {
            x: x.view(),
            y: &y,
            weight: &weight,
            classes: k,
            penalty: 1.0 / (self.c * n as f64),
        };
        let (theta, iterations, converged) = lbfgs(
            |theta| objective.value_and_gradient(theta),
            vec![0.0; k * (d + 1)],
            self.max_iterations,
            self.tolerance,
        );
        let (weights, intercept) = split(&theta, k, d);
        Ok(LinearClassifier {
            classes,
            mean,
            std,
            weights,
            intercept,
            iterations,
            converged,
        })
    }
}

impl LinearClassifier {
    /// The class of each row of `features`.
    pub fn predict(&self, features: ArrayView2<f64>) -> Result<Vec<usize>, ProbeError> {
        check_tokens("held-out", features, features.nrows())?;
        if features.ncols() != self.mean.len() {
            return Err(ProbeError::Shape {
                what: "feature width",
                got: features.ncols(),
                expected: self.mean.len(),
            });
        }
        let x = (&features - &self.mean) / &self.std;
        let logits = x.dot(&self.weights.t()) + &self.intercept;
        Ok(logits
            .rows()
            .into_iter()
            .map(|row| self.classes[argmax(row.iter().copied())])
            .collect())
    }
}

/// The index of the largest value (the first of equals).
fn argmax(values: impl Iterator<Item = f64>) -> usize {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, v) in values.enumerate() {
        if v > best.1 {
            best = (i, v);
        }
    }
    best.0
}

/// `theta` as the weights `[k, d]` (row-major first) and the intercepts `[k]`.
fn split(theta: &[f64], k: usize, d: usize) -> (Array2<f64>, Array1<f64>) {
    let weights = Array2::from_shape_vec((k, d), theta[..k * d].to_vec()).expect("k × d");
    (weights, Array1::from(theta[k * d..].to_vec()))
}

/// The objective of the module doc on standardised features.
struct Objective<'a> {
    x: ArrayView2<'a, f64>,
    y: &'a [usize],
    weight: &'a [f64],
    classes: usize,
    /// `1 / (C n)`.
    penalty: f64,
}

impl Objective<'_> {
    fn value_and_gradient(&self, theta: &[f64]) -> (f64, Vec<f64>) {
        let (n, d, k) = (self.x.nrows(), self.x.ncols(), self.classes);
        let (weights, intercept) = split(theta, k, d);
        let mut residual = self.x.dot(&weights.t()) + &intercept;
        let mut value = 0.0;
        for (i, mut row) in residual.rows_mut().into_iter().enumerate() {
            let top = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = row.iter().map(|v| (v - top).exp()).sum();
            let log_sum = top + sum.ln();
            value += self.weight[i] * (log_sum - row[self.y[i]]);
            // Row i becomes sᵢ (pᵢ − e_{yᵢ}) / n.
            row.mapv_inplace(|v| (v - log_sum).exp());
            row[self.y[i]] -= 1.0;
            row *= self.weight[i] / n as f64;
        }
        value /= n as f64;
        value += 0.5 * self.penalty * weights.iter().map(|w| w * w).sum::<f64>();
        let weight_gradient = residual.t().dot(&self.x) + &weights * self.penalty;
        let intercept_gradient = residual.sum_axis(Axis(0));
        let mut gradient = weight_gradient.into_raw_vec_and_offset().0;
        gradient.extend(intercept_gradient.iter());
        (value, gradient)
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Minimises `f` (value and gradient) from `x` with L-BFGS (10 pairs) and a
/// backtracking Armijo line search. Returns the point, the iterations and whether the
/// largest gradient component fell below `tolerance`.
fn lbfgs(
    f: impl Fn(&[f64]) -> (f64, Vec<f64>),
    mut x: Vec<f64>,
    max_iterations: usize,
    tolerance: f64,
) -> (Vec<f64>, usize, bool) {
    const MEMORY: usize = 10;
    let (mut value, mut gradient) = f(&x);
    let mut history: VecDeque<(Vec<f64>, Vec<f64>, f64)> = VecDeque::new();
    for iteration in 0..max_iterations {
        if gradient.iter().all(|g| g.abs() < tolerance) {
            return (x, iteration, true);
        }
        // Two-loop recursion: direction = −H·gradient.
        let mut q = gradient.clone();
        let mut alphas = Vec::with_capacity(history.len());
        for (s, y, rho) in history.iter().rev() {
            let alpha = rho * dot(s, &q);
            q.iter_mut().zip(y).for_each(|(q, y)| *q -= alpha * y);
            alphas.push(alpha);
        }
        let gamma = history
            .back()
            .map_or(1.0, |(s, y, _)| dot(s, y) / dot(y, y));
        q.iter_mut().for_each(|q| *q *= gamma);
        for ((s, y, rho), alpha) in history.iter().zip(alphas.iter().rev()) {
            let beta = rho * dot(y, &q);
            q.iter_mut()
                .zip(s)
                .for_each(|(q, s)| *q += (alpha - beta) * s);
        }
        let mut direction: Vec<f64> = q.iter().map(|v| -v).collect();
        let mut slope = dot(&gradient, &direction);
        if slope >= 0.0 {
            history.clear();
            direction = gradient.iter().map(|g| -g).collect();
            slope = dot(&gradient, &direction);
        }
        let mut step = 1.0;
        let (next, next_value, next_gradient) = loop {
            let next: Vec<f64> = x
                .iter()
                .zip(&direction)
                .map(|(x, d)| x + step * d)
                .collect();
            let (v, g) = f(&next);
            if v <= value + 1e-4 * step * slope {
                break (next, v, g);
            }
            step *= 0.5;
            if step < 1e-20 {
                // No decrease left to find at this precision.
                return (x, iteration, false);
            }
        };
        let s: Vec<f64> = next.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = next_gradient
            .iter()
            .zip(&gradient)
            .map(|(a, b)| a - b)
            .collect();
        let sy = dot(&s, &y);
        if sy > 1e-16 * dot(&y, &y) {
            if history.len() == MEMORY {
                history.pop_front();
            }
            history.push_back((s, y, 1.0 / sy));
        }
        (x, value, gradient) = (next, next_value, next_gradient);
    }
    let converged = gradient.iter().all(|g| g.abs() < tolerance);
    (x, max_iterations, converged)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// L-BFGS finds the minimum of a badly scaled quadratic.
    #[test]
    fn lbfgs_minimises_a_quadratic() {
        let scales = [1.0, 100.0, 0.01];
        let f = |x: &[f64]| {
            let value = x
                .iter()
                .zip(&scales)
                .map(|(x, s)| 0.5 * s * (x - 1.0).powi(2))
                .sum();
            let gradient = x.iter().zip(&scales).map(|(x, s)| s * (x - 1.0)).collect();
            (value, gradient)
        };
        let (x, _, converged) = lbfgs(f, vec![0.0; 3], 200, 1e-12);
        assert!(converged);
        for v in x {
            assert!((v - 1.0).abs() < 1e-9, "{v}");
        }
    }

    /// The gradient of the objective equals its finite differences.
    #[test]
    fn the_gradient_is_the_objectives() {
        let x = Array2::from_shape_fn((7, 3), |(i, j)| ((i * 3 + j) as f64 * 0.37).sin());
        let y = [0, 1, 2, 1, 0, 2, 2];
        let weight = [1.0, 0.5, 2.0, 0.5, 1.0, 2.0, 2.0];
        let objective = Objective {
            x: x.view(),
            y: &y,
            weight: &weight,
            classes: 3,
            penalty: 0.3,
        };
        let theta: Vec<f64> = (0..12).map(|i| (i as f64 * 0.7).cos() * 0.5).collect();
        let (_, gradient) = objective.value_and_gradient(&theta);
        for i in 0..theta.len() {
            let h = 1e-6;
            let mut up = theta.clone();
            up[i] += h;
            let mut down = theta.clone();
            down[i] -= h;
            let numeric = (objective.value_and_gradient(&up).0
                - objective.value_and_gradient(&down).0)
                / (2.0 * h);
            assert!(
                (numeric - gradient[i]).abs() < 1e-8,
                "{i}: {numeric} {}",
                gradient[i]
            );
        }
    }
}
