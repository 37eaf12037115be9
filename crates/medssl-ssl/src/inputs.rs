//! A batch of views as tensors: the views, their token masks, and the voxel masks and
//! pixel shuffle that masked-image modelling needs.

use burn::tensor::{Device, Tensor, TensorData};
use medssl_data::views::ViewBatch;
use medssl_model::arrays::to_tensor;

use crate::error::{Result, SslError};

/// View `v` of the batch, `[B, C, D, H, W]`, on `device`.
pub fn view(batch: &ViewBatch, v: usize, device: &Device) -> Result<Tensor<5>> {
    let array = batch.views.get(v).ok_or_else(|| {
        SslError::Invalid(format!(
            "the batch has {} views, the method needs view {v}",
            batch.views.len()
        ))
    })?;
    Ok(to_tensor(array.clone(), device))
}

/// The token mask of view `v`, `[B, d, h, w]` with 1 where masked, on `device`.
pub fn token_mask(batch: &ViewBatch, v: usize, device: &Device) -> Result<Tensor<4>> {
    let mask = batch.masks.get(v).ok_or_else(|| {
        SslError::Invalid(format!(
            "the batch has {} masked views, the method needs a mask for view {v}",
            batch.masks.len()
        ))
    })?;
    let values: Vec<f32> = mask.iter().map(|&m| f32::from(u8::from(m))).collect();
    Ok(Tensor::from_data(
        TensorData::new(values, mask.shape().to_vec()),
        device,
    ))
}

/// A token mask `[B, d, h, w]` on the voxel grid, `[B, 1, d·p, h·p, w·p]`: each token's
/// value repeated over its `p³` voxels (SimMIM's `repeat_interleave`).
pub fn voxel_mask(tokens: Tensor<4>, patch: usize) -> Tensor<5> {
    let [b, d, h, w] = tokens.dims();
    tokens
        .reshape([b, d, 1, h, 1, w, 1])
        .expand([b, d, patch, h, patch, w, patch])
        .reshape([b, 1, d * patch, h * patch, w * patch])
}

/// 3-D pixel shuffle: `[B, C·r³, d, h, w]` to `[B, C, d·r, h·r, w·r]`, input channel
/// `((c·r + i)·r + j)·r + k` going to voxel `(d·r + i, h·r + j, w·r + k)` of channel `c`,
/// PyTorch's `pixel_shuffle` order extended to three axes.
pub fn pixel_shuffle(x: Tensor<5>, r: usize) -> Tensor<5> {
    let [b, channels, d, h, w] = x.dims();
    let c = channels / (r * r * r);
    x.reshape([b * c, r, r, r, d, h, w])
        .permute([0, 4, 1, 5, 2, 6, 3])
        .reshape([b, c, d * r, h * r, w * r])
}

/// A stage output `[B, C, d, h, w]` as token rows `[B, N, C]`.
pub fn tokens(x: Tensor<5>) -> Tensor<3> {
    let [b, c, d, h, w] = x.dims();
    x.reshape([b, c, d * h * w]).swap_dims(1, 2)
}

/// A patch-grid token mask `[B, d, h, w]` on the grid of a stage `factor` times
/// coarser, `[B, N]`: a coarse token is masked when the patches under it are (they all
/// are or none is, since mask blocks are multiples of the coarse stride).
pub fn coarse_mask(mask: Tensor<4>, factor: usize) -> Tensor<2> {
    let [b, d, h, w] = mask.dims();
    let (cd, ch, cw) = (d / factor, h / factor, w / factor);
    mask.reshape([b * cd, factor, ch, factor, cw, factor])
        .max_dim(1)
        .max_dim(3)
        .max_dim(5)
        .reshape([b, cd * ch * cw])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixel_shuffle_places_each_channel_at_its_offset() {
        let device = Device::flex();
        let (r, c, n) = (2, 2, 3);
        let values: Vec<f32> = (0..c * r * r * r * n * n * n).map(|v| v as f32).collect();
        let x = Tensor::<5>::from_data(TensorData::new(values, [1, c * 8, n, n, n]), &device);
        let y: Vec<f32> = pixel_shuffle(x, r).into_data().try_to_vec().unwrap();
        let side = n * r;
        for ch in 0..c {
            for (z, yy, xx) in [(0, 0, 0), (1, 4, 3), (5, 2, 1), (3, 3, 5)] {
                let (i, j, k) = (z % r, yy % r, xx % r);
                let input_channel = ((ch * r + i) * r + j) * r + k;
                let expected = ((input_channel * n + z / r) * n + yy / r) * n + xx / r;
                let got = y[((ch * side + z) * side + yy) * side + xx];
                assert_eq!(got, expected as f32, "channel {ch} voxel {z},{yy},{xx}");
            }
        }
    }

    #[test]
    fn voxel_mask_repeats_each_token_over_its_patch() {
        let device = Device::flex();
        let tokens = Tensor::<4>::from_data(
            TensorData::new(
                vec![1.0f32, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                [1, 2, 2, 2],
            ),
            &device,
        );
        let m: Vec<f32> = voxel_mask(tokens, 2).into_data().try_to_vec().unwrap();
        let at = |z: usize, y: usize, x: usize| m[(z * 4 + y) * 4 + x];
        assert_eq!(m.len(), 64);
        assert_eq!(at(0, 1, 1), 1.0);
        assert_eq!(at(1, 0, 2), 0.0);
        assert_eq!(at(0, 3, 3), 1.0, "token (0,1,1)");
        assert_eq!(at(3, 3, 3), 1.0, "token (1,1,1)");
        assert_eq!(at(2, 2, 0), 0.0, "token (1,1,0)");
        assert_eq!(m.iter().sum::<f32>(), 24.0);
    }

    #[test]
    fn coarse_mask_marks_tokens_under_masked_blocks() {
        let device = Device::flex();
        // A 4×4×4 patch grid in 2×2×2 blocks; block (1, 0, 1) masked.
        let values: Vec<f32> = (0..64)
            .map(|i| {
                let (d, h, w) = (i / 16, (i / 4) % 4, i % 4);
                f32::from(u8::from(d >= 2 && h < 2 && w >= 2))
            })
            .collect();
        let mask = Tensor::<4>::from_data(TensorData::new(values, [1, 4, 4, 4]), &device);
        let coarse: Vec<f32> = coarse_mask(mask, 2).into_data().try_to_vec().unwrap();
        let mut expected = vec![0.0; 8];
        expected[4 + 1] = 1.0;
        assert_eq!(coarse, expected);
    }
}
