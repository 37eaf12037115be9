//! Contrastive objectives: which pairs are positives and which are negatives is what
//! tells the three apart.

use burn::tensor::{Int, Tensor};

use super::{cross_entropy, normalize_rows};

/// NT-Xent (Chen et al. 2020; lightly's `NTXentLoss`, MONAI's `ContrastiveLoss`): for
/// each of the 2B embeddings of two views `[B, D]`, the positive is the other view of
/// the same image and the denominator holds every other embedding (2B - 1 terms, the
/// anchor itself excluded); the mean over the 2B anchors.
pub fn ntxent(z1: Tensor<2>, z2: Tensor<2>, temperature: f64) -> Tensor<1> {
    let batch = z1.dims()[0];
    let device = z1.device();
    let z = normalize_rows(Tensor::cat(vec![z1, z2], 0));
    let similarity = z.clone().matmul(z.transpose()).div_scalar(temperature);
    let own = Tensor::<2>::eye(2 * batch, &device).bool();
    let logits = similarity.mask_fill(own, f32::NEG_INFINITY);
    let b = batch as i64;
    let positives = Tensor::cat(
        vec![
            Tensor::<1, Int>::arange(b..2 * b, &device),
            Tensor::<1, Int>::arange(0..b, &device),
        ],
        0,
    );
    cross_entropy(logits, positives)
}

/// MoCo v3's `ctr(q, k)`: InfoNCE of each query against the keys of the other view,
/// the positive on the diagonal, scaled by `2T` as the official code does.
fn moco_ctr(q: Tensor<2>, k: Tensor<2>, temperature: f64) -> Tensor<1> {
    let batch = q.dims()[0] as i64;
    let device = q.device();
    let logits = normalize_rows(q)
        .matmul(normalize_rows(k).transpose())
        .div_scalar(temperature);
    cross_entropy(logits, Tensor::arange(0..batch, &device)).mul_scalar(2.0 * temperature)
}

/// MoCo v3's symmetric loss `ctr(q1, k2) + ctr(q2, k1)`: online queries `q` of each view
/// against momentum keys `k` of the other (B - 1 negatives each, no same-view ones).
pub fn mocov3(
    q1: Tensor<2>,
    q2: Tensor<2>,
    k1: Tensor<2>,
    k2: Tensor<2>,
    temperature: f64,
) -> Tensor<1> {
    moco_ctr(q1, k2, temperature) + moco_ctr(q2, k1, temperature)
}

/// How CPC scores a prediction against a target embedding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Similarity {
    /// The dot product (van den Oord et al.'s bilinear score with the map folded into
    /// the predictor).
    Dot,
    /// Cosine similarity divided by a temperature.
    Cosine { temperature: f64 },
}

/// CPC's InfoNCE: predictions and targets `[B, P, D]` flattened to `B·P` rows; each
/// prediction's positive is the target at its own `(b, p)`, every other target of the
/// batch is a negative.
pub fn infonce(pred: Tensor<3>, target: Tensor<3>, similarity: Similarity) -> Tensor<1> {
    let [b, p, d] = pred.dims();
    let device = pred.device();
    let pred = pred.reshape([b * p, d]);
    let target = target.reshape([b * p, d]);
    let logits = match similarity {
        Similarity::Dot => pred.matmul(target.transpose()),
        Similarity::Cosine { temperature } => normalize_rows(pred)
            .matmul(normalize_rows(target).transpose())
            .div_scalar(temperature),
    };
    cross_entropy(logits, Tensor::arange(0..(b * p) as i64, &device))
}
