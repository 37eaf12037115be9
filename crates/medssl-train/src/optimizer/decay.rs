//! Decoupled weight decay with a scheduled coefficient, applied before the Adam update
//! as PyTorch's `AdamW` does (`p ← p · (1 − lr · wd)`), to weights of two or more
//! dimensions that received a gradient. Biases, norm parameters, tokens (1-D) and the
//! relative position bias tables are exempt, as in DINO (`get_params_groups`) and
//! SimMIM (`no_weight_decay_keywords`); frozen teacher weights get no gradient and so
//! no decay. Burn's AdamW holds a fixed coefficient and decays every parameter, so the
//! loop runs it with zero decay and applies this instead.

use burn::module::{Module, ModuleMapper, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

/// `model` with each decayed weight multiplied by `1 − lr · weight_decay`.
pub fn apply<M: Module>(model: M, grads: &GradientsParams, lr: f64, weight_decay: f64) -> M {
    let factor = 1.0 - lr * weight_decay;
    if factor == 1.0 {
        return model;
    }
    let mut mapper = Decay {
        grads,
        factor,
        path: Vec::new(),
    };
    model.map(&mut mapper)
}

struct Decay<'a> {
    grads: &'a GradientsParams,
    factor: f64,
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
        let exempt = D < 2
            || self
                .path
                .last()
                .is_some_and(|name| name == "relative_position_bias_table");
        if exempt || self.grads.get::<D>(param.id).is_none() {
            return param;
        }
        let factor = self.factor;
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

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec().unwrap()
    }

    /// Weights with a gradient shrink by `1 − lr·wd`; their biases, and a module that got
    /// no gradient (a frozen teacher), keep their values.
    #[test]
    fn only_weights_with_gradients_decay() {
        let device = Device::flex().autodiff();
        let net = Net {
            trained: LinearConfig::new(3, 2).init(&device),
            frozen: LinearConfig::new(3, 2).init(&device).no_grad(),
        };
        let x = Tensor::<2>::ones([1, 3], &device);
        let loss = (net.trained.forward(x.clone()) + net.frozen.forward(x)).sum();
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        let decayed = apply(net.clone(), &grads, 0.1, 0.5);
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
}
