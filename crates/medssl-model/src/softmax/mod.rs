//! `softmax(scores + bias + mask)`, the core of Swin window attention, in one pass.
//!
//! On the CPU (flex) with `f32` tensors it runs our kernels ([`kernel`]) through a Burn
//! backend extension ([`backend`]), forward and backward; elsewhere it is the same
//! expression in Burn's operations. Both compute the same function; only speed and
//! memory traffic differ.

mod backend;
mod kernel;

use burn::tensor::Tensor;
use burn::tensor::activation::softmax;

use crate::kernel_path::{KernelPath, choose};
use backend::BiasedSoftmax;

/// `softmax(scores + bias + mask)` over the last axis: `scores` `[B, heads, n, n]`,
/// `bias` `[heads, n, n]`, `mask` `[windows, n, n]` added to batch entry `b` as window
/// `b mod windows` (`B` a multiple of `windows`).
pub fn biased_softmax(scores: Tensor<4>, bias: Tensor<3>, mask: Tensor<3>) -> Tensor<4> {
    let dtypes = [scores.dtype(), bias.dtype(), mask.dtype()];
    if choose(&scores.device(), &dtypes) == KernelPath::Ours {
        let probs = <burn::backend::Dispatch as BiasedSoftmax>::biased_softmax(
            scores.into_dispatch(),
            bias.into_dispatch(),
            mask.into_dispatch(),
        );
        Tensor::from_dispatch(probs)
    } else {
        let [b, heads, n, _] = scores.dims();
        let windows = mask.dims()[0];
        let scores = scores + bias.unsqueeze::<4>();
        let scores = scores.reshape([b / windows, windows, heads, n, n])
            + mask.reshape([1, windows, 1, n, n]);
        softmax(scores.reshape([b, heads, n, n]), 3)
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution, Tensor};

    use super::*;
    use crate::test_values::max_abs_diff_tensors as max_abs_diff;

    /// The flex kernels and Burn's expression agree in value and in the gradients of
    /// scores and bias, with and without a mask of several windows.
    #[test]
    fn flex_path_and_its_gradients_equal_burns_softmax() {
        let device = Device::flex().autodiff();
        for (b, heads, windows, n) in [(6, 3, 3, 10), (2, 2, 1, 27)] {
            let scores =
                Tensor::<4>::random([b, heads, n, n], Distribution::Normal(0.0, 3.0), &device)
                    .require_grad();
            let bias = Tensor::<3>::random([heads, n, n], Distribution::Normal(0.0, 1.0), &device)
                .require_grad();
            let mask = Tensor::<3>::random([windows, n, n], Distribution::Bernoulli(0.3), &device)
                .mul_scalar(-100.0);
            let probe =
                Tensor::<4>::random([b, heads, n, n], Distribution::Normal(0.0, 1.0), &device);
            let (ours, taken) = crate::kernel_path::taken(KernelPath::Ours, || {
                biased_softmax(scores.clone(), bias.clone(), mask.clone())
            });
            assert!(taken > 0);
            let theirs = {
                let s = scores.clone() + bias.clone().unsqueeze::<4>();
                let s = s.reshape([b / windows, windows, heads, n, n])
                    + mask.reshape([1, windows, 1, n, n]);
                softmax(s.reshape([b, heads, n, n]), 3)
            };
            let p_diff = max_abs_diff("probabilities", ours.clone(), theirs.clone());
            assert!(p_diff < 1e-6, "probabilities {p_diff}");
            let ours_grads = (ours * probe.clone()).sum().backward();
            let theirs_grads = (theirs * probe).sum().backward();
            let ds = |g| scores.grad(g).expect("scores gradient");
            let ds_diff = max_abs_diff("scores gradient", ds(&ours_grads), ds(&theirs_grads));
            assert!(ds_diff < 1e-5, "scores gradient {ds_diff}");
            let db = |g| bias.grad(g).expect("bias gradient");
            let db_diff = max_abs_diff("bias gradient", db(&ours_grads), db(&theirs_grads));
            assert!(db_diff < 1e-5, "bias gradient {db_diff}");
        }
    }

    /// A bias whose shape does not fit the scores stops before the kernel runs.
    #[test]
    #[should_panic(
        expected = "biased softmax: scores [2, 3, 4, 4], bias [3, 4, 5] and mask [1, 4, 4] do not fit"
    )]
    fn a_bias_of_another_shape_panics_naming_the_shapes() {
        let device = Device::flex();
        let normal = Distribution::Normal(0.0, 1.0);
        biased_softmax(
            Tensor::<4>::random([2, 3, 4, 4], normal, &device),
            Tensor::<3>::random([3, 4, 5], normal, &device),
            Tensor::<3>::zeros([1, 4, 4], &device),
        );
    }
}
