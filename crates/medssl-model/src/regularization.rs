//! Dropout and stochastic depth, active only on a device that records gradients (a
//! training device), as Burn's own dropout decides.

use burn::tensor::{Distribution, Tensor};

/// Element-wise dropout with probability `prob`, rescaled to keep the expectation.
pub fn dropout<const D: usize>(x: Tensor<D>, prob: f64) -> Tensor<D> {
    if prob == 0.0 || !x.device().is_autodiff() {
        return x;
    }
    let keep = 1.0 - prob;
    let mask = x.random_like(Distribution::Bernoulli(keep));
    (x * mask).div_scalar(keep)
}

/// Stochastic depth: drops the whole residual branch of a sample with probability
/// `prob` (timm's `DropPath`, which MONAI uses).
pub fn drop_path<const D: usize>(x: Tensor<D>, prob: f64) -> Tensor<D> {
    if prob == 0.0 || !x.device().is_autodiff() {
        return x;
    }
    let keep = 1.0 - prob;
    let mut shape = [1; D];
    shape[0] = x.dims()[0];
    let mask = Tensor::<D>::random(shape, Distribution::Bernoulli(keep), &x.device());
    (x * mask).div_scalar(keep)
}
