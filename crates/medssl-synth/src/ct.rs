//! CT rendering: Hounsfield units per tissue (with a per-case contrast phase and
//! scanner calibration offset), texture, partial-volume blur and slightly correlated
//! Gaussian noise, rounded to whole HU in the range an int16 CT file stores.

use rand::RngExt;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use super::scene::Scene;
use super::tissue::Class;
use super::{Grid, PSF_SIGMA, Stage, blurred_image, filters};

/// HU range of the written images (12-bit CT as stored by scanners).
pub(crate) const HU_RANGE: (f32, f32) = (-1024.0, 3071.0);

/// Range of the noise standard deviation (HU) drawn per case.
pub(crate) const NOISE_SD: std::ops::Range<f32> = 12.0..20.0;

/// Per-tissue mean HU and texture amplitude for one case: each class's mean moves by
/// its own spread, enhancing classes scale with the case's contrast phase, and every
/// tissue but air shifts by a common calibration offset.
fn tissue_hu(scene: &Scene, rng: &mut medssl_data::rng::Rng) -> (Vec<f32>, Vec<f32>) {
    let phase: f32 = rng.random_range(0.8..1.2);
    let calibration: f32 = StandardNormal.sample(rng);
    let offset = 4.0 * calibration;
    let class_mean: Vec<f32> = Class::ALL
        .iter()
        .map(|c| {
            let l = c.look();
            let shift: f32 = StandardNormal.sample(rng);
            if *c == Class::Air {
                l.hu
            } else {
                l.hu + l.enhancement * phase + l.spread * shift + offset
            }
        })
        .collect();
    scene
        .tissues()
        .iter()
        .map(|t| {
            (
                class_mean[t.class.index()] + 100.0 * t.contrast,
                t.class.look().texture,
            )
        })
        .unzip()
}

/// The CT image (HU) of a rasterised scene.
pub(crate) fn render(scene: &Scene, tissue: &[u8], grid: &Grid, seed: u64, case: u64) -> Vec<f32> {
    let mut rng = Stage::Looks.stream(seed, case);
    let (mean, texture) = tissue_hu(scene, &mut rng);
    let noise_sd: f32 = rng.random_range(NOISE_SD);
    // White noise blurred with the image: correlated over about a voxel, like
    // reconstructed CT noise, and scaled to `noise_sd` after the blur.
    let white = filters::white_noise(grid.shape(), seed, &Stage::Noise.path(case));
    let gain = noise_sd / filters::blurred_noise_sd([PSF_SIGMA; 3]);
    let mut image = blurred_image(
        tissue,
        (&mean, &texture),
        Some((&white, gain)),
        grid,
        seed,
        case,
    );
    image.par_iter_mut().for_each(|v| {
        *v = v.round().clamp(HU_RANGE.0, HU_RANGE.1);
    });
    image
}
