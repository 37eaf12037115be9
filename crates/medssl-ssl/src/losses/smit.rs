//! SMIT's objective (Jiang et al., MICCAI 2022; the authors' `Cls_Patch_Loss` and
//! training loop): masked patch-token distillation within each view, global-token
//! distillation across the two views, and L1 reconstruction of the masked voxels.

use burn::tensor::Tensor;

use super::distillation::Distill;
use super::reconstruction::masked_l1;

/// Weights and temperatures of SMIT's loss (the paper's defaults in `Default`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SmitLoss {
    pub patch_weight: f64,
    pub cls_weight: f64,
    pub recon_weight: f64,
    pub student_temp: f64,
    pub teacher_temp_cls: f64,
    pub teacher_temp_patch: f64,
    pub center_momentum: f64,
}

impl Default for SmitLoss {
    fn default() -> SmitLoss {
        SmitLoss {
            patch_weight: 0.1,
            cls_weight: 0.1,
            recon_weight: 1.0,
            student_temp: 0.1,
            teacher_temp_cls: 0.07,
            teacher_temp_patch: 0.07,
            center_momentum: 0.9,
        }
    }
}

/// One view pair, both views stacked along the batch axis (rows `0..B` view 0, `B..2B`
/// view 1, row b of each the same volume).
pub struct SmitBatch {
    /// Global-token head outputs `[2B, Kc]`.
    pub teacher_cls: Tensor<2>,
    pub student_cls: Tensor<2>,
    /// Patch-token head outputs `[2B, N, Kp]`.
    pub teacher_patch: Tensor<3>,
    pub student_patch: Tensor<3>,
    /// Which tokens the student saw masked `[2B, N]` (1 = masked).
    pub token_mask: Tensor<2>,
    /// Reconstruction, image and voxel mask `[2B, C, D, H, W]` (mask `[2B, 1, ...]`).
    pub reconstruction: Tensor<5>,
    pub image: Tensor<5>,
    pub voxel_mask: Tensor<5>,
}

/// The loss and its unweighted terms, and the centres after the step.
pub struct SmitOutput {
    pub total: Tensor<1>,
    pub patch: Tensor<1>,
    pub cls: Tensor<1>,
    pub recon: Tensor<1>,
    pub center_cls: Tensor<1>,
    pub center_patch: Tensor<1>,
}

impl SmitLoss {
    /// SMIT's loss for `batch` with the centres from before this step.
    pub fn forward(
        &self,
        batch: SmitBatch,
        center_cls: Tensor<1>,
        center_patch: Tensor<1>,
    ) -> SmitOutput {
        let rows = batch.teacher_cls.dims()[0];
        let half = rows / 2;
        let views = |t: Tensor<2>| vec![t.clone().narrow(0, 0, half), t.narrow(0, half, half)];
        let cls = Distill {
            teacher_temp: self.teacher_temp_cls,
            student_temp: self.student_temp,
            center_momentum: self.center_momentum,
        };
        let (cls_loss, center_cls) = cls.dino(
            &views(batch.teacher_cls),
            &views(batch.student_cls),
            center_cls,
            Some(&[(0, 1), (1, 0)]),
        );
        // Each view has B images, so the mean over all 2B images is the mean over views.
        let patch = Distill {
            teacher_temp: self.teacher_temp_patch,
            ..cls
        };
        let (patch_loss, center_patch) = patch.ibot_patch(
            batch.teacher_patch,
            batch.student_patch,
            batch.token_mask,
            center_patch,
        );
        let recon = masked_l1(batch.reconstruction, batch.image, batch.voxel_mask, false);
        let total = patch_loss.clone().mul_scalar(self.patch_weight)
            + cls_loss.clone().mul_scalar(self.cls_weight)
            + recon.clone().mul_scalar(self.recon_weight);
        SmitOutput {
            total,
            patch: patch_loss,
            cls: cls_loss,
            recon,
            center_cls,
            center_patch,
        }
    }
}
