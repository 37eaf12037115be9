//! Row softmax of `scores + bias + mask` (Swin window attention) and its backward, on
//! `f32` slices. Burn's CPU softmax calls the C library's scalar `expf` per element, and
//! under autodiff it becomes five separate passes over the `[windows, heads, n, n]`
//! scores; here each row is one pass with an exponential the compiler vectorises.

use rayon::prelude::*;

/// Accumulator lanes of the row reductions: independent lanes let the compiler vectorise.
const LANES: usize = 8;

/// `e^x` to about 1 ulp (the Cephes `expf` reduction and polynomial), without branches
/// or library calls so that loops over it vectorise. Arguments are clamped to
/// `[-87, 88]` (the normal range of `f32`); NaN stays NaN.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    // Adding 1.5·2^23 rounds to an integer `n`, which then sits in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let x = if x < -87.0 { -87.0 } else { x };
    let x = if x > 88.0 { 88.0 } else { x };
    let shifted = x * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    // ln 2 in two parts, so that `x - n·ln 2` is exact.
    let g = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p = ((((1.987_569_2e-4 * g + 1.398_199_9e-3) * g + 8.333_452e-3) * g + 4.166_579_6e-2) * g
        + 0.166_666_65)
        * g
        + 0.5;
    let y = p * g * g + g + 1.0;
    // 2^n from the bits of `shifted` (integer arithmetic only, so that it vectorises).
    let two_n = f32::from_bits(shifted.to_bits().wrapping_sub(ROUND.to_bits() - 127) << 23);
    y * two_n
}

/// Lane-wise reduction of `v` with `f`, then across lanes.
#[inline(always)]
fn reduce(v: &[f32], init: f32, f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut lanes = [init; LANES];
    let chunks = v.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane = f(*lane, x);
        }
    }
    let lanes = lanes.into_iter().fold(init, &f);
    rest.iter().fold(lanes, |a, &x| f(a, x))
}

/// One row: `p = softmax(s + bias + mask)`.
#[inline(always)]
fn forward_row(p: &mut [f32], s: &[f32], bias: &[f32], mask: &[f32]) {
    for (((p, s), b), m) in p.iter_mut().zip(s).zip(bias).zip(mask) {
        *p = s + b + m;
    }
    let max = reduce(p, f32::NEG_INFINITY, |a, x| if x > a { x } else { a });
    for p in p.iter_mut() {
        *p = exp(*p - max);
    }
    let scale = 1.0 / reduce(p, 0.0, |a, x| a + x);
    for p in p.iter_mut() {
        *p *= scale;
    }
}

/// One row: `ds = p ⊙ (g − Σ g ⊙ p)`, the gradient of the softmax's input.
#[inline(always)]
fn backward_row(ds: &mut [f32], p: &[f32], g: &[f32]) {
    for ((d, p), g) in ds.iter_mut().zip(p).zip(g) {
        *d = p * g;
    }
    let dot = reduce(ds, 0.0, |a, x| a + x);
    for ((d, p), g) in ds.iter_mut().zip(p).zip(g) {
        *d = p * (g - dot);
    }
}

/// Rows of `n`: `p = softmax(s + bias + mask)`.
#[inline(always)]
fn forward_rows(p: &mut [f32], s: &[f32], bias: &[f32], mask: &[f32], n: usize) {
    let rows = p.chunks_mut(n).zip(s.chunks(n));
    for ((p, s), (b, m)) in rows.zip(bias.chunks(n).zip(mask.chunks(n))) {
        forward_row(p, s, b, m);
    }
}

/// Rows of `n`: `ds = p ⊙ (g − Σ g ⊙ p)`.
#[inline(always)]
fn backward_rows(ds: &mut [f32], p: &[f32], g: &[f32], n: usize) {
    for ((d, p), g) in ds.chunks_mut(n).zip(p.chunks(n)).zip(g.chunks(n)) {
        backward_row(d, p, g);
    }
}

/// The row loops compiled for AVX2 and FMA (twice the vector width of the x86-64
/// baseline), chosen at run time when the CPU has them.
#[cfg(target_arch = "x86_64")]
mod wide {
    #[target_feature(enable = "avx2,fma")]
    pub fn forward_rows(p: &mut [f32], s: &[f32], bias: &[f32], mask: &[f32], n: usize) {
        super::forward_rows(p, s, bias, mask, n)
    }

    #[target_feature(enable = "avx2,fma")]
    pub fn backward_rows(ds: &mut [f32], p: &[f32], g: &[f32], n: usize) {
        super::backward_rows(ds, p, g, n)
    }

    pub fn available() -> bool {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
}

/// Panics, naming the shapes, unless `scores`, `bias` and `mask` are
/// `[batch, heads, n, n]`, `[heads, n, n]` and `[windows, n, n]` with `batch` a multiple
/// of `windows` and `heads`, `n`, `windows` at least 1.
pub fn check_shapes(scores: [usize; 4], bias: [usize; 3], mask: [usize; 3]) {
    let [batch, heads, n, _] = scores;
    let windows = mask[0];
    assert!(
        scores[3] == n
            && bias == [heads, n, n]
            && mask == [windows, n, n]
            && heads > 0
            && n > 0
            && windows > 0
            && batch % windows == 0,
        "biased softmax: scores {scores:?}, bias {bias:?} and mask {mask:?} do not fit: \
         expected [batch, heads, n, n], [heads, n, n] and [windows, n, n] with batch a \
         multiple of windows and heads, n, windows at least 1"
    );
}

/// The product of `dims`, `None` when it overflows.
fn product(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |a, &b| a.checked_mul(b))
}

/// `softmax(scores + bias[h] + mask[b mod windows])` over the last axis: `scores`
/// `[batch, heads, n, n]`, `bias` `[heads, n, n]`, `mask` `[windows, n, n]`, `batch` a
/// multiple of `windows`.
///
/// # Panics
/// Unless the lengths fit those shapes for some `batch` and `windows` (at least 1),
/// with `heads` and `n` at least 1.
pub fn forward(scores: &[f32], bias: &[f32], mask: &[f32], heads: usize, n: usize) -> Vec<f32> {
    let square = product(&[n, n]).filter(|&s| s > 0);
    let per_sample = square.and_then(|s| product(&[heads, s])).filter(|&p| p > 0);
    let (Some(square), Some(per_sample)) = (square, per_sample) else {
        panic!("biased softmax: heads {heads} and row length {n} must be at least 1");
    };
    assert!(
        bias.len() == per_sample,
        "biased softmax: bias holds {} values, not the {per_sample} of [heads {heads}, n {n}, n {n}]",
        bias.len()
    );
    let windows = mask.len() / square;
    assert!(
        windows > 0 && mask.len() % square == 0,
        "biased softmax: mask holds {} values, not [windows, n {n}, n {n}] with windows >= 1",
        mask.len()
    );
    let batch = scores.len() / per_sample;
    assert!(
        scores.len() % per_sample == 0 && batch % windows == 0,
        "biased softmax: scores hold {} values, not [batch, heads {heads}, n {n}, n {n}] \
         with batch a multiple of the mask's {windows} windows",
        scores.len()
    );
    let mut probs = vec![0.0f32; scores.len()];
    probs
        .par_chunks_mut(square)
        .zip(scores.par_chunks(square))
        .enumerate()
        .for_each(|(i, (p, s))| {
            let bias = &bias[(i % heads) * square..][..square];
            let mask = &mask[(i / heads % windows) * square..][..square];
            #[cfg(target_arch = "x86_64")]
            if wide::available() {
                // SAFETY: the CPU has the features `wide` is compiled for.
                return unsafe { wide::forward_rows(p, s, bias, mask, n) };
            }
            forward_rows(p, s, bias, mask, n);
        });
    probs
}

/// The gradient of [`forward`] with respect to `scores`, from the probabilities it
/// returned and the gradient of its output (both `[rows, n]`).
///
/// # Panics
/// Unless `n` is at least 1 and `probs` and `grad` hold the same whole number of rows.
pub fn backward(probs: &[f32], grad: &[f32], n: usize) -> Vec<f32> {
    assert!(
        n > 0 && probs.len() == grad.len() && probs.len() % n == 0,
        "biased softmax backward: probabilities ({} values) and gradient ({} values) must \
         be the same whole number of rows of {n}",
        probs.len(),
        grad.len()
    );
    let mut ds = vec![0.0f32; probs.len()];
    let block = n * 64;
    ds.par_chunks_mut(block)
        .zip(probs.par_chunks(block).zip(grad.par_chunks(block)))
        .for_each(|(d, (p, g))| {
            #[cfg(target_arch = "x86_64")]
            if wide::available() {
                // SAFETY: the CPU has the features `wide` is compiled for.
                return unsafe { wide::backward_rows(d, p, g, n) };
            }
            backward_rows(d, p, g, n);
        });
    ds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_over_the_normal_range() {
        let mut worst = 0.0f64;
        for i in 0..=2_000_000 {
            let x = -87.0 + 175.0 * f64::from(i) / 2_000_000.0;
            let got = f64::from(exp(x as f32));
            let want = f64::from(x as f32).exp();
            assert!(got.is_finite(), "exp({x}) = {got}");
            worst = worst.max((got - want).abs() / want);
        }
        assert!(worst < 2.5e-7, "relative error {worst}");
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-1000.0) < 1e-37);
    }

    use crate::test_values::uniform as values;

    #[test]
    #[should_panic(
        expected = "biased softmax: bias holds 49 values, not the 50 of [heads 2, n 5, n 5]"
    )]
    fn forward_refuses_a_bias_of_another_shape() {
        forward(
            &values(4 * 50, 1, 1.0),
            &values(49, 2, 1.0),
            &[0.0; 25],
            2,
            5,
        );
    }

    #[test]
    #[should_panic(expected = "biased softmax: mask holds 30 values, not [windows, n 5, n 5]")]
    fn forward_refuses_a_mask_of_another_shape() {
        forward(
            &values(4 * 50, 1, 1.0),
            &values(50, 2, 1.0),
            &[0.0; 30],
            2,
            5,
        );
    }

    #[test]
    #[should_panic(
        expected = "biased softmax: mask holds 0 values, not [windows, n 5, n 5] with windows >= 1"
    )]
    fn forward_refuses_an_empty_mask() {
        forward(&values(4 * 50, 1, 1.0), &values(50, 2, 1.0), &[], 2, 5);
    }

    #[test]
    #[should_panic(
        expected = "biased softmax: scores hold 199 values, not [batch, heads 2, n 5, n 5]"
    )]
    fn forward_refuses_scores_of_another_shape() {
        forward(&values(199, 1, 1.0), &values(50, 2, 1.0), &[0.0; 25], 2, 5);
    }

    #[test]
    #[should_panic(expected = "with batch a multiple of the mask's 3 windows")]
    fn forward_refuses_a_batch_that_is_not_a_multiple_of_the_windows() {
        forward(
            &values(4 * 50, 1, 1.0),
            &values(50, 2, 1.0),
            &[0.0; 75],
            2,
            5,
        );
    }

    #[test]
    #[should_panic(expected = "biased softmax: heads 0 and row length 5 must be at least 1")]
    fn forward_refuses_zero_heads() {
        forward(&[], &[], &[0.0; 25], 0, 5);
    }

    #[test]
    #[should_panic(
        expected = "biased softmax backward: probabilities (20 values) and gradient (19 values)"
    )]
    fn backward_refuses_a_gradient_of_another_shape() {
        backward(&values(20, 1, 1.0), &values(19, 2, 1.0), 5);
    }

    #[test]
    #[should_panic(expected = "must be the same whole number of rows of 6")]
    fn backward_refuses_partial_rows() {
        backward(&values(20, 1, 1.0), &values(20, 2, 1.0), 6);
    }

    #[test]
    #[should_panic(
        expected = "biased softmax: scores [4, 2, 5, 5], bias [2, 5, 4] and mask [1, 5, 5] do not fit"
    )]
    fn check_shapes_refuses_a_bias_of_another_shape() {
        check_shapes([4, 2, 5, 5], [2, 5, 4], [1, 5, 5]);
    }

    #[test]
    #[should_panic(
        expected = "biased softmax: scores [4, 2, 5, 6], bias [2, 5, 5] and mask [1, 5, 5] do not fit"
    )]
    fn check_shapes_refuses_non_square_scores() {
        check_shapes([4, 2, 5, 6], [2, 5, 5], [1, 5, 5]);
    }

    #[test]
    #[should_panic(
        expected = "biased softmax: scores [4, 2, 5, 5], bias [2, 5, 5] and mask [3, 5, 5] do not fit"
    )]
    fn check_shapes_refuses_a_batch_that_is_not_a_multiple_of_the_windows() {
        check_shapes([4, 2, 5, 5], [2, 5, 5], [3, 5, 5]);
    }

    #[test]
    fn check_shapes_accepts_fitting_shapes() {
        check_shapes([6, 2, 5, 5], [2, 5, 5], [3, 5, 5]);
        check_shapes([0, 2, 5, 5], [2, 5, 5], [3, 5, 5]);
    }

    /// Forward and backward against the definitions in f64, with a shifted-window mask
    /// of -100 entries and rows longer and shorter than the lane count.
    #[test]
    fn forward_and_backward_equal_the_definitions() {
        for (batch, heads, windows, n) in [(4, 3, 2, 11), (2, 2, 1, 5), (6, 1, 3, 27)] {
            let scores = values(batch * heads * n * n, 1, 20.0);
            let bias = values(heads * n * n, 2, 1.0);
            let mask: Vec<f32> = values(windows * n * n, 3, 1.0)
                .iter()
                .map(|v| if *v > 0.2 { -100.0 } else { 0.0 })
                .collect();
            let grad = values(scores.len(), 4, 2.0);
            let probs = forward(&scores, &bias, &mask, heads, n);
            let ds = backward(&probs, &grad, n);
            for row in 0..batch * heads * n {
                let (b, h, r) = (row / (heads * n), row / n % heads, row % n);
                let at = |j: usize| {
                    f64::from(scores[row * n + j])
                        + f64::from(bias[(h * n + r) * n + j])
                        + f64::from(mask[((b % windows) * n + r) * n + j])
                };
                let max = (0..n).map(at).fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = (0..n).map(|j| (at(j) - max).exp()).sum();
                let p: Vec<f64> = (0..n).map(|j| (at(j) - max).exp() / sum).collect();
                let dot: f64 = (0..n).map(|j| p[j] * f64::from(grad[row * n + j])).sum();
                for j in 0..n {
                    let got = f64::from(probs[row * n + j]);
                    assert!(
                        (got - p[j]).abs() <= 1e-6 * p[j] + 1e-12,
                        "p {row},{j}: {got} vs {}",
                        p[j]
                    );
                    let want = p[j] * (f64::from(grad[row * n + j]) - dot);
                    let got = f64::from(ds[row * n + j]);
                    assert!((got - want).abs() <= 1e-6, "ds {row},{j}: {got} vs {want}");
                }
            }
        }
    }
}
