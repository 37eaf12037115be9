//! AdamW for segmentation fine-tuning: global-norm gradient clipping (PyTorch's
//! `clip_grad_norm_`, not Burn's per-parameter clipping), an optionally frozen encoder,
//! and layer-wise learning-rate decay over the Swin encoder's stages.

use burn::module::ParamGroup;
use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::lr_scheduler::constant::ConstantLr;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

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
#[serde(default, deny_unknown_fields)]
pub struct OptimizerConfig {
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Adam β1.
    pub beta1: f64,
    /// Adam β2.
    pub beta2: f64,
    /// Adam ε.
    pub epsilon: f64,
    /// Clip the global L2 norm of all gradients to this value (none when absent).
    pub grad_clip_norm: Option<f64>,
    /// Do not train the Swin encoder (linear-probe-like transfer).
    pub freeze_encoder: bool,
    /// Layer-wise decay: encoder stage `s` of 5 (patch embedding = 0) trains with
    /// `lr · decay^(5 - s)`; the convolutional encoder/decoder keep `lr`. 1 = off.
    pub layer_decay: f64,
}

impl Default for OptimizerConfig {
    fn default() -> OptimizerConfig {
        OptimizerConfig {
            weight_decay: 1e-5,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            grad_clip_norm: None,
            freeze_encoder: false,
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
}

impl SegmentationOptimizer {
    /// A fresh optimiser (zero moments).
    pub fn new(config: OptimizerConfig) -> SegmentationOptimizer {
        let adam = AdamWConfig::new()
            .with_beta_1(config.beta1 as f32)
            .with_beta_2(config.beta2 as f32)
            .with_epsilon(config.epsilon as f32)
            .with_weight_decay(config.weight_decay as f32)
            .init();
        SegmentationOptimizer { config, adam }
    }

    /// The settings.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// True when a gradient of global norm `norm` is scaled down by clipping (PyTorch's
    /// `clip_grad_norm_`: when max / (norm + 1e-6) < 1).
    pub fn clips(&self, norm: f64) -> bool {
        self.config
            .grad_clip_norm
            .is_some_and(|max_norm| max_norm / (norm + 1e-6) < 1.0)
    }

    /// One update of `model` with `grads` at base learning rate `lr`. Returns the
    /// global gradient norm before clipping (for the log). A non-finite norm leaves
    /// `model` as it was: the caller stops the run rather than save NaN weights.
    pub fn step<M: Module>(&mut self, lr: f64, model: M, mut grads: GradientsParams) -> (M, f64) {
        if self.config.freeze_encoder {
            drop_encoder_grads(&model, &mut grads);
        }
        let norm = global_norm(&model, &mut grads);
        if !norm.is_finite() {
            return (model, norm);
        }
        if let Some(max_norm) = self.config.grad_clip_norm.filter(|_| self.clips(norm)) {
            scale_grads(&model, &mut grads, max_norm / (norm + 1e-6));
        }
        let model = if self.config.layer_decay == 1.0 {
            self.adam.step(lr, model, grads)
        } else {
            let mut groups = ModuleLrScheduler::new(ConstantLr::from(lr));
            for (stage, prefix) in ENCODER_DEPTHS.iter().enumerate() {
                let decayed = lr * self.config.layer_decay.powi(5 - stage as i32);
                groups = groups.with_group(
                    ParamGroup::from_predicate(*prefix),
                    ConstantLr::from(decayed),
                );
            }
            self.adam.step(groups.step(), model, grads)
        };
        (model, norm)
    }

    /// The Adam moments and step counts, for a checkpoint.
    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        self.adam
            .into_bytes()
            .map(|b| b.to_vec())
            .map_err(|e| format!("cannot serialise the optimiser state: {e:?}"))
    }

    /// Restores the state saved by [`to_bytes`](Self::to_bytes).
    pub fn load_bytes(self, bytes: &[u8]) -> Result<SegmentationOptimizer, String> {
        let adam = self
            .adam
            .from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes.to_vec()))
            .map_err(|e| format!("cannot read the optimiser state: {e:?}"))?;
        Ok(SegmentationOptimizer { adam, ..self })
    }
}

/// What [`GradVisitor`] does to each parameter's gradient.
enum GradAction {
    /// Accumulate the squared L2 norm.
    SumSquares(f64),
    /// Multiply by a factor.
    Scale(f64),
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
            GradAction::Scale(factor) => {
                if let Some(g) = self.grads.remove::<D>(param.id) {
                    self.grads.register(param.id, g * *factor);
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

fn scale_grads<M: Module>(model: &M, grads: &mut GradientsParams, factor: f64) {
    GradVisitor::run(model, grads, GradAction::Scale(factor));
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

    fn max_change<const D: usize>(before: &Tensor<D>, after: &Tensor<D>) -> f64 {
        values(before)
            .iter()
            .zip(values(after))
            .map(|(a, b)| f64::from((a - b).abs()))
            .fold(0.0, f64::max)
    }

    #[test]
    fn frozen_encoder_keeps_swin_weights() {
        let (model, grads, _) = tiny();
        let embed = model.swin_vit.patch_embed.proj.weight.val();
        let out = model.out.conv.conv.weight.val();
        let mut optimizer = SegmentationOptimizer::new(OptimizerConfig {
            freeze_encoder: true,
            ..OptimizerConfig::default()
        });
        let (model, _) = optimizer.step(1e-3, model, grads);
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
        let (model, _) = optimizer.step(1e-3, model, grads);
        let embed_step = max_change(&embed, &model.swin_vit.patch_embed.proj.weight.val());
        let out_step = max_change(&out, &model.out.conv.conv.weight.val());
        assert!((out_step - 1e-3).abs() < 1e-5, "{out_step}");
        assert!((embed_step - 1e-3 / 32.0).abs() < 1e-6, "{embed_step}");
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
        let (model, norm) = optimizer.step(1e-3, model, grads);
        assert!(!norm.is_finite(), "{norm}");
        assert_eq!(values(&model.out.conv.conv.weight.val()), before);
        assert!(optimizer.clips(1.0) && !optimizer.clips(1.0 - 2e-6));
        assert!(!SegmentationOptimizer::new(OptimizerConfig::default()).clips(1e30));
    }

    /// A restored optimiser continues exactly like the original: the next step from
    /// the same weights and gradients gives bit-identical weights.
    #[test]
    fn state_round_trips_through_bytes() {
        let (model, grads, device) = tiny();
        let mut optimizer = SegmentationOptimizer::new(OptimizerConfig::default());
        let (model, _) = optimizer.step(1e-3, model, grads);
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
        let (a, _) = optimizer.step(1e-3, model.clone(), grads_of(&model));
        let (b, _) = restored.step(1e-3, model.clone(), grads_of(&model));
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
        assert!(err.contains("optimiser state"), "{err}");
    }
}
