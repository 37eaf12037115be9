//! The EMA teacher of the self-distillation methods: a copy of the student whose
//! parameters never require gradients and follow the student as
//! `teacher ← m · teacher + (1 − m) · student` after every optimiser step.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;

/// A copy of `module` with fresh parameter ids (the optimiser keys its state on ids, so
/// the teacher must not share the student's) and no gradients: DINO's
/// `teacher.load_state_dict(student.state_dict())` with `requires_grad = False`.
pub fn frozen_copy<M: Module>(module: &M) -> M {
    module.clone().map(&mut FreshFrozen)
}

struct FreshFrozen;

impl ModuleMapper for FreshFrozen {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let value = param.val().detach();
        Param::initialized(ParamId::new(), value).set_require_grad(false)
    }
}

/// `teacher` moved towards `student` (the same module type): every parameter becomes
/// `momentum · teacher + (1 − momentum) · student`, with no gradient.
pub fn ema<M: Module>(teacher: M, student: &M, momentum: f64) -> M {
    let mut values = Collect::default();
    student.visit(&mut values);
    let mut mapper = Blend {
        student: values.values,
        path: Vec::new(),
        momentum,
    };
    teacher.map(&mut mapper)
}

/// The centre after a step: the mean of the updates its batches computed (each from
/// the centre before the step), or `current` when there were none.
pub fn mean_center(updates: Vec<Tensor<1>>, current: &Param<Tensor<1>>) -> Tensor<1> {
    if updates.is_empty() {
        return current.val();
    }
    let n = current.val().dims()[0];
    Tensor::stack::<2>(updates, 0)
        .mean_dim(0)
        .reshape([n])
        .detach()
}

/// Per-batch pairs of centre updates as two lists.
pub fn split_updates(updates: Vec<[Tensor<1>; 2]>) -> [Vec<Tensor<1>>; 2] {
    let (first, second) = updates.into_iter().map(|[a, b]| (a, b)).unzip();
    [first, second]
}

/// Each float parameter's value, flattened, by module path.
#[derive(Default)]
struct Collect {
    values: HashMap<String, Tensor<1>>,
    path: Vec<String>,
}

impl ModuleVisitor for Collect {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val().detach();
        let n = value.shape().num_elements();
        self.values.insert(self.path.join("."), value.reshape([n]));
    }
}

struct Blend {
    student: HashMap<String, Tensor<1>>,
    path: Vec<String>,
    momentum: f64,
}

impl ModuleMapper for Blend {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let path = self.path.join(".");
        let student = self
            .student
            .remove(&path)
            .unwrap_or_else(|| panic!("teacher parameter {path} has no student counterpart"));
        let m = self.momentum;
        param.map(|teacher| {
            let dims = teacher.dims();
            (teacher.detach().mul_scalar(m) + student.reshape(dims).mul_scalar(1.0 - m)).detach()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::Device;

    fn weights(layer: &Linear) -> Vec<f32> {
        layer.weight.val().into_data().try_to_vec().unwrap()
    }

    #[test]
    fn the_teacher_is_a_frozen_copy_that_follows_the_student() {
        let device = Device::flex().autodiff();
        let student = LinearConfig::new(3, 2).init(&device);
        let teacher = frozen_copy(&student);
        assert_eq!(weights(&teacher), weights(&student));
        assert_ne!(teacher.weight.id, student.weight.id);
        assert!(!teacher.weight.val().is_require_grad());
        assert!(student.weight.val().is_require_grad());

        let moved = student.clone().map(&mut Shift);
        let blended = ema(teacher, &moved, 0.75);
        for ((t, s), b) in weights(&student)
            .iter()
            .zip(weights(&moved))
            .zip(weights(&blended))
        {
            assert!((b - (0.75 * t + 0.25 * s)).abs() < 1e-6, "{b} {t} {s}");
        }
        assert!(!blended.weight.val().is_require_grad());
    }

    /// Adds 1 to every parameter.
    struct Shift;

    impl ModuleMapper for Shift {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            param.map(|t| t.add_scalar(1.0))
        }
    }
}
