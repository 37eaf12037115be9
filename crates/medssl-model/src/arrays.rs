//! The boundary with the data and evaluation crates: plain `ndarray` arrays in and out,
//! so they never see a Burn type.

use burn::tensor::{Device, Tensor, TensorData};
use ndarray::Array5;

use crate::error::ModelError;
use crate::swin_unetr::SwinUnetr;

/// A `[B, C, D, H, W]` array as a tensor on `device`.
pub fn to_tensor(array: Array5<f32>, device: &Device) -> Tensor<5> {
    let array = if array.is_standard_layout() {
        array
    } else {
        array.as_standard_layout().into_owned()
    };
    let shape = array.shape().to_vec();
    let (values, offset) = array.into_raw_vec_and_offset();
    debug_assert_eq!(offset.unwrap_or(0), 0);
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// A 5-D tensor back as an array (copied to the host).
pub fn to_array(tensor: Tensor<5>) -> Result<Array5<f32>, ModelError> {
    let dims = tensor.dims();
    let values = tensor.into_data().try_to_vec::<f32>()?;
    Ok(Array5::from_shape_vec(dims, values)?)
}

impl SwinUnetr {
    /// Logits for a batch given as an array, computed on `device`: the predictor that
    /// sliding-window inference takes.
    pub fn predict_array(
        &self,
        batch: Array5<f32>,
        device: &Device,
    ) -> Result<Array5<f32>, ModelError> {
        let logits = self.forward(to_tensor(batch, device))?;
        to_array(logits)
    }
}
