//! SwinUNETR pretraining's reconstruction head (Tang et al. 2022, `SSLHead` with
//! `upsample="vae"`): from the deepest encoder stage back to the input's voxels in five
//! stages of 3×3×3 convolution, instance normalisation (no affine), LeakyReLU (slope
//! 0.01) and ×2 trilinear upsampling, then a 1×1×1 convolution to the input channels.
//! Channels halve each stage down to the feature size: `16F → 8F → 4F → 2F → F → F`.

use burn::module::Module;
use burn::nn::conv::{Conv3d, Conv3dConfig};
use burn::nn::{InstanceNorm, InstanceNormConfig, PaddingConfig3d};
use burn::tensor::activation::leaky_relu;
use burn::tensor::{Device, Tensor};

/// PyTorch's `nn.LeakyReLU()` default slope.
const SLOPE: f64 = 0.01;

/// The five upsampling stages and the output convolution.
#[derive(Module, Debug)]
pub struct ConvDecoder {
    pub convs: Vec<Conv3d>,
    norms: Vec<InstanceNorm>,
    pub out: Conv3d,
}

impl ConvDecoder {
    /// The head for an encoder of `feature_size` F (deepest stage `16F` channels) and
    /// images of `in_channels`.
    pub fn new(feature_size: usize, in_channels: usize, device: &Device) -> ConvDecoder {
        let widths = [16, 8, 4, 2, 1, 1].map(|m| m * feature_size);
        let convs = widths
            .windows(2)
            .map(|w| {
                Conv3dConfig::new([w[0], w[1]], [3; 3])
                    .with_padding(PaddingConfig3d::Explicit(1, 1, 1))
                    .init(device)
            })
            .collect();
        let norms = widths[1..]
            .iter()
            .map(|&c| InstanceNormConfig::new(c).with_affine(false).init(device))
            .collect();
        ConvDecoder {
            convs,
            norms,
            out: Conv3dConfig::new([feature_size, in_channels], [1; 3]).init(device),
        }
    }

    /// `[B, 16F, d, h, w]` to `[B, C_in, 32d, 32h, 32w]`.
    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        let x = self
            .convs
            .iter()
            .zip(&self.norms)
            .fold(x, |x, (conv, norm)| {
                upsample_trilinear(leaky_relu(norm.forward(conv.forward(x)), SLOPE))
            });
        self.out.forward(x)
    }
}

/// `nn.Upsample(scale_factor=2, mode="trilinear", align_corners=False)`: output voxel
/// `o` of an axis reads source position `(o + ½)/2 − ½`, clamped to the volume, so it
/// is `¾·x[i] + ¼·x[i∓1]` for `o = 2i` / `2i + 1` with the edges repeated. Linear in
/// each axis in turn, which equals the trilinear weights.
pub fn upsample_trilinear(x: Tensor<5>) -> Tensor<5> {
    (2..5).fold(x, double_axis)
}

/// Doubles `axis` by linear interpolation at the positions above.
fn double_axis(x: Tensor<5>, axis: usize) -> Tensor<5> {
    let mut dims = x.dims();
    let n = dims[axis];
    dims[axis] = 2 * n;
    if n == 1 {
        return Tensor::cat(vec![x.clone(), x], axis);
    }
    let first = x.clone().narrow(axis, 0, 1);
    let last = x.clone().narrow(axis, n - 1, 1);
    let before = Tensor::cat(vec![first, x.clone().narrow(axis, 0, n - 1)], axis);
    let after = Tensor::cat(vec![x.clone().narrow(axis, 1, n - 1), last], axis);
    let even = x.clone().mul_scalar(0.75) + before.mul_scalar(0.25);
    let odd = x.mul_scalar(0.75) + after.mul_scalar(0.25);
    Tensor::stack::<6>(vec![even, odd], axis + 1).reshape(dims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    /// PyTorch's rule voxel by voxel: each output voxel the weighted sum of the eight
    /// source voxels around its clamped source position.
    fn reference(values: &[f32], shape: [usize; 3]) -> Vec<f32> {
        let source = |o: usize, n: usize| -> (usize, usize, f64) {
            let p = ((o as f64 + 0.5) / 2.0 - 0.5).max(0.0);
            let i = (p.floor() as usize).min(n - 1);
            let j = (i + 1).min(n - 1);
            (i, j, p - i as f64)
        };
        let at = |z: usize, y: usize, x: usize| values[(z * shape[1] + y) * shape[2] + x] as f64;
        let mut out = Vec::new();
        for oz in 0..2 * shape[0] {
            let (z0, z1, wz) = source(oz, shape[0]);
            for oy in 0..2 * shape[1] {
                let (y0, y1, wy) = source(oy, shape[1]);
                for ox in 0..2 * shape[2] {
                    let (x0, x1, wx) = source(ox, shape[2]);
                    let mut v = 0.0;
                    for (z, fz) in [(z0, 1.0 - wz), (z1, wz)] {
                        for (y, fy) in [(y0, 1.0 - wy), (y1, wy)] {
                            for (x, fx) in [(x0, 1.0 - wx), (x1, wx)] {
                                v += fz * fy * fx * at(z, y, x);
                            }
                        }
                    }
                    out.push(v as f32);
                }
            }
        }
        out
    }

    #[test]
    fn trilinear_upsampling_follows_pytorchs_source_positions() {
        let device = Device::flex();
        for shape in [[3, 4, 2], [1, 2, 5]] {
            let n: usize = shape.iter().product();
            let values: Vec<f32> = (0..n).map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.3).collect();
            let x = Tensor::<5>::from_data(
                TensorData::new(values.clone(), [1, 1, shape[0], shape[1], shape[2]]),
                &device,
            );
            let y = upsample_trilinear(x);
            assert_eq!(y.dims(), [1, 1, 2 * shape[0], 2 * shape[1], 2 * shape[2]]);
            let got: Vec<f32> = y.into_data().try_to_vec().unwrap();
            for (i, (g, e)) in got.iter().zip(reference(&values, shape)).enumerate() {
                assert!((g - e).abs() < 1e-5, "{shape:?} voxel {i}: {g} vs {e}");
            }
        }
    }

    #[test]
    fn decoder_restores_the_input_size_and_channels() {
        let device = Device::flex();
        let decoder = ConvDecoder::new(2, 1, &device);
        let y = decoder.forward(Tensor::<5>::ones([2, 32, 1, 2, 1], &device));
        assert_eq!(y.dims(), [2, 1, 32, 64, 32]);
        let widths: Vec<[usize; 2]> = decoder
            .convs
            .iter()
            .map(|c| {
                let [out, inp, ..] = c.weight.dims();
                [inp, out]
            })
            .collect();
        assert_eq!(widths, [[32, 16], [16, 8], [8, 4], [4, 2], [2, 2]]);
    }
}
