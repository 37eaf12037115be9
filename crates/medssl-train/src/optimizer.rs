//! AdamW for segmentation fine-tuning and pretraining: gradient clipping of the global
//! norm (PyTorch's `clip_grad_norm_`, the default) or of each parameter's norm (DINO's
//! `utils.clip_gradients`), both computed on the host in a fixed order so every run and
//! resume clips alike, an encoder learning rate of its own (a multiplier, a factor given
//! per step that freezes it at 0, and layer-wise decay over the Swin encoder's stages),
//! and decoupled weight decay at a coefficient given per step ([`decay`]: one rule for
//! both kinds of run, exemptions configurable).

mod decay;

use burn::module::ParamGroup;
use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::lr_scheduler::constant::ConstantLr;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::StateError;

pub use decay::DecayExempt;
pub use medssl_ssl::ClipMode;

/// The Swin encoder's parameter groups from the input upwards, each a module-path
/// prefix (`layers1` also covers the `use_v2` conv block `layers1c`).
const ENCODER_DEPTHS: [&str; 5] = [
    "swin_vit.patch_embed",
    "swin_vit.layers1",
    "swin_vit.layers2",
    "swin_vit.layers3",
    "swin_vit.layers4",
];

/// Optimiser settings of a fine-tuning run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerConfig {
    /// AdamW decoupled weight decay (fine-tuning: the coefficient of every step).
    pub weight_decay: f64,
    /// Parameters the decay leaves alone: `"none"` (MONAI's recipes) or `"vectors"`
    /// (biases, norms, tokens and relative position tables, as DINO's and SimMIM's
    /// parameter groups).
    pub decay_exempt: DecayExempt,
    /// Adam β1.
    pub beta1: f64,
    /// Adam β2.
    pub beta2: f64,
    /// Adam ε.
    pub epsilon: f64,
    /// Clip gradients to this L2 norm (none when absent), as `clip_mode` says.
    pub grad_clip_norm: Option<f64>,
    /// `"global"`: the norm of all gradients together (PyTorch's `clip_grad_norm_`);
    /// `"per_parameter"`: each parameter's gradient on its own (DINO's
    /// `clip_gradients`).
    pub clip_mode: ClipMode,
    /// The Swin encoder's learning rate relative to `lr` (pretrained weights are
    /// usually fine-tuned more gently than the new decoder: nnssl uses a tenth).
    pub encoder_lr_scale: f64,
    /// Layer-wise decay: encoder stage `s` of 5 (patch embedding = 0) trains with
    /// `lr · decay^(5 - s)`; the convolutional encoder/decoder keep `lr`. 1 = off.
    pub layer_decay: f64,
}

impl Default for OptimizerConfig {
    fn default() -> OptimizerConfig {
        OptimizerConfig {
            weight_decay: 1e-5,
            decay_exempt: DecayExempt::None,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            grad_clip_norm: None,
            clip_mode: ClipMode::Global,
            encoder_lr_scale: 1.0,
            layer_decay: 1.0,
        }
    }
}

/// AdamW plus the settings above. Its state (Adam moments) serialises with
/// [`SegmentationOptimizer::to_bytes`] for resumable runs.
#[derive(Clone)]
pub struct SegmentationOptimizer {
    config: OptimizerConfig,
    adam: ModuleOptimizer,
    /// Parameters whose gradient the last step scaled down.
    clipped: usize,
}

impl SegmentationOptimizer {
    /// A fresh optimiser (zero moments).
    pub fn new(config: OptimizerConfig) -> SegmentationOptimizer {
        let adam = AdamWConfig::new()
            .with_beta_1(config.beta1 as f32)
            .with_beta_2(config.beta2 as f32)
            .with_epsilon(config.epsilon as f32)
            .with_weight_decay(0.0)
            .init();
        SegmentationOptimizer {
            config,
            adam,
            clipped: 0,
        }
    }

    /// The settings.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// True when the step whose global gradient norm was `norm` scaled gradients down.
    /// Global clipping: when max / (norm + 1e-6) < 1 (PyTorch's `clip_grad_norm_`), a
    /// function of `norm` alone. Per-parameter clipping: when the last
    /// [`step`](Self::step) clipped at least one parameter (`norm` is not used).
    pub fn clips(&self, norm: f64) -> bool {
        match self.config.clip_mode {
            ClipMode::Global => self
                .config
                .grad_clip_norm
                .is_some_and(|max_norm| max_norm / (norm + 1e-6) < 1.0),
            ClipMode::PerParameter => self.clipped > 0,
        }
    }

    /// Parameters whose gradient the last [`step`](Self::step) scaled down: global
    /// clipping, every parameter with a gradient when the global norm was clipped (else
    /// none); per-parameter clipping, those whose own gradient norm was over the limit.
    pub fn clipped_params(&self) -> usize {
        self.clipped
    }

    /// One update of `model` with `grads` at base learning rate `lr` and weight decay
    /// `weight_decay` (the coefficient of this step; [`OptimizerConfig::weight_decay`]
    /// for a constant one). The Swin encoder's rate is further multiplied by `encoder`
    /// (the fine-tuning strategy's factor of this step) and by
    /// [`OptimizerConfig::encoder_lr_scale`]; at `encoder` 0 its gradients are dropped, so
    /// it neither moves nor decays and its Adam moments start when it joins. Returns the global gradient norm before clipping (for the
    /// log; in both clipping modes). A non-finite norm leaves `model` as it was: the
    /// caller stops the run rather than save NaN weights.
    pub fn step<M: Module>(
        &mut self,
        lr: f64,
        encoder: f64,
        weight_decay: f64,
        model: M,
        mut grads: GradientsParams,
    ) -> (M, f64) {
        self.clipped = 0;
        if encoder == 0.0 {
            drop_encoder_grads(&model, &mut grads);
        }
        let norm = match (self.config.clip_mode, self.config.grad_clip_norm) {
            (ClipMode::PerParameter, Some(max_norm)) => {
                let (norm, clipped) = clip_each(&model, &mut grads, max_norm);
                if !norm.is_finite() {
                    return (model, norm);
                }
                self.clipped = clipped;
                norm
            }
            _ => {
                let norm = global_norm(&model, &mut grads);
                if !norm.is_finite() {
                    return (model, norm);
                }
                if let Some(max_norm) = self.config.grad_clip_norm.filter(|_| self.clips(norm)) {
                    self.clipped = scale_grads(&model, &mut grads, max_norm / (norm + 1e-6));
                }
                norm
            }
        };
        let group_lr = |path: &str| self.group_lr(lr, encoder, path);
        let model = decay::apply(
            model,
            &grads,
            &group_lr,
            weight_decay,
            self.config.decay_exempt,
        );
        let model =
            if encoder * self.config.encoder_lr_scale == 1.0 && self.config.layer_decay == 1.0 {
                self.adam.step(lr, model, grads)
            } else {
                let mut groups = ModuleLrScheduler::new(ConstantLr::from(lr));
                for (stage, prefix) in ENCODER_DEPTHS.iter().enumerate() {
                    groups = groups.with_group(
                        ParamGroup::from_predicate(*prefix),
                        ConstantLr::from(self.stage_lr(lr, encoder, stage)),
                    );
                }
                self.adam.step(groups.step(), model, grads)
            };
        (model, norm)
    }

    /// The learning rate of encoder stage `stage` (0: patch embedding) at base rate
    /// `lr` and step factor `encoder`: the encoder's scale, then layer-wise decay.
    fn stage_lr(&self, lr: f64, encoder: f64, stage: usize) -> f64 {
        lr * encoder * self.config.encoder_lr_scale * self.config.layer_decay.powi(5 - stage as i32)
    }

    /// The learning rate of the parameter at module path `path`: its encoder stage's
    /// (matched as the step's parameter groups match it), else `lr`.
    fn group_lr(&self, lr: f64, encoder: f64, path: &str) -> f64 {
        ENCODER_DEPTHS
            .iter()
            .rposition(|prefix| path.contains(prefix))
            .map_or(lr, |stage| self.stage_lr(lr, encoder, stage))
    }

    /// The Adam moments and step counts, for a checkpoint.
    pub fn to_bytes(&self) -> Result<Vec<u8>, StateError> {
        self.adam
            .into_bytes()
            .map(|b| b.to_vec())
            .map_err(StateError::Serialise)
    }

    /// Restores the state saved by [`to_bytes`](Self::to_bytes).
    pub fn load_bytes(self, bytes: &[u8]) -> Result<SegmentationOptimizer, StateError> {
        let adam = self
            .adam
            .from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes.to_vec()))
            .map_err(StateError::Deserialise)?;
        Ok(SegmentationOptimizer {
            adam,
            clipped: 0,
            ..self
        })
    }
}

/// What [`GradVisitor`] does to each parameter's gradient.
enum GradAction {
    /// Accumulate the squared L2 norm.
    SumSquares(f64),
    /// Multiply by a factor, counting the gradients scaled.
    Scale { factor: f64, scaled: usize },
    /// DINO's `clip_gradients`: scale each gradient whose L2 norm `n` gives
    /// `max / (n + 1e-6) < 1` by that factor; accumulate the squared norms before
    /// clipping (in the order [`GradAction::SumSquares`] sums them) and count the
    /// gradients clipped.
    ClipEach {
        max: f64,
        total: f64,
        clipped: usize,
    },
    /// Remove the gradients of parameters under a module path prefix.
    DropUnder(&'static str),
    /// Remove the gradients of these parameters.
    Drop(Vec<ParamId>),
}

/// Walks the model's float parameters, tracking their module path, and applies a
/// [`GradAction`] to their gradients.
struct GradVisitor<'a> {
    grads: &'a mut GradientsParams,
    action: GradAction,
    path: Vec<String>,
}

impl<'a> GradVisitor<'a> {
    fn run<M: Module>(model: &M, grads: &'a mut GradientsParams, action: GradAction) -> GradAction {
        let mut visitor = GradVisitor {
            grads,
            action,
            path: Vec::new(),
        };
        model.visit(&mut visitor);
        visitor.action
    }
}

impl ModuleVisitor for GradVisitor<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        match &mut self.action {
            GradAction::SumSquares(total) => {
                if let Some(g) = self.grads.get::<D>(param.id) {
                    *total += sum_of_squares(g);
                }
            }
            GradAction::Scale { factor, scaled } => {
                if let Some(g) = self.grads.remove::<D>(param.id) {
                    self.grads.register(param.id, g * *factor);
                    *scaled += 1;
                }
            }
            GradAction::ClipEach {
                max,
                total,
                clipped,
            } => {
                if let Some(g) = self.grads.get::<D>(param.id) {
                    let squares = sum_of_squares(g);
                    *total += squares;
                    let coefficient = *max / (squares.sqrt() + 1e-6);
                    if coefficient < 1.0 {
                        let g = self.grads.remove::<D>(param.id).expect("got it above");
                        self.grads.register(param.id, g * coefficient);
                        *clipped += 1;
                    }
                }
            }
            GradAction::DropUnder(prefix) => {
                if self.path.join(".").starts_with(*prefix) {
                    self.grads.remove::<D>(param.id);
                }
            }
            GradAction::Drop(ids) => {
                if ids.contains(&param.id) {
                    self.grads.remove::<D>(param.id);
                }
            }
        }
    }
}

/// The sum of the squares of `g`'s values, in f64 and in index order on the host: a
/// backend's parallel reduction sums in an order that changes from run to run, and the
/// clipping factor (like the logged norm) must be the same in every run and resume.
fn sum_of_squares<const D: usize>(g: Tensor<D>) -> f64 {
    let data = g.into_data();
    match data.as_slice::<f32>() {
        Ok(values) => values.iter().map(|&v| f64::from(v) * f64::from(v)).sum(),
        Err(_) => data.iter::<f64>().map(|v| v * v).sum(),
    }
}

/// The L2 norm of all gradients together.
fn global_norm<M: Module>(model: &M, grads: &mut GradientsParams) -> f64 {
    match GradVisitor::run(model, grads, GradAction::SumSquares(0.0)) {
        GradAction::SumSquares(total) => total.sqrt(),
        _ => unreachable!("the action is returned as given"),
    }
}

/// Multiplies every gradient by `factor`; returns how many there were.
fn scale_grads<M: Module>(model: &M, grads: &mut GradientsParams, factor: f64) -> usize {
    match GradVisitor::run(model, grads, GradAction::Scale { factor, scaled: 0 }) {
        GradAction::Scale { scaled, .. } => scaled,
        _ => unreachable!("the action is returned as given"),
    }
}

/// Per-parameter clipping at `max` (see [`GradAction::ClipEach`]); returns the global
/// norm before clipping and the number of gradients clipped.
fn clip_each<M: Module>(model: &M, grads: &mut GradientsParams, max: f64) -> (f64, usize) {
    let action = GradAction::ClipEach {
        max,
        total: 0.0,
        clipped: 0,
    };
    match GradVisitor::run(model, grads, action) {
        GradAction::ClipEach { total, clipped, .. } => (total.sqrt(), clipped),
        _ => unreachable!("the action is returned as given"),
    }
}

fn drop_encoder_grads<M: Module>(model: &M, grads: &mut GradientsParams) {
    GradVisitor::run(model, grads, GradAction::DropUnder("swin_vit"));
}

/// Removes the gradients of the parameters `ids` of `model`, so the step leaves them
/// as they are (DINO's last head layer in its first epoch). The visitor knows each
/// parameter's rank, which `GradientsParams::remove` needs.
pub fn drop_grads<M: Module>(model: &M, grads: &mut GradientsParams, ids: Vec<ParamId>) {
    GradVisitor::run(model, grads, GradAction::Drop(ids));
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution, Int, TensorData};
    use medssl_model::{SwinUnetr, SwinUnetrConfig};
    use medssl_test_support::max_abs_diff;

    use crate::DiceCeLoss;

    fn tiny() -> (SwinUnetr, GradientsParams, Device) {
        let device = Device::flex().autodiff();
        let model =
            SwinUnetr::new(&SwinUnetrConfig::new(1, 2).with_feature_size(12), &device).unwrap();
        let x = Tensor::<5>::random([1, 1, 32, 32, 32], Distribution::Normal(0.0, 1.0), &device);
        let labels: Vec<i64> = (0..32 * 32 * 32).map(|i| i64::from(i % 7 == 0)).collect();
        let y = Tensor::<5, Int>::from_data(TensorData::new(labels, [1, 1, 32, 32, 32]), &device);
        let loss = DiceCeLoss::default().forward(model.forward(x).unwrap(), y);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        (model, grads, device)
    }

    fn values<const D: usize>(t: &Tensor<D>) -> Vec<f32> {
        t.clone().into_data().try_to_vec::<f32>().unwrap()
    }

    /// The largest change of a weight; panics if either side is not finite.
    fn max_change<const D: usize>(before: &Tensor<D>, after: &Tensor<D>) -> f64 {
        f64::from(max_abs_diff("weight", &values(after), &values(before)))
    }

    /// With zero gradients Adam moves nothing, so one step is the decay alone: each
    /// parameter shrinks by `1 − lr_p · wd` at its own stage's rate under layer-wise
    /// decay (the patch embedding at `lr · 0.5⁵`, the output convolution at `lr`), as
    /// PyTorch's `AdamW` does per parameter group.
    #[test]
    fn weight_decay_follows_each_parameters_rate() {
        let device = Device::flex().autodiff();
        let model =
            SwinUnetr::new(&SwinUnetrConfig::new(1, 2).with_feature_size(12), &device).unwrap();
        let x = Tensor::<5>::ones([1, 1, 32, 32, 32], &device);
        let loss = model.forward(x).unwrap().sum().mul_scalar(0.0);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let embed = model.swin_vit.patch_embed.proj.weight.val();
        let out = model.out.conv.conv.weight.val();
        let mut optimizer = SegmentationOptimizer::new(OptimizerConfig {
            layer_decay: 0.5,
            ..OptimizerConfig::default()
        });
        let (lr, wd) = (0.1, 0.5);
        let (model, _) = optimizer.step(lr, 1.0, wd, model, grads);
        for (before, after, rate) in [
            (
                &embed,
                model.swin_vit.patch_embed.proj.weight.val(),
                lr * 0.5f64.powi(5),
            ),
            (&out, model.out.conv.conv.weight.val(), lr),
        ] {
            let want: Vec<f32> = values(before)
                .iter()
                .map(|&v| (f64::from(v) * (1.0 - rate * wd)) as f32)
                .collect();
            let diff = max_abs_diff("decayed weight", &values(&after), &want);
            assert!(diff < 1e-7, "rate {rate}: {diff}");
            assert!(max_change(before, &after) > 1e-4, "rate {rate}: no decay");
        }
    }

    /// At an encoder factor of 0 (a frozen encoder) its weights neither move nor decay
    /// (a strong decay here, which would show).
    #[test]
    fn frozen_encoder_keeps_swin_weights() {
        let (model, grads, _) = tiny();
        let embed = model.swin_vit.patch_embed.proj.weight.val();
        let out = model.out.conv.conv.weight.val();
        let mut optimizer = SegmentationOptimizer::new(OptimizerConfig::default());
        let (model, _) = optimizer.step(1e-3, 0.0, 0.5, model, grads);
        assert_eq!(
            max_change(&embed, &model.swin_vit.patch_embed.proj.weight.val()),
            0.0
        );
        assert!(max_change(&out, &model.out.conv.conv.weight.val()) > 5e-4);
    }

    /// Adam's first step moves every weight with a non-zero gradient by about the
    /// learning rate (m̂ / √v̂ = ±1), so each group's step size shows its rate.
    #[test]
    fn layer_decay_scales_the_encoder_stages() {
        let (model, grads, _) = tiny();
        let embed = model.swin_vit.patch_embed.proj.weight.val();
        let out = model.out.conv.conv.weight.val();
        let mut optimizer = SegmentationOptimizer::new(OptimizerConfig {
            layer_decay: 0.5,
            weight_decay: 0.0,
            ..OptimizerConfig::default()
        });
        let (model, _) = optimizer.step(1e-3, 1.0, 0.0, model, grads);
        let embed_step = max_change(&embed, &model.swin_vit.patch_embed.proj.weight.val());
        let out_step = max_change(&out, &model.out.conv.conv.weight.val());
        assert!((out_step - 1e-3).abs() < 1e-5, "{out_step}");
        assert!((embed_step - 1e-3 / 32.0).abs() < 1e-6, "{embed_step}");
    }

    /// The encoder's first Adam step is `lr · factor · encoder_lr_scale`, on top of
    /// layer-wise decay (stage 3 at 0.5², the patch embedding at 0.5⁵); the decoder keeps
    /// `lr`.
    #[test]
    fn the_encoder_rate_is_the_step_factor_times_its_scale() {
        let (model, grads, _) = tiny();
        let embed = model.swin_vit.patch_embed.proj.weight.val();
        let deep = model.swin_vit.layers3[0].blocks[0].mlp.linear1.weight.val();
        let out = model.out.conv.conv.weight.val();
        let mut optimizer = SegmentationOptimizer::new(OptimizerConfig {
            encoder_lr_scale: 0.2,
            layer_decay: 0.5,
            weight_decay: 0.0,
            ..OptimizerConfig::default()
        });
        let (model, _) = optimizer.step(1e-3, 0.5, 0.0, model, grads);
        let out_step = max_change(&out, &model.out.conv.conv.weight.val());
        let deep_step = max_change(
            &deep,
            &model.swin_vit.layers3[0].blocks[0].mlp.linear1.weight.val(),
        );
        let embed_step = max_change(&embed, &model.swin_vit.patch_embed.proj.weight.val());
        assert!((out_step - 1e-3).abs() < 1e-5, "{out_step}");
        assert!((deep_step - 1e-4 * 0.25).abs() < 1e-6, "{deep_step}");
        assert!((embed_step - 1e-4 / 32.0).abs() < 1e-7, "{embed_step}");
    }

    #[test]
    fn clipping_scales_by_the_global_norm() {
        let (model, mut grads, _) = tiny();
        let norm = global_norm(&model, &mut grads);
        assert!(norm.is_finite() && norm > 0.0);
        let out_grad = grads.get::<5>(model.out.conv.conv.weight.id).unwrap();
        scale_grads(&model, &mut grads, 0.25);
        assert!((global_norm(&model, &mut grads) - 0.25 * norm).abs() < 1e-5 * norm);
        let scaled = grads.get::<5>(model.out.conv.conv.weight.id).unwrap();
        for (a, b) in values(&out_grad).iter().zip(values(&scaled)) {
            assert!((a * 0.25 - b).abs() <= 1e-7 * a.abs().max(1e-3));
        }
    }

    #[test]
    fn a_non_finite_gradient_is_not_applied() {
        let (model, mut grads, _) = tiny();
        let before = values(&model.out.conv.conv.weight.val());
        scale_grads(&model, &mut grads, f64::INFINITY);
        let config = OptimizerConfig {
            grad_clip_norm: Some(1.0),
            ..OptimizerConfig::default()
        };
        let mut optimizer = SegmentationOptimizer::new(config);
        let (model, norm) = optimizer.step(1e-3, 1.0, 0.0, model, grads);
        assert!(!norm.is_finite(), "{norm}");
        assert_eq!(values(&model.out.conv.conv.weight.val()), before);
        assert!(optimizer.clips(1.0) && !optimizer.clips(1.0 - 2e-6));
        assert!(!SegmentationOptimizer::new(OptimizerConfig::default()).clips(1e30));
    }

    /// Two parameters with gradients set by hand: `a` of norm 5, `b` of norm 0.5.
    #[derive(Module, Debug)]
    struct Pair {
        a: Param<Tensor<1>>,
        b: Param<Tensor<2>>,
    }

    fn pair() -> (Pair, GradientsParams) {
        // Parameters on the autodiff device the optimiser steps, gradients on the
        // inner device (where `backward` puts them).
        let train_device = Device::flex().autodiff();
        let device = Device::flex();
        let pair = Pair {
            a: Param::from_tensor(Tensor::<1>::zeros([2], &train_device)),
            b: Param::from_tensor(Tensor::<2>::zeros([2, 2], &train_device)),
        };
        let mut grads = GradientsParams::new();
        let a = Tensor::<1>::from_data(TensorData::new(vec![3.0f32, 4.0], [2]), &device);
        let b = TensorData::new(vec![0.3f32, 0.4, 0.0, 0.0], [2, 2]);
        grads.register(pair.a.id, a);
        grads.register(pair.b.id, Tensor::<2>::from_data(b, &device));
        (pair, grads)
    }

    fn grad_values(pair: &Pair, grads: &GradientsParams) -> (Vec<f32>, Vec<f32>) {
        (
            values(&grads.get::<1>(pair.a.id).unwrap()),
            values(&grads.get::<2>(pair.b.id).unwrap()),
        )
    }

    fn assert_close(got: &[f32], want: &[f64]) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((f64::from(*g) - w).abs() < 1e-6, "{got:?} != {want:?}");
        }
    }

    /// Global clipping at 1: the norm of both is √25.25, and both gradients are scaled
    /// by 1 / (√25.25 + 1e-6).
    #[test]
    fn global_clipping_scales_every_gradient_by_the_total_norm() {
        let (pair, mut grads) = pair();
        let norm = global_norm(&pair, &mut grads);
        assert!((norm - 25.25f64.sqrt()).abs() < 1e-6, "{norm}");
        let factor = 1.0 / (25.25f64.sqrt() + 1e-6);
        assert_eq!(scale_grads(&pair, &mut grads, factor), 2);
        let (a, b) = grad_values(&pair, &grads);
        assert_close(&a, &[3.0 * factor, 4.0 * factor]);
        assert_close(&b, &[0.3 * factor, 0.4 * factor, 0.0, 0.0]);

        // The same through a step: global is the default mode, and it counts both.
        let (pair, grads) = self::pair();
        let mut optimizer = SegmentationOptimizer::new(OptimizerConfig {
            grad_clip_norm: Some(1.0),
            ..OptimizerConfig::default()
        });
        assert_eq!(optimizer.config().clip_mode, ClipMode::Global);
        let (_, norm) = optimizer.step(1e-3, 1.0, 0.0, pair, grads);
        assert!((norm - 25.25f64.sqrt()).abs() < 1e-6, "{norm}");
        assert!(optimizer.clips(norm));
        assert_eq!(optimizer.clipped_params(), 2);
        // Under the limit: nothing clipped.
        let (pair, grads) = self::pair();
        let mut optimizer = SegmentationOptimizer::new(OptimizerConfig {
            grad_clip_norm: Some(6.0),
            ..OptimizerConfig::default()
        });
        let (_, norm) = optimizer.step(1e-3, 1.0, 0.0, pair, grads);
        assert!(!optimizer.clips(norm));
        assert_eq!(optimizer.clipped_params(), 0);
    }

    /// DINO's `clip_gradients` at 1: `a` (norm 5) is scaled by 1 / (5 + 1e-6), `b`
    /// (norm 0.5, coefficient ≈ 2) is left alone; the reported norm is still the global
    /// norm before clipping. At 5, `a` is scaled by 5 / (5 + 1e-6) < 1 (clipped by a
    /// hair, as in DINO).
    #[test]
    fn per_parameter_clipping_scales_each_gradient_by_its_own_norm() {
        let (pair, mut grads) = pair();
        let (norm, clipped) = clip_each(&pair, &mut grads, 1.0);
        assert!((norm - 25.25f64.sqrt()).abs() < 1e-6, "{norm}");
        assert_eq!(clipped, 1);
        let (a, b) = grad_values(&pair, &grads);
        let factor = 1.0 / (5.0 + 1e-6);
        assert_close(&a, &[3.0 * factor, 4.0 * factor]);
        assert_close(&a, &[0.6, 0.8]);
        assert_eq!(b, vec![0.3f32, 0.4, 0.0, 0.0]);

        let (pair, mut grads) = self::pair();
        assert_eq!(clip_each(&pair, &mut grads, 5.0).1, 1);
        let (a, _) = grad_values(&pair, &grads);
        assert_close(&a, &[3.0 * 5.0 / (5.0 + 1e-6), 4.0 * 5.0 / (5.0 + 1e-6)]);
        assert!(a[0] < 3.0);
        let (pair, mut grads) = self::pair();
        assert_eq!(clip_each(&pair, &mut grads, 0.1).1, 2);
        let (a, b) = grad_values(&pair, &grads);
        assert_close(&a, &[0.3 / (5.0 + 1e-6), 0.4 / (5.0 + 1e-6)]);
        assert_close(&b, &[0.03 / (0.5 + 1e-6), 0.04 / (0.5 + 1e-6), 0.0, 0.0]);

        // Through a step: the count and `clips` follow the parameters clipped.
        let config = OptimizerConfig {
            grad_clip_norm: Some(1.0),
            clip_mode: ClipMode::PerParameter,
            ..OptimizerConfig::default()
        };
        let (pair, grads) = self::pair();
        let mut optimizer = SegmentationOptimizer::new(config);
        let (_, norm) = optimizer.step(1e-3, 1.0, 0.0, pair, grads);
        assert!((norm - 25.25f64.sqrt()).abs() < 1e-6, "{norm}");
        assert_eq!(optimizer.clipped_params(), 1);
        assert!(optimizer.clips(norm));
        let (pair, grads) = self::pair();
        let mut optimizer = SegmentationOptimizer::new(OptimizerConfig {
            grad_clip_norm: Some(10.0),
            ..config
        });
        let (_, norm) = optimizer.step(1e-3, 1.0, 0.0, pair, grads);
        assert_eq!(optimizer.clipped_params(), 0);
        assert!(!optimizer.clips(norm));
    }

    /// The clipping mode and the decay exemptions are written and read by name; an
    /// unknown name, or a table without the key, is refused naming it.
    #[test]
    fn clip_mode_and_decay_exempt_read_by_name() {
        let text = toml::to_string(&OptimizerConfig::default()).unwrap();
        assert!(text.contains("clip_mode = \"global\""), "{text}");
        assert!(text.contains("decay_exempt = \"none\""), "{text}");
        let with = |key: &str, value: &str| {
            let mut table: toml::Table = text.parse().unwrap();
            table.insert(key.into(), toml::Value::String(value.into()));
            toml::from_str::<OptimizerConfig>(&toml::to_string(&table).unwrap())
        };
        assert_eq!(
            with("clip_mode", "per_parameter").unwrap().clip_mode,
            ClipMode::PerParameter
        );
        assert_eq!(
            with("decay_exempt", "vectors").unwrap().decay_exempt,
            DecayExempt::Vectors
        );
        assert!(with("clip_mode", "each").is_err());
        let mut missing: toml::Table = text.parse().unwrap();
        missing.remove("clip_mode");
        let err =
            toml::from_str::<OptimizerConfig>(&toml::to_string(&missing).unwrap()).unwrap_err();
        assert!(err.to_string().contains("clip_mode"), "{err}");
    }

    /// A restored optimiser continues exactly like the original: the next step from
    /// the same weights and gradients gives bit-identical weights.
    #[test]
    fn state_round_trips_through_bytes() {
        let (model, grads, device) = tiny();
        let mut optimizer = SegmentationOptimizer::new(OptimizerConfig::default());
        let (model, _) = optimizer.step(1e-3, 1.0, 0.0, model, grads);
        let bytes = optimizer.to_bytes().unwrap();
        let mut restored = SegmentationOptimizer::new(OptimizerConfig::default())
            .load_bytes(&bytes)
            .unwrap();
        let grads_of = |model: &SwinUnetr| {
            let x = Tensor::<5>::ones([1, 1, 32, 32, 32], &device);
            let labels = Tensor::<5, Int>::ones([1, 1, 32, 32, 32], &device);
            let loss = DiceCeLoss::default().forward(model.forward(x).unwrap(), labels);
            GradientsParams::from_grads(loss.backward(), model)
        };
        let (a, _) = optimizer.step(1e-3, 1.0, 0.0, model.clone(), grads_of(&model));
        let (b, _) = restored.step(1e-3, 1.0, 0.0, model.clone(), grads_of(&model));
        let weight = |m: &SwinUnetr| values(&m.swin_vit.patch_embed.proj.weight.val());
        assert_eq!(weight(&a), weight(&b));
        assert_eq!(
            values(&a.out.conv.conv.weight.val()),
            values(&b.out.conv.conv.weight.val())
        );
        let err = SegmentationOptimizer::new(OptimizerConfig::default())
            .load_bytes(&bytes[..bytes.len() / 2])
            .err()
            .unwrap();
        assert!(matches!(err, StateError::Deserialise(_)), "{err}");
        assert!(
            err.to_string()
                .starts_with("cannot read the optimiser state: "),
            "{err}"
        );
    }
}
