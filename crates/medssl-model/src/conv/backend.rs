//! The same-padding convolution as a Burn backend extension: our kernels on the flex
//! (CPU) backend, with their own backward pass under autodiff.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::ConvOptions;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Flex, TensorMetadata, backend_extension};

use super::kernel::{self, Geometry};
use crate::flex_data::{contiguous, tensor};

/// Burn's options for a stride-1 convolution padded by half of a `kernel`-sized kernel.
pub(super) fn same_options(kernel: usize) -> ConvOptions<3> {
    ConvOptions::new([1; 3], [kernel / 2; 3], [1; 3], 1)
}

/// A stride-1, zero-padded ("same"), bias-free, single-group 3-D convolution with an odd
/// cubic kernel, and its two gradients. The defaults are Burn's own operations; the flex
/// backend replaces them with [`kernel`], which runs one matrix product per kernel tap
/// straight from a padded copy of the input, where Burn builds an im2col matrix element
/// by element and computes the weight gradient as a convolution with a volume-sized
/// kernel.
#[backend_extension(Flex, Autodiff)]
pub trait SameConv3d: Backend {
    /// `conv(x, weight)`: `[B, C, D, H, W]` by `[O, C, k, k, k]` to `[B, O, D, H, W]`.
    fn same_conv3d(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        let options = same_options(weight.shape()[2]);
        Self::conv3d(x, weight, None, options)
    }

    /// The gradient with respect to `x` from the output gradient `grad`.
    fn same_conv3d_x_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let options = same_options(weight.shape()[2]);
        Self::conv3d_x_backward(x, weight, grad, options)
    }

    /// The gradient with respect to `weight` from the output gradient `grad`.
    fn same_conv3d_weight_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let options = same_options(weight.shape()[2]);
        Self::conv3d_weight_backward(x, weight, grad, options)
    }
}

/// The geometry of `x` convolved with `weight`, and the number of output channels;
/// panics (naming the shapes) unless the two fit and, when given, `grad` has the
/// output's shape.
fn geometry(x: &FlexTensor, weight: &FlexTensor, grad: Option<&FlexTensor>) -> (Geometry, usize) {
    let (geom, out) = Geometry::of(x.shape().dims(), weight.shape().dims());
    if let Some(grad) = grad {
        let shape: [usize; 5] = grad.shape().dims();
        assert_eq!(
            shape,
            geom.output_shape(out),
            "same conv3d: the output gradient's shape does not fit input {:?} and weight {:?}",
            geom.input_shape(),
            geom.weight_shape(out)
        );
    }
    (geom, out)
}

impl SameConv3d for Flex {
    fn same_conv3d(x: FlexTensor, weight: FlexTensor) -> FlexTensor {
        let (geom, out) = geometry(&x, &weight, None);
        let (x, weight) = (contiguous(&x), contiguous(&weight));
        let y = kernel::forward(x.storage(), &geom, weight.storage(), out);
        tensor(y, geom.output_shape(out))
    }

    fn same_conv3d_x_grad(x: FlexTensor, weight: FlexTensor, grad: FlexTensor) -> FlexTensor {
        let (geom, out) = geometry(&x, &weight, Some(&grad));
        let (grad, weight) = (contiguous(&grad), contiguous(&weight));
        let dx = kernel::input_grad(grad.storage(), &geom, weight.storage(), out);
        tensor(dx, x.shape().dims::<5>())
    }

    fn same_conv3d_weight_grad(x: FlexTensor, weight: FlexTensor, grad: FlexTensor) -> FlexTensor {
        let (geom, out) = geometry(&x, &weight, Some(&grad));
        let (x, grad) = (contiguous(&x), contiguous(&grad));
        let dw = kernel::weight_grad(x.storage(), &geom, grad.storage(), out);
        tensor(dw, weight.shape().dims::<5>())
    }
}

/// The backward step of [`SameConv3d::same_conv3d`] under autodiff.
#[derive(Debug)]
struct SameConv3dBackward;

impl<B: Backend + SameConv3d> Backward<B, 2> for SameConv3dBackward {
    type State = (NodeId, NodeId);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_weight] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x_state, weight_state) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_state);
        let weight = checkpointer.retrieve_node_output::<FloatTensor<B>>(weight_state);
        if let Some(node) = node_x {
            let dx = B::same_conv3d_x_grad(x.clone(), weight.clone(), grad.clone());
            grads.register::<B>(node.id, dx);
        }
        if let Some(node) = node_weight {
            grads.register::<B>(node.id, B::same_conv3d_weight_grad(x, weight, grad));
        }
    }
}

impl<B: Backend + SameConv3d, C: CheckpointStrategy> SameConv3d for Autodiff<B, C> {
    fn same_conv3d(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        match SameConv3dBackward
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let weight_state = prep.checkpoint(&weight);
                let y = B::same_conv3d(x.into_primitive(), weight.into_primitive());
                prep.finish((x_state, weight_state), y)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::same_conv3d(x.into_primitive(), weight.into_primitive()))
            }
        }
    }
}
