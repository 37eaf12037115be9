//! The objectives of the SSL methods, on Burn tensors (differentiable).
//!
//! - [`contrastive`]: NT-Xent (SimCLR, SwinUNETR-SSL's contrastive term), MoCo v3's
//!   symmetric InfoNCE, CPC's InfoNCE over predicted sub-volume embeddings;
//! - [`distillation`]: DINO's cross-view distillation and iBOT's masked patch-token
//!   distillation, each with its centre update;
//! - [`reconstruction`]: the SimMIM / SMIT L1 over masked voxels;
//! - [`smit`]: SMIT's weighted sum of the three;
//! - [`cross_entropy`]: rotation prediction (and the row-wise form the others use).

pub mod contrastive;
pub mod distillation;
pub mod reconstruction;
pub mod smit;

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor};

/// Rows scaled to unit L2 norm, as `F.normalize(x, dim=1)` (norms clamp at 1e-12).
pub fn normalize_rows(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().square().sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}

/// `F.cross_entropy(logits, targets)`: the mean over rows of `logsumexp(row) -
/// row[target]`. `logits` is `[M, C]`, `targets` `[M]` in `0..C`.
pub fn cross_entropy(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    log_softmax(logits, 1)
        .gather(1, targets.unsqueeze_dim(1))
        .mean()
        .neg()
}

/// `-Σ_k p_k log q_k` per row: the cross-entropy of target probabilities `p` and
/// student log-probabilities `log_q`, `[..., K]` to `[...]` with the last axis summed
/// (kept as size 1).
fn soft_cross_entropy<const D: usize>(p: Tensor<D>, log_q: Tensor<D>) -> Tensor<D> {
    (p * log_q).sum_dim(D - 1).neg()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::activation::softmax;
    use burn::tensor::{Device, TensorData};

    /// The gradient of the mean cross-entropy is `(softmax - onehot) / M`: the losses
    /// built on it train.
    #[test]
    fn cross_entropy_gradient_is_softmax_minus_onehot() {
        let device = Device::flex().autodiff();
        let values = vec![0.3f32, -1.2, 2.0, 0.5, 0.1, -0.4];
        let logits =
            Tensor::<2>::from_data(TensorData::new(values.clone(), [2, 3]), &device).require_grad();
        let targets = Tensor::<1, Int>::from_data(TensorData::new(vec![2i64, 0], [2]), &device);
        let grads = cross_entropy(logits.clone(), targets).backward();
        let got: Vec<f32> = logits
            .grad(&grads)
            .unwrap()
            .into_data()
            .try_to_vec()
            .unwrap();
        let plain = Tensor::<2>::from_data(TensorData::new(values, [2, 3]), &Device::flex());
        let p: Vec<f32> = softmax(plain, 1).into_data().try_to_vec().unwrap();
        let onehot = [0.0, 0.0, 1.0, 1.0, 0.0, 0.0];
        for ((g, p), y) in got.iter().zip(&p).zip(onehot) {
            assert!((g - (p - y) / 2.0).abs() < 1e-6, "{got:?}");
        }
    }
}
