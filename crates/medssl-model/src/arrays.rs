//! The boundary with the data and evaluation crates: plain `ndarray` arrays in and out,
//! so they never see a Burn type.

use burn::tensor::{Device, Int, Tensor, TensorData};
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

/// A device that failed while computing a value the host asked for: GPU backends run
/// asynchronously and report a failed allocation or kernel only at the next read, which
/// is where a training step learns of it.
#[derive(Debug, thiserror::Error)]
#[error("the device failed: {0}")]
pub struct DeviceReadError(pub String);

impl DeviceReadError {
    /// The backend's report, cut to what a user can act on: an allocation the device
    /// refused (out of memory, or over the largest buffer it binds) by its size, anything
    /// else by the first and last lines of its chain of causes.
    pub fn from_report(report: &str) -> DeviceReadError {
        const ALLOCATE: &str = "can't allocate buffer of size: ";
        if let Some(at) = report.find(ALLOCATE) {
            let digits: String = report[at + ALLOCATE.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(bytes) = digits.parse::<u64>() {
                return DeviceReadError(format!(
                    "it could not allocate {:.0} MB (out of memory, or larger than the \
                     largest buffer it binds); lower the batch size, the crop or the ROI",
                    bytes as f64 / 1e6
                ));
            }
        }
        let lines: Vec<&str> = report
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && *l != "Caused by:" && !l.contains("backtrace"))
            .collect();
        DeviceReadError(match lines.as_slice() {
            [] => "no report".to_string(),
            [one] => one.to_string(),
            [first, .., last] => format!("{first} … {last}"),
        })
    }
}

/// The value of a one-element float tensor on the host, or the device's failure.
pub fn read_scalar<const D: usize>(tensor: Tensor<D>) -> Result<f64, DeviceReadError> {
    tensor
        .try_into_scalar::<f32>()
        .map(f64::from)
        .map_err(|e| DeviceReadError::from_report(&e.to_string()))
}

/// The value of a one-element integer tensor on the host, or the device's failure.
pub fn read_count<const D: usize>(tensor: Tensor<D, Int>) -> Result<i64, DeviceReadError> {
    tensor
        .try_into_scalar::<i64>()
        .map_err(|e| DeviceReadError::from_report(&e.to_string()))
}

/// The values of a float tensor on the host in index order, or the device's failure.
pub fn read_values<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>, DeviceReadError> {
    tensor
        .try_into_data()
        .map_err(|e| DeviceReadError::from_report(&e.to_string()))?
        .try_into_vec::<f32>()
        .map_err(|e| DeviceReadError(format!("its values are not f32: {e:?}")))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The report CubeCL gave on lavapipe for CPC's attention scores.
    #[test]
    fn a_refused_allocation_is_named_by_its_size() {
        let report = "Error while reading data: Execution(An error happened during \
                      execution\nCaused by:\n  Several failures at once\nCaused by:\n  \
                      skipped `ElemwiseFuse`: it needed memory ManagedMemoryId { value: \
                      14105 }, which carried the failure\nCaused by:\n  An IO error \
                      happened\nCaused by:\n  can't allocate buffer of size: 609892416\nNo \
                      backtrace available)";
        let error = DeviceReadError::from_report(report).to_string();
        assert_eq!(
            error,
            "the device failed: it could not allocate 610 MB (out of memory, or larger than \
             the largest buffer it binds); lower the batch size, the crop or the ROI"
        );
    }

    #[test]
    fn another_failure_keeps_the_first_and_last_causes() {
        let report = "An error happened during execution\nCaused by:\n  kernel launch \
                      failed\nNo backtrace available";
        assert_eq!(
            DeviceReadError::from_report(report).0,
            "An error happened during execution … kernel launch failed"
        );
        assert_eq!(DeviceReadError::from_report("").0, "no report");
    }

    #[test]
    fn reads_give_the_values() {
        let device = Device::flex();
        let x = Tensor::<2>::from_data(TensorData::new(vec![1.5f32, 2.0, -3.0], [1, 3]), &device);
        assert_eq!(read_scalar(x.clone().sum()).unwrap(), 0.5);
        assert_eq!(read_values(x.clone()).unwrap(), vec![1.5, 2.0, -3.0]);
        assert_eq!(read_count(x.greater_elem(0.0).int().sum()).unwrap(), 2);
    }
}
