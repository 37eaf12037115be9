//! Segmentation losses with MONAI's semantics: `DiceLoss(to_onehot_y=True,
//! softmax=True, ...)` and `DiceCELoss`, whose cross-entropy term always uses every
//! class (MONAI's `include_background=False` only drops the background from the Dice
//! term).
//!
//! Logits are `[B, C, D, H, W]`; labels are class indices `[B, 1, D, H, W]` (MONAI's
//! layout before `to_onehot_y`), which must lie in `0..C`.

use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{IndexingUpdateOp, Int, Tensor, s};
use serde::{Deserialize, Serialize};

/// How per-(sample, class) Dice losses are reduced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Reduction {
    /// The mean over every remaining (sample, class) entry (MONAI's default).
    #[default]
    Mean,
    /// No reduction: `[B, C']` (`[1, C']` with `batch`), `C'` the classes kept.
    None,
}

/// MONAI's `DiceLoss` with `to_onehot_y=True, softmax=True`. Per sample `b` and class
/// `c`: `1 - (2·Σ p·g + smooth_nr) / (Σ g^k + Σ p^k + smooth_dr)`, `p` the softmax over
/// classes, `g` the one-hot label, `k = 2` with `squared_pred`, sums over voxels (and
/// over the batch too with `batch`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiceLoss {
    /// Keep class 0 in the Dice term.
    pub include_background: bool,
    /// Square the prediction and target in the denominator (V-Net's form).
    pub squared_pred: bool,
    /// Added to the numerator; keeps the loss of an absent, unpredicted class at 0.
    pub smooth_nr: f64,
    /// Added to the denominator; avoids 0/0.
    pub smooth_dr: f64,
    /// Sum over the batch before dividing (one Dice per class for the whole batch).
    pub batch: bool,
    /// Mean over entries, or none.
    pub reduction: Reduction,
}

impl Default for DiceLoss {
    fn default() -> DiceLoss {
        DiceLoss {
            include_background: true,
            squared_pred: false,
            smooth_nr: 1e-5,
            smooth_dr: 1e-5,
            batch: false,
            reduction: Reduction::Mean,
        }
    }
}

impl DiceLoss {
    /// The Dice loss of `logits` against `labels`: a one-element tensor with
    /// `Reduction::Mean`, `[B, C']` or `[1, C']` with `Reduction::None`.
    pub fn forward(&self, logits: Tensor<5>, labels: Tensor<5, Int>) -> Tensor<2> {
        let probabilities = softmax(logits, 1);
        let target = one_hot(labels, probabilities.dims()[1]);
        self.of_probabilities(probabilities, target)
    }

    /// The loss from probabilities and a one-hot target of the same shape.
    fn of_probabilities(&self, probabilities: Tensor<5>, target: Tensor<5>) -> Tensor<2> {
        let [b, c, d, h, w] = probabilities.dims();
        let (probabilities, target) = if self.include_background || c == 1 {
            (probabilities, target)
        } else {
            (probabilities.slice(s![.., 1..]), target.slice(s![.., 1..]))
        };
        let kept = probabilities.dims()[1];
        let per_sample = |t: Tensor<5>| -> Tensor<2> {
            let summed = t
                .reshape([b, kept, d * h * w])
                .sum_dim(2)
                .reshape([b, kept]);
            if self.batch {
                summed.sum_dim(0)
            } else {
                summed
            }
        };
        let intersection = per_sample(probabilities.clone() * target.clone());
        let (ground, predicted) = if self.squared_pred {
            (
                per_sample(target.clone() * target),
                per_sample(probabilities.clone() * probabilities),
            )
        } else {
            (per_sample(target), per_sample(probabilities))
        };
        let numerator = intersection * 2.0 + self.smooth_nr;
        let denominator = ground + predicted + self.smooth_dr;
        let loss = (numerator / denominator).neg() + 1.0;
        match self.reduction {
            Reduction::Mean => loss.mean().reshape([1, 1]),
            Reduction::None => loss,
        }
    }
}

/// MONAI's `DiceCELoss(to_onehot_y=True, softmax=True, ...)`:
/// `lambda_dice · Dice + lambda_ce · CE`, the cross-entropy being PyTorch's mean over
/// every voxel of every sample, over all classes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiceCeLoss {
    /// The Dice term (its `reduction` must be `Mean`).
    #[serde(flatten)]
    pub dice: DiceLoss,
    /// Weight of the Dice term.
    pub lambda_dice: f64,
    /// Weight of the cross-entropy term.
    pub lambda_ce: f64,
}

impl Default for DiceCeLoss {
    fn default() -> DiceCeLoss {
        DiceCeLoss {
            dice: DiceLoss::default(),
            lambda_dice: 1.0,
            lambda_ce: 1.0,
        }
    }
}

impl DiceCeLoss {
    /// The combined loss, a one-element tensor.
    pub fn forward(&self, logits: Tensor<5>, labels: Tensor<5, Int>) -> Tensor<1> {
        let classes = logits.dims()[1];
        let target = one_hot(labels, classes);
        let ce = cross_entropy_one_hot(logits.clone(), target.clone());
        let dice = DiceLoss {
            reduction: Reduction::Mean,
            ..self.dice
        }
        .of_probabilities(softmax(logits, 1), target)
        .reshape([1]);
        dice * self.lambda_dice + ce * self.lambda_ce
    }
}

/// PyTorch's `cross_entropy(logits, labels[:, 0])`: the mean over voxels and samples of
/// `-log softmax(logits)[label]`.
pub fn cross_entropy(logits: Tensor<5>, labels: Tensor<5, Int>) -> Tensor<1> {
    let classes = logits.dims()[1];
    cross_entropy_one_hot(logits, one_hot(labels, classes))
}

fn cross_entropy_one_hot(logits: Tensor<5>, target: Tensor<5>) -> Tensor<1> {
    let [b, _, d, h, w] = logits.dims();
    let voxels = (b * d * h * w) as f64;
    (log_softmax(logits, 1) * target).sum().neg() / voxels
}

/// `[B, 1, D, H, W]` class indices to a float one-hot `[B, C, D, H, W]`.
fn one_hot(labels: Tensor<5, Int>, classes: usize) -> Tensor<5> {
    let [b, one, d, h, w] = labels.dims();
    assert_eq!(
        one,
        1,
        "labels must be [B, 1, D, H, W], got {:?}",
        labels.dims()
    );
    let device = labels.device();
    let ones = Tensor::<5>::ones([b, 1, d, h, w], &device);
    Tensor::<5>::zeros([b, classes, d, h, w], &device).scatter(
        1,
        labels,
        ones,
        IndexingUpdateOp::Add,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution, TensorData};

    /// Autodiff gradients of the Dice-CE loss agree with central differences, so the
    /// one-hot scatter and the reductions pass gradients to the logits correctly.
    #[test]
    fn gradient_matches_finite_differences() {
        let device = Device::flex().autodiff();
        let shape = [2, 3, 2, 3, 2];
        let logits = Tensor::<5>::random(shape, Distribution::Normal(0.0, 1.5), &device);
        let classes: Vec<i64> = (0..24).map(|i| (i * 7 % 5 % 3) as i64).collect();
        let labels =
            Tensor::<5, Int>::from_data(TensorData::new(classes, [2, 1, 2, 3, 2]), &device);
        let loss = DiceCeLoss {
            dice: DiceLoss {
                include_background: false,
                squared_pred: true,
                ..DiceLoss::default()
            },
            ..DiceCeLoss::default()
        };
        let leaf = logits.clone().require_grad();
        let grads = loss.forward(leaf.clone(), labels.clone()).backward();
        let analytic = leaf
            .grad(&grads)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let base = logits.into_data().try_to_vec::<f32>().unwrap();
        let value = |values: &[f32]| -> f64 {
            let t = Tensor::<5>::from_data(TensorData::new(values.to_vec(), shape), &device);
            f64::from(loss.forward(t, labels.clone()).into_scalar::<f32>())
        };
        let eps = 1e-2f32;
        for i in (0..base.len()).step_by(5) {
            let (mut up, mut down) = (base.clone(), base.clone());
            up[i] += eps;
            down[i] -= eps;
            let numeric = (value(&up) - value(&down)) / (2.0 * f64::from(eps));
            let a = f64::from(analytic[i]);
            assert!(
                (numeric - a).abs() < 2e-3,
                "logit {i}: autodiff {a}, numeric {numeric}"
            );
        }
    }
}
