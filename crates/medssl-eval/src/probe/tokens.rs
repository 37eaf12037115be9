//! The tokens a frozen encoder makes of one case, stage by stage, with the label each
//! token describes.
//!
//! The preprocessed volume is padded at its far ends to a multiple of the window `roi`
//! and cut into windows that tile it without overlap; each window goes through the
//! encoder ([`SwinTransformer::forward`]), and every spatial position of a stage's output is a
//! token, covering a block of `roi / stage side` voxels a side. Its label is the most
//! frequent label of the voxels of that block inside the volume, ties going to the
//! higher label (foreground is rarer than background and is what the probe is asked
//! about); a token whose block lies wholly in the padding is left out.

use burn::tensor::Device;
use medssl_model::ModelError;
use medssl_model::arrays::{to_array, to_tensor};
use medssl_model::swin::SwinTransformer;
use ndarray::{Array2, Array5, ArrayView3, ArrayView4, s};

/// The tokens of one stage: `[tokens, channels]` features and a label per token.
#[derive(Debug, Clone, PartialEq)]
pub struct StageTokens {
    pub features: Array2<f32>,
    pub labels: Vec<usize>,
}

/// The label of the voxels in the padding.
const OUTSIDE: u8 = u8::MAX;

/// The tokens of each of the encoder's five stages over `image` (`[C, D, H, W]`, after
/// the task's preprocessing) labelled from `label` (`[D, H, W]`), in windows of `roi`
/// (multiples of 32 on every side, as the encoder needs).
pub fn case_tokens(
    encoder: &SwinTransformer,
    image: ArrayView4<f32>,
    label: ArrayView3<u8>,
    roi: [usize; 3],
    device: &Device,
) -> Result<Vec<StageTokens>, ModelError> {
    let (channels, dims) = (
        image.shape()[0],
        [image.shape()[1], image.shape()[2], image.shape()[3]],
    );
    let padded: [usize; 3] = std::array::from_fn(|a| dims[a].div_ceil(roi[a]) * roi[a]);
    let mut volume = Array5::<f32>::zeros((1, channels, padded[0], padded[1], padded[2]));
    volume
        .slice_mut(s![0, .., ..dims[0], ..dims[1], ..dims[2]])
        .assign(&image);
    let mut labels = ndarray::Array3::<u8>::from_elem(padded, OUTSIDE);
    labels
        .slice_mut(s![..dims[0], ..dims[1], ..dims[2]])
        .assign(&label);

    let mut stages: Vec<(Vec<f32>, Vec<usize>, usize)> = Vec::new();
    for z in (0..padded[0]).step_by(roi[0]) {
        for y in (0..padded[1]).step_by(roi[1]) {
            for x in (0..padded[2]).step_by(roi[2]) {
                let window = volume
                    .slice(s![.., .., z..z + roi[0], y..y + roi[1], x..x + roi[2]])
                    .to_owned();
                let outputs = encoder.forward(to_tensor(window, device));
                let window_labels = labels.slice(s![z..z + roi[0], y..y + roi[1], x..x + roi[2]]);
                for (stage, output) in outputs.into_iter().enumerate() {
                    let output = to_array(output)?;
                    if stages.len() <= stage {
                        stages.push((Vec::new(), Vec::new(), output.shape()[1]));
                    }
                    add_tokens(&mut stages[stage], &output, window_labels);
                }
            }
        }
    }
    Ok(stages
        .into_iter()
        .map(|(features, labels, width)| StageTokens {
            features: Array2::from_shape_vec((labels.len(), width), features)
                .expect("one row per label"),
            labels,
        })
        .collect())
}

/// Appends the tokens of one stage output `[1, C, d, h, w]` of a window whose voxel
/// labels are `labels`.
fn add_tokens(
    (features, token_labels, _): &mut (Vec<f32>, Vec<usize>, usize),
    output: &Array5<f32>,
    labels: ArrayView3<u8>,
) {
    let side = [output.shape()[2], output.shape()[3], output.shape()[4]];
    let block: [usize; 3] = std::array::from_fn(|a| labels.shape()[a] / side[a]);
    for i in 0..side[0] {
        for j in 0..side[1] {
            for k in 0..side[2] {
                let voxels = labels.slice(s![
                    i * block[0]..(i + 1) * block[0],
                    j * block[1]..(j + 1) * block[1],
                    k * block[2]..(k + 1) * block[2]
                ]);
                let Some(label) = majority(voxels.iter().copied()) else {
                    continue;
                };
                features.extend(output.slice(s![0, .., i, j, k]).iter());
                token_labels.push(label);
            }
        }
    }
}

/// The most frequent label other than [`OUTSIDE`], ties to the higher one; `None` when
/// every voxel is outside.
fn majority(voxels: impl Iterator<Item = u8>) -> Option<usize> {
    let mut counts = [0usize; OUTSIDE as usize];
    for v in voxels.filter(|&v| v != OUTSIDE) {
        counts[v as usize] += 1;
    }
    // `max_by_key` keeps the last of equal counts: the higher label.
    let (label, &count) = counts.iter().enumerate().max_by_key(|&(_, &c)| c)?;
    (count > 0).then_some(label)
}

#[cfg(test)]
mod tests {
    use super::*;
    use medssl_model::{SwinUnetr, SwinUnetrConfig};
    use ndarray::{Array3, Array4};

    #[test]
    fn the_majority_label_wins_and_ties_go_to_the_higher() {
        assert_eq!(majority([0, 0, 1].into_iter()), Some(0));
        assert_eq!(majority([0, 1, 1, 0].into_iter()), Some(1));
        assert_eq!(majority([2, OUTSIDE, OUTSIDE, 0].into_iter()), Some(2));
        assert_eq!(majority([OUTSIDE; 4].into_iter()), None);
    }

    /// A 48×32×32 volume in 32³ windows is padded to 64×32×32: two windows. The patch
    /// embedding (16³ per window, blocks of 2 voxels) keeps the 24×16×16 tokens inside
    /// the volume; the deepest stage (1 per window, blocks of 32) keeps both, the second
    /// block being half inside. Labels: class 1 in the first 8 slices, so the first 4
    /// rows of patch tokens are 1, and the deepest stage's first token is 0 (8 of 32
    /// slices) and its second (16 inside slices, none 1) is 0 too.
    #[test]
    fn tokens_cover_the_volume_with_their_blocks_labels() {
        let device = Device::flex();
        let config = SwinUnetrConfig::new(1, 2).with_feature_size(12);
        let network = SwinUnetr::new(&config, &device).unwrap();
        let image = Array4::from_shape_fn((1, 48, 32, 32), |(_, z, y, x)| {
            ((z * 7 + y * 3 + x) % 11) as f32 / 11.0
        });
        let label = Array3::from_shape_fn((48, 32, 32), |(z, _, _)| u8::from(z < 8));
        let stages = case_tokens(
            &network.swin_vit,
            image.view(),
            label.view(),
            [32; 3],
            &device,
        )
        .unwrap();
        assert_eq!(stages.len(), 5);
        let patch = &stages[0];
        assert_eq!(patch.labels.len(), 24 * 16 * 16);
        assert_eq!(patch.features.shape(), [24 * 16 * 16, 12]);
        let ones = patch.labels.iter().filter(|&&l| l == 1).count();
        assert_eq!(ones, 4 * 16 * 16);
        assert!(patch.labels[..4 * 16 * 16].iter().all(|&l| l == 1));
        let deepest = &stages[4];
        assert_eq!(deepest.labels, [0, 0]);
        assert_eq!(deepest.features.shape(), [2, 192]);
        assert!(patch.features.iter().all(|v| v.is_finite()));
    }
}
