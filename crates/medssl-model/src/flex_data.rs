//! Moving `f32` data between flex tensors and the slices our CPU kernels work on.

use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::{DType, Shape};
use burn::tensor::Bytes;

/// A contiguous copy (or the tensor itself when already contiguous) to read as a slice.
pub fn contiguous(t: &FlexTensor) -> FlexTensor {
    t.to_contiguous()
}

/// A contiguous `f32` flex tensor of `shape` holding `values`.
pub fn tensor<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(values),
        Layout::contiguous(Shape::from(shape.to_vec())),
        DType::F32,
    )
}
