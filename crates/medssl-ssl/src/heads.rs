//! Projection heads: DINO's (DINO, iBOT, SMIT) and the MLPs of the contrastive methods
//! (SimCLR, MoCo v3).

use burn::module::{Module, Param, ParamId};
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::activation::gelu;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Distribution, Tensor};

use serde::{Deserialize, Serialize};

use crate::error::{Result, SslError};
use crate::losses::normalize_rows;
use crate::pretext::Preset;

/// The head of a self-distillation method as a setting (`[pretext.head]`): prototypes,
/// widths and whether the last layer's gain is fixed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadSettings {
    /// Prototypes (the head's output size).
    pub out_dim: usize,
    /// Hidden width of the MLP.
    pub hidden_dim: usize,
    /// Bottleneck width before the weight-normalised last layer.
    pub bottleneck_dim: usize,
    /// Keep the last layer's weight-norm gain fixed at 1.
    pub norm_last_layer: bool,
    /// Batch normalisation after each hidden layer (DINO's and iBOT's
    /// `use_bn_in_head`), its statistics over every crop of the step at once, as their
    /// `MultiCropWrapper` runs the head on all crops concatenated.
    pub batch_norm: bool,
}

impl HeadSettings {
    /// The published head (hidden 2048, bottleneck 256, no batch norm: DINO's default
    /// `use_bn_in_head = False`) with `paper_out` prototypes in `paper`; 1024 prototypes,
    /// hidden 256, bottleneck 64 and batch norm in `tiny`.
    ///
    /// Why batch norm in `tiny`: an untrained Swin encoder maps every crop of a small
    /// CT collection to almost the same pooled feature (embedding spread 0.14-0.18,
    /// where random directions give 1), so once the centre has caught up the centred
    /// teacher logits differ by far less than the 0.04 temperature and the targets are
    /// uniform: DINO's teacher went uniform within 20 steps (entropy 6.89 of ln 1024 =
    /// 6.93), in this implementation and in a PyTorch + MONAI reference of the same
    /// setting alike. Batch norm in the head scales the differences between crops to
    /// unit variance before the bottleneck, and the teacher stays informative (entropy
    /// about 4 over 200 steps in both).
    pub fn preset(preset: Preset, paper_out: usize) -> HeadSettings {
        let tiny = preset == Preset::Tiny;
        HeadSettings {
            out_dim: if tiny { 1024 } else { paper_out },
            hidden_dim: if tiny { 256 } else { 2048 },
            bottleneck_dim: if tiny { 64 } else { 256 },
            norm_last_layer: true,
            batch_norm: tiny,
        }
    }

    /// Widths must be positive.
    pub fn check(&self) -> Result<()> {
        for (name, width) in [
            ("out_dim", self.out_dim),
            ("hidden_dim", self.hidden_dim),
            ("bottleneck_dim", self.bottleneck_dim),
        ] {
            if width == 0 {
                return Err(SslError::Invalid(format!("head.{name} must be positive")));
            }
        }
        Ok(())
    }

    /// A 3-layer head on `in_dim` features.
    pub fn init(&self, in_dim: usize, device: &Device) -> DinoHead {
        DinoHeadConfig {
            in_dim,
            out_dim: self.out_dim,
            hidden_dim: self.hidden_dim,
            bottleneck_dim: self.bottleneck_dim,
            layers: 3,
            norm_last_layer: self.norm_last_layer,
            batch_norm: self.batch_norm,
        }
        .init(device)
    }

    /// A centre of the teacher outputs: zeros, never trained.
    pub fn center(&self, device: &Device) -> Param<Tensor<1>> {
        Param::from_tensor(Tensor::zeros([self.out_dim], device)).set_require_grad(false)
    }
}

/// The shape of a [`DinoHead`]; `Default` is the paper's (hidden 2048, bottleneck 256,
/// 3 layers, output 65536 in DINO, 8192 in SMIT: set `out_dim`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DinoHeadConfig {
    pub in_dim: usize,
    pub out_dim: usize,
    pub hidden_dim: usize,
    pub bottleneck_dim: usize,
    /// Linear layers before the bottleneck normalisation (at least 1).
    pub layers: usize,
    /// Keep the last layer's weight-norm gain at 1 (not trained), as DINO recommends for
    /// stability.
    pub norm_last_layer: bool,
    /// Batch normalisation (affine) after each hidden layer, before its GELU.
    pub batch_norm: bool,
}

impl DinoHeadConfig {
    /// The paper's head on `in_dim` features with `out_dim` prototypes.
    pub fn new(in_dim: usize, out_dim: usize) -> DinoHeadConfig {
        DinoHeadConfig {
            in_dim,
            out_dim,
            hidden_dim: 2048,
            bottleneck_dim: 256,
            layers: 3,
            norm_last_layer: true,
            batch_norm: false,
        }
    }

    /// Builds the head: MLP weights from N(0, 0.02) (DINO's `trunc_normal_(std=.02)`, whose
    /// ±2 bounds are 100 standard deviations away), zero biases, batch norms (when set)
    /// at scale 1 and shift 0; the last layer keeps PyTorch's default `Linear` draw,
    /// U(±1/√bottleneck), before weight normalisation.
    pub fn init(&self, device: &Device) -> DinoHead {
        let dims: Vec<usize> = std::iter::once(self.in_dim)
            .chain(std::iter::repeat_n(self.hidden_dim, self.layers.max(1) - 1))
            .chain(std::iter::once(self.bottleneck_dim))
            .collect();
        let mlp = dims
            .windows(2)
            .map(|w| {
                let layer = LinearConfig::new(w[0], w[1])
                    .with_initializer(Initializer::Normal {
                        mean: 0.0,
                        std: 0.02,
                    })
                    .init(device);
                Linear {
                    bias: Some(Param::from_tensor(Tensor::zeros([w[1]], device))),
                    ..layer
                }
            })
            .collect();
        let hidden = dims.len() - 2;
        let norms = (0..hidden)
            .map(|_| {
                self.batch_norm
                    .then(|| BatchStatNorm::new(self.hidden_dim, true, device))
            })
            .collect();
        let bound = 1.0 / (self.bottleneck_dim as f64).sqrt();
        let direction = Tensor::random(
            [self.bottleneck_dim, self.out_dim],
            Distribution::Uniform(-bound, bound),
            device,
        );
        DinoHead {
            mlp,
            norms,
            direction: Param::from_tensor(direction),
            gain: (!self.norm_last_layer)
                .then(|| Param::from_tensor(Tensor::ones([self.out_dim], device))),
        }
    }
}

/// DINO's head: an MLP with GELU between its layers (each hidden layer batch-normalised
/// first when so built), L2 normalisation of the bottleneck, then a weight-normalised
/// linear layer without bias (`weight = g · v / ‖v‖` per output unit).
#[derive(Module, Debug)]
pub struct DinoHead {
    mlp: Vec<Linear>,
    /// The batch norm after each hidden layer, if any.
    norms: Vec<Option<BatchStatNorm>>,
    /// `v`, `[bottleneck, out]` (Burn's input-major layout).
    direction: Param<Tensor<2>>,
    /// `g` per output unit; absent when fixed at 1 (`norm_last_layer`).
    gain: Option<Param<Tensor<1>>>,
}

impl DinoHead {
    /// `[N, in]` features to `[N, out]` logits; batch norms take their statistics over
    /// the `N` rows.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let last = self.mlp.len() - 1;
        let mut x = x;
        for (i, layer) in self.mlp.iter().enumerate() {
            x = layer.forward(x);
            if i < last {
                if let Some(Some(norm)) = self.norms.get(i) {
                    x = norm.forward(x);
                }
                x = gelu(x);
            }
        }
        normalize_rows(x).matmul(self.last_weight())
    }

    /// The head applied to the crops of a step at once (DINO's `MultiCropWrapper`): the
    /// rows of every crop concatenated, so that batch norms see them all, and the logits
    /// split back per crop. Without batch norm, the same as one `forward` per crop.
    pub fn forward_crops(&self, crops: Vec<Tensor<2>>) -> Vec<Tensor<2>> {
        let rows: Vec<usize> = crops.iter().map(|c| c.dims()[0]).collect();
        let out = self.forward(Tensor::cat(crops, 0));
        let mut start = 0;
        rows.into_iter()
            .map(|n| {
                let crop = out.clone().narrow(0, start, n);
                start += n;
                crop
            })
            .collect()
    }

    /// The head applied to every token of `[B, N, in]`: `[B, N, out]`.
    pub fn forward_tokens(&self, x: Tensor<3>) -> Tensor<3> {
        self.forward_token_crops(vec![x]).pop().expect("one crop")
    }

    /// [`forward_tokens`](Self::forward_tokens) for the crops of a step at once, as
    /// [`forward_crops`](Self::forward_crops): every token of every crop in one batch.
    pub fn forward_token_crops(&self, crops: Vec<Tensor<3>>) -> Vec<Tensor<3>> {
        let shapes: Vec<[usize; 3]> = crops.iter().map(|c| c.dims()).collect();
        self.forward_crops(token_rows(crops))
            .into_iter()
            .zip(shapes)
            .map(|(out, [b, n, _])| {
                let k = out.dims()[1];
                out.reshape([b, n, k])
            })
            .collect()
    }

    /// The effective last-layer weight `g · v / ‖v‖`, `[bottleneck, out]`, norms taken
    /// per output unit (PyTorch's `weight_norm(dim=0)` on the `[out, bottleneck]` weight).
    pub fn last_weight(&self) -> Tensor<2> {
        let v = self.direction.val();
        let unit = v.clone() / v.square().sum_dim(0).sqrt();
        match &self.gain {
            Some(g) => unit * g.val().unsqueeze_dim(0),
            None => unit,
        }
    }

    /// The ids of the weight-normalised last layer's parameters (direction and gain):
    /// what DINO keeps fixed during its first epoch.
    pub fn last_layer(&self) -> Vec<ParamId> {
        std::iter::once(self.direction.id)
            .chain(self.gain.as_ref().map(|g| g.id))
            .collect()
    }

    /// The MLP layers (for weight decay groups and tests).
    pub fn mlp(&self) -> &[Linear] {
        &self.mlp
    }
}

/// Each crop's tokens `[B, N, C]` as rows `[B · N, C]`: how a head sees them.
pub fn token_rows(crops: Vec<Tensor<3>>) -> Vec<Tensor<2>> {
    crops
        .into_iter()
        .map(|c| {
            let [b, n, ch] = c.dims();
            c.reshape([b * n, ch])
        })
        .collect()
}

/// Which linear layers of an [`Mlp`] carry a bias.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MlpBias {
    /// Every layer not followed by a batch norm (the norm's mean subtraction would
    /// cancel a bias): SimCLR's projector, CPC's context network.
    #[default]
    UnlessNormed,
    /// No layer: MoCo v3's `_build_mlp`, whose every `nn.Linear` is built with
    /// `bias=False`, the predictor's last layer (which no batch norm follows) included.
    Never,
}

/// An MLP of `dims.len() - 1` linear layers with ReLU between them, each hidden layer
/// followed by batch normalisation when `batch_norm` (MoCo v3's projector and predictor;
/// SimCLR's projector has none), and the output too when `output_norm` (MoCo v3's
/// projector ends in a batch norm without affine parameters). Which layers have a bias
/// is [`MlpBias`], chosen when the MLP is built ([`init`](Self::init) or
/// [`init_with_bias`](Self::init_with_bias)).
#[derive(Debug, Clone, PartialEq)]
pub struct MlpConfig {
    pub dims: Vec<usize>,
    pub batch_norm: bool,
    pub output_norm: bool,
}

impl MlpConfig {
    /// Builds the MLP with PyTorch's default `Linear` initialisation and a bias on every
    /// layer that no batch norm follows ([`MlpBias::UnlessNormed`]).
    pub fn init(&self, device: &Device) -> Mlp {
        self.init_with_bias(MlpBias::UnlessNormed, device)
    }

    /// Builds the MLP with PyTorch's default `Linear` initialisation, biases as `bias`
    /// says.
    pub fn init_with_bias(&self, bias: MlpBias, device: &Device) -> Mlp {
        let n = self.dims.len().saturating_sub(1);
        let normed = |i: usize| {
            if i + 1 < n {
                self.batch_norm
            } else {
                self.output_norm
            }
        };
        let has_bias = |i: usize| match bias {
            MlpBias::UnlessNormed => !normed(i),
            MlpBias::Never => false,
        };
        let layers = (0..n)
            .map(|i| {
                LinearConfig::new(self.dims[i], self.dims[i + 1])
                    .with_bias(has_bias(i))
                    .init(device)
            })
            .collect();
        let norms = (0..n)
            .map(|i| normed(i).then(|| BatchStatNorm::new(self.dims[i + 1], i + 1 < n, device)))
            .collect();
        Mlp { layers, norms }
    }
}

/// See [`MlpConfig`].
#[derive(Module, Debug)]
pub struct Mlp {
    layers: Vec<Linear>,
    /// The norm after each layer, if any.
    norms: Vec<Option<BatchStatNorm>>,
}

impl Mlp {
    /// The linear layers (for tests and inspection).
    pub fn layers(&self) -> &[Linear] {
        &self.layers
    }

    /// The batch norm after each layer, if any.
    pub fn norms(&self) -> &[Option<BatchStatNorm>] {
        &self.norms
    }

    /// `[N, in]` to `[N, out]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let last = self.layers.len() - 1;
        let mut x = x;
        for (i, (layer, norm)) in self.layers.iter().zip(&self.norms).enumerate() {
            x = layer.forward(x);
            if let Some(norm) = norm {
                x = norm.forward(x);
            }
            if i < last {
                x = relu(x);
            }
        }
        x
    }
}

/// Batch normalisation of `[N, C]` with the batch's own statistics (biased variance,
/// ε = 1e-5), as PyTorch's `BatchNorm1d` computes in training mode. A pretraining head
/// only ever runs in training mode, so no running statistics are kept: a module clone
/// (the EMA teacher) would share them, and they never reach the exported encoder.
#[derive(Module, Debug)]
pub struct BatchStatNorm {
    gamma: Option<Param<Tensor<1>>>,
    beta: Option<Param<Tensor<1>>>,
}

impl BatchStatNorm {
    /// Whether the norm has a learned scale and shift.
    pub fn affine(&self) -> bool {
        self.gamma.is_some()
    }

    /// A norm of `channels` features, with learned scale and shift when `affine`.
    pub fn new(channels: usize, affine: bool, device: &Device) -> BatchStatNorm {
        BatchStatNorm {
            gamma: affine.then(|| Param::from_tensor(Tensor::ones([channels], device))),
            beta: affine.then(|| Param::from_tensor(Tensor::zeros([channels], device))),
        }
    }

    /// `(x − mean) / √(var + ε) · γ + β`, statistics over the batch.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let (var, mean) = x.clone().var_mean_bias(0);
        let mut y = (x - mean) / var.add_scalar(1e-5).sqrt();
        if let Some(gamma) = &self.gamma {
            y = y * gamma.val().unsqueeze_dim(0);
        }
        if let Some(beta) = &self.beta {
            y = y + beta.val().unsqueeze_dim(0);
        }
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn floats<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec().unwrap()
    }

    fn tiny(norm_last_layer: bool) -> (DinoHead, Device) {
        tiny_head(norm_last_layer, false)
    }

    fn tiny_head(norm_last_layer: bool, batch_norm: bool) -> (DinoHead, Device) {
        let device = Device::flex();
        let config = DinoHeadConfig {
            in_dim: 5,
            out_dim: 7,
            hidden_dim: 6,
            bottleneck_dim: 4,
            layers: 3,
            norm_last_layer,
            batch_norm,
        };
        (config.init(&device), device)
    }

    /// The forward pass computed by hand from the head's own weights, in f64, with and
    /// without batch norm (statistics over the rows, biased variance, ε = 1e-5, before
    /// the GELU of each hidden layer).
    #[test]
    fn forward_is_mlp_gelu_normalise_then_weight_normalised_projection() {
        for batch_norm in [false, true] {
            check_forward_by_hand(batch_norm);
        }
    }

    fn check_forward_by_hand(batch_norm: bool) {
        let (head, device) = tiny_head(true, batch_norm);
        assert_eq!(head.mlp().len(), 3);
        assert_eq!(
            head.norms.iter().filter(|n| n.is_some()).count(),
            if batch_norm { 2 } else { 0 }
        );
        let x = Tensor::<2>::random([3, 5], Distribution::Normal(0.0, 1.0), &device);
        let got = floats(head.forward(x.clone()));
        let mut rows: Vec<Vec<f64>> = floats(x)
            .chunks(5)
            .map(|r| r.iter().map(|&v| f64::from(v)).collect())
            .collect();
        for (i, layer) in head.mlp().iter().enumerate() {
            let w = floats(layer.weight.val());
            let b = floats(layer.bias.as_ref().unwrap().val());
            assert!(b.iter().all(|&v| v == 0.0), "zero biases");
            let out = b.len();
            let mut z: Vec<Vec<f64>> = rows
                .iter()
                .map(|r| {
                    (0..out)
                        .map(|o| {
                            r.iter()
                                .enumerate()
                                .map(|(k, v)| v * f64::from(w[k * out + o]))
                                .sum()
                        })
                        .collect()
                })
                .collect();
            if i < 2 && batch_norm {
                let n = z.len() as f64;
                for o in 0..out {
                    let mean = z.iter().map(|r| r[o]).sum::<f64>() / n;
                    let var = z.iter().map(|r| (r[o] - mean).powi(2)).sum::<f64>() / n;
                    for r in &mut z {
                        r[o] = (r[o] - mean) / (var + 1e-5).sqrt();
                    }
                }
            }
            if i < 2 {
                for v in z.iter_mut().flatten() {
                    *v = 0.5 * *v * (1.0 + libm_erf(*v / std::f64::consts::SQRT_2));
                }
            }
            rows = z;
        }
        let v = floats(head.direction.val());
        let want: Vec<f64> = rows
            .iter()
            .flat_map(|r| {
                let norm = r.iter().map(|x| x * x).sum::<f64>().sqrt();
                let v = &v;
                (0..7).map(move |o| {
                    let column = (0..4)
                        .map(|k| f64::from(v[k * 7 + o]).powi(2))
                        .sum::<f64>()
                        .sqrt();
                    (0..4)
                        .map(|k| r[k] / norm * f64::from(v[k * 7 + o]) / column)
                        .sum::<f64>()
                })
            })
            .collect();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert!(g.is_finite(), "{got:?}");
            assert!((f64::from(*g) - w).abs() < 1e-5, "{got:?} vs {want:?}");
        }
    }

    /// `forward_crops` runs the head once over every crop: with batch norm its logits
    /// are those of the concatenated rows, unlike a pass per crop (whose statistics
    /// would be each crop's own); without, the same as a pass per crop.
    #[test]
    fn crops_share_the_batch_norm_statistics() {
        let max_diff = |a: Vec<f32>, b: Vec<f32>| {
            assert_eq!(a.len(), b.len());
            a.iter()
                .zip(&b)
                .map(|(x, y)| {
                    assert!(x.is_finite() && y.is_finite());
                    (x - y).abs()
                })
                .fold(0f32, f32::max)
        };
        for batch_norm in [false, true] {
            let (head, device) = tiny_head(true, batch_norm);
            let a = Tensor::<2>::random([3, 5], Distribution::Normal(0.0, 1.0), &device);
            let b = Tensor::<2>::random([4, 5], Distribution::Normal(1.0, 2.0), &device);
            let crops = head.forward_crops(vec![a.clone(), b.clone()]);
            assert_eq!(crops[0].dims(), [3, 7]);
            assert_eq!(crops[1].dims(), [4, 7]);
            let got = floats(Tensor::cat(crops, 0));
            let joint = floats(head.forward(Tensor::cat(vec![a.clone(), b.clone()], 0)));
            assert!(max_diff(got.clone(), joint) < 1e-6);
            let apart = floats(Tensor::cat(vec![head.forward(a), head.forward(b)], 0));
            let gap = max_diff(got, apart);
            if batch_norm {
                assert!(gap > 1e-2, "per-crop statistics would give the same: {gap}");
            } else {
                assert!(gap < 1e-6, "{gap}");
            }
        }
    }

    /// With the gain fixed at 1, each output unit's weight has unit norm whatever the
    /// scale of `v`; with a trained gain it starts at 1 too.
    #[test]
    fn last_layer_is_weight_normalised() {
        for norm_last_layer in [true, false] {
            let (head, _) = tiny(norm_last_layer);
            assert_eq!(head.gain.is_none(), norm_last_layer);
            let w = floats(head.last_weight());
            for o in 0..7 {
                let norm: f32 = (0..4).map(|k| w[k * 7 + o].powi(2)).sum::<f32>().sqrt();
                assert!((norm - 1.0).abs() < 1e-6, "unit {o}: {norm}");
            }
        }
    }

    /// erf by its Taylor series, converged to f64 precision for the |x| < 3 of these
    /// small pre-activations.
    fn libm_erf(x: f64) -> f64 {
        let mut term = x;
        let mut sum = x;
        for n in 1..60 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        2.0 / std::f64::consts::PI.sqrt() * sum
    }

    /// The default keeps a bias only where no batch norm follows; `MlpBias::Never`
    /// (MoCo v3's `_build_mlp`) drops every bias, also on a last layer without a norm.
    #[test]
    fn mlp_bias_is_an_explicit_choice() {
        let device = Device::flex();
        let config = MlpConfig {
            dims: vec![6, 5, 4],
            batch_norm: true,
            output_norm: false,
        };
        let biases =
            |mlp: &Mlp| -> Vec<bool> { mlp.layers().iter().map(|l| l.bias.is_some()).collect() };
        assert_eq!(biases(&config.init(&device)), [false, true]);
        let bias_free = config.init_with_bias(MlpBias::Never, &device);
        assert_eq!(biases(&bias_free), [false, false]);
        assert_eq!(
            bias_free
                .norms()
                .iter()
                .map(Option::is_some)
                .collect::<Vec<_>>(),
            [true, false]
        );
        // The forward pass still runs (batch statistics over 3 rows).
        let x = Tensor::<2>::random([3, 6], Distribution::Normal(0.0, 1.0), &device);
        assert_eq!(bias_free.forward(x).dims(), [3, 4]);
        let plain = MlpConfig {
            dims: vec![6, 5, 4],
            batch_norm: false,
            output_norm: false,
        };
        assert_eq!(biases(&plain.init(&device)), [true, true]);
        assert_eq!(MlpBias::default(), MlpBias::UnlessNormed);
    }

    /// PyTorch's `BatchNorm1d` in training mode on a hand-checked batch.
    #[test]
    fn batch_norm_uses_the_batch_statistics() {
        let device = Device::flex();
        let x = Tensor::<2>::from_data(
            burn::tensor::TensorData::new(vec![1.0f32, 2.0, 3.0, 6.0], [2, 2]),
            &device,
        );
        let y = floats(BatchStatNorm::new(2, true, &device).forward(x));
        let (a, b) = (1.0 / (1.0f32 + 1e-5).sqrt(), 2.0 / (4.0f32 + 1e-5).sqrt());
        for (got, want) in y.iter().zip([-a, -b, a, b]) {
            assert!((got - want).abs() < 1e-6, "{y:?}");
        }
    }
}
