//! Window multi-head self-attention with a learned relative-position bias.

use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::geometry::bias_index;
use crate::regularization::dropout;
use crate::softmax::biased_softmax;

/// MONAI's `WindowAttention`: `softmax((q * scale) k^T + bias [+ mask]) v`, with `qkv`
/// laid out as `[B, N, 3, heads, C / heads]`.
#[derive(Module, Debug)]
pub struct WindowAttention {
    pub qkv: Linear,
    pub proj: Linear,
    /// `[(2w0-1)(2w1-1)(2w2-1), heads]`, indexed through the full window's index.
    pub relative_position_bias_table: Param<Tensor<2>>,
    heads: usize,
    full_window: [usize; 3],
    attn_drop: f64,
    proj_drop: f64,
}

impl WindowAttention {
    /// A layer for `dim` channels and `heads` heads over a configured `window`.
    pub fn new(
        dim: usize,
        heads: usize,
        window: [usize; 3],
        qkv_bias: bool,
        attn_drop: f64,
        proj_drop: f64,
        device: &Device,
    ) -> WindowAttention {
        let rows = window.iter().map(|w| 2 * w - 1).product::<usize>();
        let table = Tensor::random(
            [rows, heads],
            burn::tensor::Distribution::Normal(0.0, 0.02),
            device,
        );
        WindowAttention {
            qkv: LinearConfig::new(dim, 3 * dim)
                .with_bias(qkv_bias)
                .init(device),
            proj: LinearConfig::new(dim, dim).init(device),
            relative_position_bias_table: Param::from_tensor(table),
            heads,
            full_window: window,
            attn_drop,
            proj_drop,
        }
    }

    /// The bias `[heads, n, n]` for windows of `n` tokens.
    fn bias(&self, n: usize) -> Tensor<3> {
        let table = self.relative_position_bias_table.val();
        let index: Vec<i64> = bias_index(self.full_window, n)
            .into_iter()
            .map(|i| i as i64)
            .collect();
        let index = Tensor::<1, Int>::from_data(TensorData::new(index, [n * n]), &table.device());
        table
            .select(0, index)
            .reshape([n, n, self.heads])
            .permute([2, 0, 1])
    }

    /// `x`: `[windows * batch, n, C]`; `mask`: `[n_windows, n, n]` for shifted windows.
    pub fn forward(&self, x: Tensor<3>, mask: Option<&Tensor<3>>) -> Tensor<3> {
        let [b, n, c] = x.dims();
        let head_dim = c / self.heads;
        let qkv = self
            .qkv
            .forward(x)
            .reshape([b, n, 3, self.heads, head_dim])
            .permute([2, 0, 3, 1, 4]);
        let q = qkv
            .clone()
            .narrow(0, 0, 1)
            .reshape([b, self.heads, n, head_dim]);
        let k = qkv
            .clone()
            .narrow(0, 1, 1)
            .reshape([b, self.heads, n, head_dim]);
        let v = qkv.narrow(0, 2, 1).reshape([b, self.heads, n, head_dim]);
        let q = q.mul_scalar((head_dim as f64).powf(-0.5));
        let scores = q.matmul(k.swap_dims(2, 3));
        let mask = match mask {
            Some(mask) => mask.clone(),
            None => Tensor::zeros([1, n, n], &scores.device()),
        };
        let attn = dropout(biased_softmax(scores, self.bias(n), mask), self.attn_drop);
        let out = attn.matmul(v).swap_dims(1, 2).reshape([b, n, c]);
        dropout(self.proj.forward(out), self.proj_drop)
    }
}
