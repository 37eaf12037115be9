//! A numerical check of a device before it trains: two operations whose failure would
//! make every run on it silently wrong, computed on the device and against an exact
//! host reference.
//!
//! Burn 0.22's wgpu backend on Mesa's lavapipe (software Vulkan, subgroups of 8) drops
//! terms from long reductions: `sum_dim` over a contiguous axis of 48³ values comes out
//! more than half off, and the weight gradient of a convolution over a 32³ volume about
//! three quarters off, while whole-tensor sums, matrix products, input gradients and
//! every forward pass of SwinUNETR agree with the CPU to 1e-6. Losses then agree and the
//! weights move the wrong way. A device that fails this check is refused, naming what it
//! got wrong, rather than used.

use burn::tensor::{Device, Tensor, TensorData};

use crate::conv::conv3d_same;

/// Largest relative L2 error of either check that passes: float32 sums of these sizes
/// in any order stay below 1e-5.
pub const TOLERANCE: f64 = 1e-4;

/// Rows and the length of the reduced axis: 48³, the token positions of a 96³ patch
/// after the patch embedding. Lavapipe's reduction fails with four rows or more of 2^16
/// values or more and gets one to three rows right, so the check takes four.
const ROWS: usize = 4;
const ROW: usize = 48 * 48 * 48;

/// Edge of the convolved volume: 32³ positions, where lavapipe's weight gradient fails.
const EDGE: usize = 32;

/// What a device computed, relative to the exact values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeviceCheck {
    /// Relative L2 error of `sum_dim` over the last axis of a `[4, 48³]` tensor.
    pub row_sum: f64,
    /// Relative L2 error of the weight gradient of a 3³ same convolution of a 32³
    /// volume (one channel in, two out).
    pub conv_weight_grad: f64,
}

impl DeviceCheck {
    /// Computes both operations on `device` (its autodiff form for the gradient).
    pub fn run(device: &Device) -> DeviceCheck {
        DeviceCheck {
            row_sum: row_sum_error(device),
            conv_weight_grad: conv_weight_grad_error(device),
        }
    }

    /// `None` when both errors are within [`TOLERANCE`] (NaN fails), else what went wrong
    /// in words.
    pub fn failure(&self) -> Option<String> {
        let mut wrong = Vec::new();
        for (what, error) in [
            (format!("a sum along an axis of {ROW} values"), self.row_sum),
            (
                format!("the weight gradient of a convolution over a {EDGE}³ volume"),
                self.conv_weight_grad,
            ),
        ] {
            if error.is_nan() {
                wrong.push(format!(
                    "{what} fails (a NaN, an infinity or a device error)"
                ));
            } else if error > TOLERANCE {
                wrong.push(format!("{what} is {:.1}% off", 100.0 * error));
            }
        }
        (!wrong.is_empty()).then(|| wrong.join("; "))
    }
}

/// Deterministic values in `[0.5, 1.5)`: positive, so that dropped terms cannot cancel.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            0.5 + (state >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

/// Relative L2 distance of `got` from `want`; NaN when `got` holds a NaN or an infinity.
fn relative_error(got: &[f32], want: &[f64]) -> f64 {
    if got.len() != want.len() || got.iter().any(|v| !v.is_finite()) {
        return f64::NAN;
    }
    let diff: f64 = got
        .iter()
        .zip(want)
        .map(|(g, w)| (f64::from(*g) - w).powi(2))
        .sum();
    let norm: f64 = want.iter().map(|w| w * w).sum();
    (diff / norm).sqrt()
}

/// The values of a tensor on the host; a NaN (an error of NaN) when the device fails.
fn host<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor
        .try_into_data()
        .ok()
        .and_then(|data| data.try_into_vec::<f32>().ok())
        .unwrap_or_else(|| vec![f32::NAN])
}

fn row_sum_error(device: &Device) -> f64 {
    let x = values(ROWS * ROW, 1);
    let want: Vec<f64> = x
        .chunks(ROW)
        .map(|row| row.iter().map(|v| f64::from(*v)).sum())
        .collect();
    let tensor = Tensor::<2>::from_data(TensorData::new(x, [ROWS, ROW]), device);
    relative_error(&host(tensor.sum_dim(1)), &want)
}

fn conv_weight_grad_error(device: &Device) -> f64 {
    let (n, out) = (EDGE * EDGE * EDGE, 2);
    let x = values(n, 2);
    let grad = values(out * n, 3);
    // dw[o, k] = Σ_p grad[o, p] · x[p + k - 1] (zero outside the volume).
    let mut want = vec![0.0f64; out * 27];
    let e = EDGE as isize;
    for o in 0..out {
        for (k, w) in want[o * 27..(o + 1) * 27].iter_mut().enumerate() {
            let [kz, ky, kx] = [k / 9, k / 3 % 3, k % 3].map(|v| v as isize - 1);
            for z in 0..e {
                for y in 0..e {
                    for xx in 0..e {
                        let (sz, sy, sx) = (z + kz, y + ky, xx + kx);
                        if (0..e).contains(&sz) && (0..e).contains(&sy) && (0..e).contains(&sx) {
                            let p = ((z * e + y) * e + xx) as usize;
                            let s = ((sz * e + sy) * e + sx) as usize;
                            *w += f64::from(grad[o * n + p]) * f64::from(x[s]);
                        }
                    }
                }
            }
        }
    }
    let device = device.clone().autodiff();
    let shape = [1, 1, EDGE, EDGE, EDGE];
    let x = Tensor::<5>::from_data(TensorData::new(x, shape), &device);
    let weight = Tensor::<5>::zeros([out, 1, 3, 3, 3], &device).require_grad();
    let probe = Tensor::<5>::from_data(TensorData::new(grad, [1, out, EDGE, EDGE, EDGE]), &device);
    let grads = (conv3d_same(x, weight.clone()) * probe).sum().backward();
    match weight.grad(&grads) {
        Some(dw) => relative_error(&host(dw), &want),
        None => f64::NAN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CPU computes both operations to float32 rounding.
    #[test]
    fn the_cpu_passes() {
        let check = DeviceCheck::run(&Device::flex());
        assert!(check.row_sum < 1e-6, "{check:?}");
        assert!(check.conv_weight_grad < 1e-6, "{check:?}");
        assert_eq!(check.failure(), None);
    }

    /// Errors over the tolerance, and NaN, are named with their size.
    #[test]
    fn a_failure_names_each_wrong_operation() {
        let check = DeviceCheck {
            row_sum: 0.59,
            conv_weight_grad: f64::NAN,
        };
        let failure = check.failure().unwrap();
        assert!(
            failure.contains("a sum along an axis of 110592 values is 59.0% off"),
            "{failure}"
        );
        assert!(
            failure.contains("a 32³ volume fails (a NaN, an infinity or a device error)"),
            "{failure}"
        );
        let fine = DeviceCheck {
            row_sum: TOLERANCE,
            conv_weight_grad: 0.0,
        };
        assert_eq!(fine.failure(), None);
    }
}
