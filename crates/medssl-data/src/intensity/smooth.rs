//! Random Gaussian smoothing (blur), imitating thicker slices and softer reconstruction
//! kernels.

use rayon::prelude::*;
use serde::Deserialize;

use super::params::{check_finite, check_prob, coin, default_prob, invalid, uniform};
use super::{require_finite, voxels_mut};
use crate::error::Result;
use crate::rng::Rng;
use crate::sample::Sample;
use crate::transform::FromParams;
use crate::transform::Transform;

/// Output values per parallel work item of a filter pass.
const TILE: usize = 1 << 14;

/// MONAI's discrete Gaussian kernels (`GaussianFilter(approx=...)`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Approx {
    /// The Gaussian integrated over each voxel (differences of `erf`), MONAI's default.
    #[default]
    Erf,
    /// The Gaussian density sampled at voxel centres.
    Sampled,
}

/// MONAI's `RandGaussianSmoothd`: with probability `prob`, a separable Gaussian filter
/// with per-axis sigmas (in voxels) uniform in `sigma_x`, `sigma_y`, `sigma_z` along I,
/// J, K; zero padding at the borders and kernels truncated at 4 sigma, as MONAI's
/// `GaussianFilter`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandGaussianSmooth {
    #[serde(default = "default_sigma")]
    sigma_x: [f64; 2],
    #[serde(default = "default_sigma")]
    sigma_y: [f64; 2],
    #[serde(default = "default_sigma")]
    sigma_z: [f64; 2],
    #[serde(default = "default_prob")]
    prob: f64,
    #[serde(default)]
    approx: Approx,
}

fn default_sigma() -> [f64; 2] {
    [0.25, 1.5]
}

impl FromParams for RandGaussianSmooth {
    const NAME: &'static str = "rand_gaussian_smooth";
    const MONAI: &'static str = "RandGaussianSmoothd";

    type Params = Self;

    fn from_params(params: Self) -> Result<Self> {
        check_prob(Self::NAME, params.prob)?;
        for (name, range) in [
            ("sigma_x", params.sigma_x),
            ("sigma_y", params.sigma_y),
            ("sigma_z", params.sigma_z),
        ] {
            check_finite(Self::NAME, name, &range)?;
            let smallest = range[0].min(range[1]);
            // The sampled kernel divides by sigma; the erf one tends to identity at 0.
            let positive = smallest > 0.0 || params.approx == Approx::Erf && smallest == 0.0;
            if !positive {
                return Err(invalid(
                    Self::NAME,
                    name,
                    format!("must be positive (0 allowed with approx = \"erf\"), got {range:?}"),
                ));
            }
        }
        Ok(params)
    }
}

impl RandGaussianSmooth {
    /// The drawn sigmas along I, J, K, or `None` when the step is skipped.
    pub fn draw(&self, rng: &mut Rng) -> Option<[f64; 3]> {
        if !coin(rng, self.prob) {
            return None;
        }
        Some([
            uniform(rng, self.sigma_x),
            uniform(rng, self.sigma_y),
            uniform(rng, self.sigma_z),
        ])
    }
}

impl Transform for RandGaussianSmooth {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn is_random(&self) -> bool {
        true
    }

    fn apply(&self, mut sample: Sample, rng: &mut Rng) -> Result<Vec<Sample>> {
        match self.draw(rng) {
            Some(sigma) => gaussian_smooth(&mut sample, sigma, self.approx)?,
            None => require_finite(&sample, Self::NAME)?,
        }
        Ok(vec![sample])
    }
}

/// MONAI's `gaussian_1d(sigma, truncated=4.0, approx)`: `2 * tail + 1` taps with
/// `tail = int(max(4 sigma, 0.5) + 0.5)`, not normalised (its sum is close to 1).
/// `sigma` is rounded to f32 first, as MONAI holds it in a float32 tensor, so the tail
/// length matches MONAI's for every drawn sigma.
pub fn gaussian_kernel(sigma: f64, approx: Approx) -> Vec<f32> {
    let sigma = f64::from(sigma as f32).abs();
    let tail = ((sigma * 4.0).max(0.5) + 0.5) as i64;
    (-tail..=tail)
        .map(|x| {
            let x = x as f64;
            let w = match approx {
                Approx::Erf => {
                    let t = std::f64::consts::FRAC_1_SQRT_2 / sigma;
                    (0.5 * (libm::erf(t * (x + 0.5)) - libm::erf(t * (x - 0.5)))).max(0.0)
                }
                Approx::Sampled => {
                    (-0.5 / (sigma * sigma) * x * x).exp()
                        / ((2.0 * std::f64::consts::PI).sqrt() * sigma)
                }
            };
            w as f32
        })
        .collect()
}

/// Separable Gaussian smoothing of every channel with `sigma` (voxels) along I, J, K,
/// filtering I first, then J, then K, with zeros outside the image (MONAI's
/// `GaussianSmooth`). Fails on NaN or infinite voxels.
pub fn gaussian_smooth(sample: &mut Sample, sigma: [f64; 3], approx: Approx) -> Result<()> {
    require_finite(sample, RandGaussianSmooth::NAME)?;
    let [_, i, j, k] = {
        let s = sample.image.data().shape();
        [s[0], s[1], s[2], s[3]]
    };
    let values = voxels_mut(sample);
    let mut scratch = vec![0.0f32; values.len()];
    filter_axis(
        values,
        &mut scratch,
        i,
        j * k,
        &gaussian_kernel(sigma[0], approx),
    );
    filter_axis(&scratch, values, j, k, &gaussian_kernel(sigma[1], approx));
    filter_axis(
        values,
        &mut scratch,
        k,
        1,
        &gaussian_kernel(sigma[2], approx),
    );
    values.copy_from_slice(&scratch);
    Ok(())
}

/// Correlates `src` with `kernel` along an axis of length `n` whose elements are `m`
/// contiguous values apart (the array seen as `[outer, n, m]`), writing `dst`. Each
/// output row of `m` values is a sum of whole input rows, so the inner loops are
/// contiguous and vectorise.
fn filter_axis(src: &[f32], dst: &mut [f32], n: usize, m: usize, kernel: &[f32]) {
    let block = n * m;
    if block == 0 {
        return;
    }
    let rows = (TILE / m).max(1);
    dst.par_chunks_mut(block)
        .zip(src.par_chunks(block))
        .with_min_len((TILE / block).max(1))
        .for_each(|(out, input)| {
            if block <= rows * m {
                filter_rows(input, out, 0, n, m, kernel);
            } else {
                out.par_chunks_mut(rows * m)
                    .enumerate()
                    .for_each(|(tile, out)| filter_rows(input, out, tile * rows, n, m, kernel));
            }
        });
}

/// Output rows `first..` of one `[n, m]` block (as many as `out` holds), zero padded.
fn filter_rows(input: &[f32], out: &mut [f32], first: usize, n: usize, m: usize, kernel: &[f32]) {
    let last = first + out.len() / m;
    let tail = (kernel.len() / 2) as isize;
    out.fill(0.0);
    for (tap, &w) in kernel.iter().enumerate() {
        // Output row r reads input row r + shift; only rows inside the image count.
        let shift = tap as isize - tail;
        let lo = (first as isize).max(-shift);
        let hi = (last as isize).min(n as isize - shift);
        if lo >= hi {
            continue;
        }
        let (lo, hi) = (lo as usize, hi as usize);
        let src_lo = (lo as isize + shift) as usize;
        let out_rows = &mut out[(lo - first) * m..(hi - first) * m];
        let in_rows = &input[src_lo * m..(src_lo + hi - lo) * m];
        for (o, &x) in out_rows.iter_mut().zip(in_rows) {
            *o += w * x;
        }
    }
}
