//! The convolutional blocks of SwinUNETR (MONAI's `UnetResBlock`, `UnetrBasicBlock`,
//! `UnetrUpBlock`, `UnetOutBlock`): bias-free 3x3x3 convolutions, InstanceNorm without
//! affine parameters, LeakyReLU(0.01).

use burn::module::Module;
use burn::nn::PaddingConfig3d;
use burn::nn::conv::{Conv3d, Conv3dConfig, ConvTranspose3d, ConvTranspose3dConfig};
use burn::tensor::activation::leaky_relu;
use burn::tensor::{Device, Tensor};

use crate::conv::conv3d_same;

const SLOPE: f64 = 0.01;

/// A convolution as MONAI nests it (`...conv1.conv.weight`).
#[derive(Module, Debug)]
pub struct ConvLayer {
    pub conv: Conv3d,
}

impl ConvLayer {
    /// `conv(x)`: the 3x3x3 convolutions go through [`conv3d_same`], the fast path on CPU.
    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        match &self.conv.bias {
            None if self.conv.kernel_size[0] % 2 == 1 && self.conv.kernel_size[0] > 1 => {
                conv3d_same(x, self.conv.weight.val())
            }
            _ => self.conv.forward(x),
        }
    }

    fn new(cin: usize, cout: usize, kernel: usize, bias: bool, device: &Device) -> ConvLayer {
        let pad = kernel / 2;
        ConvLayer {
            conv: Conv3dConfig::new([cin, cout], [kernel; 3])
                .with_padding(PaddingConfig3d::Explicit(pad, pad, pad))
                .with_bias(bias)
                .init(device),
        }
    }
}

/// MONAI's `InstanceNorm3d` (no affine parameters, biased variance, eps 1e-5) over
/// `[B, C, D, H, W]`.
///
/// Means are taken one axis at a time and the variance from the centred values, so no
/// reduction sums more than one row of voxels: Burn 0.22's wgpu backend over lavapipe
/// drops terms from reductions along 2^16 values or more ([`crate::device_check`]), and
/// a single mean over a whole 64 × 32 × 32 volume moved SwinUNETR's logits by 2e-3 there.
fn instance_norm(x: Tensor<5>) -> Tensor<5> {
    const EPS: f64 = 1e-5;
    let mean = |t: Tensor<5>| t.mean_dim(4).mean_dim(3).mean_dim(2);
    let centred = x.clone() - mean(x);
    let var = mean(centred.clone().powi_scalar(2));
    centred / var.add_scalar(EPS).sqrt()
}

/// Two 3x3x3 conv-norm steps with a residual (1x1x1 conv-norm when channels change).
#[derive(Module, Debug)]
pub struct UnetResBlock {
    pub conv1: ConvLayer,
    pub conv2: ConvLayer,
    pub conv3: Option<ConvLayer>,
}

impl UnetResBlock {
    /// A block from `cin` to `cout` channels.
    pub fn new(cin: usize, cout: usize, device: &Device) -> UnetResBlock {
        let downsample = cin != cout;
        UnetResBlock {
            conv1: ConvLayer::new(cin, cout, 3, false, device),
            conv2: ConvLayer::new(cout, cout, 3, false, device),
            conv3: downsample.then(|| ConvLayer::new(cin, cout, 1, false, device)),
        }
    }

    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        let out = leaky_relu(instance_norm(self.conv1.forward(x.clone())), SLOPE);
        let out = instance_norm(self.conv2.forward(out));
        let residual = match &self.conv3 {
            Some(conv) => instance_norm(conv.forward(x)),
            None => x,
        };
        leaky_relu(out + residual, SLOPE)
    }
}

/// MONAI's `UnetrBasicBlock` with `res_block=True` (keys `...layer.conv1...`).
#[derive(Module, Debug)]
pub struct UnetrBasicBlock {
    pub layer: UnetResBlock,
}

impl UnetrBasicBlock {
    pub fn new(cin: usize, cout: usize, device: &Device) -> UnetrBasicBlock {
        UnetrBasicBlock {
            layer: UnetResBlock::new(cin, cout, device),
        }
    }

    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        self.layer.forward(x)
    }
}

/// The transposed convolution of an up block (`...transp_conv.conv.weight`).
#[derive(Module, Debug)]
pub struct TransposedConv {
    pub conv: ConvTranspose3d,
}

/// MONAI's `UnetrUpBlock`: upsample x2 by a bias-free transposed conv, concatenate the
/// skip connection, residual block.
#[derive(Module, Debug)]
pub struct UnetrUpBlock {
    pub transp_conv: TransposedConv,
    pub conv_block: UnetResBlock,
}

impl UnetrUpBlock {
    pub fn new(cin: usize, cout: usize, device: &Device) -> UnetrUpBlock {
        UnetrUpBlock {
            transp_conv: TransposedConv {
                conv: ConvTranspose3dConfig::new([cin, cout], [2; 3])
                    .with_stride([2; 3])
                    .with_bias(false)
                    .init(device),
            },
            conv_block: UnetResBlock::new(2 * cout, cout, device),
        }
    }

    pub fn forward(&self, x: Tensor<5>, skip: Tensor<5>) -> Tensor<5> {
        let up = self.transp_conv.conv.forward(x);
        self.conv_block.forward(Tensor::cat(vec![up, skip], 1))
    }
}

/// MONAI's `UnetOutBlock`: a 1x1x1 convolution with bias to the class logits.
#[derive(Module, Debug)]
pub struct OutBlock {
    pub conv: ConvLayer,
}

impl OutBlock {
    pub fn new(cin: usize, cout: usize, device: &Device) -> OutBlock {
        OutBlock {
            conv: ConvLayer::new(cin, cout, 1, true, device),
        }
    }

    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        self.conv.conv.forward(x)
    }
}
