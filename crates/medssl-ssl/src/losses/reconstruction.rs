//! Reconstruction losses: of masked voxels (SimMIM, SMIT) and of whole in-painted
//! volumes (SwinUNETR pretraining).

use burn::tensor::Tensor;

/// The L1 of `pred` against `target` `[B, C, D, H, W]` over the voxels that `mask`
/// `[B, 1, D, H, W]` (1 = masked) marks: `Σ|pred - target|·mask / (Σ mask + 1e-5)`,
/// divided by `C` when `per_channel` (SimMIM's code; SMIT's omits the division, which
/// is the same for its one-channel images). The mask counts voxels, not voxel-channel
/// pairs, as both codes do.
pub fn masked_l1(
    pred: Tensor<5>,
    target: Tensor<5>,
    mask: Tensor<5>,
    per_channel: bool,
) -> Tensor<1> {
    let channels = pred.dims()[1] as f64;
    let error = ((pred - target).abs() * mask.clone()).sum();
    let loss = error / mask.sum().add_scalar(1e-5);
    if per_channel {
        loss.div_scalar(channels)
    } else {
        loss
    }
}

/// `nn.L1Loss()`: the mean absolute difference over every element (SwinUNETR
/// pretraining's reconstruction of the whole clean volume).
pub fn l1(pred: Tensor<5>, target: Tensor<5>) -> Tensor<1> {
    (pred - target).abs().mean()
}
