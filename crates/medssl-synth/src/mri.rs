//! MRI rendering: T1- or T2-weighted tissue signal (chosen per case), texture,
//! partial-volume blur, a multiplicative bias field and Rician noise (the magnitude of a
//! complex signal with Gaussian noise in both channels).
//!
//! The bias field has two parts: the shading of anterior and posterior surface coils
//! (bright near the front and back of the body, darker in the middle) and a smooth
//! random field for everything else (B1 inhomogeneity, coil placement).

use rand::RngExt;
use rayon::prelude::*;

use super::scene::Scene;
use super::tissue::Class;
use super::{Grid, Stage, blurred_image, filters};

/// Which contrast a case has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Weighting {
    T1,
    T2,
}

/// Relative texture amplitude of every tissue but air.
const TEXTURE: f32 = 0.08;

/// Size (mm) of the bias field's features: it varies over the whole body.
const BIAS_CELL: f64 = 150.0;

/// Range of the random bias field's strength (standard deviation of its logarithm).
const BIAS_STRENGTH: std::ops::Range<f64> = 0.15..0.3;

/// Range of the coil shading: the logarithm of the gain at the front and back edges of
/// the field of view relative to its centre plane.
const COIL_SHADING: std::ops::Range<f64> = 0.2..0.5;

/// Range of the noise standard deviation per channel, in signal units (tissues lie at
/// about 100-1000).
const NOISE_SD: std::ops::Range<f32> = 30.0..60.0;

/// The signal of `class` under `weighting`.
pub(crate) fn signal(class: Class, weighting: Weighting) -> f32 {
    let look = class.look();
    match weighting {
        Weighting::T1 => look.t1,
        Weighting::T2 => look.t2,
    }
}

/// The MRI image of a rasterised scene.
pub(crate) fn render(scene: &Scene, tissue: &[u8], grid: &Grid, seed: u64, case: u64) -> Vec<f32> {
    let mut rng = Stage::Looks.stream(seed, case);
    let weighting = if rng.random_bool(0.5) {
        Weighting::T1
    } else {
        Weighting::T2
    };
    let class_gain: Vec<f32> = Class::ALL
        .iter()
        .map(|_| rng.random_range(0.9..1.1))
        .collect();
    let (mean, texture): (Vec<f32>, Vec<f32>) = scene
        .tissues()
        .iter()
        .map(|t| {
            let m = signal(t.class, weighting) * class_gain[t.class.index()] * (1.0 + t.contrast);
            (m, TEXTURE * m)
        })
        .unzip();
    let strength = rng.random_range(BIAS_STRENGTH) as f32;
    let shading = rng.random_range(COIL_SHADING);
    let noise_sd: f32 = rng.random_range(NOISE_SD);
    let mut image = blurred_image(tissue, (&mean, &texture), None, grid, seed, case);
    let mut bias = filters::smooth_field(grid, BIAS_CELL, &mut Stage::Bias.stream(seed, case));
    let [_, nj, nk] = grid.shape();
    // Coil shading by J (anterior-posterior) position, in log gain.
    let coil: Vec<f32> = (0..nj)
        .map(|j| {
            let t = 2.0 * j as f64 / (nj as f64 - 1.0).max(1.0) - 1.0;
            (shading * (t * t - 1.0 / 3.0)) as f32
        })
        .collect();
    bias.par_chunks_mut(nj * nk).for_each(|plane| {
        for (row, &c) in plane.chunks_exact_mut(nk).zip(&coil) {
            row.iter_mut().for_each(|b| *b = strength * *b + c);
        }
    });
    let real = filters::white_noise(grid.shape(), seed, &Stage::Noise.path(case));
    let imaginary = filters::white_noise(grid.shape(), seed, &Stage::NoiseImaginary.path(case));
    image
        .par_iter_mut()
        .zip(bias.par_iter())
        .zip(real.par_iter().zip(imaginary.par_iter()))
        .for_each(|((v, &b), (&re, &im))| {
            let s = *v * b.exp();
            *v = (s + noise_sd * re).hypot(noise_sd * im);
        });
    image
}
