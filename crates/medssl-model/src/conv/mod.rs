//! Stride-1 "same" 3-D convolution, the operation that dominates SwinUNETR's decoder.
//!
//! On the CPU (flex) with `f32` tensors it runs our kernels ([`kernel`]) through a Burn
//! backend extension ([`backend`]), forward and backward; on other devices and types it
//! is Burn's `conv3d`. Both compute the same function; only speed differs.

mod backend;
mod kernel;

use burn::tensor::Tensor;
use burn::tensor::module::conv3d;

use crate::kernel_path::{KernelPath, choose};
use backend::{SameConv3d, same_options};

/// `conv(x, weight)` with stride 1, zero padding `k / 2`, no bias: `x` `[B, C, D, H, W]`,
/// `weight` `[O, C, k, k, k]` with `k` odd; returns `[B, O, D, H, W]`.
pub fn conv3d_same(x: Tensor<5>, weight: Tensor<5>) -> Tensor<5> {
    if choose(&x.device(), &[x.dtype(), weight.dtype()]) == KernelPath::Ours {
        let y = <burn::backend::Dispatch as SameConv3d>::same_conv3d(
            x.into_dispatch(),
            weight.into_dispatch(),
        );
        Tensor::from_dispatch(y)
    } else {
        let options = same_options(weight.dims()[2]);
        conv3d(x, weight, None, options)
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution};

    use super::*;
    use crate::test_values::max_abs_diff_tensors as max_abs_diff;

    /// Output and both gradients of the flex path equal Burn's own convolution.
    #[test]
    fn flex_path_and_its_gradients_equal_burns_conv3d() {
        let device = Device::flex().autodiff();
        for (shape, out, k) in [([2, 3, 6, 5, 7], 4, 3), ([1, 2, 4, 9, 5], 3, 5)] {
            let x =
                Tensor::<5>::random(shape, Distribution::Normal(0.0, 1.0), &device).require_grad();
            let weight = Tensor::<5>::random(
                [out, shape[1], k, k, k],
                Distribution::Normal(0.0, 1.0),
                &device,
            )
            .require_grad();
            let probe = Tensor::<5>::random(
                [shape[0], out, shape[2], shape[3], shape[4]],
                Distribution::Normal(0.0, 1.0),
                &device,
            );
            let options = same_options(k);
            let theirs = conv3d(x.clone(), weight.clone(), None, options);
            let (ours, taken) = crate::kernel_path::taken(KernelPath::Ours, || {
                conv3d_same(x.clone(), weight.clone())
            });
            assert!(taken > 0);
            let theirs_grads = (theirs.clone() * probe.clone()).sum().backward();
            let ours_grads = (ours.clone() * probe).sum().backward();
            assert!(
                max_abs_diff("output", ours, theirs) < 1e-4,
                "output, kernel {k}"
            );
            let dx = |g| x.grad(g).expect("x gradient");
            let dw = |g| weight.grad(g).expect("weight gradient");
            assert!(
                max_abs_diff("dx", dx(&ours_grads), dx(&theirs_grads)) < 1e-4,
                "dx, kernel {k}"
            );
            assert!(
                max_abs_diff("dw", dw(&ours_grads), dw(&theirs_grads)) < 1e-3,
                "dw, kernel {k}"
            );
        }
    }

    /// A weight whose shape does not fit the input stops before the kernels run.
    #[test]
    #[should_panic(
        expected = "same conv3d: input [1, 2, 4, 4, 4] and weight [3, 5, 3, 3, 3] do not fit"
    )]
    fn a_weight_for_other_input_channels_panics_naming_the_shapes() {
        let device = Device::flex();
        let x = Tensor::<5>::random([1, 2, 4, 4, 4], Distribution::Normal(0.0, 1.0), &device);
        let weight = Tensor::<5>::random([3, 5, 3, 3, 3], Distribution::Normal(0.0, 1.0), &device);
        conv3d_same(x, weight);
    }
}
