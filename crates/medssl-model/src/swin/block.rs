//! One Swin block (pre-norm window attention and MLP, each residual) and the window
//! partition that feeds it.

use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::gelu;
use burn::tensor::ops::PadMode;
use burn::tensor::{Device, Tensor};

use super::attention::WindowAttention;
use super::geometry::{effective_window, padded};
use crate::regularization::{drop_path, dropout};

/// `[B, D, H, W, C]` (D, H, W multiples of `w`) to `[B * windows, w0*w1*w2, C]`, windows
/// in MONAI's order (last axis fastest).
pub fn partition(x: Tensor<5>, w: [usize; 3]) -> Tensor<3> {
    let [b, d, h, wd, c] = x.dims();
    x.reshape([b, d / w[0], w[0], h / w[1], w[1], wd / w[2], w[2], c])
        .permute([0, 1, 3, 5, 2, 4, 6, 7])
        .reshape([
            b * (d / w[0]) * (h / w[1]) * (wd / w[2]),
            w[0] * w[1] * w[2],
            c,
        ])
}

/// The inverse of [`partition`] for a grid `[b, d, h, w]`.
pub fn unpartition(windows: Tensor<3>, w: [usize; 3], grid: [usize; 4]) -> Tensor<5> {
    let [b, d, h, wd] = grid;
    let c = windows.dims()[2];
    windows
        .reshape([b, d / w[0], h / w[1], wd / w[2], w[0], w[1], w[2], c])
        .permute([0, 1, 4, 2, 5, 3, 6, 7])
        .reshape([b, d, h, wd, c])
}

/// The transformer MLP: Linear, exact GELU, Linear.
#[derive(Module, Debug)]
pub struct Mlp {
    pub linear1: Linear,
    pub linear2: Linear,
    drop: f64,
}

impl Mlp {
    fn new(dim: usize, hidden: usize, drop: f64, device: &Device) -> Mlp {
        Mlp {
            linear1: LinearConfig::new(dim, hidden).init(device),
            linear2: LinearConfig::new(hidden, dim).init(device),
            drop,
        }
    }

    fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        let x = dropout(gelu(self.linear1.forward(x)), self.drop);
        dropout(self.linear2.forward(x), self.drop)
    }
}

/// Settings shared by every block of a stage.
#[derive(Debug, Clone, Copy)]
pub struct BlockSpec {
    pub dim: usize,
    pub heads: usize,
    pub window: [usize; 3],
    pub mlp_ratio: f64,
    pub qkv_bias: bool,
    pub drop: f64,
    pub attn_drop: f64,
}

/// MONAI's `SwinTransformerBlock`: `x + attn(norm1(x))`, then `x + mlp(norm2(x))`, with
/// regular (`shift = 0`) or cyclically shifted windows.
#[derive(Module, Debug)]
pub struct SwinBlock {
    pub norm1: LayerNorm,
    pub attn: WindowAttention,
    pub norm2: LayerNorm,
    pub mlp: Mlp,
    window: [usize; 3],
    shift: [usize; 3],
    drop_path: f64,
}

impl SwinBlock {
    /// A block; `shifted` blocks shift by half the window.
    pub fn new(spec: BlockSpec, shifted: bool, drop_path: f64, device: &Device) -> SwinBlock {
        let shift = if shifted {
            spec.window.map(|w| w / 2)
        } else {
            [0; 3]
        };
        SwinBlock {
            norm1: LayerNormConfig::new(spec.dim).init(device),
            attn: WindowAttention::new(
                spec.dim,
                spec.heads,
                spec.window,
                spec.qkv_bias,
                spec.attn_drop,
                spec.drop,
                device,
            ),
            norm2: LayerNormConfig::new(spec.dim).init(device),
            mlp: Mlp::new(
                spec.dim,
                (spec.dim as f64 * spec.mlp_ratio) as usize,
                spec.drop,
                device,
            ),
            window: spec.window,
            shift,
            drop_path,
        }
    }

    /// The configured shift (half the window for shifted blocks, else 0).
    pub fn shift(&self) -> [usize; 3] {
        self.shift
    }

    /// `x`: `[B, D, H, W, C]`; `mask`: the stage's shifted-window mask, used when this
    /// block's effective shift is non-zero.
    pub fn forward(&self, x: Tensor<5>, mask: Option<&Tensor<3>>) -> Tensor<5> {
        let [b, d, h, w, _] = x.dims();
        let (window, shift) = effective_window([d, h, w], self.window, self.shift);
        let [dp, hp, wp] = padded([d, h, w], window);

        let y = self.norm1.forward(x.clone());
        let y = if [dp, hp, wp] != [d, h, w] {
            y.pad(
                [(0, dp - d), (0, hp - h), (0, wp - w), (0, 0)],
                PadMode::Constant(0.0),
            )
        } else {
            y
        };
        let shifted = shift.iter().any(|&s| s > 0);
        let offsets = |sign: i64| shift.map(|s| sign * s as i64);
        let y = if shifted {
            y.roll(&offsets(-1), &[1, 2, 3])
        } else {
            y
        };
        let windows = partition(y, window);
        let attended = self
            .attn
            .forward(windows, if shifted { mask } else { None });
        let y = unpartition(attended, window, [b, dp, hp, wp]);
        let y = if shifted {
            y.roll(&offsets(1), &[1, 2, 3])
        } else {
            y
        };
        let y = if [dp, hp, wp] != [d, h, w] {
            y.slice([0..b, 0..d, 0..h, 0..w])
        } else {
            y
        };
        let x = x + drop_path(y, self.drop_path);
        let z = self.mlp.forward(self.norm2.forward(x.clone()));
        x + drop_path(z, self.drop_path)
    }
}
