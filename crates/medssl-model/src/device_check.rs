//! A numerical check of a device before it trains: two operations whose failure would
//! make every run on it silently wrong, computed on the device against exact values,
//! then the gradients of a small Swin encoder against the CPU's.
//!
//! Burn 0.22's wgpu backend on Mesa's lavapipe (software Vulkan, subgroups of 8) drops
//! terms from long reductions: `sum_dim` over a contiguous axis of 48³ values comes out
//! more than half off, and the weight gradient of a convolution over a 32³ volume a
//! third to three quarters off, while whole-tensor sums, matrix products, input
//! gradients and every forward pass of SwinUNETR agree with the CPU to 1e-6. Losses then agree and the
//! weights move the wrong way. Its gradients of a Swin encoder are also wrong where every
//! stage output takes part in the loss (3% to 200% per tensor), though right, to 4e-4,
//! where only one or two do: the gradient is not even linear in the outputs' gradients
//! there. A device that fails this check is refused, naming what it got wrong, rather
//! than used.

use std::convert::Infallible;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Gradients, Tensor, TensorData};

use crate::SwinUnetrConfig;
use crate::arrays::read_values;
use crate::conv::conv3d_same;
use crate::seeding::build_seeded;
use crate::swin::SwinTransformer;

/// Largest relative L2 error of the two operations that passes: float32 sums of these
/// sizes in any order stay below 1e-5.
pub const TOLERANCE: f64 = 1e-4;

/// The encoder's stage outputs, all of which take part in its check's loss.
const ALL_STAGES: [usize; 5] = [0, 1, 2, 3, 4];

/// Largest relative L2 error of an encoder parameter's gradient against the CPU's that
/// passes: float32 rounding in another order moves the small ones by up to 4e-4 (on
/// lavapipe, where only one or two stage outputs are in the loss); lavapipe's defect
/// moves every one by 3% or more, the deepest by 200%.
pub const ENCODER_TOLERANCE: f64 = 1e-2;

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
    /// The largest relative L2 error, against the CPU, of a parameter gradient of a Swin
    /// encoder (feature size 12, a 32³ input) whose five stage outputs all take part in
    /// the loss; `None` when not computed because an operation above already failed.
    pub encoder_grad: Option<f64>,
}

impl DeviceCheck {
    /// Computes both operations on `device` (its autodiff form for the gradient), then,
    /// when they pass, the encoder's gradients on `device` and on the CPU.
    pub fn run(device: &Device) -> DeviceCheck {
        let mut check = DeviceCheck {
            row_sum: row_sum_error(device),
            conv_weight_grad: conv_weight_grad_error(device),
            encoder_grad: None,
        };
        if check.failure().is_none() {
            check.encoder_grad = Some(Self::encoder_error(device));
        }
        check
    }

    /// The encoder part of the check alone: the largest relative L2 error of a
    /// parameter's gradient on `device` against the CPU's (NaN when the device fails).
    pub fn encoder_error(device: &Device) -> f64 {
        let want = encoder_grads(&Device::flex(), &ALL_STAGES);
        let got = encoder_grads(device, &ALL_STAGES);
        if got.len() != want.len() {
            return f64::NAN;
        }
        got.iter().zip(&want).fold(0.0, |worst, (got, want)| {
            let want: Vec<f64> = want.iter().map(|v| f64::from(*v)).collect();
            let error = relative_error(got, &want);
            if error.is_nan() || worst.is_nan() {
                f64::NAN
            } else {
                worst.max(error)
            }
        })
    }

    /// `None` when the two operations are within [`TOLERANCE`] and the encoder (when
    /// computed) within [`ENCODER_TOLERANCE`] (NaN fails), else what went wrong in words.
    pub fn failure(&self) -> Option<String> {
        let mut wrong = Vec::new();
        let encoder = format!(
            "the gradients of a Swin encoder on a {EDGE}³ input (all five stage outputs in \
             the loss)"
        );
        for (what, verb, error, tolerance, reference) in [
            (
                format!("a sum along an axis of {ROW} values"),
                ("is", "fails"),
                Some(self.row_sum),
                TOLERANCE,
                "the exact value",
            ),
            (
                format!("the weight gradient of a convolution over a {EDGE}³ volume"),
                ("is", "fails"),
                Some(self.conv_weight_grad),
                TOLERANCE,
                "the exact value",
            ),
            (
                encoder,
                ("are", "fail"),
                self.encoder_grad,
                ENCODER_TOLERANCE,
                "the CPU's",
            ),
        ] {
            match error {
                Some(e) if e.is_nan() => wrong.push(format!(
                    "{what} {} (a NaN, an infinity or a device error)",
                    verb.1
                )),
                Some(e) if e > tolerance => wrong.push(format!(
                    "{what} {} {:.1}% off {reference}",
                    verb.0,
                    100.0 * e
                )),
                _ => {}
            }
        }
        (!wrong.is_empty()).then(|| wrong.join("; "))
    }
}

/// Deterministic values in `[-0.5, 0.5)`: an input and output gradients of both signs,
/// with which lavapipe's encoder gradients go wrong (with positive ones they happen to
/// come out within 4e-4).
fn signed(n: usize, seed: u64) -> Vec<f32> {
    values(n, seed).into_iter().map(|v| v - 1.0).collect()
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
    read_values(tensor).unwrap_or_else(|_| vec![f32::NAN])
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

/// The parameter gradients, one vector per parameter in module order, of the encoder
/// drawn from seed 0 on `device`, for the loss `Σ_i sum(stage_i · probe_i)` over the
/// stage outputs `stages` (0 to 4) of one 32³ input; zeros for a parameter without a
/// gradient (no output in the loss depends on it), a NaN where the device fails.
fn encoder_grads(device: &Device, stages: &[usize]) -> Vec<Vec<f32>> {
    let device = device.clone().autodiff();
    let config = SwinUnetrConfig::new(1, 2).with_feature_size(12);
    let encoder = build_seeded(&device, 0, |host| {
        Ok::<_, Infallible>(SwinTransformer::new(&config, host))
    })
    .unwrap_or_else(|never| match never {});
    let shape = [1, 1, EDGE, EDGE, EDGE];
    let x = Tensor::<5>::from_data(
        TensorData::new(signed(EDGE * EDGE * EDGE, 4), shape),
        &device,
    );
    let mut loss = Tensor::<1>::zeros([1], &device);
    for (i, stage) in encoder.forward(x).into_iter().enumerate() {
        if !stages.contains(&i) {
            continue;
        }
        let dims = stage.dims();
        let probe = signed(dims.iter().product(), 5 + i as u64);
        let probe = Tensor::<5>::from_data(TensorData::new(probe, dims), &device);
        loss = loss + (stage * probe).sum();
    }
    let mut visitor = CollectGrads {
        grads: &loss.backward(),
        values: Vec::new(),
    };
    encoder.visit(&mut visitor);
    visitor.values
}

/// Each float parameter's gradient, in the order visited.
struct CollectGrads<'a> {
    grads: &'a Gradients,
    values: Vec<Vec<f32>>,
}

impl ModuleVisitor for CollectGrads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.values.push(match param.val().grad(self.grads) {
            Some(grad) => host(grad),
            None => vec![0.0; param.val().shape().num_elements()],
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CPU computes both operations to float32 rounding, and its encoder gradients
    /// are the same in a second computation.
    #[test]
    fn the_cpu_passes() {
        let check = DeviceCheck::run(&Device::flex());
        assert!(check.row_sum < 1e-6, "{check:?}");
        assert!(check.conv_weight_grad < 1e-6, "{check:?}");
        assert_eq!(check.encoder_grad, Some(0.0), "{check:?}");
        assert_eq!(check.failure(), None);
    }

    /// The encoder's gradients are linear in the stage outputs' gradients on the CPU,
    /// the property lavapipe breaks: the gradients of two halves of the loss add up to
    /// the gradient of the whole.
    #[test]
    fn the_encoder_gradients_are_the_gradients_of_the_whole_loss() {
        let device = Device::flex();
        let flat = |grads: Vec<Vec<f32>>| grads.concat();
        let whole = flat(encoder_grads(&device, &ALL_STAGES));
        assert!(whole.len() > 100_000, "{} values", whole.len());
        let shallow = flat(encoder_grads(&device, &[0, 1, 2]));
        let deep = flat(encoder_grads(&device, &[3, 4]));
        assert_eq!((shallow.len(), deep.len()), (whole.len(), whole.len()));
        let parts: Vec<f64> = deep
            .iter()
            .zip(&shallow)
            .map(|(d, s)| f64::from(*d) + f64::from(*s))
            .collect();
        let error = relative_error(&whole, &parts);
        assert!(
            error < 1e-5,
            "the halves' gradients add up to the whole's within {error}"
        );
        let norm: f64 = whole.iter().map(|g| f64::from(*g).powi(2)).sum();
        assert!(norm > 1.0, "gradient norm² {norm}");
    }

    /// Errors over the tolerance, and NaN, are named with their size.
    #[test]
    fn a_failure_names_each_wrong_operation() {
        let check = DeviceCheck {
            row_sum: 0.59,
            conv_weight_grad: f64::NAN,
            encoder_grad: None,
        };
        let failure = check.failure().unwrap();
        assert!(
            failure.contains("a sum along an axis of 110592 values is 59.0% off the exact value"),
            "{failure}"
        );
        assert!(
            failure.contains("a 32³ volume fails (a NaN, an infinity or a device error)"),
            "{failure}"
        );
        let encoder = DeviceCheck {
            row_sum: 0.0,
            conv_weight_grad: 0.0,
            encoder_grad: Some(0.35),
        };
        assert_eq!(
            encoder.failure().unwrap(),
            "the gradients of a Swin encoder on a 32³ input (all five stage outputs in the \
             loss) are 35.0% off the CPU's"
        );
        let fine = DeviceCheck {
            row_sum: TOLERANCE,
            conv_weight_grad: 0.0,
            encoder_grad: Some(ENCODER_TOLERANCE),
        };
        assert_eq!(fine.failure(), None);
    }
}
