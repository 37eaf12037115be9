//! The attention softmax as a Burn backend extension: our kernels on the flex (CPU)
//! backend, with their own backward pass under autodiff.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Flex, Shape, TensorMetadata, backend_extension};

use super::kernel;
use crate::flex_data::{contiguous, tensor};

/// `softmax(scores + bias + mask)` over the last axis, the core of Swin window
/// attention, and its backward. `scores` `[B, heads, n, n]`, `bias` `[heads, n, n]`
/// (the relative-position bias), `mask` `[windows, n, n]` (the shifted-window mask, or
/// zeros), window `b mod windows` for batch entry `b`. The defaults are Burn's own
/// operations; the flex backend replaces them with [`kernel`].
#[backend_extension(Flex, Autodiff)]
pub trait BiasedSoftmax: Backend {
    /// The probabilities, shaped as `scores`.
    fn biased_softmax(
        scores: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        mask: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let [b, heads, n, _] = scores.shape().dims();
        let windows = mask.shape()[0];
        let bias = Self::float_reshape(bias, Shape::new([1, heads, n, n]));
        let scores = Self::float_add(scores, bias);
        let scores = Self::float_reshape(scores, Shape::new([b / windows, windows, heads, n, n]));
        let mask = Self::float_reshape(mask, Shape::new([1, windows, 1, n, n]));
        let scores = Self::float_add(scores, mask);
        Self::softmax(Self::float_reshape(scores, Shape::new([b, heads, n, n])), 3)
    }

    /// The gradient of the scores, `p ⊙ (grad − Σ grad ⊙ p)` per row, from the
    /// probabilities and the gradient of the output.
    fn biased_softmax_backward(
        probs: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let shape = probs.shape();
        let rank = shape.num_dims();
        let dot = Self::float_sum_dim(Self::float_mul(grad.clone(), probs.clone()), rank - 1);
        let centred = Self::float_sub(grad, Self::float_expand(dot, shape));
        Self::float_mul(probs, centred)
    }
}

impl BiasedSoftmax for Flex {
    fn biased_softmax(scores: FlexTensor, bias: FlexTensor, mask: FlexTensor) -> FlexTensor {
        let dims: [usize; 4] = scores.shape().dims();
        kernel::check_shapes(dims, bias.shape().dims(), mask.shape().dims());
        let [scores, bias, mask] = [&scores, &bias, &mask].map(contiguous);
        let probs = kernel::forward(
            scores.storage(),
            bias.storage(),
            mask.storage(),
            dims[1],
            dims[3],
        );
        tensor(probs, dims)
    }

    fn biased_softmax_backward(probs: FlexTensor, grad: FlexTensor) -> FlexTensor {
        let dims: [usize; 4] = probs.shape().dims();
        let grad_dims: [usize; 4] = grad.shape().dims();
        assert_eq!(
            grad_dims, dims,
            "biased softmax backward: the gradient's shape differs from the probabilities'"
        );
        let [probs, grad] = [&probs, &grad].map(contiguous);
        tensor(
            kernel::backward(probs.storage(), grad.storage(), dims[3]),
            dims,
        )
    }
}

/// The gradient `[B, heads, n, n]` summed to the shape of the bias (`[heads, n, n]`) or
/// of the mask (`[windows, n, n]`).
fn sum_to<B: Backend>(ds: FloatTensor<B>, target: Shape) -> FloatTensor<B> {
    let [b, heads, n, _] = ds.shape().dims();
    let [count, _, _] = target.dims();
    let grouped = if count == heads {
        B::float_reshape(ds, Shape::new([b, heads, n * n]))
    } else {
        let per_window = B::float_reshape(ds, Shape::new([b / count, count, heads, n * n]));
        let summed = B::float_sum_dim(per_window, 2);
        B::float_reshape(summed, Shape::new([b / count, count, n * n]))
    };
    B::float_reshape(B::float_sum_dim(grouped, 0), target)
}

/// The backward step of [`BiasedSoftmax::biased_softmax`] under autodiff: the state is
/// the probabilities and the shapes of bias and mask.
#[derive(Debug)]
struct BiasedSoftmaxBackward;

impl<B: Backend + BiasedSoftmax> Backward<B, 3> for BiasedSoftmaxBackward {
    type State = (FloatTensor<B>, Shape, Shape);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_scores, node_bias, node_mask] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (probs, bias_shape, mask_shape) = ops.state;
        let ds = B::biased_softmax_backward(probs, grad);
        if let Some(node) = node_bias {
            grads.register::<B>(node.id, sum_to::<B>(ds.clone(), bias_shape));
        }
        if let Some(node) = node_mask {
            grads.register::<B>(node.id, sum_to::<B>(ds.clone(), mask_shape));
        }
        if let Some(node) = node_scores {
            grads.register::<B>(node.id, ds);
        }
    }
}

impl<B: Backend + BiasedSoftmax, C: CheckpointStrategy> BiasedSoftmax for Autodiff<B, C> {
    fn biased_softmax(
        scores: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        mask: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let shapes = (bias.shape(), mask.shape());
        let prep = BiasedSoftmaxBackward
            .prepare::<C>([scores.node(), bias.node(), mask.node()])
            .compute_bound()
            .stateful();
        let probs = B::biased_softmax(
            scores.into_primitive(),
            bias.into_primitive(),
            mask.into_primitive(),
        );
        match prep {
            OpsKind::Tracked(prep) => prep.finish((probs.clone(), shapes.0, shapes.1), probs),
            OpsKind::UnTracked(prep) => prep.finish(probs),
        }
    }
}
