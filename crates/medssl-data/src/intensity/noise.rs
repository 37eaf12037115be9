//! Additive Gaussian noise, imitating acquisition noise (low-dose CT, fast MRI).

use rand::RngExt;
use rand_distr::StandardNormal;
use rayon::prelude::*;
use serde::Deserialize;

use super::params::{check_finite, check_prob, coin, default_prob, invalid, uniform};
use super::{CHUNK, non_finite_error, require_finite, voxels_mut};
use crate::error::Result;
use crate::rng::{self, Rng};
use crate::sample::Sample;
use crate::transform::FromParams;
use crate::transform::Transform;

/// MONAI's `RandGaussianNoised`: with probability `prob`, adds noise drawn from
/// `N(mean, s^2)` to every voxel, where `s` is uniform in `[0, std]` when `sample_std`
/// (MONAI's default) and `std` otherwise.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandGaussianNoise {
    #[serde(default = "default_prob")]
    prob: f64,
    #[serde(default)]
    mean: f64,
    #[serde(default = "default_std")]
    std: f64,
    #[serde(default = "default_sample_std")]
    sample_std: bool,
}

fn default_std() -> f64 {
    0.1
}

fn default_sample_std() -> bool {
    true
}

/// What one application of [`RandGaussianNoise`] drew.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoiseDraw {
    /// Standard deviation of this draw's noise.
    pub std: f64,
    /// Seed of the noise field (see [`add_gaussian_noise`]).
    pub seed: u64,
}

impl FromParams for RandGaussianNoise {
    const NAME: &'static str = "rand_gaussian_noise";
    const MONAI: &'static str = "RandGaussianNoised";

    type Params = Self;

    fn from_params(params: Self) -> Result<Self> {
        check_prob(Self::NAME, params.prob)?;
        check_finite(Self::NAME, "mean", &[params.mean])?;
        check_finite(Self::NAME, "std", &[params.std])?;
        if params.std < 0.0 {
            return Err(invalid(
                Self::NAME,
                "std",
                format!("must not be negative, got {}", params.std),
            ));
        }
        Ok(params)
    }
}

impl RandGaussianNoise {
    /// The coin, then the standard deviation and the noise seed; `None` when skipped.
    pub fn draw(&self, rng: &mut Rng) -> Option<NoiseDraw> {
        if !coin(rng, self.prob) {
            return None;
        }
        let std = if self.sample_std {
            uniform(rng, [0.0, self.std])
        } else {
            self.std
        };
        Some(NoiseDraw {
            std,
            seed: rng.random(),
        })
    }
}

impl Transform for RandGaussianNoise {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn is_random(&self) -> bool {
        true
    }

    fn apply(&self, mut sample: Sample, rng: &mut Rng) -> Result<Vec<Sample>> {
        match self.draw(rng) {
            Some(draw) => add_gaussian_noise(&mut sample, self.mean, draw.std, draw.seed)?,
            None => require_finite(&sample, Self::NAME)?,
        }
        Ok(vec![sample])
    }
}

/// Adds `mean + std * z` (z standard normal, drawn in f64 and rounded to f32 as MONAI
/// does) to every voxel. Each fixed-size block of voxels draws from its own stream
/// `rng::stream(seed, &[block])`, so the noise is parallel yet depends only on `seed`.
/// Fails on NaN or infinite voxels.
pub fn add_gaussian_noise(sample: &mut Sample, mean: f64, std: f64, seed: u64) -> Result<()> {
    let bad: usize = voxels_mut(sample)
        .par_chunks_mut(CHUNK)
        .enumerate()
        .map(|(block, chunk)| {
            let mut rng = rng::stream(seed, &[block as u64]);
            let mut bad = 0;
            for v in chunk {
                bad += usize::from(!v.is_finite());
                let z: f64 = rng.sample(StandardNormal);
                *v += (mean + std * z) as f32;
            }
            bad
        })
        .sum();
    if bad > 0 {
        return Err(non_finite_error(sample, RandGaussianNoise::NAME, bad));
    }
    Ok(())
}
