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
