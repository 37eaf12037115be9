//! Self-distillation: the student matches the teacher's centred, sharpened
//! distribution. The loss uses the centre from before the step; the new centre is an
//! EMA of the raw teacher outputs (returned, for the caller to keep).

use burn::tensor::Tensor;
use burn::tensor::activation::{log_softmax, softmax};

use super::soft_cross_entropy;

/// Temperatures and centre momentum of a distillation loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Distill {
    pub teacher_temp: f64,
    pub student_temp: f64,
    pub center_momentum: f64,
}

impl Distill {
    /// The teacher's target distribution: `softmax((t - centre) / teacher_temp)`.
    fn targets<const D: usize>(&self, teacher: Tensor<D>, center: Tensor<D>) -> Tensor<D> {
        softmax((teacher - center).div_scalar(self.teacher_temp), D - 1)
    }

    fn student_log_probs<const D: usize>(&self, student: Tensor<D>) -> Tensor<D> {
        log_softmax(student.div_scalar(self.student_temp), D - 1)
    }

    /// `m·centre + (1 - m)·mean`.
    fn update(&self, center: Tensor<1>, mean: Tensor<1>) -> Tensor<1> {
        center.mul_scalar(self.center_momentum) + mean.mul_scalar(1.0 - self.center_momentum)
    }

    /// DINO (Caron et al. 2021): `teacher[t]` `[B, K]` for the global crops, `student[s]`
    /// for every crop (globals first, so teacher crop t and student crop t are the same
    /// crop). Every (t, s) pair with `t != s` counts, `pairs` says which (None: all);
    /// the loss is the mean over pairs of the batch-mean cross-entropy. The centre
    /// update uses the raw teacher outputs of every global crop.
    pub fn dino(
        &self,
        teacher: &[Tensor<2>],
        student: &[Tensor<2>],
        center: Tensor<1>,
        pairs: Option<&[(usize, usize)]>,
    ) -> (Tensor<1>, Tensor<1>) {
        let all: Vec<(usize, usize)> = (0..teacher.len())
            .flat_map(|t| (0..student.len()).map(move |s| (t, s)))
            .filter(|(t, s)| t != s)
            .collect();
        let pairs = pairs.unwrap_or(&all);
        let row_center = center.clone().unsqueeze_dim::<2>(0);
        let targets: Vec<Tensor<2>> = teacher
            .iter()
            .map(|t| self.targets(t.clone(), row_center.clone()))
            .collect();
        let log_probs: Vec<Tensor<2>> = student
            .iter()
            .map(|s| self.student_log_probs(s.clone()))
            .collect();
        let terms: Vec<Tensor<1>> = pairs
            .iter()
            .map(|&(t, s)| soft_cross_entropy(targets[t].clone(), log_probs[s].clone()).mean())
            .collect();
        let loss = Tensor::cat(terms, 0).mean();
        let teacher_mean = Tensor::cat(teacher.to_vec(), 0).mean_dim(0).squeeze_dim(0);
        (loss, self.update(center, teacher_mean.detach()))
    }

    /// iBOT's masked patch-token loss (official iBOT and SMIT): `teacher` (unmasked view)
    /// and `student` (masked view) `[B, N, K]`, `mask` `[B, N]` (1 = masked). Per image
    /// the mean cross-entropy over its masked tokens (an image without one gives 0),
    /// then the mean over all B images. The centre update averages every token of
    /// every image, masked or not, as the official code does.
    pub fn ibot_patch(
        &self,
        teacher: Tensor<3>,
        student: Tensor<3>,
        mask: Tensor<2>,
        center: Tensor<1>,
    ) -> (Tensor<1>, Tensor<1>) {
        let [b, n, k] = teacher.dims();
        let targets = self.targets(
            teacher.clone(),
            center.clone().unsqueeze_dim::<2>(0).unsqueeze_dim(0),
        );
        let ce = soft_cross_entropy(targets, self.student_log_probs(student)).reshape([b, n]);
        let per_image = (ce * mask.clone()).sum_dim(1) / mask.sum_dim(1).clamp_min(1.0);
        let teacher_mean = teacher.reshape([b * n, k]).mean_dim(0).squeeze_dim(0);
        (per_image.mean(), self.update(center, teacher_mean.detach()))
    }
}
