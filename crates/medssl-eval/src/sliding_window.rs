//! Sliding-window inference with MONAI's `sliding_window_inference` semantics, on plain
//! arrays: the network is any function from a batch of windows to a batch of outputs,
//! so this module needs no deep-learning framework.

use ndarray::{Array3, Array5, ArrayView5, Axis, s};

/// How overlapping window predictions are blended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Blend {
    /// Every voxel of a window weighs 1.
    Constant,
    /// A Gaussian centred on the window, `sigma = sigma_scale * roi` per axis.
    Gaussian { sigma_scale: f64 },
}

/// Settings of a sliding-window pass.
#[derive(Debug, Clone, PartialEq)]
pub struct SlidingWindow {
    pub roi: [usize; 3],
    /// Fraction of a window shared with its neighbour, in [0, 1).
    pub overlap: f64,
    /// Windows given to the network at once.
    pub batch: usize,
    pub blend: Blend,
    /// Value used to pad images smaller than the window.
    pub cval: f32,
}

/// Why a sliding-window pass could not run; `E` is the network's own error, kept as
/// the source.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SlidingWindowError<E = std::convert::Infallible> {
    #[error("overlap must be in [0, 1), got {0}")]
    Overlap(f64),
    #[error("roi size and window batch must be at least 1, got roi {roi:?} and batch {batch}")]
    Empty { roi: [usize; 3], batch: usize },
    #[error(
        "the image [B, C, D, H, W] = {shape:?} has no voxels to infer (an empty batch or an \
         empty axis)"
    )]
    EmptyImage { shape: Vec<usize> },
    #[error("the network returned shape {got:?} for windows of shape {sent:?}")]
    OutputShape { sent: Vec<usize>, got: Vec<usize> },
    #[error("the network failed: {0}")]
    Network(#[source] E),
}

/// MONAI's scan interval: `roi * (1 - overlap)` rounded down (at least 1), or the roi
/// itself on an axis where the image is exactly the roi.
pub fn scan_interval(image: [usize; 3], roi: [usize; 3], overlap: f64) -> [usize; 3] {
    std::array::from_fn(|a| {
        if roi[a] == image[a] {
            roi[a]
        } else {
            ((roi[a] as f64 * (1.0 - overlap)) as usize).max(1)
        }
    })
}

/// Window start positions per axis (MONAI's `dense_patch_slices`): regular steps, the
/// last one moved back so the window ends at the image border.
pub fn window_starts(image: [usize; 3], roi: [usize; 3], interval: [usize; 3]) -> [Vec<usize>; 3] {
    std::array::from_fn(|a| {
        let steps = (0..image[a].div_ceil(interval[a]))
            .find(|d| d * interval[a] + roi[a] >= image[a])
            .map_or(1, |d| d + 1);
        (0..steps)
            .map(|i| {
                let start = i * interval[a];
                start - (start + roi[a]).saturating_sub(image[a])
            })
            .collect()
    })
}

/// The per-voxel weight of a window, in f32 as MONAI computes it: ones, or the product
/// of per-axis Gaussians `exp(-x^2 / (2 sigma^2))` (1 at an exact centre voxel, not
/// renormalised) clamped below at `max(min, 1e-3)`.
pub fn importance_map(roi: [usize; 3], blend: Blend) -> Array3<f32> {
    match blend {
        Blend::Constant => Array3::ones(roi),
        Blend::Gaussian { sigma_scale } => {
            let axis = |l: usize| -> Vec<f32> {
                let sigma = (sigma_scale * l as f64) as f32;
                (0..l)
                    .map(|i| {
                        let x = i as f32 - (l as f32 - 1.0) / 2.0;
                        (x * x / (-2.0 * sigma * sigma)).exp()
                    })
                    .collect()
            };
            let (g0, g1, g2) = (axis(roi[0]), axis(roi[1]), axis(roi[2]));
            let mut map = Array3::from_shape_fn(roi, |(i, j, k)| g0[i] * g1[j] * g2[k]);
            let floor = map.iter().copied().fold(f32::MAX, f32::min).max(1e-3);
            map.mapv_inplace(|v| v.max(floor));
            map
        }
    }
}

impl SlidingWindow {
    /// Runs `network` over `image` (`[B, C, D, H, W]`) window by window and blends the
    /// outputs into an array `[B, C_out, D, H, W]` on the input grid. The accumulators
    /// are the only full-size buffers.
    pub fn run<F, E>(
        &self,
        image: ArrayView5<f32>,
        mut network: F,
    ) -> Result<Array5<f32>, SlidingWindowError<E>>
    where
        F: FnMut(Array5<f32>) -> Result<Array5<f32>, E>,
    {
        if !(0.0..1.0).contains(&self.overlap) {
            return Err(SlidingWindowError::Overlap(self.overlap));
        }
        if self.batch == 0 || self.roi.contains(&0) {
            return Err(SlidingWindowError::Empty {
                roi: self.roi,
                batch: self.batch,
            });
        }
        if image.is_empty() {
            return Err(SlidingWindowError::EmptyImage {
                shape: image.shape().to_vec(),
            });
        }
        let (b, c) = (image.shape()[0], image.shape()[1]);
        let original = [image.shape()[2], image.shape()[3], image.shape()[4]];
        // Pad images smaller than the window symmetrically (half before, rest after).
        let before: [usize; 3] =
            std::array::from_fn(|a| self.roi[a].saturating_sub(original[a]) / 2);
        let size: [usize; 3] = std::array::from_fn(|a| original[a].max(self.roi[a]));
        let padded = if size == original {
            image.to_owned()
        } else {
            let mut p = Array5::from_elem((b, c, size[0], size[1], size[2]), self.cval);
            p.slice_mut(s![
                ..,
                ..,
                before[0]..before[0] + original[0],
                before[1]..before[1] + original[1],
                before[2]..before[2] + original[2]
            ])
            .assign(&image);
            p
        };
        let starts = window_starts(size, self.roi, scan_interval(size, self.roi, self.overlap));
        // Last axis fastest, as MONAI enumerates windows.
        let mut windows = Vec::new();
        for &d in &starts[0] {
            for &h in &starts[1] {
                for &w in &starts[2] {
                    windows.push([d, h, w]);
                }
            }
        }
        let weight = importance_map(self.roi, self.blend);
        let [r0, r1, r2] = self.roi;
        let mut output: Option<Array5<f32>> = None;
        let mut count = Array3::<f32>::zeros(size);

        for sample in 0..b {
            let volume = padded.index_axis(Axis(0), sample);
            for chunk in windows.chunks(self.batch) {
                let mut batch = Array5::<f32>::zeros((chunk.len(), c, r0, r1, r2));
                for (n, &[d, h, w]) in chunk.iter().enumerate() {
                    batch.index_axis_mut(Axis(0), n).assign(&volume.slice(s![
                        ..,
                        d..d + r0,
                        h..h + r1,
                        w..w + r2
                    ]));
                }
                let sent = batch.shape().to_vec();
                let pred = network(batch).map_err(SlidingWindowError::Network)?;
                let (pn, pc) = (pred.shape()[0], pred.shape()[1]);
                if pn != chunk.len() || pred.shape()[2..] != sent[2..] {
                    return Err(SlidingWindowError::OutputShape {
                        sent,
                        got: pred.shape().to_vec(),
                    });
                }
                let out =
                    output.get_or_insert_with(|| Array5::zeros((b, pc, size[0], size[1], size[2])));
                if out.shape()[1] != pc {
                    return Err(SlidingWindowError::OutputShape {
                        sent,
                        got: pred.shape().to_vec(),
                    });
                }
                for (n, &[d, h, w]) in chunk.iter().enumerate() {
                    let mut target = out.slice_mut(s![sample, .., d..d + r0, h..h + r1, w..w + r2]);
                    for (mut t, p) in target
                        .outer_iter_mut()
                        .zip(pred.index_axis(Axis(0), n).outer_iter())
                    {
                        ndarray::Zip::from(&mut t)
                            .and(&p)
                            .and(&weight)
                            .for_each(|t, &p, &wt| *t += p * wt);
                    }
                    if sample == 0 {
                        let mut cnt = count.slice_mut(s![d..d + r0, h..h + r1, w..w + r2]);
                        cnt += &weight;
                    }
                }
            }
        }
        let mut out = output.expect("at least one window");
        for mut sample in out.outer_iter_mut() {
            for mut channel in sample.outer_iter_mut() {
                channel /= &count;
            }
        }
        Ok(out
            .slice(s![
                ..,
                ..,
                before[0]..before[0] + original[0],
                before[1]..before[1] + original[1],
                before[2]..before[2] + original[2]
            ])
            .to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    /// The largest `|got - want|`; panics, naming the index, at a NaN or infinity on
    /// either side (checked first: `f32::max` drops a NaN, so an all-NaN output would
    /// otherwise pass).
    fn max_abs_diff(what: &str, got: &Array5<f32>, want: &Array5<f32>) -> f32 {
        assert_eq!(got.shape(), want.shape(), "{what}: shapes differ");
        for (side, values) in [("got", got), ("want", want)] {
            if let Some((at, v)) = values.indexed_iter().find(|(_, v)| !v.is_finite()) {
                panic!("{what}: {side}{at:?} is {v}, not a finite value");
            }
        }
        got.iter()
            .zip(want.iter())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    #[should_panic(expected = "identity: got(0, 0, 1, 2, 0) is NaN")]
    fn max_abs_diff_fails_on_a_nan() {
        let want = Array5::<f32>::zeros((1, 1, 2, 3, 1));
        let mut got = want.clone();
        got[[0, 0, 1, 2, 0]] = f32::NAN;
        max_abs_diff("identity", &got, &want);
    }

    #[test]
    #[should_panic(expected = "identity: want(0, 0, 0, 1, 0) is inf")]
    fn max_abs_diff_fails_on_an_infinity() {
        let got = Array5::<f32>::zeros((1, 1, 2, 3, 1));
        let mut want = got.clone();
        want[[0, 0, 0, 1, 0]] = f32::INFINITY;
        max_abs_diff("identity", &got, &want);
    }

    /// An empty batch (or an empty axis) is an error, not a panic, and the network is
    /// never called.
    #[test]
    fn an_empty_image_is_an_error() {
        let sw = SlidingWindow {
            roi: [4, 4, 4],
            overlap: 0.5,
            batch: 2,
            blend: Blend::Constant,
            cval: 0.0,
        };
        for shape in [(0, 1, 8, 8, 8), (1, 1, 8, 0, 8)] {
            let image = Array5::<f32>::zeros(shape);
            let err = sw
                .run(image.view(), |_| -> Result<_, Infallible> {
                    panic!("the network is not called")
                })
                .unwrap_err();
            let dims = [shape.0, shape.1, shape.2, shape.3, shape.4].to_vec();
            assert_eq!(err, SlidingWindowError::EmptyImage { shape: dims });
            assert!(err.to_string().contains("no voxels to infer"), "{err}");
        }
    }

    #[test]
    fn windows_match_monai_for_the_fixture_geometry() {
        let image = [80, 72, 64];
        let roi = [64; 3];
        let interval = scan_interval(image, roi, 0.5);
        assert_eq!(interval, [32, 32, 64]);
        let starts = window_starts(image, roi, interval);
        assert_eq!(starts, [vec![0, 16], vec![0, 8], vec![0]]);
        assert_eq!(
            window_starts([100, 64, 64], roi, [32, 32, 32])[0],
            vec![0, 32, 36]
        );
    }

    #[test]
    fn gaussian_map_is_one_at_the_centre_and_clamped() {
        let map = importance_map([9, 9, 9], Blend::Gaussian { sigma_scale: 0.125 });
        let min = map.iter().copied().fold(f32::MAX, f32::min);
        assert_eq!(map[[4, 4, 4]], 1.0);
        assert_eq!(min, 1e-3, "corners fall below 1e-3 and are clamped");
        // Symmetric about the centre.
        assert_eq!(map[[0, 3, 5]], map[[8, 5, 3]]);
        // Even sizes have no centre voxel: the peak is below 1, as in MONAI.
        let even = importance_map([8, 8, 8], Blend::Gaussian { sigma_scale: 0.125 });
        assert!(even[[3, 3, 3]] < 1.0 && even[[3, 3, 3]] == even[[4, 4, 4]]);
    }

    #[test]
    fn identity_network_returns_the_image_even_when_padded() {
        let image = Array5::from_shape_fn((2, 1, 20, 9, 33), |(b, _, i, j, k)| {
            (b * 7 + i * 3 + j * 5 + k) as f32
        });
        for blend in [Blend::Constant, Blend::Gaussian { sigma_scale: 0.125 }] {
            let sw = SlidingWindow {
                roi: [16, 16, 16],
                overlap: 0.25,
                batch: 3,
                blend,
                cval: 0.0,
            };
            let out = sw.run(image.view(), Ok::<_, Infallible>).unwrap();
            assert_eq!(out.shape(), image.shape());
            let err = max_abs_diff(&format!("{blend:?}"), &out, &image);
            assert!(err < 1e-4, "{blend:?}: {err}");
        }
    }
}
