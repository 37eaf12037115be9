//! Decoupled weight decay, applied before the Adam update as PyTorch's `AdamW` does
//! (`p ← p · (1 − lr_p · wd)`, `lr_p` the parameter's own rate under layer-wise decay),
//! to the parameters that received a gradient: a frozen teacher or encoder gets no
//! gradient and so no decay. Which of them are exempt is a setting
//! ([`DecayExempt`]): none (fine-tuning, as MONAI's recipes pass every parameter to
//! `AdamW`) or the vectors and position tables (pretraining: biases, norm parameters,
//! tokens and the relative position bias tables, as DINO's `get_params_groups` and
//! SimMIM's `no_weight_decay_keywords`). The coefficient is given per step, so a
//! schedule (DINO's cosine) and a constant are one rule.

use burn::module::{Module, ModuleMapper, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// Parameters that weight decay leaves alone (`train.optimizer.decay_exempt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecayExempt {
    /// Every parameter with a gradient decays.
    #[default]
    None,
    /// Parameters of fewer than two dimensions (biases, norms, tokens) and the relative
    /// position bias tables do not.
    Vectors,
}

/// `model` with each decayed parameter multiplied by `1 − lr(path) · weight_decay`,
/// where `lr(path)` is the learning rate of the parameter at module path `path`
/// (names joined by dots).
pub fn apply<M: Module>(
    model: M,
    grads: &GradientsParams,
    lr: &dyn Fn(&str) -> f64,
    weight_decay: f64,
    exempt: DecayExempt,
) -> M {
    if weight_decay == 0.0 {
        return model;
    }
    let mut mapper = Decay {
        grads,
        lr,
        weight_decay,
        exempt,
        path: Vec::new(),
    };
    model.map(&mut mapper)
}

struct Decay<'a> {
    grads: &'a GradientsParams,
    lr: &'a dyn Fn(&str) -> f64,
    weight_decay: f64,
    exempt: DecayExempt,
    path: Vec<String>,
}

impl ModuleMapper for Decay<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let exempt = self.exempt == DecayExempt::Vectors
            && (D < 2
                || self
                    .path
                    .last()
                    .is_some_and(|name| name == "relative_position_bias_table"));
        if exempt || self.grads.get::<D>(param.id).is_none() {
            return param;
        }
        let factor = 1.0 - (self.lr)(&self.path.join(".")) * self.weight_decay;
        param.map(|tensor| {
            let require_grad = tensor.is_require_grad();
            let decayed = Tensor::from_inner(tensor.inner().mul_scalar(factor));
            if require_grad {
                decayed.require_grad()
            } else {
                decayed
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::Device;

    #[derive(Module, Debug)]
    struct Net {
        trained: Linear,
        frozen: Linear,
    }

    /// A net whose `trained` module got gradients and whose `frozen` one got none.
    fn net_with_gradients() -> (Net, GradientsParams) {
        let device = Device::flex().autodiff();
        let net = Net {
            trained: LinearConfig::new(3, 2).init(&device),
            frozen: LinearConfig::new(3, 2).init(&device).no_grad(),
        };
        let x = Tensor::<2>::ones([1, 3], &device);
        let loss = (net.trained.forward(x.clone()) + net.frozen.forward(x)).sum();
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        (net, grads)
    }

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec().unwrap()
    }

    /// Pretraining's rule: weights with a gradient shrink by `1 − lr·wd`; their biases,
    /// and a module that got no gradient (a frozen teacher), keep their values.
    #[test]
    fn only_weights_with_gradients_decay() {
        let (net, grads) = net_with_gradients();
        let decayed = apply(net.clone(), &grads, &|_| 0.1, 0.5, DecayExempt::Vectors);
        let factor = 1.0 - 0.1 * 0.5;
        for (before, after) in values(net.trained.weight.val())
            .iter()
            .zip(values(decayed.trained.weight.val()))
        {
            assert!((after - before * factor).abs() < 1e-7, "{before} {after}");
        }
        let bias = |n: &Net| values(n.trained.bias.as_ref().unwrap().val());
        assert_eq!(bias(&decayed), bias(&net));
        assert_eq!(
            values(decayed.frozen.weight.val()),
            values(net.frozen.weight.val())
        );
        assert!(decayed.trained.weight.val().is_require_grad());
    }

    /// Fine-tuning's rule: the biases decay too, each parameter at its own rate (here
    /// the `trained` module's 0.1, the rest's 0.2); the frozen module still does not.
    #[test]
    fn without_exemptions_every_parameter_with_a_gradient_decays_at_its_own_rate() {
        let (net, grads) = net_with_gradients();
        let lr = |path: &str| if path.contains("trained") { 0.1 } else { 0.2 };
        let decayed = apply(net.clone(), &grads, &lr, 0.5, DecayExempt::None);
        let bias = |n: &Net| values(n.trained.bias.as_ref().unwrap().val());
        for (before, after) in bias(&net).iter().zip(bias(&decayed)) {
            assert!((after - before * 0.95).abs() < 1e-7, "{before} {after}");
        }
        assert_eq!(
            values(decayed.frozen.weight.val()),
            values(net.frozen.weight.val())
        );
    }
}
