//! Collapse monitors: numbers that show a run learning nothing useful before the loss
//! does.

use burn::tensor::Tensor;
use burn::tensor::activation::softmax;

use medssl_model::arrays::{DeviceReadError, read_scalar};

use crate::losses::normalize_rows;

/// The spread of a batch of embeddings `[B, C]`: the standard deviation across the
/// batch of the L2-normalised embeddings, averaged over dimensions, times `√C`. Random
/// directions give about 1; identical embeddings (a collapsed encoder) give 0. `None`
/// for a batch of one, which has no spread; an error when the device fails.
pub fn embedding_spread(embeddings: Tensor<2>) -> Result<Option<f64>, DeviceReadError> {
    let [batch, channels] = embeddings.dims();
    if batch < 2 {
        return Ok(None);
    }
    let unit = normalize_rows(embeddings.detach());
    let std = read_scalar(unit.var(0).sqrt().mean())?;
    Ok(Some(std * (channels as f64).sqrt()))
}

/// The global embedding of a stage output `[B, C, D, H, W]`: its mean over space.
pub fn pooled(x: Tensor<5>) -> Tensor<2> {
    let [b, c, d, h, w] = x.dims();
    x.reshape([b, c, d * h * w]).mean_dim(2).reshape([b, c])
}

/// Mean entropy (nats) of the teacher's target distribution over a batch: near
/// `ln(out_dim)` when the teacher is uniform (collapse to uniform), near 0 when one
/// prototype takes everything (collapse to one); an error when the device fails.
pub fn teacher_entropy(
    teacher: &Tensor<2>,
    center: &Tensor<1>,
    temperature: f64,
) -> Result<f64, DeviceReadError> {
    let p = softmax(
        (teacher.clone() - center.clone().unsqueeze_dim::<2>(0)).div_scalar(temperature),
        1,
    );
    let h = (p.clone() * p.clamp_min(1e-12).log())
        .sum_dim(1)
        .neg()
        .mean();
    read_scalar(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution, TensorData};

    #[test]
    fn spread_is_zero_for_identical_and_near_one_for_random_embeddings() {
        let device = Device::flex();
        let same = Tensor::<2>::from_data(
            TensorData::new(vec![0.3f32, -1.0, 2.0, 0.3, -1.0, 2.0], [2, 3]),
            &device,
        );
        assert!(embedding_spread(same).unwrap().unwrap() < 1e-6);
        device.seed(3);
        let random = Tensor::<2>::random([256, 64], Distribution::Normal(0.0, 1.0), &device);
        let spread = embedding_spread(random).unwrap().unwrap();
        assert!((spread - 1.0).abs() < 0.05, "{spread}");
        let one = Tensor::<2>::ones([1, 4], &device);
        assert_eq!(embedding_spread(one).unwrap(), None);
    }

    #[test]
    fn teacher_entropy_spans_uniform_to_one_prototype() {
        let device = Device::flex();
        let center = Tensor::<1>::zeros([8], &device);
        let flat = Tensor::<2>::zeros([3, 8], &device);
        let uniform = teacher_entropy(&flat, &center, 0.04).unwrap();
        assert!((uniform - 8f64.ln()).abs() < 1e-5, "{uniform}");
        let mut peaked = vec![0.0f32; 16];
        peaked[3] = 1.0;
        peaked[8 + 5] = 1.0;
        let peaked = Tensor::<2>::from_data(TensorData::new(peaked, [2, 8]), &device);
        let sharp = teacher_entropy(&peaked, &center, 0.04).unwrap();
        assert!(sharp < 1e-6, "{sharp}");
    }
}
